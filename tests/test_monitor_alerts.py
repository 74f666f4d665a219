"""Alert lifecycle against the real database: dedupe, severity escalation, ack/resolve, auto-resolve,
vehicle health and rentability, and the NOTIFY that the API's stream listens to."""

from __future__ import annotations

import datetime as dt
import json

import psycopg
import pytest

from fleetcore.db import connect, one
from fleetcore.errors import Conflict, Invalid, NotFound
from monitor import service
from tests import factories

T0 = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)


def state(conn, vid):
    return conn.execute(
        "SELECT health, rentable, open_alerts FROM vehicle_state WHERE vehicle_id = %s", (vid,)
    ).fetchone()


def test_repeats_update_one_active_alert_and_escalate(conn):
    v = factories.vehicle(conn)
    a, created = service.raise_(conn, vehicle_id=v["id"], kind="overheating", severity="high", ts=T0,
                               message="coolant 113", evidence={"coolant_c": 113})  # fmt: skip
    assert created and a["status"] == "open" and a["occurrences"] == 1 and a["vin"] == v["vin"]
    assert state(conn, v["id"]) == {"health": "warning", "rentable": True, "open_alerts": 1}
    b, created = service.raise_(conn, vehicle_id=v["id"], kind="overheating", severity="critical",
                               ts=T0 + dt.timedelta(minutes=1), message="coolant 122", evidence={"coolant_c": 122})  # fmt: skip
    assert not created and b["id"] == a["id"]
    assert b["occurrences"] == 2 and b["severity"] == "critical" and b["message"] == "coolant 122"
    assert b["opened_at"] == T0 and b["last_seen_at"] == T0 + dt.timedelta(minutes=1)
    assert [e["coolant_c"] for e in b["evidence"]] == [113, 122]
    # A lower severity repeat never downgrades.
    c, _ = service.raise_(conn, vehicle_id=v["id"], kind="overheating", severity="low", ts=T0, message="x")
    assert c["severity"] == "critical" and c["last_seen_at"] == T0 + dt.timedelta(minutes=1)
    assert state(conn, v["id"]) == {"health": "critical", "rentable": False, "open_alerts": 1}
    # Other kinds are separate alerts.
    service.raise_(conn, vehicle_id=v["id"], kind="low_fuel", severity="low", ts=T0, message="fuel 8 %")
    assert one(conn.execute("SELECT count(*) AS n FROM alerts WHERE vehicle_id = %s", (v["id"],)))["n"] == 2


def test_evidence_is_capped(conn):
    v = factories.vehicle(conn)
    for i in range(service.MAX_EVIDENCE + 5):
        a, _ = service.raise_(conn, vehicle_id=v["id"], kind="harsh_brake", severity="low", ts=T0, message="m",
                             evidence={"i": i})  # fmt: skip
    assert a["occurrences"] == service.MAX_EVIDENCE + 5 and len(a["evidence"]) == service.MAX_EVIDENCE


def test_ack_then_resolve_with_note_and_audit(conn):
    v = factories.vehicle(conn)
    disp = factories.user(conn, role="dispatcher")
    a, _ = service.raise_(conn, vehicle_id=v["id"], kind="crash", severity="critical", ts=T0, message="crash")
    assert state(conn, v["id"])["rentable"] is False
    acked = service.ack(conn, alert_id=a["id"], user=disp)
    assert acked["status"] == "acknowledged" and acked["acknowledged_by"] == disp["username"]
    assert acked["acknowledged_at"] is not None
    assert state(conn, v["id"])["rentable"] is False  # acknowledged is still not resolved
    # A repeat while acknowledged stays on the same alert and keeps it acknowledged.
    again, created = service.raise_(
        conn, vehicle_id=v["id"], kind="crash", severity="critical", ts=T0, message="c"
    )
    assert not created and again["status"] == "acknowledged" and again["occurrences"] == 2
    done = service.resolve(conn, alert_id=a["id"], user=disp, note="driver fine, car towed to workshop")
    assert done["status"] == "resolved" and done["resolved_by"] == disp["username"]
    assert done["resolution_note"] == "driver fine, car towed to workshop"
    assert state(conn, v["id"]) == {"health": "ok", "rentable": True, "open_alerts": 0}
    with pytest.raises(Conflict):
        service.resolve(conn, alert_id=a["id"], user=disp)
    with pytest.raises(Conflict):
        service.ack(conn, alert_id=a["id"], user=disp)
    with pytest.raises(NotFound):
        service.ack(conn, alert_id=999_999, user=disp)
    actions = [
        r["action"] for r in conn.execute("SELECT action FROM audit_log WHERE entity = 'alert' ORDER BY id")
    ]
    assert actions == ["alert.ack", "alert.resolve"]
    # After resolution the next occurrence opens a new alert.
    new, created = service.raise_(
        conn, vehicle_id=v["id"], kind="crash", severity="critical", ts=T0, message="c"
    )
    assert created and new["id"] != a["id"]


