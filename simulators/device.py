"""In-car devices: encode vehicle snapshots as JSON telemetry, raw OBD-II frames or NMEA, detect their own
events, and buffer while disconnected (uploaded as one array per kind on reconnect)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from fleetcore.contract import EVENT, NMEA, OBD, STATUS, TELEMETRY, topic_for
from fleetcore.protocol.nmea import encode_gga, encode_rmc
from fleetcore.protocol.obd import encode_dtcs, encode_pid
from simulators.fleet_spec import VehicleSpec
from simulators.vehicle import Snapshot

KEEPALIVE_S = 30
# MQTT 3.1.1 §3.1.2.10 / MQTT 5 §3.1.2.10: the broker gives up on a silent client after 1.5 × keep-alive and
# publishes its last will.
WILL_AFTER_S = 1.5 * KEEPALIVE_S
MAX_BUFFERED = 20_000  # samples a device holds while offline (~5.5 h at 1 Hz); the oldest are dropped beyond
UPLOAD_CHUNK = 500  # samples per uploaded array (keeps a message well under typical 256 KB broker limits)
NMEA_UPLOAD_CHUNK = 100  # NMEA samples (RMC+GGA pairs) per uploaded message
DTC_EVERY = 10  # OBD dongles poll service 03 every 10th sample (and whenever the codes change)
EVENT_COOLDOWN_S = 5.0  # one event per type per 5 s, as vendors debounce
TOW_EVENT_KMH = 10.0
TOW_EVENT_AFTER_S = 10.0


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    """Per-protocol device behaviour: its own event thresholds (g) and whether it has an accelerometer."""

    harsh_brake_g: float | None
    harsh_accel_g: float | None
    harsh_turn_g: float | None
    crash_g: float | None
    tow_event: bool
    nmea_talker: str


# JSON telematics units (Teltonika-class) ship eco-driving defaults ~0.35-0.4 g and report minor impacts from
# 1.5 g (Geotab's minor-collision level); OBD dongles are more conservative and report only major crashes (2.5 g);
# plain NMEA trackers have no accelerometer.
PROFILES = {
    "json": DeviceProfile(0.40, 0.35, 0.40, 1.5, True, "GP"),
    "obd": DeviceProfile(0.45, 0.40, 0.45, 2.5, False, "GN"),
    "nmea": DeviceProfile(None, None, None, None, False, "GP"),
}


class Sink(Protocol):
    """Where a device's messages go: the in-memory collector or a real MQTT connection."""

    def publish(
        self, device: Device, kind: str, payload: bytes, t: float, qos: int, retain: bool
    ) -> None: ...

    def go_silent(self, device: Device, t: float) -> None: ...

    def come_back(self, device: Device, t: float) -> None: ...


