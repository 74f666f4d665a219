"""A complaint end to end through the API, its evidence collected from a real rental whose telemetry went through
MQTT, ingest and the monitor; SLA escalation by the scheduled job with a controlled clock."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from backoffice.finance import service as finance
from backoffice.support import service as cases
from backoffice.support.scheduled import JOBS
from tests import factories
from tests.ingest_helpers import wait_until
from tests.test_orders_helpers import api, create_customer, create_order, future, token
from tests.test_rental_flow import Device, _wait_state, worker

pytestmark = [pytest.mark.db]
PICKUP_ODO, RETURN_ODO = 8_000.0, 8_123.4


def _rent_and_drive(client, conn, settings, cs, disp, car, station, dev) -> tuple[dict, dict]:
    """A rental whose drive (top speed 132 km/h, two harsh brakings) is published over MQTT; returns order, invoice."""
    parked = dev.sample(
        lat=52.52, lon=13.405, speed_kmh=0, ignition=False, odometer_km=PICKUP_ODO, fuel_pct=80.0
    )
    _wait_state(conn, car["id"], PICKUP_ODO, dev, parked)
    cust = create_customer(client, cs, email="li.wei@example.cn", first_name="Wei", last_name="Li")
    order = create_order(client, cs, customer_id=cust["id"], pickup=station["code"], vehicle_class="compact",
                         pickup_at=future(1), return_at=future(49))  # fmt: skip
    assert client.post(f"/api/v1/orders/{order['id']}/confirm", headers=cs).status_code == 200
    for step in ("assign", "pickup"):
        r = client.post(f"/api/v1/orders/{order['id']}/{step}", headers=disp)
        assert r.status_code == 200, r.text
    n = 20
    drive = [
        dev.sample(lat=52.52 - 0.002 * i, lon=13.405, ignition=True, fuel_pct=80.0 - i * 0.5,
                   speed_kmh=132.0 if i == 10 else 70.0,
                   odometer_km=round(PICKUP_ODO + (RETURN_ODO - PICKUP_ODO) * i / n, 1))
        for i in range(1, n + 1)
    ]  # fmt: skip
    dev.publish("telemetry", *drive)
    brakes = [dev.sample(type="harsh_brake", g=0.6, speed_kmh=70.0) for _ in range(2)]
    dev.publish("event", *brakes)
    _wait_state(conn, car["id"], RETURN_ODO)

    def stored() -> bool:
        events = conn.execute(
            "SELECT count(*) AS n FROM device_events WHERE vehicle_id = %s", (car["id"],)
        ).fetchone()["n"]
        alert = conn.execute(
            "SELECT 1 FROM alerts WHERE vehicle_id = %s AND kind = 'harsh_brake'", (car["id"],)
        ).fetchone()
        return events == 2 and alert is not None

    assert wait_until(stored, timeout=30, interval=0.3), "events or the monitor's alert never arrived"
    r = client.post(
        f"/api/v1/orders/{order['id']}/return", headers=disp, json={"return_station": station["code"]}
    )
    assert r.status_code == 200, r.text
    return r.json()["order"], r.json()["invoice"]


def test_complaint_end_to_end_with_evidence_from_the_car(settings, conn):
    from ingest.consumer import run as ingest_run
    from monitor.worker import run as monitor_run

    station = factories.station(conn)
    car = factories.vehicle(conn, station_code=station["code"], vehicle_class="compact", protocol="json")
    dev = Device(settings, car["device_id"])
    with api(settings) as client, worker(ingest_run, settings), worker(monitor_run, settings):
        cs, disp = token(client, conn, "customer_service"), token(client, conn, "dispatcher")
        order, invoice = _rent_and_drive(client, conn, settings, cs, disp, car, station, dev)
    with api(settings) as client:
        cs = token(client, conn, "customer_service")
        agent = factories.user(conn, role="customer_service")
        body = {
            "kind": "complaint", "channel": "phone", "customer_id": order["customer_id"], "order_id": order["id"],
            "category": "billing", "severity": "high", "subject": "Charged for kilometres I did not drive",
            "request": "refund the extra-km charge", "contact_email": "li.wei@example.cn", "locale": "zh-CN",
        }  # fmt: skip
        r = client.post("/api/v1/support/cases", json=body, headers=cs)
        assert r.status_code == 201, r.text
        case = r.json()
        assert case["status"] == "open" and case["vehicle_id"] == car["id"]
        ev = {e["kind"]: e["data"] for e in case["evidence"]}
        assert set(ev) == {"order_timeline", "trip", "alerts", "invoices"}
        # The trip as the car recorded it: odometer difference, top speed, harsh events from device_events.
        assert ev["trip"]["distance_km"] == pytest.approx(RETURN_ODO - PICKUP_ODO)
        assert ev["trip"]["max_speed_kmh"] == pytest.approx(132.0)
        assert ev["trip"]["harsh_events"] == 2 and ev["trip"]["events"] == {"harsh_brake": 2}
        assert ev["trip"]["readings"] == 20  # the drive; the parked reading was before pickup
        assert [a["kind"] for a in ev["alerts"]["items"]] == ["harsh_brake"]
        assert [h["action"] for h in ev["order_timeline"]["history"]] == [
            "create",
            "confirm",
            "pickup",
            "return",
        ]
        assert ev["invoices"]["items"][0]["number"] == invoice["number"]
        assert ev["invoices"]["items"][0]["gross"] == invoice["gross"]
        cid = case["id"]

        r = client.post(
            f"/api/v1/support/cases/{cid}/assign", json={"assignee": agent["username"]}, headers=cs
        )
        assert (
            r.status_code == 200
            and r.json()["status"] == "in_progress"
            and r.json()["assignee"] == agent["username"]
        )
        r = client.post(f"/api/v1/support/cases/{cid}/notes", headers=cs,
                        json={"body": "我们正在核实您的行车记录。", "customer_visible": True})  # fmt: skip
        assert r.status_code == 200 and r.json()["first_response_at"] is not None
        mail = conn.execute("SELECT recipient, subject, locale FROM outbox WHERE source = %s",
                            (f"support.case:{cid}",)).fetchone()  # fmt: skip
        assert mail == {"recipient": "li.wei@example.cn", "subject": f"您的服务单 #{cid}：{body['subject']}",
                        "locale": "zh-CN"}  # fmt: skip
        r = client.post(f"/api/v1/support/cases/{cid}/responsibility", headers=cs,
                        json={"party": "nobody", "detail": "the odometer confirms 123.4 km; within the allowance"})  # fmt: skip
        assert r.status_code == 200 and r.json()["responsible_party"] == "nobody"
        # Closing before the customer agreed is refused; so is a credit note larger than the invoice.
        assert (
            client.post(
                f"/api/v1/support/cases/{cid}/status", json={"status": "closed"}, headers=cs
            ).status_code
            == 409
        )
        too_much = {
            "kind": "credit_note",
            "amount": str(Decimal(invoice["gross"]) + 1),
            "invoice_id": invoice["id"],
        }
        r = client.post(f"/api/v1/support/cases/{cid}/proposal", headers=cs,
                        json={"proposal": "goodwill", "compensation": too_much})  # fmt: skip
        assert r.status_code == 422 and "exceeds" in r.json()["error"]["message"]
        plan = {"kind": "credit_note", "amount": "20.00", "invoice_id": invoice["id"]}
        r = client.post(f"/api/v1/support/cases/{cid}/proposal", headers=cs,
                        json={"proposal": "A goodwill credit of 20.00 for the trouble", "compensation": plan})  # fmt: skip
        assert r.status_code == 200 and r.json()["status"] == "proposed", r.text
        r = client.post(f"/api/v1/support/cases/{cid}/acceptance", json={"accepted": True}, headers=cs)
        assert r.status_code == 200, r.text
        resolved = r.json()
        assert resolved["status"] == "resolved" and resolved["customer_accepted"] is True
        done = resolved["compensation"]["done"]
        assert done["kind"] == "credit_note" and Decimal(done["amount"]) == Decimal("20.00")
        assert (
            done["status"] == "posted" and done["credit_note"] and Decimal(done["gross"]) == Decimal("20.00")
        )
        credited = finance.get_invoice_or_raise(conn, invoice_id=invoice["id"])
        assert credited["credited"] == Decimal("20.00")
        assert [c["gross"] for c in credited["credit_notes"]] == [Decimal("20.00")]

        # The follow-up visit is on the task list; it records satisfaction, then the complaint closes.
        r = client.get("/api/v1/support/follow-ups", headers=cs)
        f = [x for x in r.json() if x["case_id"] == cid]
        assert len(f) == 1 and f[0]["reason"] == "case"
        assert (
            client.post(
                f"/api/v1/support/cases/{cid}/status", json={"status": "closed"}, headers=cs
            ).status_code
            == 409
        )
        r = client.post(f"/api/v1/support/follow-ups/{f[0]['id']}/done", headers=cs,
                        json={"satisfaction": 4, "nps": 9, "tags": ["billing", "Fast reply"]})  # fmt: skip
        assert r.status_code == 200 and r.json()["status"] == "done", r.text
        r = client.post(
            f"/api/v1/support/cases/{cid}/status", json={"status": "closed", "note": "done"}, headers=cs
        )
        assert r.status_code == 200 and r.json()["status"] == "closed" and r.json()["satisfaction"] == 4
        # Reopened: back in progress, counted.
        r = client.post(f"/api/v1/support/cases/{cid}/status", json={"status": "in_progress"}, headers=cs)
        assert r.status_code == 200 and r.json()["reopened"] == 1 and r.json()["closed_at"] is None
        full = client.get(f"/api/v1/support/cases/{cid}", headers=cs).json()
        moves = [(e["from_status"], e["to_status"]) for e in full["events"] if e["kind"] == "status"]
        assert moves == [(None, "open"), ("open", "in_progress"), ("in_progress", "proposed"),
                         ("proposed", "resolved"), ("resolved", "closed"), ("closed", "in_progress")]  # fmt: skip
        today = dt.datetime.now(dt.UTC)
        trend = client.get("/api/v1/support/surveys/trend", headers=cs, params={
            "from": (today - dt.timedelta(days=40)).isoformat(), "to": (today + dt.timedelta(days=1)).isoformat()})  # fmt: skip
        assert trend.json()[-1]["nps"] == 100.0 and trend.json()[-1]["tags"] == {
            "billing": 1,
            "fast reply": 1,
        }
    actions = {
        r["action"] for r in conn.execute("SELECT action FROM audit_log WHERE entity = 'support_cases'")
    }
    assert {"case.create", "case.assign", "case.progress", "case.responsibility", "case.propose", "case.resolve",
            "case.close", "case.reopen"} <= actions  # fmt: skip


def _case(conn, client, cs, severity: str) -> dict:
    cust = create_customer(client, cs)
    r = client.post("/api/v1/support/cases", headers=cs, json={
        "kind": "enquiry", "channel": "email", "customer_id": cust["id"], "category": "booking",
        "severity": severity, "subject": "Can I add a second driver?"})  # fmt: skip
    assert r.status_code == 201, r.text
    return r.json()


def test_overdue_cases_escalate_to_the_supervisor_once_per_level(settings, conn):
    with api(settings) as client:
        cs = token(client, conn, "customer_service")
        admin = token(client, conn, "admin")
        boss = factories.user(conn, role="customer_service")
        r = client.put("/api/v1/departments/customer_service/supervisor", headers=admin,
                       json={"supervisor": boss["username"]})  # fmt: skip
        assert r.status_code == 200, r.text
        high = _case(conn, client, cs, "high")  # first response 120 min, resolution 1440 min
        answered = _case(conn, client, cs, "high")
        client.post(f"/api/v1/support/cases/{answered['id']}/notes", headers=cs,
                    json={"body": "Yes, at the counter.", "customer_visible": True})  # fmt: skip
        t0 = dt.datetime.fromisoformat(high["created_at"])
        assert cases.escalate_overdue(conn, now=t0 + dt.timedelta(minutes=119)) == []
        first = cases.escalate_overdue(conn, now=t0 + dt.timedelta(minutes=121))
        assert first == [{"case_id": high["id"], "level": 1, "supervisor_user_id": boss["id"]}]
        assert cases.escalate_overdue(conn, now=t0 + dt.timedelta(minutes=122)) == []  # once per level
        second = cases.escalate_overdue(conn, now=t0 + dt.timedelta(minutes=1441))
        assert sorted((e["case_id"], e["level"]) for e in second) == [(high["id"], 2), (answered["id"], 2)]
        boss_token = {"Authorization": "Bearer " + client.post("/api/v1/auth/token", data={
            "username": boss["username"], "password": boss["password"]}).json()["access_token"]}  # fmt: skip
        notes = client.get("/api/v1/notifications", headers=boss_token).json()
        assert sorted(n["data"]["level"] for n in notes if n["data"].get("case_id") == high["id"]) == [1, 2]
        overdue = client.get("/api/v1/support/cases", headers=cs, params={"overdue": True}).json()
        assert overdue == []  # by the wall clock nothing is late yet
        full = client.get(f"/api/v1/support/cases/{high['id']}", headers=cs).json()
        assert [e["kind"] for e in full["events"]].count("escalation") == 2 and full["escalation_level"] == 2
    # The scheduled job runs the same escalation on the real clock (nothing is due now).
    assert JOBS[0].run(settings) == "escalated=0"
