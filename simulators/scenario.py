"""Fault and accident injection from a scenario file, with the ground truth the monitor is scored against.

A scenario is JSON: {"name": ..., "faults": [{"kind", "vehicle" (0-based index) or "device", "start_s",
"duration_s"?, "max_wait_s"?, "params"?}]}. A fault is armed at `start_s` (seconds after the simulation start)
and fires as soon as the vehicle is in a state where the fault can happen (a crash needs speed, a tow a parked
car); the truth record carries the time it really happened.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from simulators.city import STATION_BY_CODE
from simulators.device import iso_ts
from simulators.fleet_spec import make_spec
from simulators.vehicle import DRIVING, PARKED, STOPPED, G, Vehicle

if TYPE_CHECKING:
    from simulators.device import Device

# scenario kind → the monitor's alert kind it should raise (None: a negative example, must raise nothing)
TRUTH_KIND: dict[str, str | None] = {
    "overheating": "overheating",
    "battery_failing": "low_battery",
    "charging_fault": "charging_fault",
    "misfire": "dtc",
    "crash": "crash",
    "minor_collision": "crash",
    "harsh_brake": "harsh_brake",
    "harsh_accel": "harsh_accel",
    "harsh_turn": "harsh_turn",
    "tow": "tow",
    "device_silent": "device_offline",
    "network_outage": "device_offline",
    "low_fuel": "low_fuel",
    "overspeed": "overspeed",
    "gps_jump": "gps_jump",
    "pothole": None,
    "unauthorized_movement": "unauthorized_movement",
}
FAULT_KINDS = tuple(TRUTH_KIND)
_ALL = ("json", "obd", "nmea")
# Device protocols whose data can show the fault: JSON units carry everything; OBD dongles carry engine data and
# report crashes >= 2.5 g and harsh events >= 0.40-0.45 g as events but no raw acceleration; plain NMEA trackers
# carry position, speed and ignition events only.
OBSERVABLE_BY: dict[str, tuple[str, ...]] = {
    "overheating": ("json", "obd"),
    "battery_failing": ("json", "obd"),
    "charging_fault": ("json", "obd"),
    "misfire": ("json", "obd"),
    "crash": ("json", "obd"),
    "minor_collision": ("json",),
    "harsh_brake": ("json", "obd"),
    "harsh_accel": ("json", "obd"),
    "harsh_turn": ("json", "obd"),
    "tow": _ALL,
    "device_silent": _ALL,
    "network_outage": _ALL,
    "low_fuel": ("json", "obd"),
    "overspeed": _ALL,
    "gps_jump": _ALL,
    "pothole": _ALL,
    "unauthorized_movement": _ALL,
}
# FaultSpec.params key: faults sharing its value stand down once one of them has started (runner.Simulation).
FIRST_OF_GROUP = "group"
# Faults that need the car to stay parked outside the fault (registry status `available`).
PARKED_VEHICLE_KINDS = ("unauthorized_movement",)
DEFAULT_DURATION_S = {
    "overheating": 900.0,
    "battery_failing": 1800.0,
    "charging_fault": 900.0,
    "misfire": 900.0,
    "crash": 1800.0,  # standstill after the impact
    "minor_collision": 180.0,
    "device_silent": 900.0,
    "network_outage": 300.0,
    "low_fuel": 900.0,
    "overspeed": 1800.0,
}
DEFAULT_MAX_WAIT_S = 4 * 3600.0
CRASH_MIN_MS = 30 / 3.6
MINOR_COLLISION_MS = (5 / 3.6, 25 / 3.6)
HARSH_BRAKE_MIN_MS = 40 / 3.6
HARSH_TURN_MIN_MS = 30 / 3.6
# 3 s at 0.55 g from 15 km/h covers ~37 m: no stop line or destination that close when a harsh pull-away starts
HARSH_ACCEL_CLEAR_M = 60.0
POTHOLE_MIN_MS = 30 / 3.6
OVERSPEED_TRUTH_KMH = 150.0  # the monitor's default sustained-overspeed limit
# A labelled overspeed holds > 150 km/h for at least 30 s (rental policy, as the monitor's); an episode ends
# after a minute at legal speed, so a bend or an overtaken lorry does not split it.
OVERSPEED_MIN_S = 30.0
OVERSPEED_GAP_S = 60.0
# Labels of slowly developing faults start when the signal leaves its healthy range, not when the part broke:
OVERHEAT_TRUTH_C = 105.0  # above any thermostat regulation (88-100 °C)
LOW_BATTERY_TRUTH_V = 12.0  # resting voltage of a battery at ~25 % charge (BCI state-of-charge charts)
LOW_FUEL_TRUTH_PCT = 10.0  # the dashboard low-fuel lamp level the monitor uses


def _clear_ahead(veh: Vehicle, metres: float) -> bool:
    """No red-light stop or route end within `metres` ahead of the vehicle on its route."""
    r = veh.route
    if r is None:
        return False
    cum, last = r.cum, len(r.cum) - 1
    for j in range(veh.k + 1, last + 1):
        if cum[j] - veh.s > metres:
            return True
        if j == last or (j > veh.passed_stop and j in veh.waits):
            return False
    return True


class ScenarioError(ValueError):
    """A scenario file that cannot be used; the message names the fault."""


@dataclass(slots=True)
class FaultSpec:
    kind: str
    vehicle: int
    start_s: float
    duration_s: float | None = None
    max_wait_s: float = DEFAULT_MAX_WAIT_S
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Scenario:
    name: str
    faults: list[FaultSpec]

    def parked_vehicles(self) -> set[int]:
        """Vehicles that must be registered `available` (not rented) for their faults to make sense."""
        return {f.vehicle for f in self.faults if f.kind in PARKED_VEHICLE_KINDS}

    def to_json(self) -> dict:
        out = []
        for f in self.faults:
            d: dict[str, Any] = {"kind": f.kind, "vehicle": f.vehicle, "start_s": f.start_s}
            if f.duration_s is not None:
                d["duration_s"] = f.duration_s
            if f.max_wait_s != DEFAULT_MAX_WAIT_S:
                d["max_wait_s"] = f.max_wait_s
            if f.params:
                d["params"] = f.params
            out.append(d)
        return {"name": self.name, "faults": out}


def parse_scenario(data: dict) -> Scenario:
    """Validate a scenario document."""
    if not isinstance(data, dict) or not isinstance(data.get("faults"), list):
        raise ScenarioError('a scenario is a JSON object with a "faults" list')
    faults = []
    for i, f in enumerate(data["faults"]):
        where = f"fault {i}"
        if not isinstance(f, dict):
            raise ScenarioError(f"{where}: must be an object")
        kind = f.get("kind")
        if kind not in TRUTH_KIND:
            raise ScenarioError(f"{where}: unknown kind {kind!r} (one of {', '.join(FAULT_KINDS)})")
        if "vehicle" in f:
            vehicle = f["vehicle"]
        elif isinstance(f.get("device"), str) and f["device"].startswith("sim-"):
            vehicle = int(f["device"][4:]) - 1
        else:
            raise ScenarioError(f'{where}: needs "vehicle" (0-based index) or "device" (sim-NNNNN)')
        if not isinstance(vehicle, int) or vehicle < 0:
            raise ScenarioError(f"{where}: vehicle must be an index >= 0")
        try:
            start = float(f.get("start_s", 0.0))
            duration = None if f.get("duration_s") is None else float(f["duration_s"])
            max_wait = float(f.get("max_wait_s", DEFAULT_MAX_WAIT_S))
        except (TypeError, ValueError):
            raise ScenarioError(f"{where}: start_s, duration_s and max_wait_s must be numbers") from None
        params = f.get("params", {})
        if not isinstance(params, dict):
            raise ScenarioError(f"{where}: params must be an object")
        faults.append(FaultSpec(kind, vehicle, start, duration, max_wait, params))
    return Scenario(str(data.get("name", "scenario")), faults)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc}") from None
    return parse_scenario(data)


# kinds a random scenario draws from, and where they may be placed
_DRIVING_KINDS = tuple(k for k in FAULT_KINDS if k not in PARKED_VEHICLE_KINDS)


def random_scenario(
    *, vehicles: int, seed: int, duration_s: float, faults: int, name: str = "random"
) -> Scenario:
    """A reproducible random scenario: `faults` faults spread over the fleet and the period."""
    rng = random.Random(seed ^ 0x5CE7A)

    specs = [make_spec(i) for i in range(vehicles)]
    out: list[FaultSpec] = []
    used: set[int] = set()
    for n in range(faults):
        kind = FAULT_KINDS[n % len(FAULT_KINDS)] if n < len(FAULT_KINDS) else rng.choice(FAULT_KINDS)
        want_parked = kind in PARKED_VEHICLE_KINDS or kind == "tow"
        pool = [
            s.index for s in specs if s.protocol in OBSERVABLE_BY[kind] and (not s.rented) == want_parked
        ] or [s.index for s in specs if s.protocol in OBSERVABLE_BY[kind]]
        free = [v for v in pool if v not in used] or pool
        if not free:
            continue
        v = rng.choice(free)
        used.add(v)
        start = rng.uniform(0.05, 0.6) * duration_s
        out.append(FaultSpec(kind, v, round(start), None, max(600.0, duration_s - start)))
    return Scenario(name, out)


# ------------------------------------------------------------------------------------------------ runtime


@dataclass(slots=True)
class Truth:
    """One labelled fault occurrence (times in epoch seconds)."""

    vehicle: int
    device_id: str
    vin: str
    kind: str | None
    fault: str
    start: float
    end: float | None
    details: dict

    def as_dict(self) -> dict:
        return {
            "vehicle": self.vehicle,
            "device_id": self.device_id,
            "vin": self.vin,
            "kind": self.kind,
            "fault": self.fault,
            "start": iso_ts(self.start),
            "end": None if self.end is None else iso_ts(self.end),
            "details": self.details,
        }


class Fault:
    """Runtime state of one injected fault on one vehicle."""

    PENDING, ACTIVE, DONE = range(3)

    def __init__(self, spec: FaultSpec, t0: float, rng: random.Random) -> None:
        self.spec = spec
        self.kind = spec.kind
        self.arm_t = t0 + spec.start_s
        self.expire_t = self.arm_t + spec.max_wait_s
        dur = spec.duration_s if spec.duration_s is not None else DEFAULT_DURATION_S.get(spec.kind, 0.0)
        self.duration = float(dur)
        self.rng = rng
        self.state = Fault.PENDING
        self.t_on = 0.0
        self.until = 0.0
        self.truth: Truth | None = None
        self.expired = False
        self.extra: dict[str, Any] = {}
        self.more: list[Truth] = []  # further labels of the same fault (e.g. a second stretch of speeding)

    def p(self, name: str, default: float) -> float:
        return float(self.spec.params.get(name, default))

    # Called every tick before the vehicle's physics; returns a Truth when one is completed.
    def update(self, veh: Vehicle, dev: Device, t: float) -> Truth | None:
        if self.state == Fault.DONE:
            return None
        if self.state == Fault.PENDING:
            if t < self.arm_t:
                return None
            if t > self.expire_t:
                self.state = Fault.DONE
                self.expired = True
                return None
            if self._can_start(veh):
                self.state = Fault.ACTIVE
                self.t_on = t
                self.until = t + self.duration
                self.truth = Truth(
                    veh.spec.index,
                    veh.spec.device_id,
                    veh.spec.vin,
                    TRUTH_KIND[self.kind],
                    self.kind,
                    t,
                    None,
                    {},
                )
                done = self._start(veh, dev, t)
                self.truth.details["protocol"] = veh.spec.protocol
                self.truth.details["observable"] = veh.spec.protocol in OBSERVABLE_BY[self.kind]
                return done
            return None
        return self._active(veh, dev, t)

    def _done(self, t: float) -> Truth | None:
        self.state = Fault.DONE
        tr = self.truth
        if tr is None:
            return None
        tr.end = t
        return tr

    # ---- per kind -----------------------------------------------------------------------------------------------

    def _can_start(self, veh: Vehicle) -> bool:
        k, v, mode = self.kind, veh.v, veh.mode
        driving = mode == DRIVING and veh.hold_until <= veh.t
        if k == "crash" or k == "harsh_turn" or k == "pothole":
            return driving and v >= CRASH_MIN_MS and veh.maneuver is None
        if k == "minor_collision":
            return driving and MINOR_COLLISION_MS[0] <= v <= MINOR_COLLISION_MS[1] and veh.maneuver is None
        if k == "harsh_brake":
            return driving and v >= HARSH_BRAKE_MIN_MS and veh.maneuver is None
        if k == "harsh_accel":
            # pulling away from a stop, with the road clear ahead: a red light a few metres on cut one short
            # at 6 km/h (a 0.5 g blip at walking pace, no harsh acceleration to see), yet it was labelled
            return (
                driving
                and v < 15 / 3.6
                and veh.a > 0.3
                and veh.maneuver is None
                and veh.slow_until <= veh.t
                and _clear_ahead(veh, HARSH_ACCEL_CLEAR_M)
            )
        if k == "overheating":  # shows when the engine works: on a trip with at least 4 km to go
            return driving and veh.route is not None and veh.route.length - veh.s > 4000.0
        if k in ("charging_fault", "misfire"):
            return veh.engine_on
        if k in ("battery_failing", "tow", "unauthorized_movement"):
            return mode == PARKED
        if k == "overspeed":
            return mode == PARKED and veh.spec.rented
        if k in ("device_silent", "network_outage"):
            return mode == DRIVING
        if k == "gps_jump":
            return veh.ignition  # reporting every sample, so the jumped fix is the labelled one
        return True  # low_fuel

    def _start(self, veh: Vehicle, dev: Device, t: float) -> Truth | None:
        k = self.kind
        tr = self.truth
        assert tr is not None
        rng = self.rng
        if k in ("crash", "minor_collision"):
            if k == "crash":
                peak = self.p("peak_g", rng.uniform(3.0, 6.0))
            else:
                peak = self.p("peak_g", rng.uniform(1.7, 2.3))
            ang = rng.uniform(-0.35, 0.35)  # mostly frontal impacts
            veh.spike = (-peak * math.cos(ang), peak * math.sin(ang), 1.0 + rng.uniform(-0.4, 0.6))
            tr.details = {
                "severity": "major" if k == "crash" else "minor",
                "peak_g": round(peak, 2),
                "speed_kmh": round(veh.v * 3.6, 1),
            }
            veh.v = 0.0
            veh.a = 0.0
            veh.maneuver = None
            veh.mode = STOPPED
            veh.mode_until = self.until
            if k == "crash":
                veh.engine_on = False  # engines stall; airbag control units cut the fuel pump
                self.extra["ign_off_at"] = t + rng.uniform(20.0, 90.0)
            return None
        if k == "harsh_brake":
            g = self.p("decel_g", rng.uniform(0.55, 0.7))
            veh.maneuver = ("harsh_brake", t + 8.0, -g * G)
            tr.details = {"peak_g": round(g, 2), "speed_kmh": round(veh.v * 3.6, 1)}
            self.until = t + 8.0
        elif k == "harsh_accel":
            g = self.p("accel_g", rng.uniform(0.45, 0.55))
            dur = self.p("seconds", 3.0)
            veh.maneuver = ("harsh_accel", t + dur, g * G)
            tr.details = {"peak_g": round(g, 2), "speed_kmh": round(veh.v * 3.6, 1)}
            self.until = t + dur
        elif k == "harsh_turn":
            g = self.p("lateral_g", rng.uniform(0.55, 0.65))
            veh.maneuver = ("harsh_turn", t + 2.4, g * G)  # swerve: 1.2 s one way, 1.2 s back
            tr.details = {"peak_g": round(g, 2), "speed_kmh": round(veh.v * 3.6, 1)}
            self.until = t + 2.4
        elif k == "pothole":
            g = self.p("vertical_g", rng.uniform(1.8, 3.0))
            veh.spike = (rng.uniform(-0.3, 0.1), rng.uniform(-0.2, 0.2), 1.0 + g)
            tr.details = {
                "vertical_g": round(1.0 + g, 2),
                "speed_kmh": round(veh.v * 3.6, 1),
                "expected_alert": None,
            }
            return self._done(t)
        elif k == "gps_jump":
            km = self.p("distance_km", rng.uniform(30.0, 80.0))
            bearing = rng.uniform(0.0, 2 * math.pi)
            dlat = km * math.cos(bearing) / 111.25
            dlon = km * math.sin(bearing) / (111.32 * math.cos(math.radians(52.5)))
            veh.gps_offset = (dlat, dlon)
            tr.details = {"distance_km": round(km, 1)}
            return self._done(t)
        elif k == "overheating":
            veh.cooling_failed = True
            tr.details = {"cause": "cooling fan / thermostat failure"}
        elif k == "charging_fault":
            veh.charge_fault_since = t
            tr.details = {"cause": "alternator not charging"}
        elif k == "misfire":
            code = str(self.spec.params.get("code", rng.choice(["P0300", "P0301", "P0302", "P0303"])))
            veh.dtc = tuple(sorted({*veh.dtc, code}))
            veh.misfire = True
            tr.details = {"codes": [code]}
        elif k == "battery_failing":
            veh.battery_failing = True
            veh.hold_parked = True
            tr.details = {"resting_v": 11.4}
        elif k == "tow":
            veh.start_tow(t)
            tr.details = {"from": veh.station, "to": veh.route.end if veh.route else None}
        elif k == "unauthorized_movement":
            others = [c for c in STATION_BY_CODE if c != veh.station]
            veh.forced_trip = str(self.spec.params.get("to") or rng.choice(others))
            veh.mode_until = t  # leaves right away even though nobody rented it
            tr.details = {"from": veh.station, "registry_status": "available"}
        elif k == "overspeed":
            target = self.p("speed_kmh", rng.uniform(168.0, 180.0))
            veh.forced_trip = "BER" if veh.station != "BER" else "SPAN"
            veh.mode_until = t
            veh.overspeed_ms = target / 3.6
            self.extra["first"] = None
            self.extra["last"] = None
            tr.details = {"target_kmh": round(target, 1), "limit_kmh": OVERSPEED_TRUTH_KMH}
        elif k == "low_fuel":
            pct = self.p("to_pct", rng.uniform(4.0, 7.0))
            veh.fuel_leak_to_l = veh.spec.tank_l * pct / 100.0
            veh.no_refuel = True
            self.extra["below"] = None
            tr.details = {"to_pct": round(pct, 1), "threshold_pct": LOW_FUEL_TRUTH_PCT, "cause": "fuel leak"}
        elif k == "device_silent":
            dev.silent = True
            dev.sink.go_silent(dev, t)
            tr.details = {"cause": "device power loss"}
        elif k == "network_outage":
            dev.sink.go_silent(dev, t)
            tr.details = {"cause": "no cellular coverage; samples buffered"}
        return None

    def _active(self, veh: Vehicle, dev: Device, t: float) -> Truth | None:
        k = self.kind
        if k in ("crash", "minor_collision"):
            off = self.extra.get("ign_off_at")
            if off is not None and t >= off and veh.ignition:
                veh._ignition_off(t)
                self.extra["ign_off_at"] = None
            # Drivers get out to exchange details only while the car is stopped, never once it drives on.
            if k == "minor_collision" and veh.engine_on and veh.mode == STOPPED and t - self.t_on > 20.0:
                veh._ignition_off(t)
            if veh.mode != STOPPED:
                return self._done(self.until)
            return None
        if k in ("harsh_brake", "harsh_accel", "harsh_turn"):
            if veh.maneuver is None or t >= self.until:
                veh.maneuver = None
                return self._done(t)
            return None
        if k == "tow":
            if veh.mode == PARKED:
                return self._done(t)
            return None
        if k == "unauthorized_movement":
            if veh.mode == PARKED and t > self.t_on + 60.0:
                self.truth.details["to"] = veh.station  # type: ignore[union-attr]
                return self._done(t)
            return None
        if k == "overspeed":
            ending = veh.mode == PARKED and t > self.t_on + 60.0 or t >= self.until
            ex = self.extra
            if veh.v * 3.6 > OVERSPEED_TRUTH_KMH:
                if ex["first"] is None:
                    ex["first"], ex["sustained"] = t, False
                if ex.get("run") is None:
                    ex["run"] = t
                ex["last"] = t
                if t - ex["run"] >= OVERSPEED_MIN_S and not ex["sustained"]:
                    # the label starts with the first sustained run: shorter bursts before it (a car braking
                    # for bends between 20 s sprints) break no policy and no detector can flag them
                    ex["sustained"], ex["first"] = True, ex["run"]
            else:
                ex["run"] = None
            if ex["first"] is not None and (ending or t - ex["last"] >= OVERSPEED_GAP_S):
                if ex["sustained"]:
                    ex.setdefault("stretches", []).append((ex["first"], ex["last"]))
                ex["first"] = None
            if not ending:
                return None
            veh.overspeed_ms = None
            veh.forced_trip = None
            self.state = Fault.DONE
            stretches = self.extra.get("stretches", [])
            if not stretches:
                self.expired = True
                return None
            tr = self.truth
            assert tr is not None
            for a, b in stretches[1:]:
                self.more.append(
                    Truth(tr.vehicle, tr.device_id, tr.vin, tr.kind, tr.fault, a, b, dict(tr.details))
                )
            tr.start, tr.end = stretches[0]
            return tr
        if k == "low_fuel":
            if self.extra["below"] is None and veh.fuel_l / veh.spec.tank_l * 100 < LOW_FUEL_TRUTH_PCT:
                self.extra["below"] = t
                self.truth.start = t  # type: ignore[union-attr]
            if t >= self.until:
                veh.fuel_leak_to_l = None
                veh.no_refuel = False
                if veh.mode == PARKED:
                    veh.fuel_l = veh.spec.tank_l * 0.9  # refilled where it stands
                    return self._done(t)
                if self.extra["below"] is not None and veh.fuel_l / veh.spec.tank_l * 100 < 15:
                    self.until = t + 60.0  # keep the label until the car is refuelled at the next stop
                    return None
                return self._done(t)
            return None
        if k == "overheating":
            out_of_range = veh.coolant > OVERHEAT_TRUTH_C
        else:
            out_of_range = k == "battery_failing" and veh.battery_v < LOW_BATTERY_TRUTH_V
        if out_of_range and "observed" not in self.extra:
            tr = self.truth
            assert tr is not None
            self.extra["observed"] = t
            tr.details["fault_at"] = iso_ts(tr.start)
            tr.start = t
        if t < self.until:
            return None
        # window faults ending
        if k == "overheating":
            veh.cooling_failed = False
        elif k == "charging_fault":
            veh.charge_fault_since = None
        elif k == "misfire":
            veh.misfire = False
            veh.dtc = tuple(c for c in veh.dtc if c not in self.truth.details["codes"])  # type: ignore[union-attr]
        elif k == "battery_failing":
            veh.battery_failing = False
            veh.hold_parked = False
            veh.battery_v = veh.resting_v  # battery replaced
        elif k == "device_silent":
            dev.silent = False
            dev.sink.come_back(dev, t)
        elif k == "network_outage":
            dev.sink.come_back(dev, t)
        return self._done(t)
