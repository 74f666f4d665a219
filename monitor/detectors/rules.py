"""The per-sample rules of one vehicle's monitor (crash, harsh driving, overheating, battery and charging, DTCs,
fuel, unauthorised movement, GPS jumps, geofences), as a mixin of `VehicleMonitor`, which holds the state they
read and write. Pure: no I/O, sample time only."""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections import deque

from fleetcore.geo import haversine_m
from monitor import dtc_codes
from monitor.detectors.outputs import Clear, Detection, Output, StateChange, VehicleInfo, evidence_of
from monitor.geofence import GeofenceSet
from monitor.thresholds import Thresholds

# Vehicle statuses under which nobody is entitled to drive the car.
NOT_RENTED = frozenset({"available", "reserved", "maintenance", "out_of_service", "retired"})
DEVICE_HARSH = {"harsh_brake", "harsh_accel", "harsh_turn"}
# After a detection of an episode kind, the same kind re-arms only after the condition was absent this long
# (a tow or a speeding stretch interrupted by a traffic light is one episode).
REARM_S = 60.0
# An auto-resolved condition clears once its healthy reading held this long (hysteresis against flapping).
CLEAR_S = 60.0


class Sustain:
    """Tracks how long a condition has held without a gap (sample time)."""

    __slots__ = ("since", "fired", "false_since")

    def __init__(self) -> None:
        self.since: datetime | None = None
        self.fired = False
        self.false_since: datetime | None = None

    def update(self, cond: bool, ts: datetime) -> float:
        """Feed one observation; returns seconds the condition has held (0 when false)."""
        if cond:
            self.false_since = None
            if self.since is None:
                self.since = ts
            return (ts - self.since).total_seconds()
        self.since = None
        if self.false_since is None:
            self.false_since = ts
        return 0.0

    def absent_for(self, ts: datetime) -> float:
        return 0.0 if self.false_since is None else (ts - self.false_since).total_seconds()


