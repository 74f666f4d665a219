"""`fleet simulate --protocol jt808`: the simulated vehicles as JT/T 808 terminals talking TCP to the gateway.

Each vehicle gets a terminal phone number from its index (PHONE_BASE + index), and so the device id the JT/T 808
gateway derives from it. A terminal connects, registers (0x0100 → 0x8100 with an authentication code), authenticates
(0x0102) and reports every sample as a 0x0200 location report: ACC from the ignition, the fix, speed, heading,
altitude, the odometer as additional item 0x01 and the satellites as 0x31. A crash the unit detects sets the
collision alarm bit (29) for ALARM_HOLD_S, as terminals hold an alarm while its condition lasts. Samples taken while
disconnected are uploaded as 0x0704 batches after the next authentication.

All terminals are driven by the caller's thread through one selector (`pump`), like the MQTT per-device sink.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import selectors
import socket
import time
from datetime import UTC, datetime

from fleetcore.protocol import jt808 as j
from simulators.device import Device
from simulators.vehicle import Snapshot, VehicleSpec

log = logging.getLogger(__name__)

# Phone numbers 013900000001, 013900000002, ...: an 11-digit mobile number block, padded to 12 BCD digits.
PHONE_BASE = 13_900_000_000
LOCATION_KIND = "jt808-location"
BATCH_KIND = "jt808-batch"
ALARM_HOLD_S = 10.0  # a terminal keeps an alarm bit set while the condition lasts; a crash: a few reports
# Reports per 0x0704 batch: 0x0200 bodies here are 40 bytes (+2 length), so 20 fit one 1,023-byte body.
BATCH_REPORTS = 20
HEARTBEAT_S = 60.0
RECONNECT_MIN_S, RECONNECT_MAX_S = 1.0, 30.0
EVENT_ALARM_BITS = {"crash": 29}  # the unit's own detections that JT/T 808 has an alarm bit for


def phone_for(index: int) -> str:
    """The terminal phone number of the vehicle at `index` (12 BCD digits, the 2013 header's width)."""
    return f"{PHONE_BASE + index + 1:012d}"


def terminal_spec(spec: VehicleSpec, prefix: str) -> VehicleSpec:
    """The vehicle with a JT/T 808 terminal: device id = prefix + phone number without leading zeros (as the
    gateway derives it); its registry protocol is `json` because the gateway republishes JSON samples."""
    return dataclasses.replace(spec, device_id=prefix + phone_for(spec.index).lstrip("0"), protocol="json")


class Jt808Device(Device):
    """A simulated JT/T 808 terminal: 0x0200 reports instead of contract messages."""

    def __init__(self, spec: VehicleSpec, root: str, sink: object) -> None:
        super().__init__(spec, root, sink)  # type: ignore[arg-type]
        self.phone = phone_for(spec.index)
        self.alarm_until: dict[int, float] = {}

    def event(self, t: float, etype: str, data: dict) -> None:
        """The unit's detections become alarm bits of the next reports (other events have no JT/T 808 bit)."""
        if self.silent:
            return
        bit = EVENT_ALARM_BITS.get(etype)
        if bit is not None:
            self.alarm_until[bit] = t + ALARM_HOLD_S

    def report(self, s: Snapshot) -> None:
        if self.silent:
            return
        self._detect(s)
        alarm = 0
        for bit, until in list(self.alarm_until.items()):
            if s.t <= until:
                alarm |= 1 << bit
            else:
                del self.alarm_until[bit]
        loc = j.Location(
            alarm=alarm,
            status=(j.STATUS_ACC if s.ignition else 0) | j.STATUS_FIX,
            lat=round(s.lat, 6),
            lon=round(s.lon, 6),
            alt_m=round(s.alt_m),
            speed_kmh=round(min(s.speed_kmh, 6553.5), 1),
            heading_deg=round(s.heading_deg) % 360,
            time=datetime.fromtimestamp(int(s.t), UTC),
            items={
                j.ITEM_MILEAGE: round(s.odometer_km * 10).to_bytes(4, "big"),
                j.ITEM_SATS: bytes([s.sats]),
            },
        )
        self._send(LOCATION_KIND, j.encode_location(loc), s.t)
        self.seq += 1

    def _send(self, kind: str, obj: object, t: float) -> None:
        if self.connected:
            self.sink.publish(self, kind, obj, t, 1, False)  # type: ignore[arg-type]
            self.published += 1
        else:
            self.buffer.append((kind, obj))

    def flush(self, t: float) -> None:
        """Upload what was kept while offline as 0x0704 batches (type 1: blind-area re-upload)."""
        bodies = [obj for kind, obj in self.buffer if kind == LOCATION_KIND and isinstance(obj, bytes)]
        self.buffer = []
        for i in range(0, len(bodies), BATCH_REPORTS):
            chunk = bodies[i : i + BATCH_REPORTS]
            batch = (
                len(chunk).to_bytes(2, "big")
                + b"\x01"
                + b"".join(len(b).to_bytes(2, "big") + b for b in chunk)
            )
            self.sink.publish(self, BATCH_KIND, batch, t, 1, False)  # type: ignore[arg-type]


class _Conn:
    """One terminal's TCP connection and protocol state."""

    def __init__(self, device: Jt808Device) -> None:
        self.device = device
        self.sock: socket.socket | None = None
        self.state = "down"  # down → connecting → registering → authenticating → ready
        self.code: str | None = None
        self.splitter = j.FrameSplitter()
        self.out = bytearray()
        self.serial = 0
        self.last_tx = 0.0
        self.frozen = False
        self.retry_at: float | None = None
        self.backoff = RECONNECT_MIN_S

    def frame(self, msg_id: int, body: bytes) -> int:
        self.serial = (self.serial + 1) & 0xFFFF
        self.out += j.encode_frame(msg_id, body, self.device.phone, self.serial)
        self.last_tx = time.monotonic()
        return self.serial


class Jt808Sink:
    """Every simulated terminal's connection to the JT/T 808 gateway, serviced by `pump()` in one thread."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.sel = selectors.DefaultSelector()
        self.conns: dict[str, _Conn] = {}
        self.sim_time = 0.0
        self.published = 0
        self.acked = 0
        self.fatal: str | None = None
        self.closing = False
        self._last_misc = time.monotonic()

    # ---- the Sink protocol (simulators.device.Sink)

    def attach(self, device: Device, t: float) -> None:
        assert isinstance(device, Jt808Device), "--protocol jt808 needs Jt808Device terminals"
        c = _Conn(device)
        self.conns[device.device_id] = c
        self._connect(c)

    def publish(self, device: Device, kind: str, payload: bytes, t: float, qos: int, retain: bool) -> None:
        c = self.conns[device.device_id]
        if kind == LOCATION_KIND:
            c.frame(j.LOCATION, payload)
        elif kind == BATCH_KIND:
            c.frame(j.BATCH_LOCATION, payload)
        else:
            return  # status and events are the gateway's to publish
        self.published += 1
        self._want_write(c)

    def go_silent(self, device: Device, t: float) -> None:
        """Power loss: the connection just drops (no logout); the gateway sees it end."""
        c = self.conns[device.device_id]
        c.frozen = True
        self._drop(c)

    def come_back(self, device: Device, t: float) -> None:
        c = self.conns[device.device_id]
        c.frozen = False
        self._connect(c)

    def abort(self, device_id: str) -> None:
        c = self.conns[device_id]
        c.frozen = True
        self._drop(c)

    def connected_count(self) -> int:
        return sum(1 for c in self.conns.values() if c.state == "ready")

    # ---- connections

    def _connect(self, c: _Conn) -> None:
        c.retry_at = None
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = s.connect_ex((self.host, self.port))
        if err not in (0, 115, 36, 10035):  # EINPROGRESS on Linux, macOS; WSAEWOULDBLOCK
            s.close()
            self._retry_later(c)
            return
        c.sock, c.state, c.splitter, c.out = s, "connecting", j.FrameSplitter(), bytearray()
        self.sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, c)

    def _drop(self, c: _Conn) -> None:
        if c.sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(c.sock)
            c.sock.close()
            c.sock = None
        c.state = "down"
        c.device.on_disconnected()
        if not c.frozen and not self.closing and self.fatal is None:
            self._retry_later(c)

    def _retry_later(self, c: _Conn) -> None:
        c.retry_at = time.monotonic() + c.backoff
        c.backoff = min(c.backoff * 2, RECONNECT_MAX_S)

    def _want_write(self, c: _Conn) -> None:
        if c.sock is not None and c.state != "connecting":
            with contextlib.suppress(KeyError, ValueError):
                self.sel.modify(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)

    def _login(self, c: _Conn) -> None:
        if c.code is None:
            c.state = "registering"
            reg = j.Registration(
                0, 0, "FLEET", "SIM-JT808", f"{c.device.spec.index:07d}"[-7:], 1, c.device.spec.plate
            )
            c.frame(j.REGISTER, j.encode_register(reg))
        else:
            c.state = "authenticating"
            c.frame(j.AUTHENTICATE, j.encode_auth(c.code))

    def _on_message(self, c: _Conn, m: j.Message) -> None:
        if m.header.msg_id == j.REGISTER_RESPONSE:
            _, result, code = j.decode_register_response(m.body)
            if result != j.REG_OK:
                self.fatal = f"terminal {c.device.phone} ({c.device.device_id}) refused at registration: result {result}"
                return
            c.code = code
            self._login(c)
        elif m.header.msg_id == j.PLATFORM_RESPONSE:
            _, reply_id, result = j.decode_general_response(m.body)
            if reply_id == j.AUTHENTICATE:
                if result == j.OK:
                    c.state, c.backoff = "ready", RECONNECT_MIN_S
                    c.device.on_connected(self.sim_time)
                else:
                    c.code = None  # re-register for a fresh code at the next attempt
            elif reply_id in (j.LOCATION, j.BATCH_LOCATION) and result == j.OK:
                self.acked += 1

    def pump(self, until: float) -> None:
        """Service every socket until the monotonic time `until` (at least one pass)."""
        while True:
            timeout = max(0.0, min(until - time.monotonic(), 0.5))
            for key, mask in self.sel.select(timeout):
                c: _Conn = key.data
                try:
                    self._service(c, mask)
                except OSError as exc:
                    log.debug("terminal %s: %s", c.device.phone, exc)
                    self._drop(c)
            now = time.monotonic()
            if now - self._last_misc >= 1.0:
                self._last_misc = now
                for c in self.conns.values():
                    if c.state == "ready" and now - c.last_tx >= HEARTBEAT_S:
                        c.frame(j.HEARTBEAT, b"")
                        self._want_write(c)
                    if c.retry_at is not None and c.retry_at <= now and not c.frozen and not self.closing:
                        self._connect(c)
            if now >= until:
                return

    def _service(self, c: _Conn, mask: int) -> None:
        assert c.sock is not None
        if c.state == "connecting" and mask & selectors.EVENT_WRITE:
            err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise OSError(err, "connect failed")
            self._login(c)
        if mask & selectors.EVENT_READ:
            data = c.sock.recv(65536)
            if not data:
                raise OSError("gateway closed the connection")
            for raw in c.splitter.feed(data):
                self._on_message(c, j.decode_frame(raw))
        if c.sock is not None and c.out:
            n = c.sock.send(c.out)
            del c.out[:n]
        if c.sock is not None:
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.out else 0)
            self.sel.modify(c.sock, events, c)

    def close(self, t: float) -> None:
        """Log every terminal out (0x0003), give the bytes a moment to leave, close."""
        self.closing = True
        for c in self.conns.values():
            if c.state == "ready":
                c.frame(j.LOGOUT, b"")
                self._want_write(c)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and any(c.out for c in self.conns.values() if c.sock is not None):
            self.pump(time.monotonic() + 0.05)
        for c in self.conns.values():
            if c.sock is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self.sel.unregister(c.sock)
                c.sock.close()
                c.sock = None
        self.sel.close()
