"""Simulator in memory: determinism, physical consistency, contract conformance, fault injection and truth."""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fleetcore.contract import DEVICE_ID_RE
from fleetcore.geo import haversine_m
from fleetcore.protocol.parse import Parsed, Rejection, process_message, reading_as_dict
from fleetcore.protocol.vin import vin_problem
from simulators.runner import Simulation, fleet_registry, simulate_messages
from simulators.scenario import FAULT_KINDS, ScenarioError, parse_scenario, random_scenario
from simulators.vehicle import GEAR_RATIOS, IDLE_RPM, RPM_PER_MS

ROOT = "fleet/v1"
FAULTS_FILE = Path(__file__).resolve().parent.parent / "simulators" / "scenarios" / "faults.json"


class Run:
    """An in-memory run, every message parsed by the real ingest parser."""

    def __init__(
        self, *, vehicles: int, seconds: float, seed: int = 11, scenario: dict | None = None
    ) -> None:
        self.sim = Simulation(vehicles=vehicles, rate_hz=1.0, seed=seed, scenario=scenario, root=ROOT)
        self.messages = list(self.sim.messages(seconds))
        self.rejections: list[tuple[str, Rejection]] = []
        self.readings: dict[str, list[dict]] = defaultdict(list)  # device → telemetry/obd/nmea rows
        self.events: dict[str, list] = defaultdict(list)
        self.status: dict[str, list[tuple[float, str]]] = defaultdict(list)
        self.payloads: dict[str, list[tuple[str, bytes]]] = defaultdict(list)
        for m in self.messages:
            r = process_message(ROOT, m.topic, m.payload, now=datetime.fromtimestamp(m.publish_time, UTC))
            dev = m.topic.split("/")[-2]
            self.payloads[dev].append((m.topic.rsplit("/", 1)[1], m.payload))
            if isinstance(r, Rejection):
                self.rejections.append((m.topic, r))
                continue
            assert isinstance(r, Parsed)
            self.rejections += [(m.topic, x) for x in r.rejections]
            for row in r.readings:
                self.readings[dev].append(reading_as_dict(row))
            self.events[dev] += r.events
            if r.status:
                self.status[dev].append((m.publish_time, r.status))
        self.truth = [t.as_dict() for t in self.sim.truth]

    def kind_rows(self, dev: str, kind: str) -> list[dict]:
        return sorted((r for r in self.readings[dev] if r["kind"] == kind), key=lambda r: r["ts"])


@pytest.fixture(scope="module")
def normal_hour() -> Run:
    """20 vehicles, one simulated hour of normal driving."""
    return Run(vehicles=20, seconds=3600)


def test_same_seed_gives_byte_identical_messages() -> None:
    a = list(simulate_messages(12, 1.0, 5, 900))
    b = list(simulate_messages(12, 1.0, 5, 900))
    c = list(simulate_messages(12, 1.0, 6, 900))
    assert len(a) > 300
    assert a == b
    assert a != c
    assert all(isinstance(t, float) for _, _, t in a)


def test_same_seed_same_faults_and_truth() -> None:
    scenario = json.loads(FAULTS_FILE.read_text())
    ta: list = []
    tb: list = []
    a = list(simulate_messages(40, 1.0, 3, 900, scenario, truth=ta))
    b = list(simulate_messages(40, 1.0, 3, 900, scenario, truth=tb))
    assert a == b
    assert [t.as_dict() for t in ta] == [t.as_dict() for t in tb]
    assert ta, "some faults fire within 15 minutes"


def test_every_message_passes_the_ingest_parser(normal_hour: Run) -> None:
    assert normal_hour.rejections == []
    kinds = {k for payloads in normal_hour.payloads.values() for k, _ in payloads}
    assert kinds == {"telemetry", "obd", "nmea", "event", "status"}


def test_device_ids_and_registry_rows_are_valid() -> None:
    rows = fleet_registry(60)
    assert [r["device_id"] for r in rows[:2]] == ["sim-00001", "sim-00002"]
    assert all(DEVICE_ID_RE.match(r["device_id"]) and vin_problem(r["vin"]) is None for r in rows)
    assert len({r["vin"] for r in rows}) == len({r["plate"] for r in rows}) == 60
    assert {r["protocol"] for r in rows} == {"json", "obd", "nmea"}
    assert {r["status"] for r in rows} == {"rented", "available"}


