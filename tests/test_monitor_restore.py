"""Restart pieces one by one: detectors rebuilt from what the database knows (pure), an already-recorded
detection not written twice and an older observation never clearing a newer alert (database), acknowledgements
in arrival order, and the registry following installs through the 0310 trigger."""

from __future__ import annotations

import datetime as dt
import json

from backoffice.devices import service as devices_service
from fleetcore.contract import READING_COLUMNS
from fleetcore.db import connect
from monitor import service
from monitor.detectors import (
    Clear,
    Detection,
    FleetMonitor,
    Restored,
    StateChange,
    VehicleInfo,
    VehicleMonitor,
)
from monitor.registry import CHANNEL, Registry, RegistryListener, history, restore
from monitor.thresholds import DEFAULT
from monitor.worker import AckBook, Delivery
from tests import factories
from tests.waiting import wait_until

T0 = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)
INFO = VehicleInfo(1, "d1", "compact", "rented", "VIN")


def at(t: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=t)


def rd(t: float, **fields) -> dict:
    r = dict.fromkeys(READING_COLUMNS)
    r.update(ts=at(t), device_id="d1", kind="telemetry", seq=int(t), speed_kmh=50.0, ignition=True, rpm=2000)
    r.update(fields)
    return r


def detections(out: list) -> list[tuple[str, dt.datetime]]:
    return [(o.kind, o.ts) for o in out if isinstance(o, Detection)]


# --- pure: detectors ---------------------------------------------------------------------------------------------
def test_warmed_window_counts_samples_from_before_the_restart():
    """Overheating needs 20 s of hot coolant: 12 s before the restart + 8 s after raise it at the 20th second,
    as one process watching the whole time would; without the history it would wait 20 s more."""
    hot = [rd(i, coolant_c=116.0) for i in range(30)]
    whole = VehicleMonitor(INFO)
    expected = detections(whole.on_readings(hot, at(30)))
    assert expected == [("overheating", at(DEFAULT.overheat_sustain_s))]

    restarted = VehicleMonitor(INFO)
    restarted.restore(Restored(last_heard=at(12)))
    restarted.warm(hot[:12])  # judged before the restart, stored by ingest
    out = []
    for r in hot[12:]:  # the session's backlog, then live
        out += restarted.on_readings([r], r["ts"])
    assert detections(out) == expected
    cold = VehicleMonitor(INFO)
    assert detections(cold.on_readings(hot[12:], at(30))) == []  # 18 s seen: not yet


def test_warm_is_silent_and_keeps_the_open_alerts_of_the_database():
    m = VehicleMonitor(INFO)
    m.restore(Restored(open_alerts={"low_fuel": "low", "crash": "critical"}))
    m.warm(
        [rd(i, fuel_pct=50.0, coolant_c=116.0) for i in range(40)]
    )  # would clear low_fuel, raise overheating
    assert m.active == {"low_fuel"} and not m.needs_history
    # the condition that was already alerted does not raise again; a new one does
    out = m.on_readings([rd(41, fuel_pct=5.0, coolant_c=116.0)], at(41))
    assert detections(out) == [("overheating", at(41))]


def test_silence_counts_across_the_restart_and_an_open_offline_alert_is_not_raised_again():
    th = DEFAULT
    m = VehicleMonitor(INFO)
    m.restore(Restored(last_heard=at(0), ignition=True, speed_kmh=40.0))
    assert m.tick(at(th.offline_driving_s + 1), silence=False) == []  # backlog not judged yet
    out = m.tick(at(th.offline_driving_s + 1))
    assert detections(out) == [("device_offline", at(th.offline_driving_s + 1))]
    assert out[0].evidence["last_heard"] == at(0).isoformat()

    again = VehicleMonitor(INFO)
    again.restore(Restored(last_heard=at(0), ignition=True, open_alerts={"device_offline": "medium"}))
    assert again.tick(at(3600)) == []
    back = again.on_readings([rd(3600)], at(3600))  # reporting again: the open alert is resolved
    assert [type(o) for o in back] == [Clear, StateChange] and back[0].kind == "device_offline"


def test_last_will_from_the_database_counts_from_when_it_was_published():
    th = DEFAULT
    m = VehicleMonitor(INFO)
    m.restore(Restored(last_heard=at(0), ignition=True, offline_since=at(0)))
    # the broker re-sends the retained `offline` on subscribing: not a sign of life, not a new start of the grace
    assert m.on_status("offline", at(50), retained=True) == []
    out = m.tick(at(th.offline_status_grace_s + 1))
    assert detections(out) == [("device_offline", at(th.offline_status_grace_s + 1))]
    assert "last will" in out[0].message


