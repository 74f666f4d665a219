"""Pure detector tests: every detector's positive case, its look-alike that must not fire, and clearing."""

from __future__ import annotations

import datetime as dt
import json

from shapely.geometry import box

from fleetcore.contract import READING_COLUMNS
from monitor import dtc_codes
from monitor.detectors import (
    Clear,
    Detection,
    FleetMonitor,
    StateChange,
    VehicleInfo,
    VehicleMonitor,
)
from monitor.geofence import Geofence, GeofenceSet, circle
from monitor.models import AUTO_RESOLVE
from monitor.thresholds import DEFAULT, for_class

T0 = dt.datetime(2026, 11, 1, 8, 0, tzinfo=dt.UTC)


def rd(t: float, **fields) -> dict:
    """A reading dict at T0 + t seconds (absent fields None), as reading_as_dict produces."""
    r = dict.fromkeys(READING_COLUMNS)
    r.update(ts=T0 + dt.timedelta(seconds=t), device_id="d1", kind="telemetry", seq=int(t))
    r.update(fields)
    return r


def vm(status: str = "rented", geo: GeofenceSet | None = None, cls: str = "compact") -> VehicleMonitor:
    return VehicleMonitor(VehicleInfo(1, "d1", cls, status, "VIN"), for_class(cls), geo)


def feed(m: VehicleMonitor, readings: list[dict]) -> list:
    out = []
    for r in readings:
        out += m.on_readings([r], r["ts"])
    return out


def kinds(out: list) -> list[str]:
    return [o.kind for o in out if isinstance(o, Detection)]


def drive(t0: float, n: int, speed: float = 50.0, **fields) -> list[dict]:
    return [rd(t0 + i, speed_kmh=speed, ignition=True, rpm=2000, **fields) for i in range(n)]


# --- crash ------------------------------------------------------------------------------------------------------
def test_spike_then_stop_is_a_major_crash_at_the_spike_time():
    m = vm()
    out = feed(m, drive(0, 10) + [rd(10, speed_kmh=45, accel_x=-3.2, accel_y=0.8, accel_z=1.0, ignition=True)]
               + [rd(11 + i, speed_kmh=s, ignition=True) for i, s in enumerate((20, 6, 0, 0))])  # fmt: skip
    crashes = [o for o in out if isinstance(o, Detection) and o.kind == "crash"]
    assert len(crashes) == 1
    assert crashes[0].severity == "critical" and crashes[0].ts == T0 + dt.timedelta(seconds=10)
    assert crashes[0].evidence["peak_g"] >= 2.5 and crashes[0].evidence["spike"]["accel_x"] == -3.2
    assert "harsh_brake" not in kinds(out)  # the impact is not also a harsh brake


def test_minor_collision_is_high_severity():
    m = vm()
    out = feed(
        m, drive(0, 5) + [rd(5, speed_kmh=20, accel_x=-1.8, accel_y=0, ignition=True), rd(6, speed_kmh=0)]
    )
    (c,) = [o for o in out if isinstance(o, Detection)]
    assert (c.kind, c.severity) == ("crash", "high")


def test_vertical_pothole_spike_at_speed_is_not_a_crash():
    m = vm()
    out = feed(
        m, drive(0, 5) + [rd(5, speed_kmh=60, accel_x=0.1, accel_y=0.1, accel_z=3.5)] + drive(6, 20, 60)
    )
    assert kinds(out) == []


def test_horizontal_spike_without_stopping_is_not_a_crash():
    m = vm()
    out = feed(m, drive(0, 5) + [rd(5, speed_kmh=60, accel_x=-1.7, accel_y=0.2)] + drive(6, 30, 55))
    assert "crash" not in kinds(out)
    m.tick(T0 + dt.timedelta(seconds=40))
    assert m.pending_crash is None


def test_device_crash_event_is_critical_and_a_following_spike_does_not_duplicate():
    m = vm()
    feed(m, drive(0, 5))
    out = m.on_event("crash", T0 + dt.timedelta(seconds=5), {"peak_g": 4.1}, T0 + dt.timedelta(seconds=5))
    out += feed(m, [rd(5.5, speed_kmh=30, accel_x=-4.0, accel_y=0), rd(6, speed_kmh=0)])
    assert kinds(out) == ["crash"] and out[0].severity == "critical"