def test_sequence_numbers_grow_by_one_per_sample(normal_hour: Run) -> None:
    for dev in normal_hour.readings:
        for kind in ("telemetry", "obd"):
            seqs = [r["seq"] for r in normal_hour.kind_rows(dev, kind)]
            assert seqs == list(range(len(seqs))), (dev, kind)
        evs = [e.seq for e in normal_hour.events[dev]]
        assert evs == list(range(len(evs)))


def test_odometer_and_engine_hours_only_grow(normal_hour: Run) -> None:
    for dev in normal_hour.readings:
        for kind in ("telemetry", "obd"):
            rows = normal_hour.kind_rows(dev, kind)
            odo = [r["odometer_km"] for r in rows if r["odometer_km"] is not None]
            assert all(b >= a for a, b in zip(odo, odo[1:], strict=False)), dev
            hours = [r["engine_hours"] for r in rows if r["engine_hours"] is not None]
            assert all(b >= a for a, b in zip(hours, hours[1:], strict=False)), dev


def test_rpm_follows_speed_and_gear(normal_hour: Run) -> None:
    checked = 0
    for dev in normal_hour.readings:
        for r in normal_hour.kind_rows(dev, "telemetry"):
            if r["ignition"] is False:
                assert r["rpm"] == 0
                continue
            if r["rpm"] == 0:  # ignition on, engine not running (stall after an impact)
                continue
            if r["speed_kmh"] < 0.5:
                assert abs(r["rpm"] - IDLE_RPM) < 60 or abs(r["rpm"] - 950) < 60  # warm or cold idle
            elif r["speed_kmh"] > 20:
                ratio = r["rpm"] / (r["speed_kmh"] / 3.6 * RPM_PER_MS)
                assert min(GEAR_RATIOS) * 0.9 < ratio < max(GEAR_RATIOS) * 1.1
                assert 1000 < r["rpm"] < 4500
                checked += 1
    assert checked > 2000


def test_battery_voltage_depends_on_the_engine(normal_hour: Run) -> None:
    running = resting = rested = 0
    for dev in normal_hour.readings:
        for r in normal_hour.kind_rows(dev, "telemetry"):
            if r["rpm"] and r["rpm"] > 400:
                if r["battery_v"] > 13.5:
                    running += 1
                else:  # only in the first seconds after a start, when the alternator has not caught up yet
                    assert r["battery_v"] > 12.3
            elif r["ignition"] is False:
                assert 12.3 <= r["battery_v"] <= 14.5  # just after shut-down the surface charge decays
                resting += 1
                rested += 12.3 <= r["battery_v"] <= 13.0
    assert running > 1000 and resting > 100
    assert rested / resting > 0.85


def test_coolant_warms_up_after_a_cold_start_and_is_regulated(normal_hour: Run) -> None:
    warmups = 0
    for dev in normal_hour.readings:
        rows = normal_hour.kind_rows(dev, "telemetry")
        assert all(r["coolant_c"] < 100 for r in rows)  # thermostat
        start = None  # first sample of the current stretch with the engine running
        for r in rows:
            if not r["rpm"]:
                start = None
                continue
            if start is None:
                start = r
            elif start["coolant_c"] < 30 and (r["ts"] - start["ts"]).total_seconds() >= 600:
                assert r["coolant_c"] > start["coolant_c"] + 45  # ~0.1-0.2 °C/s from a cold start
                warmups += 1
                break
    assert warmups >= 3


def test_fuel_falls_with_distance(normal_hour: Run) -> None:
    trips = 0
    for dev in normal_hour.readings:
        rows = [r for r in normal_hour.kind_rows(dev, "telemetry") if r["ignition"]]
        if len(rows) < 600:
            continue
        a, b = rows[0], rows[-1]
        km = b["odometer_km"] - a["odometer_km"]
        if km < 5 or b["fuel_pct"] > a["fuel_pct"] + 1:  # refuelled in between
            continue
        assert b["fuel_pct"] < a["fuel_pct"]
        trips += 1
    assert trips >= 3