def test_retained_online_status_is_not_a_sign_of_life():
    m = VehicleMonitor(INFO)
    m.restore(Restored(last_heard=at(0), ignition=True))
    assert m.on_status("online", at(100), retained=True) == []
    assert m.last_heard == at(0)
    assert detections(m.tick(at(DEFAULT.offline_driving_s + 1))) == [
        ("device_offline", at(DEFAULT.offline_driving_s + 1))
    ]


def test_fleet_monitor_warms_a_vehicle_before_its_first_sample_or_event_only():
    asked: list[tuple[int, dt.datetime, float]] = []

    def hist(info: VehicleInfo, before: dt.datetime, seconds: float) -> list[dict]:
        asked.append((info.vehicle_id, before, seconds))
        return [rd(i, coolant_c=116.0) for i in range(12)]

    fleet = FleetMonitor("r", {"d1": INFO}.get, history=hist)
    fleet.restore(INFO, Restored())
    assert fleet.handle("r/devices/d1/status", b"offline", at(11.5), retained=True) == []
    assert asked == []  # a retained status asks for nothing
    sample = {"ts": at(12).isoformat(), "seq": 12, "coolant_c": 116.0, "speed_kmh": 50, "ignition": True}
    assert fleet.handle("r/devices/d1/telemetry", json.dumps(sample).encode(), at(12)) == []
    assert asked == [(1, at(12), VehicleMonitor(INFO).history_s())]
    out = []
    for i in range(13, 21):
        sample.update(ts=at(i).isoformat(), seq=i)
        out += fleet.handle("r/devices/d1/telemetry", json.dumps(sample).encode(), at(i))
    assert [(o.kind, o.ts) for _, o in out if isinstance(o, Detection)] == [("overheating", at(20))]
    assert len(asked) == 1
    assert fleet.forget("d1") and not fleet.forget("d1")


def test_acks_go_out_in_arrival_order_and_only_on_the_connection_that_delivered():
    sent: list[int] = []
    book = AckBook(sent.append)

    def d(seq: int, mid: int, epoch: int = 1, qos: int = 1) -> Delivery:
        return Delivery("t", b"", T0, seq, mid, qos, epoch)

    sample, crash, later = d(0, 10), d(1, 11), d(2, 12)
    assert book.finished([crash], 1) == 0 and sent == []  # the crash jumped the queue: its ack waits
    assert book.finished([sample], 1) == 2 and sent == [10, 11]
    assert book.held() == 0
    assert book.finished([later, d(3, 13, epoch=1), d(4, 14, epoch=2)], 2) == 1 and sent == [10, 11, 14]
    assert book.finished([d(5, 0, qos=0), d(6, 15, epoch=2)], 2) == 1 and sent[-1] == 15


# --- database ------------------------------------------------------------------------------------------------------
def test_raise_new_skips_a_trigger_already_recorded(conn):
    v = factories.vehicle(conn)

    def crash(t: float, **ev):
        return service.raise_new(conn, vehicle_id=v["id"], kind="crash", severity="critical", ts=at(t),
                                 message="crash", evidence={"ts": at(t).isoformat(), **ev})  # fmt: skip

    a, created = crash(0, peak_g=3.0)
    assert created and a["occurrences"] == 1
    assert crash(0, peak_g=3.0) is None  # redelivered: the same trigger
    assert crash(-5, peak_g=3.0) is None  # older than what is recorded
    b, created = crash(40, peak_g=3.5)  # a new one: a repeat
    assert not created and b["occurrences"] == 2
    dtc = [service.raise_new(conn, vehicle_id=v["id"], kind="dtc", severity="high", ts=at(1), message=c,
                             evidence={"code": c}) for c in ("P0300", "P0420", "P0300")]  # fmt: skip
    assert [x is not None for x in dtc] == [True, True, False]  # two codes in one sample both count
    service.resolve(conn, alert_id=b["id"], user={"username": "dispatcher"}, note="")
    assert crash(40, peak_g=3.5) is None  # judged again after a person resolved it: not reopened
    c, created = crash(100, peak_g=3.0)
    assert created and c["id"] != b["id"]