def test_auto_resolve_and_health(conn):
    v = factories.vehicle(conn)
    service.raise_(
        conn, vehicle_id=v["id"], kind="device_offline", severity="medium", ts=T0, message="silent"
    )
    assert service.auto_resolve(conn, vehicle_id=v["id"], kind="low_battery", ts=T0) is None
    r = service.auto_resolve(conn, vehicle_id=v["id"], kind="device_offline", ts=T0 + dt.timedelta(minutes=3),
                            reason="device reporting again")  # fmt: skip
    assert (
        r["status"] == "resolved"
        and r["resolved_by"] == "auto"
        and r["resolution_note"] == "device reporting again"
    )
    assert state(conn, v["id"]) == {"health": "ok", "rentable": True, "open_alerts": 0}


def test_list_filters_and_pagination(conn):
    v1, v2 = factories.vehicle(conn), factories.vehicle(conn)
    service.raise_(conn, vehicle_id=v1["id"], kind="crash", severity="critical", ts=T0, message="a")
    service.raise_(
        conn, vehicle_id=v1["id"], kind="low_fuel", severity="low", ts=T0 + dt.timedelta(hours=1), message="b"
    )
    c, _ = service.raise_(
        conn, vehicle_id=v2["id"], kind="dtc", severity="high", ts=T0 + dt.timedelta(hours=2), message="c"
    )
    service.resolve(conn, alert_id=c["id"], user={"username": "x"}, note="")
    items, total = service.list_(conn)
    assert total == 3 and [i["message"] for i in items] == ["c", "b", "a"]
    assert service.list_(conn, status=["open", "acknowledged"])[1] == 2
    assert [i["kind"] for i in service.list_(conn, vin=v1["vin"], severity=["critical"])[0]] == ["crash"]
    assert [i["message"] for i in service.list_(conn, start=T0 + dt.timedelta(minutes=30))[0]] == ["c", "b"]
    assert [i["message"] for i in service.list_(conn, end=T0 + dt.timedelta(minutes=30))[0]] == ["a"]
    items, total = service.list_(conn, limit=1, offset=1)
    assert total == 3 and [i["message"] for i in items] == ["b"]
    with pytest.raises(Invalid):
        service.list_(conn, status=["closed"])


def test_changes_are_notified_at_commit(db_url):
    with connect(db_url, autocommit=True) as setup:
        v = factories.vehicle(setup)
    with psycopg.connect(db_url, autocommit=True) as listener, connect(db_url) as writer:
        listener.execute(f"LISTEN {service.CHANNEL}")
        with writer.transaction():
            service.raise_(writer, vehicle_id=v["id"], kind="crash", severity="critical", ts=T0, message="m",
                          evidence={"accel_x": -3.0})  # fmt: skip
            assert list(listener.notifies(timeout=0.3)) == []  # nothing before commit
        got = [json.loads(n.payload) for n in listener.notifies(timeout=2, stop_after=2)]
    assert got[0]["type"] == "alert" and got[0]["event"] == "opened" and got[0]["alert"]["kind"] == "crash"
    assert got[0]["alert"]["vin"] == v["vin"]
    assert got[1] == {"type": "vehicle", "event": "health", "vehicle_id": v["id"], "vin": v["vin"],
                      "health": "critical", "rentable": False, "open_alerts": 1}  # fmt: skip