def iso_ts(t: float) -> str:
    """Epoch seconds → RFC 3339 UTC with milliseconds."""
    return datetime.fromtimestamp(round(t, 3), UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


class Device:
    """One telematics unit in one vehicle, publishing on `{root}/devices/{device_id}/...`."""

    def __init__(self, spec: VehicleSpec, root: str, sink: Sink) -> None:
        self.spec = spec
        self.device_id = spec.device_id
        self.protocol = spec.protocol
        self.profile = PROFILES[spec.protocol]
        self.root = root
        self.sink = sink
        self.topics = {k: topic_for(root, spec.device_id, k) for k in (TELEMETRY, EVENT, OBD, NMEA, STATUS)}
        self.epoch_ms_ts = spec.index % 2 == 0  # half the units stamp epoch ms, half RFC 3339
        self.seq = 0
        self.obd_seq = 0
        self.event_seq = 0
        self.connected = False
        self.silent = False  # powered down or broken: produces nothing
        self.buffer: list[tuple[str, object]] = []
        self.dropped = 0
        self.last_event_t: dict[str, float] = {}
        self.last_dtc: tuple[str, ...] = ()
        self.tow_since: float | None = None
        self.tow_reported = False
        self.published = 0
        self.booted = False
        self.ignition_at_boot: Callable[[], bool] = lambda: False  # the simulation wires it to the vehicle

    # ---- connection ---------------------------------------------------------------------------------------------

    def on_connected(self, t: float) -> None:
        """Called by the sink once the broker accepted the connection: announce, then upload the buffer."""
        self.connected = True
        self.sink.publish(self, STATUS, b"online", t, 1, True)
        self.flush(t)
        if not self.booted:
            # units report the ignition line's state at power-up, so a consumer knows it before the first change
            self.booted = True
            self.event(t, "ignition_on" if self.ignition_at_boot() else "ignition_off", {"boot": True})

    def on_disconnected(self) -> None:
        self.connected = False

    def flush(self, t: float) -> None:
        """Upload what was buffered while offline: one JSON array (or NMEA block) per kind and chunk."""
        if not self.buffer:
            return
        buffered, self.buffer = self.buffer, []
        by_kind: dict[str, list[object]] = {}
        for kind, obj in buffered:
            by_kind.setdefault(kind, []).append(obj)
        for kind, items in by_kind.items():
            if kind == NMEA:
                for i in range(0, len(items), NMEA_UPLOAD_CHUNK):
                    block = "\r\n".join(str(x) for x in items[i : i + NMEA_UPLOAD_CHUNK])
                    self.sink.publish(self, kind, block.encode(), t, 1, False)
            else:
                for i in range(0, len(items), UPLOAD_CHUNK):
                    self.sink.publish(self, kind, _dumps(items[i : i + UPLOAD_CHUNK]), t, 1, False)

    def _send(self, kind: str, obj: object, t: float) -> None:
        if self.connected:
            payload = obj.encode() if isinstance(obj, str) else _dumps(obj)
            self.sink.publish(self, kind, payload, t, 1, False)
            self.published += 1
            return
        self.buffer.append((kind, obj))
        if len(self.buffer) > MAX_BUFFERED:
            del self.buffer[0]
            self.dropped += 1

    def _ts(self, t: float) -> int | str:
        return int(round(t * 1000)) if self.epoch_ms_ts else iso_ts(t)

    # ---- events -------------------------------------------------------------------------------------------------

    def event(self, t: float, etype: str, data: dict) -> None:
        """Publish a device event (QoS 1) with its own sequence counter."""
        if self.silent:
            return
        obj = {"ts": self._ts(t), "seq": self.event_seq, "type": etype, **data}
        self.event_seq += 1
        self._send(EVENT, obj, t)

    def _detect(self, s: Snapshot) -> None:
        """The unit's own event logic on its accelerometer (thresholds differ per device type)."""
        p = self.profile
        t = s.t
        where = {"lat": round(s.lat, 6), "lon": round(s.lon, 6), "speed_kmh": round(s.speed_kmh, 1)}
        if p.crash_g is not None:
            h = (s.accel_x**2 + s.accel_y**2) ** 0.5
            if h >= p.crash_g and self._cool("crash", t):
                sev = "major" if h >= 2.5 else "minor"
                self.event(t, "crash", {"peak_g": round(h, 2), "severity": sev, **where})
                return
        if p.harsh_brake_g is not None and -s.accel_x >= p.harsh_brake_g and self._cool("harsh_brake", t):
            self.event(t, "harsh_brake", {"peak_g": round(-s.accel_x, 2), **where})
        if p.harsh_accel_g is not None and s.accel_x >= p.harsh_accel_g and self._cool("harsh_accel", t):
            self.event(t, "harsh_accel", {"peak_g": round(s.accel_x, 2), **where})
        if (
            p.harsh_turn_g is not None
            and abs(s.accel_y) >= p.harsh_turn_g
            and s.speed_kmh > 10
            and self._cool("harsh_turn", t)
        ):
            self.event(t, "harsh_turn", {"peak_g": round(abs(s.accel_y), 2), **where})
        if p.tow_event:
            if not s.ignition and s.speed_kmh > TOW_EVENT_KMH:
                if self.tow_since is None:
                    self.tow_since = t
                if not self.tow_reported and t - self.tow_since >= TOW_EVENT_AFTER_S:
                    self.tow_reported = True
                    self.event(t, "tow", where)
            elif s.ignition or s.speed_kmh < 2.0:
                self.tow_since = None
                self.tow_reported = False

    def _cool(self, etype: str, t: float) -> bool:
        last = self.last_event_t.get(etype)
        if last is not None and t - last < EVENT_COOLDOWN_S:
            return False
        self.last_event_t[etype] = t
        return True

    # ---- samples ------------------------------------------------------------------------------------------------

    def report(self, s: Snapshot) -> None:
        """Encode and send one sample in this device's protocol (buffered when offline, dropped when silent)."""
        if self.silent:
            return
        self._detect(s)
        if self.protocol == "json":
            self._send(TELEMETRY, self._telemetry(s), s.t)
            self.seq += 1
        elif self.protocol == "obd":
            self._send(OBD, self._obd(s), s.t)
            self.obd_seq += 1
            self._send(NMEA, self._nmea(s), s.t)
        else:
            self._send(NMEA, self._nmea(s), s.t)

    def _telemetry(self, s: Snapshot) -> dict:
        obj: dict[str, object] = {
            "ts": self._ts(s.t),
            "seq": self.seq,
            "lat": round(s.lat, 6),
            "lon": round(s.lon, 6),
            "speed_kmh": round(s.speed_kmh, 1),
            "heading_deg": round(s.heading_deg, 1) % 360.0,
            "alt_m": round(s.alt_m, 1),
            "hdop": s.hdop,
            "sats": s.sats,
            "odometer_km": round(s.odometer_km, 2),
            "engine_hours": round(s.engine_hours, 3),
            "rpm": round(s.rpm),
            "coolant_c": round(s.coolant_c, 1),
            "engine_load_pct": round(s.engine_load_pct, 1),
            "throttle_pct": round(s.throttle_pct, 1),
            "fuel_pct": round(s.fuel_pct, 1),
            "battery_v": round(s.battery_v, 2),
            "ignition": s.ignition,
            "accel_g": [round(s.accel_x, 3), round(s.accel_y, 3), round(s.accel_z, 3)],
        }
        if s.dtc or self.last_dtc:
            obj["dtc"] = list(s.dtc)
            self.last_dtc = s.dtc
        return obj

    def _obd(self, s: Snapshot) -> dict:
        battery = min(max(s.battery_v, 0.0), 65.5)
        odo = s.odometer_km
        if s.engine_on:
            frames = [
                encode_pid(0x04, s.engine_load_pct),
                encode_pid(0x05, min(max(s.coolant_c, -40.0), 215.0)),
                encode_pid(0x0C, min(s.rpm, 16383.0)),
                encode_pid(0x0D, min(s.speed_kmh, 255.0)),
                encode_pid(0x11, s.throttle_pct),
                encode_pid(0x1F, min(s.run_time_s, 65535.0)),
                encode_pid(0x2F, s.fuel_pct),
                encode_pid(0x42, battery),
                encode_pid(0x46, s.ambient_c),
                encode_pid(0xA6, odo),
            ]
            if s.dtc != self.last_dtc or self.obd_seq % DTC_EVERY == 0:
                frames.extend(encode_dtcs(list(s.dtc)))
                self.last_dtc = s.dtc
        else:
            # ECU asleep: the dongle still measures the supply voltage on pin 16 and keeps the last odometer
            frames = [encode_pid(0x42, battery), encode_pid(0xA6, odo)]
        return {"ts": self._ts(s.t), "seq": self.obd_seq, "frames": frames}

    def _nmea(self, s: Snapshot) -> str:
        ts = datetime.fromtimestamp(round(s.t, 2), UTC)
        talker = self.profile.nmea_talker
        speed = round(s.speed_kmh, 1)
        return (
            encode_rmc(ts, s.lat, s.lon, speed, round(s.heading_deg, 1) % 360.0, talker=talker)
            + "\r\n"
            + encode_gga(ts, s.lat, s.lon, round(s.alt_m, 1), s.hdop, s.sats, talker=talker)
        )