# --- harsh driving ----------------------------------------------------------------------------------------------
def test_harsh_brake_accel_turn_from_accelerometer():
    m = vm()
    out = feed(m, drive(0, 3) + [rd(3, speed_kmh=50, accel_x=-0.6, accel_y=0.0)] + drive(4, 2)
               + [rd(6, speed_kmh=30, accel_x=0.5, accel_y=0.0)] + drive(7, 2)
               + [rd(9, speed_kmh=40, accel_x=0.0, accel_y=-0.55)])  # fmt: skip
    assert kinds(out) == ["harsh_brake", "harsh_accel", "harsh_turn"]
    assert all(o.severity == "low" for o in out if isinstance(o, Detection))


def test_harsh_ignored_below_walking_speed_and_one_per_manoeuvre():
    m = vm()
    out = feed(m, [rd(0, speed_kmh=3, accel_x=-0.9, accel_y=0), rd(1, speed_kmh=2, accel_x=-0.8, accel_y=0)])
    assert kinds(out) == []
    out = feed(m, [rd(2 + i, speed_kmh=50, accel_x=-0.6, accel_y=0) for i in range(4)])
    assert kinds(out) == ["harsh_brake"]
    ev = m.on_event("harsh_brake", T0 + dt.timedelta(seconds=20), {"speed_kmh": 4}, T0)
    assert kinds(ev) == []  # device event below walking speed


def test_van_thresholds_are_gentler():
    assert for_class("van").harsh_turn_g < DEFAULT.harsh_turn_g
    m = vm(cls="van")
    out = feed(m, drive(0, 2) + [rd(2, speed_kmh=50, accel_x=0, accel_y=0.38)])
    assert kinds(out) == ["harsh_turn"]


# --- overheating ------------------------------------------------------------------------------------------------
def test_overheating_sustained_then_auto_clears():
    m = vm()
    out = feed(m, drive(0, 10, coolant_c=110) + drive(10, 25, coolant_c=114))
    (d,) = [o for o in out if isinstance(o, Detection)]
    assert d.kind == "overheating" and d.severity == "high"
    assert d.ts == T0 + dt.timedelta(seconds=30)  # 20 s after it first read 114
    out = feed(m, drive(35, 5, coolant_c=121))
    assert [(o.kind, o.severity) for o in out if isinstance(o, Detection)] == [("overheating", "critical")]
    out = feed(m, drive(40, 70, coolant_c=95))
    assert [o.kind for o in out if isinstance(o, Clear)] == ["overheating"]
    assert "overheating" in AUTO_RESOLVE


def test_overheating_fast_rise_and_short_spike_ignored():
    m = vm()
    out = feed(
        m, drive(0, 5, coolant_c=92) + [rd(5, coolant_c=125, speed_kmh=50)] + drive(6, 10, coolant_c=92)
    )
    assert kinds(out) == []  # one-sample sensor spike
    m = vm()
    out = feed(m, [rd(i, speed_kmh=50, rpm=2000, coolant_c=90 + 0.8 * i) for i in range(25)])
    assert kinds(out) == ["overheating"]
    assert "rising" in out[0].message


# --- battery / charging -----------------------------------------------------------------------------------------
def test_low_battery_only_at_rest_and_sustained():
    m = vm()
    running = [rd(i, battery_v=11.8, ignition=True, rpm=0) for i in range(200)]
    assert kinds(feed(m, running)) == []  # ignition on: not a resting voltage
    m = vm()
    out = feed(m, [rd(i * 10, battery_v=11.9, ignition=False, rpm=0) for i in range(13)])
    assert kinds(out) == ["low_battery"] and out[0].severity == "medium"
    out = feed(m, [rd(200 + i * 10, battery_v=12.5, ignition=False) for i in range(8)])
    assert [o.kind for o in out if isinstance(o, Clear)] == ["low_battery"]


def test_charging_fault_with_engine_running_after_start_grace():
    m = vm()
    # Cranking dip right after start is not a fault.
    out = feed(m, [rd(i, battery_v=11.0 if i < 5 else 14.1, ignition=True, rpm=800) for i in range(40)])
    assert kinds(out) == []
    out = feed(
        m, [rd(40 + i, battery_v=12.4 if i % 10 else 13.2, ignition=True, rpm=2000) for i in range(30)]
    )
    assert kinds(out) == []  # never 15 s in a row
    out = feed(m, [rd(70 + i, battery_v=12.4, ignition=True, rpm=2000, speed_kmh=50) for i in range(40)])
    assert kinds(out) == ["charging_fault"] and out[0].severity == "high"
    out = feed(m, [rd(110 + i, battery_v=14.2, ignition=True, rpm=2000) for i in range(65)])
    assert [o.kind for o in out if isinstance(o, Clear)] == ["charging_fault"]


