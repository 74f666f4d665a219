"""Performance reviews: KPIs computed from seeded system records equal hand-computed values; outcomes approved by
admin change pay."""

from __future__ import annotations

import datetime as dt

import pytest

from tests import factories
from tests.test_orders_helpers import api, create_customer, token

pytestmark = [pytest.mark.db]
UTC = dt.UTC
T = dt.datetime(2026, 5, 4, 9, 0, tzinfo=UTC)  # inside the review period May 2026
BEFORE = dt.datetime(2026, 4, 20, 9, 0, tzinfo=UTC)  # outside it


def minutes(n: float) -> dt.timedelta:
    return dt.timedelta(minutes=n)


def employee(client, hr, user, position="Staff") -> dict:
    r = client.post("/api/v1/hr/employees", headers=hr, json={
        "username": user["username"], "position": position, "hire_date": "2025-01-01",
        "contract_type": "permanent", "base_salary": "10000.00"})  # fmt: skip
    assert r.status_code == 201, r.text
    return r.json()


def seed_alerts(conn, vehicle_id: int, me: str) -> None:
    rows = [  # (kind, opened, ack after, ack by, resolved after, resolved by)
        ("overheating", T, 4, me, None, None),
        ("low_battery", T + minutes(60), 10, me, 30, me),
        ("dtc", T + minutes(120), 2, "someone-else", 50, "someone-else"),
        ("crash", BEFORE, 1, me, 5, me),  # outside the period
    ]
    for kind, opened, ack, ack_by, res, res_by in rows:
        conn.execute(
            """INSERT INTO alerts (vehicle_id, kind, severity, status, opened_at, last_seen_at, acknowledged_at,
                                   acknowledged_by, resolved_at, resolved_by)
               VALUES (%s, %s, 'high', %s, %s, %s, %s, %s, %s, %s)""",
            (vehicle_id, kind, "resolved" if res else "acknowledged", opened, opened, opened + minutes(ack), ack_by,
             opened + minutes(res) if res else None, res_by),
        )  # fmt: skip


def seed_cases(conn, customer_id: int, user_id: int) -> None:
    rows = [  # (first response after, resolved after, satisfaction); high: 120 min / 1440 min targets
        (20, 300, 5),  # both targets met
        (180, 600, 3),  # first response late
        (60, None, None),  # still open
    ]
    for fr, res, sat in rows:
        conn.execute(
            """INSERT INTO support_cases (kind, channel, customer_id, category, severity, subject, status,
                   assignee_user_id, first_response_due, resolution_due, first_response_at, resolved_at,
                   satisfaction, created_by, created_at)
               VALUES ('complaint', 'phone', %s, 'billing', 'high', 's', %s, %s, %s, %s, %s, %s, %s, 'seed', %s)""",
            (customer_id, "resolved" if res else "in_progress", user_id, T + minutes(120), T + minutes(1440),
             T + minutes(fr), T + minutes(res) if res else None, sat, T),
        )  # fmt: skip


def seed_orders(conn, customer_id: int, station_id: int, me: str) -> None:
    for status, pickup in [("completed", T), ("returned", T), ("cancelled", T), ("no_show", T),
                           ("confirmed", T), ("completed", BEFORE)]:  # fmt: skip
        conn.execute(
            """INSERT INTO orders (customer_id, vehicle_class, pickup_station_id, return_station_id, pickup_at,
                                   return_at, channel, status, quote, quoted_net, created_by)
               VALUES (%s, 'compact', %s, %s, %s, %s, 'counter', %s, '{}', 0, %s)""",
            (customer_id, station_id, station_id, pickup, pickup + dt.timedelta(days=2), status, me),
        )


