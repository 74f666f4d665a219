"""Export and erasure of a customer's data: gathers from the domains that hold it, through their services.

Erasure is the customers service's `erase` (personal fields anonymised, financial and audit records kept as the
law requires); this domain exists so the export can read orders and invoices, which the customers domain, below
them, cannot.
"""

from __future__ import annotations

import datetime as dt

from backoffice.customers import service as customers
from backoffice.finance import service as finance
from backoffice.orders import service as orders
from fleetcore import audit as audit_log
from fleetcore.audit import audit
from fleetcore.db import Conn

EXPORT_PAGE = 500


def export_customer(conn: Conn, *, customer_id: int, actor: dict) -> dict:
    """Everything held about the customer (audited: who exported whose data, not the data)."""
    person = customers.get_or_raise(conn, customer_id=customer_id)
    their_orders: list[dict] = []
    while True:
        page = orders.list_(conn, customer_id=customer_id, limit=EXPORT_PAGE, offset=len(their_orders))
        their_orders += page["items"]
        if len(their_orders) >= page["total"] or not page["items"]:
            break
    invoices = []
    for inv in finance.list_invoices(conn, customer_id=customer_id, limit=EXPORT_PAGE)["items"]:
        invoices.append(finance.get_invoice(conn, invoice_id=inv["id"]))
    trail = audit_log.list_(conn, entity="customers", entity_id=str(customer_id), limit=1000)
    audit(conn, actor=actor, action="customer.export", entity="customers", entity_id=customer_id)
    return {
        "exported_at": dt.datetime.now(dt.UTC),
        "customer": person,
        "orders": their_orders,
        "invoices": invoices,
        "audit": [{k: r[k] for k in ("at", "actor", "action", "after")} for r in trail],
    }


def erase_customer(conn: Conn, *, customer_id: int, actor: dict) -> dict:
    return customers.erase(conn, customer_id=customer_id, actor=actor)