# --- DTC ----------------------------------------------------------------------------------------------------------
def test_new_dtc_decoded_with_severity_and_only_once():
    m = vm()
    out = feed(m, [rd(0, dtc=[]), rd(1, dtc=["P0301"]), rd(2, dtc=["P0301"]), rd(3, dtc=["P0301", "P0442"])])
    ds = [o for o in out if isinstance(o, Detection)]
    assert [(d.evidence["code"], d.severity) for d in ds] == [("P0301", "high"), ("P0442", "low")]
    assert "Cylinder 1 Misfire" in ds[0].message


def test_dtc_table_coverage():
    table = dtc_codes.DTC_TABLE
    assert len(table) >= 150
    for code in ["P0217", "P0420", "P0171", "P0174", "P0562", "P0563", "U0100", "C0035", "B0001"]:
        assert code in table
    assert all(f"P03{n:02d}" in table for n in range(0, 13))
    assert table["P0217"][1] == "high" and table["P0420"][1] == "medium" and table["P0442"][1] == "low"
    desc, sev = dtc_codes.describe("P1234")
    assert "manufacturer-specific" in desc and sev == "medium"


# --- fuel / speed -------------------------------------------------------------------------------------------------
def test_low_fuel_sustained_and_clears_on_refuel():
    m = vm()
    out = feed(m, [rd(i, fuel_pct=9.0 if i % 7 else 12.0) for i in range(60)])
    assert kinds(out) == []  # slosh keeps interrupting it
    out = feed(m, [rd(100 + i, fuel_pct=8.0) for i in range(65)])
    assert kinds(out) == ["low_fuel"]
    out = feed(m, [rd(300, fuel_pct=80.0)])
    assert [o.kind for o in out if isinstance(o, Clear)] == ["low_fuel"]


def test_overspeed_sustained_once_per_episode():
    m = vm()
    out = feed(m, drive(0, 20, 170) + drive(20, 5, 100) + drive(25, 20, 170))
    assert kinds(out) == []  # never 30 s in a row
    out = feed(m, drive(45, 60, 165) + drive(105, 5, 120) + drive(110, 40, 165))
    assert kinds(out) == ["overspeed"]  # a short dip does not re-arm
    out = feed(m, drive(150, 70, 100) + drive(220, 35, 165))
    assert kinds(out) == ["overspeed"]


# --- movement ----------------------------------------------------------------------------------------------------
def test_unauthorized_movement_when_not_rented():
    m = vm(status="available")
    out = feed(m, drive(0, 30, 35))
    assert kinds(out) == ["unauthorized_movement"]
    assert out[0].evidence["vehicle_status"] == "available"
    m = vm(status="rented")
    assert kinds(feed(m, drive(0, 60, 35))) == []
    m = vm(status="maintenance")
    assert (
        kinds(feed(m, drive(0, 15, 35) + [rd(15 + i, speed_kmh=5, ignition=True) for i in range(20)])) == []
    )


def test_tow_is_moving_with_ignition_off():
    m = vm(status="available")
    out = feed(m, [rd(i, speed_kmh=30, ignition=False) for i in range(20)])
    assert kinds(out) == ["tow"]  # and not unauthorized movement
    m = vm()
    assert kinds(m.on_event("tow", T0, {}, T0)) == ["tow"]


# --- device health -------------------------------------------------------------------------------------------------
def test_device_offline_when_silent_while_driving_and_clears():
    m = vm()
    feed(m, drive(0, 10))
    assert m.tick(T0 + dt.timedelta(seconds=100)) == []
    out = m.tick(T0 + dt.timedelta(seconds=131))
    assert kinds(out) == ["device_offline"]
    assert m.tick(T0 + dt.timedelta(seconds=200)) == []  # one alert, not one per tick
    out = m.on_readings([rd(300, speed_kmh=40)], T0 + dt.timedelta(seconds=300))
    assert [o.kind for o in out if isinstance(o, Clear)] == ["device_offline"]
    assert any(isinstance(o, StateChange) and o.what == "online" for o in out)


def test_parked_device_may_sleep_but_last_will_while_driving_alerts():
    m = vm()
    feed(m, [rd(0, speed_kmh=0, ignition=False)])
    assert m.tick(T0 + dt.timedelta(minutes=30)) == []
    m = vm()
    feed(m, drive(0, 5))
    m.on_status("offline", T0 + dt.timedelta(seconds=10))
    assert m.tick(T0 + dt.timedelta(seconds=60)) == []
    assert kinds(m.tick(T0 + dt.timedelta(seconds=101))) == ["device_offline"]


