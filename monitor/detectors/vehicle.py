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

from collections import deque
from collections.abc import Iterable
from datetime import datetime

from monitor.detectors.outputs import (
    Clear,
    Detection,
    Output,
    Restored,
    StateChange,
    VehicleInfo,
)
from monitor.detectors.rules import CLEAR_S, DEVICE_HARSH, REARM_S, ReadingRules, Sustain
from monitor.geofence import GeofenceSet
from monitor.models import AUTO_RESOLVE
from monitor.thresholds import DEFAULT, Thresholds


class VehicleMonitor(ReadingRules):
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