def seed_work_orders(conn, vehicle_id: int, me: str) -> None:
    rows = [  # (work order, kind, opened, closed after days, closed by)
        ("WO-A", "repair", T, 1, me),
        (
            "WO-B",
            "repair",
            T + dt.timedelta(days=11),
            1,
            "other-tech",
        ),  # comes back 10 days after WO-A: rework
        ("WO-C", "service", T + dt.timedelta(days=2), 1, me),
        ("WO-D", "tyres", T + dt.timedelta(days=3), 0, me),
        ("WO-E", "tyres", T + dt.timedelta(days=43), 1, "other-tech"),  # 40 days later: not rework
    ]
    for wo, kind, opened, days, by in rows:
        conn.execute(
            """INSERT INTO maintenance_records (vehicle_id, work_order, kind, description, opened_at, closed_at,
                                                closed_by) VALUES (%s, %s, %s, 'x', %s, %s, %s)""",
            (vehicle_id, wo, kind, opened, opened + dt.timedelta(days=days, hours=2), by),
        )


def test_review_kpis_equal_hand_computed_values(settings, conn):
    car = factories.vehicle(conn)
    station_id = car["home_station_id"]
    with api(settings) as client:
        hr, admin = token(client, conn, "hr"), token(client, conn, "admin")
        cs_h = token(client, conn, "customer_service")
        cust = create_customer(client, cs_h)
        disp = factories.user(conn, role="dispatcher")
        agent = factories.user(conn, role="customer_service")
        tech = factories.user(conn, role="technician")
        seed_alerts(conn, car["id"], disp["username"])
        seed_cases(conn, cust["id"], agent["id"])
        seed_orders(conn, cust["id"], station_id, agent["username"])
        seed_work_orders(conn, car["id"], tech["username"])
        period = {"period_start": "2026-05-01", "period_end": "2026-05-31"}
        got = {}
        for u in (disp, agent, tech):
            e = employee(client, hr, u)
            r = client.post("/api/v1/hr/reviews", headers=hr, json={"employee_id": e["id"], **period})
            assert r.status_code == 201, r.text
            got[u["role"]] = (e, r.json())
        assert got["dispatcher"][1]["kpis"] == {
            "alerts_acknowledged": 2, "mean_ack_minutes": 7.0,  # (4 + 10) / 2
            "alerts_resolved": 1, "mean_resolve_minutes": 30.0,
        }  # fmt: skip
        assert got["customer_service"][1]["kpis"] == {
            "cases": 3,
            "mean_first_response_minutes": 86.67,  # (20 + 180 + 60) / 3
            "mean_resolution_minutes": 450.0,  # (300 + 600) / 2
            "sla_met_rate": 0.5,  # 1 of the 2 resolved met both targets
            "mean_satisfaction": 4.0,  # (5 + 3) / 2
            "orders_completed": 2, "orders_lost": 2, "order_completion_rate": 0.5,  # confirmed: not decided yet
        }  # fmt: skip
        assert got["technician"][1]["kpis"] == {"work_orders_closed": 3, "reworked": 1, "rework_rate": 0.3333}
        e, review = got["customer_service"]
        dup = client.post("/api/v1/hr/reviews", headers=hr, json={"employee_id": e["id"], **period})
        assert dup.status_code == 409

        # Rating and outcome: hr proposes, only admin approves; the pay change takes effect.
        rid = review["id"]
        assert (
            client.post(
                f"/api/v1/hr/reviews/{rid}/rating", headers=hr, json={"rating": 4, "outcome": "pay_change"}
            ).status_code
            == 422
        )  # no amount
        r = client.post(f"/api/v1/hr/reviews/{rid}/rating", headers=hr,
                        json={"rating": 4, "outcome": "pay_change", "amount": "10800.00", "comment": "steady"})  # fmt: skip
        assert (
            r.status_code == 200
            and r.json()["outcome_amount"] == "10800.00"
            and r.json()["status"] == "rated"
        )
        assert client.post(f"/api/v1/hr/reviews/{rid}/approve", headers=hr).status_code == 403
        r = client.post(f"/api/v1/hr/reviews/{rid}/approve", headers=admin)
        assert r.status_code == 200 and r.json()["status"] == "approved"
        pay = client.get(f"/api/v1/hr/employees/{e['id']}", headers=hr).json()["salary"]
        assert pay == {"base": "10800.00", "allowance": "0.00"}
        assert client.post(f"/api/v1/hr/reviews/{rid}/refresh", headers=hr).status_code == 409  # frozen
