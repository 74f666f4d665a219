"""Who may use the finance routes: finance and admin everywhere; customer service reads invoices; HR posts payroll;
profile, tax rates, period reopen and budget approval are admin's. (The matrix in test_permissions.py then checks
401 without a token and 403 for every other role on each of these routes, against the real app.)"""

from __future__ import annotations

from fleetapp.api import create_app
from fleetcore.settings import Settings
from tests.test_permissions import route_table

FIN = frozenset({"admin", "finance"})
EXCEPTIONS = {
    ("GET", "/api/v1/finance/invoices"): FIN | {"customer_service"},
    ("GET", "/api/v1/finance/invoices/{invoice_id}"): FIN | {"customer_service"},
    ("POST", "/api/v1/finance/payroll"): FIN | {"hr"},
    ("PUT", "/api/v1/finance/profile"): frozenset({"admin"}),
    ("POST", "/api/v1/finance/tax-rates"): frozenset({"admin"}),
    ("POST", "/api/v1/finance/periods/{period}/reopen"): frozenset({"admin"}),
    ("POST", "/api/v1/finance/budgets/requests/{request_id}/approve"): frozenset({"admin"}),
    ("POST", "/api/v1/finance/budgets/requests/{request_id}/reject"): frozenset({"admin"}),
    ("POST", "/api/v1/orders/{order_id}/damage-charge"): FIN | {"dispatcher"},
}


def test_finance_routes_admit_exactly_their_roles():
    app = create_app(
        Settings(
            environment="test",
            database_url="postgresql://nobody@127.0.0.1:1/none",
            secret_key="permissions-test-secret-0123456789-abcdefgh",
        )
    )
    seen = {}
    for info in route_table(app):
        if info.kind != "http":
            continue
        for m in info.methods:
            if info.path.startswith("/api/v1/finance/") or (m, info.path) in EXCEPTIONS:
                seen[(m, info.path)] = info.allowed
    assert len(seen) >= 45, sorted(seen)
    wrong = {k: sorted(v or ()) for k, v in seen.items() if v != EXCEPTIONS.get(k, FIN)}
    assert wrong == {}