class ReadingRules:
    """The rules over one reading; state lives on the VehicleMonitor that inherits them."""

    if TYPE_CHECKING:  # attributes VehicleMonitor sets up
        info: VehicleInfo
        th: Thresholds
        geofences: GeofenceSet | None
        last_ts: datetime | None
        last_heard: datetime | None
        speed: float | None
        ignition: bool | None
        engine_on_since: datetime | None
        offline_status_since: datetime | None
        offline_alerted: bool
        active: set[str]
        dtcs: set[str]
        pending_crash: tuple[datetime, float, dict] | None
        last_crash_ts: datetime | None
        last_harsh: dict[str, datetime]
        harsh_armed: dict[str, bool]
        last_fix: tuple[datetime, float, float] | None
        coolant: deque[tuple[datetime, float]]
        station: str | None
        outside_fixes: int
        restricted: str | None
        s_overheat: Sustain
        s_cool: Sustain
        s_low_batt: Sustain
        s_batt_ok: Sustain
        s_charge: Sustain
        s_charge_ok: Sustain
        s_fuel: Sustain
        s_speed: Sustain
        s_unauth: Sustain
        s_tow: Sustain
        needs_history: bool

    def _crash_near(self, ts: datetime) -> bool:
        return self.last_crash_ts is not None and abs((ts - self.last_crash_ts).total_seconds()) < 30

    def _crash(self, r: dict, prev_speed: float | None) -> list[Output]:
        th, ts = self.th, r["ts"]
        ax, ay = r.get("accel_x"), r.get("accel_y")
        if ax is not None and ay is not None:
            # Horizontal plane only: a vertical (z) spike is a pothole or speed bump, not an impact (Geotab).
            h = math.hypot(ax, ay)
            stronger = self.pending_crash is None or h > self.pending_crash[1]
            if h >= th.crash_minor_g and not self._crash_near(ts) and stronger:
                ev = evidence_of(r)
                ev["speed_before_kmh"] = prev_speed
                self.pending_crash = (ts if self.pending_crash is None else self.pending_crash[0], h, ev)
        if self.pending_crash is None:
            return []
        t0, peak, ev = self.pending_crash
        age = (ts - t0).total_seconds()
        if age > th.crash_confirm_s:
            self.pending_crash = None
            return []
        speed = r.get("speed_kmh")
        if speed is not None and speed <= th.crash_stopped_kmh:
            self.pending_crash = None
            self.last_crash_ts = t0
            major = peak >= th.crash_major_g
            sev = "critical" if major else "high"
            msg = (
                f"{'Major' if major else 'Minor'} collision: {peak:.1f} g horizontal, "
                f"stopped {age:.0f} s later"
            )
            return [
                Detection(
                    "crash",
                    sev,
                    t0,
                    msg,
                    {"spike": ev, "peak_g": round(peak, 2), "stopped": evidence_of(r), "stop_after_s": age},
                )
            ]
        return []

    def _harsh(self, r: dict, prev_speed: float | None) -> list[Output]:
        th, ts = self.th, r["ts"]
        ax, ay = r.get("accel_x"), r.get("accel_y")
        if ax is None or ay is None:
            return []
        if math.hypot(ax, ay) >= th.crash_minor_g or self._crash_near(ts):
            return []  # an impact, handled by the crash detector
        speed = max(s for s in (prev_speed, r.get("speed_kmh"), 0.0) if s is not None)
        checks = (
            ("harsh_brake", -ax, th.harsh_brake_g),
            ("harsh_accel", ax, th.harsh_accel_g),
            ("harsh_turn", abs(ay), th.harsh_turn_g),
        )
        out: list[Output] = []
        for kind, value, limit in checks:
            if value < limit:
                self.harsh_armed[kind] = True
                continue
            if not self.harsh_armed[kind] or speed < th.harsh_min_speed_kmh:
                continue
            self.harsh_armed[kind] = False
            last = self.last_harsh.get(kind)
            if last is not None and abs((ts - last).total_seconds()) < 5:
                continue  # the device already reported this manoeuvre as an event
            self.last_harsh[kind] = ts
            out.append(
                Detection(
                    kind,
                    "low",
                    ts,
                    f"{kind.replace('_', ' ').capitalize()}: {value:.2f} g at {speed:.0f} km/h",
                    evidence_of(r),
                )
            )
        return out

    def _overheating(self, r: dict) -> list[Output]:
        th, ts, c = self.th, r["ts"], r.get("coolant_c")
        if c is None:
            return []
        out: list[Output] = []
        self.coolant.append((ts, c))
        while self.coolant and (ts - self.coolant[0][0]).total_seconds() > th.overheat_rise_window_s:
            self.coolant.popleft()
        held = self.s_overheat.update(c >= th.overheat_c, ts)
        if "overheating" not in self.active:
            reason = None
            if c >= th.overheat_c and held >= th.overheat_sustain_s:
                reason = f"coolant {c:.0f} °C for {held:.0f} s"
            elif c >= th.overheat_rise_min_c and len(self.coolant) >= 3:
                t0, c0 = self.coolant[0]
                span = (ts - t0).total_seconds()
                if span >= th.overheat_rise_window_s / 2 and (c - c0) / span >= th.overheat_rise_c_per_s:
                    reason = f"coolant rising {(c - c0) / span:.2f} °C/s to {c:.0f} °C"
            if reason:
                self.active.add("overheating")
                self.s_cool = Sustain()
                sev = "critical" if c >= th.overheat_critical_c else "high"
                out.append(Detection("overheating", sev, ts, f"Engine overheating: {reason}", evidence_of(r)))
        else:
            if c >= th.overheat_critical_c and not self.s_overheat.fired:
                self.s_overheat.fired = True  # escalate once
                out.append(
                    Detection(
                        "overheating",
                        "critical",
                        ts,
                        f"Engine overheating: coolant {c:.0f} °C",
                        evidence_of(r),
                    )
                )
            if self.s_cool.update(c <= th.overheat_clear_c, ts) >= CLEAR_S:
                self.active.discard("overheating")
                self.s_overheat.fired = False
                out.append(Clear("overheating", ts, f"coolant back to {c:.0f} °C"))
        return out

    def _battery(self, r: dict, running: bool) -> list[Output]:
        th, ts, v = self.th, r["ts"], r.get("battery_v")
        if v is None:
            return []
        out: list[Output] = []
        resting = self.ignition is False and not running
        held = self.s_low_batt.update(resting and v < th.low_battery_v, ts)
        if "low_battery" not in self.active:
            if held >= th.low_battery_sustain_s:
                self.active.add("low_battery")
                sev = "high" if v < th.low_battery_critical_v else "medium"
                out.append(
                    Detection(
                        "low_battery",
                        sev,
                        ts,
                        f"Low battery: {v:.2f} V resting for {held:.0f} s",
                        evidence_of(r),
                    )
                )
        elif self.s_batt_ok.update(resting and v >= th.low_battery_clear_v, ts) >= CLEAR_S:
            self.active.discard("low_battery")
            out.append(Clear("low_battery", ts, f"resting voltage {v:.2f} V"))
        warm = (
            running
            and self.engine_on_since is not None
            and (ts - self.engine_on_since).total_seconds() >= th.after_start_grace_s
        )
        held = self.s_charge.update(warm and v < th.charging_min_v, ts)
        if "charging_fault" not in self.active:
            if held >= th.charging_sustain_s:
                self.active.add("charging_fault")
                out.append(
                    Detection(
                        "charging_fault",
                        "high",
                        ts,
                        f"Charging fault: {v:.2f} V with the engine running for {held:.0f} s",
                        evidence_of(r),
                    )
                )
        elif self.s_charge_ok.update(warm and v >= th.charging_clear_v, ts) >= CLEAR_S:
            self.active.discard("charging_fault")
            out.append(Clear("charging_fault", ts, f"charging at {v:.2f} V"))
        return out

    def _dtc(self, r: dict) -> list[Output]:
        codes = r.get("dtc")
        if codes is None:
            return []
        out: list[Output] = []
        now_codes = {c.upper() for c in codes}
        for code in sorted(now_codes - self.dtcs):
            desc, sev = dtc_codes.describe(code)
            ev = evidence_of(r)
            ev["code"], ev["description"] = code, desc
            out.append(Detection("dtc", sev, r["ts"], f"{code}: {desc}", ev))
        self.dtcs = now_codes
        return out

    def _fuel(self, r: dict) -> list[Output]:
        th, ts, f = self.th, r["ts"], r.get("fuel_pct")
        if f is None:
            return []
        held = self.s_fuel.update(f < th.low_fuel_pct, ts)
        if "low_fuel" not in self.active and held >= th.low_fuel_sustain_s:
            self.active.add("low_fuel")
            return [Detection("low_fuel", "low", ts, f"Low fuel: {f:.0f} %", evidence_of(r))]
        if "low_fuel" in self.active and f >= th.low_fuel_clear_pct:
            self.active.discard("low_fuel")
            return [Clear("low_fuel", ts, f"fuel at {f:.0f} %")]
        return []

    def _episode(self, s: Sustain, cond: bool, ts: datetime, need_s: float) -> bool:
        """True once per episode: the condition held `need_s`; re-armed after REARM_S without it."""
        held = s.update(cond, ts)
        if s.fired:
            if not cond and s.absent_for(ts) >= REARM_S:
                s.fired = False
            return False
        if cond and held >= need_s:
            s.fired = True
            return True
        return False

    def _movement(self, r: dict) -> list[Output]:
        th, ts, speed = self.th, r["ts"], r.get("speed_kmh")
        if speed is None:
            return []
        out: list[Output] = []
        moving = speed > th.moving_kmh
        if self._episode(self.s_speed, speed > th.overspeed_kmh, ts, th.overspeed_sustain_s):
            out.append(
                Detection(
                    "overspeed",
                    "medium",
                    ts,
                    f"Overspeed: {speed:.0f} km/h for {th.overspeed_sustain_s:.0f} s",
                    evidence_of(r),
                )
            )
        if self._episode(self.s_tow, moving and self.ignition is False, ts, th.tow_sustain_s):
            out.append(
                Detection(
                    "tow",
                    "high",
                    ts,
                    f"Moving at {speed:.0f} km/h with the ignition off (tow?)",
                    evidence_of(r),
                )
            )
        unauth = moving and self.ignition is not False and self.info.status in NOT_RENTED
        if self._episode(self.s_unauth, unauth, ts, th.unauthorized_sustain_s):
            out.append(
                Detection(
                    "unauthorized_movement",
                    "high",
                    ts,
                    f"Moving at {speed:.0f} km/h with no active rental (status {self.info.status})",
                    {**evidence_of(r), "vehicle_status": self.info.status},
                )
            )
        return out

    def _gps(self, r: dict) -> list[Output]:
        th, ts = self.th, r["ts"]
        lat, lon, hdop = r.get("lat"), r.get("lon"), r.get("hdop")
        if lat is None or lon is None or (hdop is not None and hdop > th.gps_max_hdop):
            return []
        out: list[Output] = []
        if self.last_fix is not None:
            t0, lat0, lon0 = self.last_fix
            dt = (ts - t0).total_seconds()
            d = haversine_m(lat0, lon0, lat, lon)
            if dt > 0 and d >= th.gps_jump_min_m and d / dt * 3.6 > th.gps_jump_kmh:
                out.append(
                    Detection(
                        "gps_jump",
                        "low",
                        ts,
                        f"GPS jump: {d / 1000:.1f} km in {dt:.0f} s",
                        {
                            "from": {"ts": t0.isoformat(), "lat": lat0, "lon": lon0},
                            "to": evidence_of(r),
                            "implied_kmh": round(d / dt * 3.6),
                        },
                    )
                )
        self.last_fix = (ts, lat, lon)
        if self.geofences is not None:
            out += self._geofence(r, lat, lon)
        return out

    def _geofence(self, r: dict, lat: float, lon: float) -> list[Output]:
        th, ts, geo = self.th, r["ts"], self.geofences
        assert geo is not None
        out: list[Output] = []
        st = geo.station_at(lat, lon)
        code = st.code if st else None
        if code != self.station:
            if self.station is not None:
                out.append(StateChange("station_exit", ts, {"station": self.station}))
            if code is not None:
                out.append(StateChange("station_enter", ts, {"station": code}))
            self.station = code
        zone = geo.restricted_at(lat, lon)
        zcode = zone.code if zone else None
        if zone is not None and zcode != self.restricted:
            out.append(
                Detection(
                    "geofence_enter",
                    "medium",
                    ts,
                    f"Entered restricted zone {zone.name or zcode}",
                    {**evidence_of(r), "zone": zcode},
                )
            )
        self.restricted = zcode
        if geo.has_permitted and self.info.status == "rented":
            if not geo.inside_permitted(lat, lon, buffered=True):
                self.outside_fixes += 1
                if self.outside_fixes >= th.geofence_exit_fixes and "geofence_exit" not in self.active:
                    self.active.add("geofence_exit")
                    out.append(
                        Detection(
                            "geofence_exit",
                            "high",
                            ts,
                            "Rented vehicle left its permitted region",
                            evidence_of(r),
                        )
                    )
            elif geo.inside_permitted(lat, lon, buffered=False):
                self.outside_fixes = 0
                if "geofence_exit" in self.active:
                    self.active.discard("geofence_exit")
                    out.append(Clear("geofence_exit", ts, "back inside the permitted region"))
        return out
