"""One vehicle's detectors: the per-vehicle state machines over samples, device events, status and time.

`VehicleMonitor` keeps one vehicle's running state and turns readings (dicts keyed by READING_COLUMNS), device
events and status changes into `Detection` (raise or repeat an alert), `Clear` (the condition ended:
auto-resolve) and `StateChange` (pushed to dispatchers, not an alert). Pure: no I/O; the caller passes the clock
(`now`, the arrival time) where silence matters, every other rule runs on sample time.

After a restart the state is rebuilt in two steps: `restore` takes what the database knows when the process starts
(last heard, last will, open alerts), and `warm` replays the samples judged before the first message after the
restart, silently, so that sustained conditions and trends count across the restart.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from datetime import datetime

from fleetcore.geo import haversine_m
from monitor import dtc_codes
from monitor.detectors.outputs import (
    Clear,
    Detection,
    Output,
    Restored,
    StateChange,
    VehicleInfo,
    evidence_of,
)
from monitor.geofence import GeofenceSet
from monitor.models import AUTO_RESOLVE
from monitor.thresholds import DEFAULT, Thresholds

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


class VehicleMonitor:
    """One vehicle's detectors and running state."""

    def __init__(
        self, info: VehicleInfo, th: Thresholds = DEFAULT, geofences: GeofenceSet | None = None
    ) -> None:
        self.info = info
        self.th = th
        self.geofences = geofences
        self.last_ts: datetime | None = None  # newest sample time applied
        self.last_heard: datetime | None = None  # arrival (clock) time of the newest message
        self.speed: float | None = None
        self.ignition: bool | None = None
        self.engine_on_since: datetime | None = None
        self.offline_status_since: datetime | None = None
        self.offline_alerted = False
        self.active: set[str] = set()  # auto-resolvable conditions currently raised
        self.dtcs: set[str] = set()
        self.pending_crash: tuple[datetime, float, dict] | None = None
        self.last_crash_ts: datetime | None = None
        self.last_harsh: dict[str, datetime] = {}
        self.harsh_armed: dict[str, bool] = {k: True for k in DEVICE_HARSH}
        self.last_fix: tuple[datetime, float, float] | None = None
        self.coolant: deque[tuple[datetime, float]] = deque()
        self.station: str | None = None
        self.outside_fixes = 0
        self.restricted: str | None = None
        self.s_overheat = Sustain()
        self.s_cool = Sustain()
        self.s_low_batt = Sustain()
        self.s_batt_ok = Sustain()
        self.s_charge = Sustain()
        self.s_charge_ok = Sustain()
        self.s_fuel = Sustain()
        self.s_speed = Sustain()
        self.s_unauth = Sustain()
        self.s_tow = Sustain()
        # True until `warm` has replayed the samples judged before this process saw the vehicle.
        self.needs_history = True

    # ---- restart ------------------------------------------------------------------------------------------------
    def restore(self, r: Restored) -> None:
        """Carry over what the database knows at start-up: silence and last will count across the restart, and
        conditions with an open alert are not raised again."""
        self.last_heard = r.last_heard
        self.ignition = r.ignition
        self.speed = r.speed_kmh
        self.offline_status_since = r.offline_since
        self.active = {k for k in r.open_alerts if k in AUTO_RESOLVE}
        self.offline_alerted = "device_offline" in r.open_alerts
        self.s_overheat.fired = r.open_alerts.get("overheating") == "critical"  # already escalated
        self.last_crash_ts = r.last_crash_ts

    def history_s(self) -> float:
        """How far back the windows reach: the longest sustained condition, plus the CLEAR_S / REARM_S that a
        cleared condition or a finished episode needs (180 s with the defaults)."""
        th = self.th
        longest = max(
            th.overheat_sustain_s, th.overheat_rise_window_s, th.low_battery_sustain_s,
            th.charging_sustain_s + th.after_start_grace_s, th.low_fuel_sustain_s, th.overspeed_sustain_s,
            th.unauthorized_sustain_s, th.tow_sustain_s, th.crash_confirm_s,
        )  # fmt: skip
        return longest + max(CLEAR_S, REARM_S)

    def warm(self, readings: Iterable[dict]) -> None:
        """Replay samples judged before the restart (from the database), silently: what they triggered was
        written then. Rebuilds sustained conditions, the coolant trend, a pending crash spike, the last fix and
        the active DTCs; the open alerts stay what `restore` said (the database is the truth for those)."""
        self.needs_history = False
        active = set(self.active)
        for r in sorted(readings, key=lambda r: r["ts"]):
            if self.last_ts is not None and r["ts"] <= self.last_ts:
                continue
            self.last_ts = r["ts"]
            self._reading(r)
        self.active = active

    # ---- entry points -------------------------------------------------------------------------------------------
    def on_readings(self, readings: Iterable[dict], now: datetime) -> list[Output]:
        """Apply samples (in time order); samples older than the newest applied one are skipped."""
        out = self.heard(now)
        for r in sorted(readings, key=lambda r: r["ts"]):
            if self.last_ts is not None and r["ts"] <= self.last_ts:
                continue  # late or duplicate: sustained-condition logic needs time order
            self.last_ts = r["ts"]
            out += self._reading(r)
        return out

    def on_event(self, ev_type: str, ts: datetime, data: dict, now: datetime) -> list[Output]:
        """A device-reported event (crash, harsh_*, tow, ignition_on/off, ...)."""
        out = self.heard(now)
        th = self.th
        if ev_type == "crash":
            self.last_crash_ts = ts
            self.pending_crash = None
            # Devices report the peak when they know it; without it, assume the worst.
            g = data.get("peak_g", data.get("g"))
            sev = "high" if isinstance(g, int | float) and g < th.crash_major_g else "critical"
            out.append(
                Detection(
                    "crash",
                    sev,
                    ts,
                    "Device reported a crash",
                    {"event": "crash", "ts": ts.isoformat(), **data},
                )
            )
        elif ev_type in DEVICE_HARSH:
            speed = data.get("speed_kmh", self.speed)
            if speed is not None and speed < th.harsh_min_speed_kmh:
                return out
            if self._crash_near(ts):
                return out
            self.last_harsh[ev_type] = ts
            out.append(
                Detection(
                    ev_type,
                    "low",
                    ts,
                    f"Device reported {ev_type.replace('_', ' ')}",
                    {"event": ev_type, "ts": ts.isoformat(), **data},
                )
            )
        elif ev_type == "tow":
            self.s_tow.fired = True
            out.append(
                Detection(
                    "tow",
                    "high",
                    ts,
                    "Device reported the vehicle being towed",
                    {"event": "tow", "ts": ts.isoformat(), **data},
                )
            )
        elif ev_type == "ignition_on":
            self.ignition = True
        elif ev_type == "ignition_off":
            self.ignition = False
            self.engine_on_since = None
        return out

    def on_status(self, status: str, now: datetime, *, retained: bool = False) -> list[Output]:
        """The retained status topic: `online`, or `offline` (usually the broker publishing the last will).

        `retained`: delivered because the monitor (re)subscribed, not because the device spoke now; it is not a
        sign of life, and an `offline` one counts from now only when nothing else is known about the device.
        """
        if retained:
            if status == "offline" and self.last_heard is None and self.offline_status_since is None:
                self.offline_status_since = now
            return []
        if status == "online":
            return self.heard(now)
        if self.offline_status_since is None:
            self.offline_status_since = now
        return [StateChange("offline", now, {"reason": "status offline"})]

    def tick(self, now: datetime, *, silence: bool = True) -> list[Output]:
        """Time-driven checks: device silence (unless `silence` is False) and crash spikes whose confirmation
        window ran out."""
        out: list[Output] = []
        th = self.th
        if self.pending_crash and (now - self.pending_crash[0]).total_seconds() > th.crash_confirm_s + 5:
            self.pending_crash = None  # spike without a stop: pothole, kerb or rough road
        if not silence or self.offline_alerted or self.last_heard is None:
            return out
        silent = (now - self.last_heard).total_seconds()
        driving = self.ignition is True or (self.speed or 0) >= th.moving_kmh
        limit = th.offline_driving_s if driving else th.offline_parked_s
        reason = None
        grace_over = (
            self.offline_status_since is not None
            and (now - self.offline_status_since).total_seconds() >= th.offline_status_grace_s
        )
        if grace_over and driving:
            reason = "status offline (last will) while driving"
        if reason is None and silent >= limit:
            reason = f"no data for {silent:.0f} s ({'ignition on' if driving else 'parked'})"
        if reason:
            self.offline_alerted = True
            self.active.add("device_offline")
            out.append(
                Detection(
                    "device_offline",
                    "medium",
                    now,
                    f"Device offline: {reason}",
                    {
                        "last_heard": self.last_heard.isoformat(),
                        "last_sample": self.last_ts.isoformat() if self.last_ts else None,
                        "silent_s": round(silent, 1),
                        "ignition": self.ignition,
                        "speed_kmh": self.speed,
                    },
                )
            )
        return out

    def heard(self, now: datetime) -> list[Output]:
        """A message arrived (any kind): the device is alive; clears a device_offline alert."""
        self.last_heard = now
        self.offline_status_since = None
        if self.offline_alerted:
            self.offline_alerted = False
            self.active.discard("device_offline")
            return [Clear("device_offline", now, "device reporting again"), StateChange("online", now)]
        return []

    # ---- internals ----------------------------------------------------------------------------------------------
    def _crash_near(self, ts: datetime) -> bool:
        return self.last_crash_ts is not None and abs((ts - self.last_crash_ts).total_seconds()) < 30

    def _reading(self, r: dict) -> list[Output]:
        out: list[Output] = []
        ts = r["ts"]
        th = self.th
        prev_speed = self.speed
        if r.get("speed_kmh") is not None:
            self.speed = r["speed_kmh"]
        if r.get("ignition") is not None:
            self.ignition = r["ignition"]
        rpm = r.get("rpm")
        running = rpm is not None and rpm >= th.engine_running_rpm
        if rpm is not None:
            if running and self.engine_on_since is None:
                self.engine_on_since = ts
            elif not running:
                self.engine_on_since = None
            if r.get("ignition") is None and rpm > 0:
                self.ignition = True  # OBD/JSON without an ignition field: a turning engine means ignition on
        out += self._crash(r, prev_speed)
        out += self._harsh(r, prev_speed)
        out += self._overheating(r)
        out += self._battery(r, running)
        out += self._dtc(r)
        out += self._fuel(r)
        out += self._movement(r)
        out += self._gps(r)
        return out

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