def test_gps_jump():
    m = vm()
    out = feed(m, [rd(0, lat=52.52, lon=13.40, speed_kmh=40), rd(1, lat=52.5201, lon=13.4001, speed_kmh=40),
                   rd(2, lat=48.14, lon=11.58, speed_kmh=40)])  # fmt: skip
    assert kinds(out) == ["gps_jump"] and out[0].evidence["implied_kmh"] > 100_000
    # The same distance after a long outage is plausible.
    m = vm()
    assert kinds(feed(m, [rd(0, lat=52.52, lon=13.40), rd(3 * 3600 + 1, lat=52.0, lon=13.0)])) == []


# --- geofences ----------------------------------------------------------------------------------------------------
def geo() -> GeofenceSet:
    return GeofenceSet([
        Geofence(1, "BERLIN", "permitted", box(13.0, 52.3, 13.8, 52.7)),
        Geofence(2, "AIRPORT", "restricted", box(13.49, 52.36, 13.53, 52.38), "Airport apron"),
        Geofence(None, "ALX", "station", circle(52.5219, 13.4132, 150)),
    ])  # fmt: skip


def test_rented_car_leaving_permitted_region_and_returning():
    m = vm(geo=geo())
    inside = [rd(i, lat=52.5, lon=13.5, speed_kmh=60, ignition=True) for i in range(3)]
    outside = [rd(1000 + i, lat=52.8, lon=13.5, speed_kmh=60, ignition=True) for i in range(4)]
    out = feed(m, inside + outside[:2])
    assert kinds(out) == []  # two fixes outside could be noise
    out = feed(m, outside[2:])
    assert kinds(out) == ["geofence_exit"] and out[0].severity == "high"
    out = feed(m, [rd(2000, lat=52.5, lon=13.5)])
    assert [o.kind for o in out if isinstance(o, Clear)] == ["geofence_exit"]
    m = vm(status="available", geo=geo())
    assert "geofence_exit" not in kinds(feed(m, [rd(i, lat=52.8, lon=13.5) for i in range(5)]))


def test_restricted_zone_entry_and_station_events():
    m = vm(geo=geo())
    out = feed(
        m, [rd(0, lat=52.5219, lon=13.4132), rd(100, lat=52.53, lon=13.43), rd(1000, lat=52.37, lon=13.51)]
    )
    changes = [(o.what, o.data.get("station")) for o in out if isinstance(o, StateChange)]
    assert changes == [("station_enter", "ALX"), ("station_exit", "ALX")]
    assert kinds(out) == ["geofence_enter"]


# --- routing through the real parser ------------------------------------------------------------------------------
def test_fleet_monitor_parses_messages_and_skips_unknown_devices():
    info = VehicleInfo(7, "dev-a", "compact", "rented", "VIN")
    fm = FleetMonitor("r/fleet/v1", {"dev-a": info}.get)
    now = T0 + dt.timedelta(seconds=30)
    msg = json.dumps({"ts": T0.isoformat(), "seq": 1, "type": "crash", "peak_g": 3.0}).encode()
    out = fm.handle("r/fleet/v1/devices/dev-a/event", msg, now)
    assert [(i.vehicle_id, o.kind) for i, o in out] == [(7, "crash")]
    assert fm.handle("r/fleet/v1/devices/dev-zz/event", msg, now) == [] and fm.unknown == 1
    assert fm.handle("r/fleet/v1/devices/dev-a/telemetry", b"{nope", now) == [] and fm.rejected == 1


def test_database_overrides_apply_per_class_and_ignore_unknown_names():
    extra = {"compact": {"overspeed_kmh": 120.0, "no_such_threshold": 1.0}, "van": {"harsh_turn_g": 0.3}}
    assert for_class("compact", extra).overspeed_kmh == 120.0
    assert for_class("van", extra).harsh_turn_g == 0.3 and for_class("van", extra).overspeed_kmh == 130.0
    assert for_class("suv", extra).overspeed_kmh == DEFAULT.overspeed_kmh
    m = VehicleMonitor(VehicleInfo(1, "d1", "compact", "rented"), for_class("compact", extra))
    assert kinds(feed(m, drive(0, 40, 125))) == ["overspeed"]