def test_acceleration_is_gravity_plus_gentle_driving(normal_hour: Run) -> None:
    n = 0
    for dev in normal_hour.readings:
        for r in normal_hour.kind_rows(dev, "telemetry"):
            assert 0.7 < r["accel_z"] < 1.3
            assert abs(r["accel_x"]) < 0.33  # normal driving stays below harsh-event thresholds
            assert abs(r["accel_y"]) < 0.25
            n += 1
    assert n > 10000
    assert all(e.type in ("ignition_on", "ignition_off") for evs in normal_hour.events.values() for e in evs)


def test_positions_move_with_speed_and_heading(normal_hour: Run) -> None:
    good = total = 0
    for dev in normal_hour.readings:
        rows = normal_hour.kind_rows(dev, "telemetry")
        for a, b in zip(rows, rows[1:], strict=False):
            dt = (b["ts"] - a["ts"]).total_seconds()
            if dt != 1.0 or a["speed_kmh"] < 25 or b["speed_kmh"] < 25:
                continue
            d = haversine_m(a["lat"], a["lon"], b["lat"], b["lon"])
            v = (a["speed_kmh"] + b["speed_kmh"]) / 2 / 3.6
            y = math.radians(b["lon"] - a["lon"]) * math.cos(math.radians(a["lat"]))
            bearing = math.degrees(math.atan2(y, math.radians(b["lat"] - a["lat"]))) % 360
            off = abs((bearing - b["heading_deg"] + 180) % 360 - 180)
            total += 1
            good += abs(d - v) < 6 and off < 30
    assert total > 2000
    assert good / total > 0.9
    # everybody stays inside greater Berlin (BER airport is just south of the city)
    for rows in normal_hour.readings.values():
        for r in rows:
            if r["lat"] is not None:
                assert 52.33 < r["lat"] < 52.70 and 13.08 < r["lon"] < 13.77


def test_ignition_cycles_and_parked_periods(normal_hour: Run) -> None:
    ons = sum(1 for evs in normal_hour.events.values() for e in evs if e.type == "ignition_on")
    offs = sum(1 for evs in normal_hour.events.values() for e in evs if e.type == "ignition_off")
    assert ons >= 15 and offs >= 10
    # parked cars report every 30 s with the ignition off
    parked = [
        r
        for rows in normal_hour.readings.values()
        for r in rows
        if r["kind"] == "telemetry" and not r["ignition"]
    ]
    assert parked and all(r["speed_kmh"] == 0 for r in parked)


# ---------------------------------------------------------------------------------------------- faults

QUICK_FAULTS: dict[str, Any] = {
    "name": "quick",
    "faults": [
        {"kind": "crash", "vehicle": 0, "start_s": 300, "params": {"peak_g": 4.0}},
        {"kind": "harsh_brake", "vehicle": 1, "start_s": 300},
        {"kind": "pothole", "vehicle": 2, "start_s": 300},
        {"kind": "overheating", "vehicle": 3, "start_s": 200, "duration_s": 1200},
        {"kind": "misfire", "vehicle": 12, "start_s": 200, "params": {"code": "P0301"}},
        {"kind": "battery_failing", "vehicle": 5, "start_s": 60, "duration_s": 1500},
        {"kind": "gps_jump", "vehicle": 6, "start_s": 500},
        {"kind": "network_outage", "vehicle": 7, "start_s": 100, "duration_s": 120},
        {"kind": "network_outage", "vehicle": 15, "start_s": 100, "duration_s": 120},
        {"kind": "network_outage", "vehicle": 17, "start_s": 100, "duration_s": 120},
        {"kind": "device_silent", "vehicle": 8, "start_s": 100, "duration_s": 300},
        {"kind": "low_fuel", "vehicle": 10, "start_s": 100, "duration_s": 600},
        {"kind": "tow", "vehicle": 4, "start_s": 200},
        {"kind": "unauthorized_movement", "vehicle": 9, "start_s": 200},
        {"kind": "harsh_turn", "vehicle": 11, "start_s": 300},
        {"kind": "minor_collision", "vehicle": 20, "start_s": 100},
        {"kind": "charging_fault", "vehicle": 21, "start_s": 100, "duration_s": 900},
    ],
}


