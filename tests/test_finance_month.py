"""A month of operations through the API, end to end, every figure checked against values computed by hand.

Compact rate (migration 0251): 49.00 a weekday, 200 km a day included, 0.29 per extra km, 1.30 per % of fuel.
German profile: 19 % VAT, damages outside VAT, vehicles over 72 months from the month of delivery.

  rental 1 (car 1): 1 weekday 49.00 + 50 km extra 14.50 + 10 % fuel 13.00 = net 76.50, VAT 14.535 -> 14.54,
                    gross 91.04; deposit 300.00 by card: 91.04 applied, 208.96 released
  rental 2 (car 2): 1 weekday 49.00 (120 km, 1 % fuel: free), VAT 9.31, gross 58.31, paid by bank transfer
                    (found by the bank-statement import); deposit 200.00 released in full; a crash during the
                    rental -> damage charge 450.00 (no VAT), 200.00 of it paid
  cancellation    : half the first day within 48 h (24.50 on a weekday, 19.50 on a weekend) + VAT, paid by card,
                    credited in full (goodwill) and refunded
  maintenance     : car 1, parts 120.00 + labour 80.00 + VAT 38.00 = 238.00 owed to the workshop, paid
  procurement     : a car for 24,000.00 + VAT 4,560.00, 10,000.00 paid; depreciation 24,000 / 72 = 333.33
  fuel            : car 1, 60.00 + VAT 11.40 paid by card
  payroll         : operations 3,000 gross (1,100 withheld, 600 employer), finance 4,000 (1,500, 800)
  capital         : 50,000.00 paid in (manual entry)
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from backoffice.finance import ledger, profiles
from monitor import service as alerts
from tests import factories
from tests.test_orders_helpers import (
    api,
    create_customer,
    create_order,
    future,
    next_weekday,
    set_state,
    token,
)

D = Decimal
BERLIN = ZoneInfo("Europe/Berlin")


def _rent(client, conn, cs, disp, *, station, car, odo, fuel, deposit) -> dict:
    """A Monday-to-Tuesday compact rental, picked up now with a deposit."""
    monday = next_weekday(0)
    cust = create_customer(client, cs)
    o = create_order(
        client,
        cs,
        customer_id=cust["id"],
        pickup=station,
        pickup_at=monday.isoformat(),
        return_at=(monday + dt.timedelta(days=1)).isoformat(),
    )
    assert client.post(f"/api/v1/orders/{o['id']}/confirm", headers=cs).status_code == 200
    set_state(conn, car["id"], odometer_km=odo, fuel_pct=fuel)
    r = client.post(f"/api/v1/orders/{o['id']}/assign", headers=disp, json={"vin": car["vin"]})
    assert r.status_code == 200, r.text
    r = client.post(f"/api/v1/orders/{o['id']}/pickup", headers=disp, json={"deposit": deposit})
    assert r.status_code == 200, r.text
    return r.json()


def _reading(conn, car: dict, seq: int, odo: float, hours: float) -> None:
    conn.execute(
        """INSERT INTO readings (ts, device_id, vehicle_id, kind, seq, odometer_km, engine_hours)
           VALUES (now() - make_interval(mins => %s), %s, %s, 'telemetry', %s, %s, %s)""",
        (10 - seq, car["device_id"], car["id"], seq, odo, hours),
    )


def test_a_month_of_operations(settings, conn):
    s = factories.station(conn)
    car1 = factories.vehicle(conn, station_code=s["code"], vehicle_class="compact")
    car2 = factories.vehicle(conn, station_code=s["code"], vehicle_class="compact")
    car3 = factories.vehicle(conn, station_code=s["code"], vehicle_class="compact")
    set_state(conn, car3["id"], odometer_km=1.0, fuel_pct=100.0)
    with api(settings) as client:
        cs, disp, fin, tech, admin, hr = (
            token(client, conn, r)
            for r in ("customer_service", "dispatcher", "finance", "technician", "admin", "hr")
        )
        # capital paid in
        r = client.post(
            "/api/v1/finance/journal",
            headers=fin,
            json={
                "entry_date": dt.date.today().isoformat(),
                "memo": "share capital paid in",
                "reference": "capital-2027",
                "lines": [
                    {"account": "1020", "debit": "50000.00"},
                    {"account": "3100", "credit": "50000.00"},
                ],
            },
        )
        assert r.status_code == 201, r.text

        # rental 1: priced from telemetry, deposit applied
        o1 = _rent(
            client, conn, cs, disp, station=s["code"], car=car1, odo=10_000.0, fuel=80.0, deposit="300.00"
        )
        _reading(conn, car1, 1, 10_000.0, 500.0)
        set_state(conn, car1["id"], odometer_km=10_250.0, fuel_pct=70.0)
        _reading(conn, car1, 2, 10_250.0, 506.5)
        r = client.post(f"/api/v1/orders/{o1['id']}/return", headers=disp, json={"return_station": s["code"]})
        assert r.status_code == 200, r.text
        inv1, dep1 = r.json()["invoice"], r.json()["deposit"]
        assert {ln["code"]: ln["amount"] for ln in inv1["lines"]} == {
            "rental_weekday": "49.00",
            "extra_km": "14.50",
            "fuel": "13.00",
        }
        assert (inv1["net"], inv1["vat"], inv1["gross"]) == ("76.50", "14.54", "91.04")
        assert (dep1["applied"], dep1["released"], inv1["status"]) == ("91.04", "208.96", "paid")
        assert r.json()["order"]["status"] == "completed"  # the deposit paid the invoice: archived

        # rental 2: a crash during the rental, deposit released, damage charged
        o2 = _rent(
            client, conn, cs, disp, station=s["code"], car=car2, odo=2_000.0, fuel=60.0, deposit="200.00"
        )
        alert, _ = alerts.raise_(
            conn,
            vehicle_id=car2["id"],
            kind="crash",
            severity="critical",
            ts=dt.datetime.now(dt.UTC),
            message="crash 4.2 g",
        )
        set_state(conn, car2["id"], odometer_km=2_120.0, fuel_pct=59.0)
        r = client.post(
            f"/api/v1/orders/{o2['id']}/return",
            headers=disp,
            json={"return_station": s["code"], "deposit": "release"},
        )
        assert r.status_code == 200, r.text
        inv2 = r.json()["invoice"]
        assert (inv2["net"], inv2["vat"], inv2["gross"], inv2["status"]) == ("49.00", "9.31", "58.31", "open")
        assert r.json()["deposit"]["released"] == "200.00"
        bad = client.post(
            f"/api/v1/orders/{o2['id']}/damage-charge",
            headers=fin,
            json={"charges": [{"alert_id": 999999, "amount": "1.00"}]},
        )
        assert bad.status_code == 422 and "not a crash alert" in bad.json()["error"]["message"]
        r = client.post(
            f"/api/v1/orders/{o2['id']}/damage-charge",
            headers=fin,
            json={"charges": [{"alert_id": alert["id"], "amount": "450.00", "description": "rear bumper"}]},
        )
        assert r.status_code == 201, r.text
        dmg = r.json()
        assert (dmg["kind"], dmg["net"], dmg["vat"], dmg["gross"]) == ("damage", "450.00", "0.00", "450.00")
        r = client.post(
            f"/api/v1/finance/invoices/{dmg['id']}/payments",
            headers=fin,
            json={"amount": "200.00", "method": "card"},
        )
        assert r.status_code == 201, r.text

        # the bank statement: rental 2 paid by transfer, one line nobody can place
        csv_text = (
            "date,amount,reference,counterparty\n"
            f"{dt.date.today()},58.31,Rechnung {inv2['number']},Erika Mustermann\n"
            f"{dt.date.today()},12.34,unknown transfer,Someone\n"
        )
        r = client.post(
            "/api/v1/finance/bank-statements", headers={**fin, "Content-Type": "text/csv"}, content=csv_text
        )
        assert r.status_code == 201, r.text
        assert (r.json()["matched"], r.json()["unmatched"]) == (1, 1)
        again = client.post(
            "/api/v1/finance/bank-statements", headers={**fin, "Content-Type": "text/csv"}, content=csv_text
        )
        assert again.json()["duplicates"] == 2  # a replayed statement books nothing twice
        unmatched = client.get("/api/v1/finance/bank-statements/unmatched", headers=fin).json()
        assert [u["amount"] for u in unmatched] == ["12.34"]
        assert client.get(f"/api/v1/orders/{o2['id']}", headers=cs).json()["status"] == "completed"

        # a late cancellation: fee, paid, credited in full, refunded
        o3 = create_order(client, cs, customer_id=create_customer(client, cs)["id"], pickup=s["code"],
                          pickup_at=future(10), return_at=future(34))  # fmt: skip
        assert client.post(f"/api/v1/orders/{o3['id']}/confirm", headers=cs).status_code == 200
        fee_inv = client.post(f"/api/v1/orders/{o3['id']}/cancel", headers=cs).json()["invoice"]
        weekend = dt.datetime.fromisoformat(o3["pickup_at"]).astimezone(BERLIN).weekday() >= 5
        fee = D("19.50") if weekend else D("24.50")
        fee_vat = profiles.money(fee * D("0.19"))
        assert (D(fee_inv["net"]), D(fee_inv["vat"])) == (fee, fee_vat)
        fee_gross = fee + fee_vat
        pay = {"amount": str(fee_gross), "method": "card"}
        key = {"Idempotency-Key": "pay-cancel-fee-1"}
        r1 = client.post(
            f"/api/v1/finance/invoices/{fee_inv['id']}/payments", headers={**fin, **key}, json=pay
        )
        r2 = client.post(
            f"/api/v1/finance/invoices/{fee_inv['id']}/payments", headers={**fin, **key}, json=pay
        )
        assert (
            r1.status_code == r2.status_code == 201
            and r1.json()["payment"]["id"] == r2.json()["payment"]["id"]
        )
        r = client.post(
            f"/api/v1/finance/invoices/{fee_inv['id']}/credit-notes",
            headers=fin,
            json={"amount": str(fee_gross), "reason": "goodwill: flight cancelled"},
        )
        assert r.status_code == 201, r.text
        assert (D(r.json()["credit_note"]["vat"]), D(r.json()["invoice"]["balance"])) == (fee_vat, -fee_gross)
        too_much = client.post(
            f"/api/v1/finance/invoices/{fee_inv['id']}/refunds",
            headers=fin,
            json={"amount": "999.00", "method": "card"},
        )
        assert too_much.status_code == 422
        r = client.post(
            f"/api/v1/finance/invoices/{fee_inv['id']}/refunds",
            headers=fin,
            json={"amount": str(fee_gross), "method": "card"},
        )
        assert r.status_code == 201 and r.json()["invoice"]["balance"] == "0.00"

        # maintenance on car 1, the workshop paid
        r = client.post(
            f"/api/v1/fleet/vehicles/{car1['vin']}/maintenance",
            headers=tech,
            json={"work_order": "WO-2027-001", "kind": "service", "description": "annual service",
                  "parts_cost": "120.00", "labour_cost": "80.00"},
        )  # fmt: skip
        assert r.status_code == 201, r.text
        assert (
            client.post(
                f"/api/v1/fleet/maintenance/{r.json()['id']}/close", headers=tech, json={}
            ).status_code
            == 200
        )
        bills = client.get("/api/v1/finance/payables", headers=fin, params={"status": "open"}).json()
        workshop = next(b for b in bills if b["reference"] == "WO-2027-001")
        assert (workshop["net"], workshop["vat"], workshop["gross"]) == ("200.00", "38.00", "238.00")
        r = client.post(
            f"/api/v1/finance/payables/{workshop['id']}/payments",
            headers=fin,
            json={"amount": "238.00", "paid_on": dt.date.today().isoformat()},
        )
        assert r.status_code == 201 and r.json()["payable"]["status"] == "paid"

        # a car delivered, partly paid, depreciated
        r = client.post(
            "/api/v1/fleet/procurements",
            headers=admin,
            json={"supplier": "Autohaus Nord", "make": "VW", "model": "ID.3", "year": 2027, "class": "ev",
                  "station": s["code"], "price": "24000.00"},
        )  # fmt: skip
        assert r.status_code == 201, r.text
        pid = r.json()["id"]
        assert (
            client.post(f"/api/v1/fleet/procurements/{pid}/order", headers=admin, json={}).status_code == 200
        )
        r = client.post(
            f"/api/v1/fleet/procurements/{pid}/deliver",
            headers=admin,
            json={"vin": factories.vin(), "plate": "B-EV 2027"},
        )
        assert r.status_code == 200, r.text
        new_car = r.json()["vehicle"]
        vbill = next(
            b
            for b in client.get("/api/v1/finance/payables", headers=fin).json()
            if b["source"] == "procurement"
        )
        assert (vbill["vat"], vbill["gross"], vbill["cash_flow"]) == ("4560.00", "28560.00", "investing")
        r = client.post(
            f"/api/v1/finance/payables/{vbill['id']}/payments",
            headers=fin,
            json={"amount": "10000.00", "paid_on": dt.date.today().isoformat()},
        )
        assert r.status_code == 201
        r = client.post("/api/v1/finance/depreciation/run", headers=fin)
        assert r.status_code == 200 and len(r.json()["posted"]) == 1
        assert (
            client.post("/api/v1/finance/depreciation/run", headers=fin).json()["posted"] == []
        )  # once a month
        assets = client.get("/api/v1/finance/assets", headers=fin).json()
        assert [(a["vehicle_id"], a["accumulated_depreciation"], a["book_value"]) for a in assets] == [
            (new_car["id"], "333.33", "23666.67")
        ]

        # fuel and payroll
        r = client.post(
            "/api/v1/finance/fuel-costs",
            headers=fin,
            json={"vehicle_id": car1["id"], "net": "60.00", "on": dt.date.today().isoformat(), "supplier": "Aral",
                  "reference": "RC-778", "quantity": "30.5"},
        )  # fmt: skip
        assert r.status_code == 201, r.text
        payroll = {
            "period": dt.date.today().strftime("%Y-%m"),
            "lines": [
                {
                    "department": "operations",
                    "gross": "3000.00",
                    "withholdings": "1100.00",
                    "employer_contributions": "600.00",
                },
                {
                    "department": "finance",
                    "gross": "4000.00",
                    "withholdings": "1500.00",
                    "employer_contributions": "800.00",
                },
            ],
        }
        assert client.post("/api/v1/finance/payroll", headers=hr, json=payroll).status_code == 201
        assert client.post("/api/v1/finance/payroll", headers=hr, json=payroll).json()["replayed"] is True

        # ---- the books -----------------------------------------------------------------------------------------
        start = dt.date.today().replace(day=1)
        end = ledger.month_end(start)
        window = {"from": start.isoformat(), "to": end.isoformat()}
        tb = client.get("/api/v1/finance/trial-balance", headers=fin, params=window).json()
        assert tb["balanced"] and tb["totals"]["debit"] == tb["totals"]["credit"]
        closing = {row["account"]: D(row["closing"]) for row in tb["rows"] if D(row["closing"]) != 0}
        assert closing == {
            "1020": D("40039.95"),  # 50,000 + 91.04 + 58.31 + 200 - 238 - 10,000 - 71.40 (deposits net 0)
            "1110": D("250.00"),  # the damage invoice's open rest
            "1200": D("4609.40"),  # 38.00 + 4,560.00 + 11.40
            "1510": D("24000.00"),
            "1519": D("-333.33"),
            "2100": D("-18560.00"),  # 28,560 - 10,000
            "2200": D("-23.85"),  # 14.54 + 9.31 (the fee's VAT credited back)
            "2410": D("-4400.00"),
            "2420": D("-4000.00"),
            "3100": D("-50000.00"),
            "4100": D("-112.50"),  # 49 + 14.50 + 49
            "4200": D("-13.00"),
            "4300": -fee,
            "4400": D("-450.00"),
            "4950": fee,
            "5100": D("120.00"),
            "5200": D("80.00"),
            "5300": D("60.00"),
            "5400": D("333.33"),
            "6100": D("7000.00"),
            "6200": D("1400.00"),
        }
        income = client.get("/api/v1/finance/statements/income", headers=fin, params=window).json()
        assert (D(income["total_revenue"]), D(income["total_expenses"])) == (D("575.50"), D("8993.33"))
        assert D(income["net_income"]) == D("-8417.83")
        bs = client.get("/api/v1/finance/statements/balance-sheet", headers=fin, params=window).json()
        assert bs["balanced"]
        assert (D(bs["total_assets"]), D(bs["total_liabilities"]), D(bs["total_equity"])) == (
            D("68566.02"),
            D("26983.85"),
            D("41582.17"),
        )
        assert D(bs["retained_earnings"]) - D(bs["previous"]["retained_earnings"]) == D(income["net_income"])
        cf = client.get("/api/v1/finance/statements/cash-flow", headers=fin, params=window).json()
        assert cf["balanced"] and cf["method"] == "direct"
        nets = {c: D(v["net"]) for c, v in cf["classes"].items()}
        assert nets == {"operating": D("39.95"), "investing": D("-10000.00"), "financing": D("50000.00")}
        assert (D(cf["opening_cash"]), D(cf["closing_cash"])) == (D("0.00"), D("40039.95"))

        # the receivables ledger is the open invoices
        ageing = client.get("/api/v1/finance/ageing", headers=fin, params={"side": "receivable"}).json()
        assert ageing["reconciled"] and D(ageing["total"]) == D("250.00") == D(ageing["buckets"]["0-30"])
        open_invoices = client.get("/api/v1/finance/invoices", headers=fin, params={"status": "open"}).json()[
            "items"
        ]
        assert [i["id"] for i in open_invoices] == [dmg["id"]]
        pay_ageing = client.get("/api/v1/finance/ageing", headers=fin, params={"side": "payable"}).json()
        assert pay_ageing["reconciled"] and D(pay_ageing["total"]) == D("18560.00")

        # what the cars did: profitability with telemetry km
        prof = client.get(
            "/api/v1/finance/profitability", headers=fin, params={**window, "by": "vehicle"}
        ).json()
        rows = {row["key"]: row for row in prof["rows"]}
        c1 = rows[car1["id"]]
        assert (D(c1["revenue"]), D(c1["maintenance"]), D(c1["fuel"]), D(c1["margin"])) == (
            D("76.50"),
            D("200.00"),
            D("60.00"),
            D("-183.50"),
        )
        assert (D(c1["km"]), D(c1["engine_hours"]), D(c1["cost_per_km"])) == (
            D("250.0"),
            D("6.5"),
            D("1.0400"),
        )
        days = (end - dt.date.today()).days + 1
        assert c1["vehicle_days"] == days and D(c1["margin_per_vehicle_day"]) == profiles.money(
            D("-183.50") / days
        )
        c2 = rows[car2["id"]]
        assert (D(c2["revenue"]), D(c2["damage_recoveries"]), D(c2["margin"])) == (
            D("49.00"),
            D("450.00"),
            D("499.00"),
        )
        assert prof["least_profitable"][0] == new_car["id"]  # depreciation, no revenue yet
        by_class = client.get(
            "/api/v1/finance/profitability", headers=fin, params={**window, "by": "class"}
        ).json()
        assert {row["key"] for row in by_class["rows"]} >= {"compact", "ev"}
        prof_csv = client.get(
            "/api/v1/finance/profitability", headers=fin, params={**window, "by": "vehicle", "format": "csv"}
        ).content.decode("utf-8-sig")
        assert prof_csv.splitlines()[0].startswith("key,rank,") and "cost_per_km" in prof_csv.splitlines()[0]
        assert len(prof_csv.splitlines()) == len(prof["rows"]) + 1
        costs = client.get("/api/v1/finance/cost-analysis", headers=fin, params=window).json()
        assert D(costs["total"]) == D("8993.33") and costs["categories"][0]["account"] == "6100"

        # exports a person hands to management
        for kind in ("income", "balance-sheet", "cash-flow"):
            pdf = client.get(
                f"/api/v1/finance/statements/{kind}", headers=fin, params={**window, "format": "pdf"}
            )
            assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
            csv_r = client.get(
                f"/api/v1/finance/statements/{kind}", headers=fin, params={**window, "format": "csv"}
            )
            assert csv_r.status_code == 200 and csv_r.headers["content-type"].startswith("text/csv")
        assert "Net income" in client.get(
            "/api/v1/finance/statements/income", headers=fin, params={**window, "format": "csv"}
        ).content.decode("utf-8-sig")

        # every write audited
        actions = {r["action"] for r in conn.execute("SELECT DISTINCT action FROM audit_log")}
        assert {
            "finance.journal.post",
            "deposit.hold",
            "deposit.settle",
            "invoice.credit_note",
            "invoice.refund",
            "finance.payable.create",
            "finance.supplier_payment.create",
            "finance.bank_statement.import",
            "finance.asset.create",
        } <= actions