def test_an_older_observation_does_not_clear_a_newer_alert(conn):
    v = factories.vehicle(conn)
    service.raise_(
        conn, vehicle_id=v["id"], kind="device_offline", severity="medium", ts=at(100), message="m"
    )
    assert service.auto_resolve(conn, vehicle_id=v["id"], kind="device_offline", ts=at(50)) is None
    assert (
        service.auto_resolve(conn, vehicle_id=v["id"], kind="device_offline", ts=at(150))["status"]
        == "resolved"
    )


def test_restore_reads_last_heard_last_will_and_open_alerts(conn):
    silent, will, fresh = (factories.vehicle(conn) for _ in range(3))
    for v, seen, online, changed in ((silent, at(10), True, at(0)), (will, at(20), False, at(20))):
        conn.execute(
            """UPDATE vehicle_state SET last_seen = %s, ignition = true, speed_kmh = 40, online = %s,
                                        online_changed_at = %s WHERE vehicle_id = %s""",
            (seen, online, changed, v["id"]),
        )
    service.raise_(
        conn, vehicle_id=silent["id"], kind="overheating", severity="critical", ts=at(5), message="m"
    )
    service.raise_(conn, vehicle_id=will["id"], kind="crash", severity="critical", ts=at(7), message="m")
    registry = Registry(conn)
    registry.load()
    got = restore(conn, registry.by_device)
    assert got[silent["device_id"]].last_heard == at(10) and got[silent["device_id"]].offline_since is None
    assert got[silent["device_id"]].ignition is True and got[silent["device_id"]].open_alerts == {
        "overheating": "critical"
    }
    assert got[will["device_id"]].offline_since == at(20) and got[will["device_id"]].last_crash_ts == at(7)
    assert got[fresh["device_id"]] == Restored()
    conn.execute(
        "INSERT INTO readings (ts, device_id, vehicle_id, kind, seq, coolant_c) "
        "SELECT %s + make_interval(secs => i), %s, %s, 'telemetry', i, 100 + i FROM generate_series(0, 9) i",
        (T0, silent["device_id"], silent["id"]),
    )
    rows = history(conn, registry.by_device[silent["device_id"]], at(8), 5)
    assert [(r["ts"], r["coolant_c"]) for r in rows] == [(at(i), 100.0 + i) for i in range(3, 8)]


def test_registry_follows_removal_and_reinstallation_announced_by_the_trigger(db_url):
    with connect(db_url, autocommit=True) as admin:
        a, b = factories.vehicle(admin), factories.vehicle(admin)
        spare = factories.vehicle(admin)  # its device moves into a below
    listener = RegistryListener(db_url)
    assert listener.open()
    with connect(db_url) as conn, connect(db_url, autocommit=True) as writer:
        registry = Registry(conn)
        registry.load()
        assert registry.lookup(a["device_id"]).vehicle_id == a["id"]
        devices_service.remove(writer, vehicle={"id": a["id"], "vin": a["vin"]}, actor={"username": "test"})
        devices, vehicles, _ = wait_until(lambda: _poll(listener), timeout=5, message="no notification")
        assert devices == {a["device_id"]}
        assert registry.refresh(devices, vehicles) == {a["device_id"]}
        assert registry.lookup(a["device_id"]) is None
        devices_service.bind(writer, device_id=a["device_id"], vehicle_id=b["id"])
        devices_service.bind(writer, device_id=spare["device_id"], vehicle_id=a["id"])
        writer.execute("UPDATE vehicles SET status = 'maintenance' WHERE id = %s", (a["id"],))
        seen: tuple[set, set] = (set(), set())

        def announced() -> bool:
            d, v, _ = listener.poll()
            seen[0].update(d)
            seen[1].update(v)
            return {a["device_id"], spare["device_id"], b["device_id"]} <= seen[0] and a["id"] in seen[1]

        wait_until(announced, timeout=5, message=lambda: f"announced {seen}")
        changed = registry.refresh(*seen)
        assert a["device_id"] not in changed  # it was not known any more: nothing to reset
        assert registry.lookup(a["device_id"]).vehicle_id == b["id"]
        assert registry.lookup(spare["device_id"]).vehicle_id == a["id"]
        assert registry.lookup(spare["device_id"]).status == "maintenance"
    listener.close()
    assert CHANNEL == "fleet_registry"


def _poll(listener: RegistryListener):
    devices, vehicles, reopened = listener.poll()
    return (devices, vehicles, reopened) if devices or vehicles else None