@pytest.fixture(scope="module")
def quick_faults() -> Run:
    return Run(vehicles=22, seconds=2400, seed=4, scenario=QUICK_FAULTS)


def _truth(run: Run, fault: str, device: str | None = None) -> dict:
    found = [t for t in run.truth if t["fault"] == fault and (device is None or t["device_id"] == device)]
    assert len(found) == 1, f"{fault}: {found}"
    return found[0]


def _at(t: dict, key: str) -> datetime:
    return datetime.fromisoformat(t[key].replace("Z", "+00:00"))


def test_fault_run_passes_the_parser_and_labels_every_fault(quick_faults: Run) -> None:
    assert quick_faults.rejections == []
    assert sorted(t["fault"] for t in quick_faults.truth) == sorted(f["kind"] for f in QUICK_FAULTS["faults"])
    for t in quick_faults.truth:
        assert t["device_id"] == f"sim-{t['vehicle'] + 1:05d}" and t["start"] <= t["end"]
        assert t["details"]["observable"] is True


def test_crash_is_a_spike_then_a_stop_with_a_crash_event(quick_faults: Run) -> None:
    t = _truth(quick_faults, "crash")
    assert t["kind"] == "crash" and t["details"]["severity"] == "major"
    rows = quick_faults.kind_rows("sim-00001", "telemetry")
    spike = next(r for r in rows if r["ts"] == _at(t, "start"))
    assert math.hypot(spike["accel_x"], spike["accel_y"]) >= 2.5
    after = [r for r in rows if r["ts"] >= spike["ts"]][:60]
    assert all(r["speed_kmh"] == 0 for r in after)
    assert any(e.type == "crash" and e.data["peak_g"] >= 2.5 for e in quick_faults.events["sim-00001"])


def test_minor_collision_is_between_one_and_a_half_and_two_and_a_half_g(quick_faults: Run) -> None:
    t = _truth(quick_faults, "minor_collision")
    rows = quick_faults.kind_rows("sim-00021", "telemetry")
    spike = next(r for r in rows if r["ts"] == _at(t, "start"))
    assert 1.5 <= math.hypot(spike["accel_x"], spike["accel_y"]) < 2.5
    assert t["kind"] == "crash" and t["details"]["severity"] == "minor"


def test_pothole_is_vertical_only_and_the_car_keeps_going(quick_faults: Run) -> None:
    t = _truth(quick_faults, "pothole")
    assert t["kind"] is None and t["details"]["expected_alert"] is None
    rows = quick_faults.kind_rows("sim-00003", "telemetry")
    i = next(i for i, r in enumerate(rows) if r["ts"] == _at(t, "start"))
    assert rows[i]["accel_z"] >= 2.5 and math.hypot(rows[i]["accel_x"], rows[i]["accel_y"]) < 0.5
    assert rows[i + 2]["speed_kmh"] > 15
    assert not any(e.type == "crash" for e in quick_faults.events["sim-00003"])


def test_harsh_brake_and_turn_exceed_vendor_thresholds(quick_faults: Run) -> None:
    brake = _truth(quick_faults, "harsh_brake")
    rows = quick_faults.kind_rows("sim-00002", "telemetry")
    assert min(r["accel_x"] for r in rows if _at(brake, "start") <= r["ts"] <= _at(brake, "end")) <= -0.5
    assert any(e.type == "harsh_brake" for e in quick_faults.events["sim-00002"])
    turn = _truth(quick_faults, "harsh_turn")
    rows = quick_faults.kind_rows("sim-00012", "telemetry")
    assert max(abs(r["accel_y"]) for r in rows if _at(turn, "start") <= r["ts"] <= _at(turn, "end")) >= 0.5


