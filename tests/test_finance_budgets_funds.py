"""Budgets (CSV import/export, versions through request -> approve, variance and its notices), funds (bank
statement import: bad lines named and nothing half-imported; cash forecast), manual journal input errors, the
China profile on a real invoice, and concurrent replays of one event."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal

from backoffice.customers import service as customers
from backoffice.finance import ledger
from backoffice.finance import service as finance
from fleetcore import crypto
from fleetcore.db import connect
from tests import factories
from tests.test_orders_helpers import api, customer_body, token

D = Decimal


def _csv(client, path: str, headers: dict, text: str, **params):
    return client.post(
        path, headers={**headers, "Content-Type": "text/csv"}, content=text.encode(), params=params
    )


def test_budget_versions_variance_and_notices(settings, conn):
    month = dt.date.today().strftime("%Y-%m")
    with api(settings) as client:
        fin, admin = token(client, conn, "finance"), token(client, conn, "admin")
        bad = _csv(
            client,
            "/api/v1/finance/budgets",
            fin,
            f"account,department,period,amount\n6100,operations,{month},2500.00\n6100,finance,{month},-4\n",
        )
        assert bad.status_code == 422 and bad.json()["error"]["message"].startswith("line 3:")
        assert client.get("/api/v1/finance/budgets", headers=fin).json() == []  # nothing half-imported
        for text, line in (
            ("acct,department,period,amount\n", 1),
            (f"account,department,period,amount\n9999,operations,{month},1\n", 2),
            ("account,department,period,amount\n6100,operations,2027-13,1\n", 2),
            (f"account,department,period,amount\n6100,operations,{month},abc\n", 2),
            (f"account,department,period,amount\n6100,operations,{month}\n", 2),
        ):
            r = _csv(client, "/api/v1/finance/budgets", fin, text)
            assert r.status_code == 422 and r.json()["error"]["details"]["line"] == line, r.text
        ok = _csv(
            client,
            "/api/v1/finance/budgets",
            fin,
            f"account,department,period,amount\n6100,operations,{month},2500.00\n6100,finance,{month},4000.00\n",
        )
        assert ok.status_code == 201 and ok.json() == {"imported": 2}
        again = _csv(
            client,
            "/api/v1/finance/budgets",
            fin,
            f"account,department,period,amount\n6100,finance,{month},1\n",
        )
        assert again.status_code == 409 and "adjustment request" in again.json()["error"]["message"]

        payroll = {
            "period": month,
            "lines": [
                {"department": "operations", "gross": "3000.00", "withholdings": "1000.00"},
                {"department": "finance", "gross": "4000.00", "withholdings": "1400.00"},
            ],
        }
        assert client.post("/api/v1/finance/payroll", headers=fin, json=payroll).status_code == 201
        var = client.get("/api/v1/finance/budgets/variance", headers=fin, params={"period": month}).json()
        rows = {(r["account"], r["department"]): r for r in var["rows"]}
        assert (rows[("6100", "operations")]["variance"], rows[("6100", "operations")]["variance_pct"]) == (
            "500.00",
            "20.00",
        )
        assert (
            rows[("6100", "operations")]["over_threshold"] and not rows[("6100", "finance")]["over_threshold"]
        )
        notices = client.post(
            "/api/v1/finance/budgets/variance/notify", headers=fin, params={"period": month}
        ).json()
        assert [(n["account_code"], n["department"]) for n in notices] == [("6100", "operations")]
        assert (
            client.post(
                "/api/v1/finance/budgets/variance/notify", headers=fin, params={"period": month}
            ).json()
            == []
        )
        inbox = client.get("/api/v1/notifications", headers=fin)  # every finance user sees the notice
        assert inbox.status_code == 200
        assert [n["kind"] for n in inbox.json()] == ["budget_variance"]

        # adjustment: request (finance) -> approve (admin) -> version 2; the original kept
        req = client.post(
            "/api/v1/finance/budgets/requests",
            headers=fin,
            json={
                "account": "6100",
                "department": "operations",
                "period": month,
                "amount": "3100.00",
                "reason": "two new hires",
            },
        ).json()
        assert (
            client.post(f"/api/v1/finance/budgets/requests/{req['id']}/approve", headers=fin).status_code
            == 403
        )
        r = client.post(
            f"/api/v1/finance/budgets/requests/{req['id']}/approve", headers=admin, json={"note": "ok"}
        )
        assert r.status_code == 200 and r.json()["version"] == 2
        assert (
            client.post(f"/api/v1/finance/budgets/requests/{req['id']}/approve", headers=admin).status_code
            == 409
        )
        hist = client.get(
            "/api/v1/finance/budgets/history",
            headers=fin,
            params={"account": "6100", "department": "operations", "period": month},
        ).json()
        assert [(h["version"], h["amount"]) for h in hist] == [(1, "2500.00"), (2, "3100.00")]
        exported = client.get(
            "/api/v1/finance/budgets", headers=fin, params={"format": "csv"}
        ).content.decode("utf-8-sig")
        assert f"6100,operations,{month},3100.00,2" in exported
        # a new version, a new notice if it is still exceeded (here: within 10 %)
        assert (
            client.post(
                "/api/v1/finance/budgets/variance/notify", headers=fin, params={"period": month}
            ).json()
            == []
        )
    actions = [
        r["action"] for r in conn.execute("SELECT action FROM audit_log WHERE action LIKE 'finance.budget.%'")
    ]
    assert {
        "finance.budget.import",
        "finance.budget.request",
        "finance.budget.approve",
        "finance.budget.variance_notice",
    } <= set(actions)


def test_bank_statement_errors_name_the_line_and_import_nothing(settings, conn):
    today = dt.date.today().isoformat()
    with api(settings) as client:
        fin = token(client, conn, "finance")
        for text, line in (
            (f"date,amount,reference\n{today},10.00,a\n2027-02-30,5.00,b\n", 3),
            (f"date,amount,reference\n{today},ten,a\n", 2),
            (f"date,amount,reference\n{today},1.005,a\n", 2),
            (f"date,amount,reference\n{today},0,a\n", 2),
            (f"date,amount,reference\n{today},5.00,\n", 2),
            ("when,amount,reference\n", 1),
        ):
            r = _csv(client, "/api/v1/finance/bank-statements", fin, text)
            assert r.status_code == 422 and r.json()["error"]["details"]["line"] == line, r.text
        assert conn.execute("SELECT count(*) AS n FROM fin_bank_lines").fetchone()["n"] == 0
        r = _csv(
            client,
            "/api/v1/finance/bank-statements",
            fin,
            f"date,amount,reference\n{today},5.00,x\n",
            account="4100",
        )
        assert r.status_code == 422 and "not a bank or cash account" in r.json()["error"]["message"]
        # outgoing money matched to a supplier bill by reference and amount
        bill = client.post(
            "/api/v1/finance/payables",
            headers=fin,
            json={
                "supplier": "Stadtwerke",
                "reference": "SW-2027-11",
                "bill_date": today,
                "lines": [{"account": "6900", "net": "100.00"}],
            },
        ).json()
        assert bill["gross"] == "119.00"
        r = _csv(
            client,
            "/api/v1/finance/bank-statements",
            fin,
            f"date,amount,reference\n{today},-119.00,SW-2027-11 Strom\n",
        )
        assert r.json()["matched"] == 1
        assert (
            client.get("/api/v1/finance/payables", headers=fin, params={"status": "paid"}).json()[0]["id"]
            == bill["id"]
        )
        fc = client.get("/api/v1/finance/cash-forecast", headers=fin).json()
        assert D(fc["opening"]) == D("-119.00") and fc["negative_on"] == today and len(fc["days"]) == 30


def test_manual_journal_input_errors_are_4xx(settings, conn):
    today = dt.date.today().isoformat()
    with api(settings) as client:
        fin = token(client, conn, "finance")
        post = lambda body: client.post("/api/v1/finance/journal", headers=fin, json=body)  # noqa: E731
        base = {"entry_date": today, "memo": "m"}
        cases = [
            (
                {**base, "lines": [{"account": "1010", "debit": "5"}, {"account": "4900", "credit": "4"}]},
                422,
                "unbalanced",
            ),
            ({**base, "lines": []}, 422, "lines"),
            (
                {**base, "lines": [{"account": "1010", "debit": "5"}, {"account": "8888", "credit": "5"}]},
                422,
                "unknown account",
            ),
            (
                {**base, "lines": [{"account": "1010", "debit": "-5"}, {"account": "4900", "credit": "-5"}]},
                422,
                "greater than or equal",
            ),
            (
                {
                    **base,
                    "lines": [
                        {"account": "1010", "debit": "5", "credit": "5"},
                        {"account": "4900", "credit": "5"},
                    ],
                },
                422,
                "either a debit or a credit",
            ),
            (
                {**base, "lines": [{"account": "1000", "debit": "5"}, {"account": "4900", "credit": "5"}]},
                422,
                "group",
            ),
        ]
        for body, status, text in cases:
            r = post(body)
            assert r.status_code == status and text in r.text, (body, r.text)
        last = (dt.date.today().replace(day=1) - dt.timedelta(days=1)).replace(day=1)
        assert client.post(f"/api/v1/finance/periods/{last:%Y-%m}/close", headers=fin).status_code == 200
        r = post(
            {
                "entry_date": last.isoformat(),
                "memo": "late",
                "lines": [{"account": "1010", "debit": "5"}, {"account": "4900", "credit": "5"}],
            }
        )
        assert r.status_code == 409 and "closed" in r.json()["error"]["message"]
        assert client.post("/api/v1/finance/periods/2027-13/close", headers=fin).status_code == 422
        assert client.post("/api/v1/finance/periods/9999-12/close", headers=fin).status_code == 422
        far = {"from": "0001-01-01", "to": "0001-02-01"}
        assert client.get("/api/v1/finance/trial-balance", headers=fin, params=far).status_code == 422
        assert client.get("/api/v1/finance/statements/cash-flow", headers=fin, params=far).status_code == 422
        assert (
            client.post(
                "/api/v1/finance/depreciation/run", headers=fin, params={"period": "2199-01"}
            ).status_code
            == 422
        )
        assert (
            client.post(
                f"/api/v1/finance/periods/{last:%Y-%m}/reopen", headers=fin, json={"reason": "x" * 5}
            ).status_code
            == 403
        )
        r = post({**base, "lines": [{"account": "1010", "debit": "5"}, {"account": "4900", "credit": "5"}]})
        assert (
            client.post(f"/api/v1/finance/journal/{r.json()['id']}/reverse", headers=fin).status_code == 201
        )
        assert (
            client.get(
                "/api/v1/finance/trial-balance", headers=fin, params={"from": today, "to": "2020-01-01"}
            ).status_code
            == 422
        )


def test_china_profile_invoices_with_chinese_rates_and_series(settings, conn):
    with api(settings) as client:
        admin, fin = token(client, conn, "admin"), token(client, conn, "finance")
        assert client.put("/api/v1/finance/profile", headers=fin, json={"country": "CN"}).status_code == 403
        p = client.put("/api/v1/finance/profile", headers=admin, json={"country": "CN"}).json()
        assert (p["currency"], p["tax_rates_today"]["leasing"], p["tax_rates_today"]["services"]) == (
            "CNY",
            "0.1300",
            "0.0600",
        )
    s = factories.station(conn)
    crypto.configure(settings)
    cust = customers.create(conn, data=customer_body(), actor={"username": "t"})
    order = conn.execute(
        """INSERT INTO orders (customer_id, vehicle_class, pickup_station_id, return_station_id, pickup_at, return_at,
                               channel, quote, quoted_net, created_by)
           VALUES (%s, 'compact', %s, %s, now(), now() + interval '1 day', 'counter', '{}', 0, 't') RETURNING id""",
        (cust["id"], s["id"], s["id"]),
    ).fetchone()
    with conn.transaction():
        inv = finance.create_invoice(
            conn,
            order_id=order["id"],
            customer_id=cust["id"],
            kind="rental",
            lines=[
                {
                    "code": "rental_weekday",
                    "description": "1 天租金",
                    "quantity": 1,
                    "unit_price": D("300.00"),
                    "amount": D("300.00"),
                },
                {
                    "code": "service_delivery",
                    "description": "送车服务",
                    "quantity": 1,
                    "unit_price": D("50.00"),
                    "amount": D("50.00"),
                },
            ],
        )
    assert (inv["currency"], inv["vat"], inv["gross"], inv["vat_rate"]) == (
        "CNY",
        D("42.00"),
        D("392.00"),
        None,
    )
    assert inv["number"].startswith("ZL") and len(inv["number"]) == 14
    rates = {ln["code"]: ln["vat_rate"] for ln in inv["lines"]}
    assert rates == {"rental_weekday": D("0.1300"), "service_delivery": D("0.0600")}
    assert ledger.balances(conn)["2200"] == D("-42.00")


def test_concurrent_replays_of_one_event_post_once(conn, db_url):
    """Eight transactions post the same payroll at once: one entry, seven replays, no error."""
    period = dt.date.today().strftime("%Y-%m")
    lines = [{"department": "operations", "gross": "1000.00", "withholdings": "300.00"}]
    barrier = threading.Barrier(8)
    results: list[dict] = []

    def run() -> None:
        with connect(db_url) as c:
            barrier.wait()
            with c.transaction():
                results.append(finance.post_payroll(c, period=period, lines=lines, actor={"username": "t"}))

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == 8 and len({r["id"] for r in results}) == 1
    assert sum(1 for r in results if not r["replayed"]) == 1
    assert conn.execute("SELECT count(*) AS n FROM fin_journal_entries").fetchone()["n"] == 1