def test_overheating_battery_charging_and_fuel_signals(quick_faults: Run) -> None:
    hot = _truth(quick_faults, "overheating")
    rows = quick_faults.kind_rows("sim-00004", "telemetry")
    assert max(r["coolant_c"] for r in rows if r["ts"] <= _at(hot, "end")) > 115
    batt = _truth(quick_faults, "battery_failing")
    rows = quick_faults.kind_rows("sim-00006", "telemetry")
    assert batt["kind"] == "low_battery"
    assert min(r["battery_v"] for r in rows if not r["ignition"] and r["ts"] <= _at(batt, "end")) < 11.8
    charge = _truth(quick_faults, "charging_fault")
    rows = quick_faults.kind_rows("sim-00022", "telemetry")
    late = [r for r in rows if r["rpm"] and _at(charge, "start").timestamp() + 60 < r["ts"].timestamp()]
    late = [r for r in late if r["ts"] <= _at(charge, "end")]
    assert late and all(r["battery_v"] < 12.5 for r in late)
    fuel = _truth(quick_faults, "low_fuel")
    rows = quick_faults.kind_rows("sim-00011", "telemetry")
    assert min(r["fuel_pct"] for r in rows if r["ts"] <= _at(fuel, "end")) < 10


def test_misfire_dtc_arrives_in_obd_frames(quick_faults: Run) -> None:
    t = _truth(quick_faults, "misfire")
    assert t["kind"] == "dtc" and t["details"]["codes"] == ["P0301"] and t["details"]["protocol"] == "obd"
    rows = quick_faults.kind_rows("sim-00013", "obd")
    assert any(r["dtc"] == ["P0301"] for r in rows)
    assert any(r["dtc"] == [] for r in rows if r["ts"] > _at(t, "end"))  # cleared after the repair


def test_gps_jump_is_an_impossible_leap(quick_faults: Run) -> None:
    t = _truth(quick_faults, "gps_jump")
    rows = [r for r in quick_faults.kind_rows("sim-00007", "telemetry")]
    i = next(i for i, r in enumerate(rows) if r["ts"] == _at(t, "start"))
    d = haversine_m(rows[i - 1]["lat"], rows[i - 1]["lon"], rows[i]["lat"], rows[i]["lon"])
    assert d > 20000
    assert haversine_m(rows[i - 1]["lat"], rows[i - 1]["lon"], rows[i + 1]["lat"], rows[i + 1]["lon"]) < 1000


def test_network_outage_fires_the_will_then_uploads_the_buffer(quick_faults: Run) -> None:
    t = _truth(quick_faults, "network_outage", "sim-00008")
    assert t["kind"] == "device_offline"
    status = quick_faults.status["sim-00008"]
    assert [s for _, s in status] == ["online", "offline", "online"]
    will_t = status[1][0]
    assert will_t == pytest.approx(_at(t, "start").timestamp() + 45, abs=1.5)  # 1.5 × keep-alive
    arrays = [p for k, p in quick_faults.payloads["sim-00008"] if k == "telemetry" and p.startswith(b"[")]
    assert len(arrays) == 1 and len(json.loads(arrays[0])) >= 100
    seqs = [r["seq"] for r in quick_faults.kind_rows("sim-00008", "telemetry")]
    assert seqs == list(range(len(seqs)))  # nothing lost


def test_obd_and_nmea_devices_upload_their_buffers_too(quick_faults: Run) -> None:
    for dev in ("sim-00016", "sim-00018"):
        assert [s for _, s in quick_faults.status[dev]] == ["online", "offline", "online"]
    obd_arrays = [p for k, p in quick_faults.payloads["sim-00016"] if k == "obd" and p.startswith(b"[")]
    assert len(obd_arrays) == 1 and len(json.loads(obd_arrays[0])) >= 100
    seqs = [r["seq"] for r in quick_faults.kind_rows("sim-00016", "obd")]
    assert seqs == list(range(len(seqs)))
    blocks = [p for k, p in quick_faults.payloads["sim-00018"] if k == "nmea" and p.count(b"$") >= 100]
    assert len(blocks) >= 1  # the buffered fixes as one multi-sentence message (RMC+GGA per fix)
    ts = [r["ts"] for r in quick_faults.kind_rows("sim-00018", "nmea")]
    assert len(ts) == len(set(ts))


def test_silent_device_publishes_nothing_in_its_window(quick_faults: Run) -> None:
    t = _truth(quick_faults, "device_silent")
    start, end = _at(t, "start"), _at(t, "end")
    rows = quick_faults.readings["sim-00009"]
    assert not [r for r in rows if start < r["ts"] < end]
    assert [s for _, s in quick_faults.status["sim-00009"]] == ["online", "offline", "online"]


def test_tow_moves_with_the_ignition_off(quick_faults: Run) -> None:
    t = _truth(quick_faults, "tow")
    rows = [
        r
        for r in quick_faults.kind_rows("sim-00005", "telemetry")
        if _at(t, "start") <= r["ts"] <= _at(t, "end")
    ]
    moving = [r for r in rows if r["speed_kmh"] > 10]
    assert len(moving) > 60 and all(r["ignition"] is False and r["rpm"] == 0 for r in moving)
    assert max(r["speed_kmh"] for r in moving) <= 61
    assert any(e.type == "tow" for e in quick_faults.events["sim-00005"])


def test_unauthorized_movement_is_a_parked_car_driving(quick_faults: Run) -> None:
    t = _truth(quick_faults, "unauthorized_movement")
    reg = {r["device_id"]: r for r in quick_faults.sim.registry()}
    assert reg["sim-00010"]["status"] == "available"
    rows = quick_faults.kind_rows("sim-00010", "telemetry")
    before = [r for r in rows if r["ts"] < _at(t, "start")]
    during = [r for r in rows if _at(t, "start") <= r["ts"] <= _at(t, "end")]
    assert all(r["speed_kmh"] == 0 for r in before)
    assert sum(r["speed_kmh"] > 20 and r["ignition"] for r in during) > 60


# ---------------------------------------------------------------------------------------------- scenarios


def test_shipped_scenario_covers_every_fault_kind_on_several_vehicles() -> None:
    sc = parse_scenario(json.loads(FAULTS_FILE.read_text()))
    by_kind = defaultdict(set)
    for f in sc.faults:
        by_kind[f.kind].add(f.vehicle)
    assert set(by_kind) == set(FAULT_KINDS)
    assert all(len(v) >= 2 for v in by_kind.values())


@pytest.mark.slow
def test_shipped_scenario_produces_every_label_and_valid_messages() -> None:
    sc = json.loads(FAULTS_FILE.read_text())
    run = Run(vehicles=sc["vehicles"], seconds=sc["duration_s"], seed=3, scenario=sc)
    assert run.rejections == []
    labelled = Counter(t["fault"] for t in run.truth)
    scheduled = Counter(f["kind"] for f in sc["faults"])
    assert set(labelled) == set(scheduled)
    # one label per fault; a speeding trip may hold more than one episode
    assert all(labelled[k] == n or k == "overspeed" and labelled[k] >= n for k, n in scheduled.items())
    for t in (t for t in run.truth if t["fault"] == "overspeed"):
        rows = [r for r in run.readings[t["device_id"]] if _at(t, "start") <= r["ts"] <= _at(t, "end")]
        assert max(r["speed_kmh"] for r in rows) > 160


def test_random_scenario_is_reproducible_and_covers_all_kinds() -> None:
    a = random_scenario(vehicles=60, seed=9, duration_s=7200, faults=40)
    b = random_scenario(vehicles=60, seed=9, duration_s=7200, faults=40)
    assert a.to_json() == b.to_json()
    assert {f.kind for f in a.faults} == set(FAULT_KINDS)
    assert parse_scenario(a.to_json()).to_json() == a.to_json()


@pytest.mark.parametrize(
    "doc, problem",
    [
        ({"faults": [{"kind": "meteor", "vehicle": 0}]}, "unknown kind"),
        ({"faults": [{"kind": "crash"}]}, "needs"),
        ({"faults": [{"kind": "crash", "vehicle": 0, "start_s": "soon"}]}, "numbers"),
        ({"faults": "none"}, "faults"),
    ],
)
def test_bad_scenarios_are_refused_with_a_reason(doc: dict, problem: str) -> None:
    with pytest.raises(ScenarioError, match=problem):
        parse_scenario(doc)


def test_fault_for_a_vehicle_that_does_not_run_is_refused() -> None:
    with pytest.raises(ScenarioError, match="vehicle 5"):
        Simulation(vehicles=3, rate_hz=1, seed=1, scenario={"faults": [{"kind": "crash", "vehicle": 5}]})


def test_messages_come_in_publish_time_order(normal_hour: Run) -> None:
    times = [m.publish_time for m in normal_hour.messages]
    assert times == sorted(times)
