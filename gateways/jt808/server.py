"""`fleet gateway jt808`: an asyncio TCP server for JT/T 808-2013/2019 terminals, republishing to the contract.

One task per connection reads frames (fleetcore.protocol.jt808.FrameSplitter) and handles them in order:

    0x0100 register      → 0x8100 with a fresh authentication code if the terminal is a registered device,
                           result 4 ("no such terminal") otherwise
    0x0102 authenticate  → 0x8001 success only for the code this gateway issued to that device; else failure
                           and the connection is closed. Success publishes the retained status `online`.
    0x0002 heartbeat     → 0x8001
    0x0200 / 0x0704      → contract telemetry (+ events for rising alarm bits), QoS 1; 0x8001 only after the
                           broker acknowledged every publish (no answer otherwise: the terminal retransmits, and
                           the deterministic seq/ts make the retransmission a duplicate)
    0x0003 logout        → 0x8001, then close
    anything else        → 0x8001 result 3 (not supported)

Subpackages (header bit 13) are answered one by one and reassembled; the whole message is handled when its last
package arrives. When a connection ends the gateway publishes the retained status `offline` for its device.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import threading
import time

from fleetcore.contract import DEVICE_ID_RE, STATUS, topic_for
from fleetcore.protocol import jt808 as j
from fleetcore.settings import Settings
from gateways.jt808.location import to_contract
from gateways.jt808.terminals import TerminalStore, device_id_for
from gateways.metrics import GatewayMetrics, kv
from gateways.publisher import AckedPublisher

log = logging.getLogger(__name__)

READ_BYTES = 4096
# Reassembly of split messages: at most this many messages in progress per connection (oldest dropped beyond).
MAX_PENDING_SPLITS = 8
# Connections waiting in the kernel's accept queue: a fleet reconnecting at once after a gateway restart.
BACKLOG = 4096
STATUS_EVERY_S = 60.0
REAP_EVERY_S = 5.0  # idle connections are closed within this much after FLEET_JT808_IDLE_TIMEOUT_S
SHUTDOWN_PUBLISH_S = 5.0


class Session:
    """One terminal connection: its framing state, identity once authenticated, and alarm edge state."""

    def __init__(self, gw: Jt808Gateway, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.gw = gw
        self.reader = reader
        self.writer = writer
        self.peer = writer.get_extra_info("peername")
        self.splitter = j.FrameSplitter()
        self.device_id: str | None = None
        self.phone: str | None = None
        self.alarm_bits = 0
        self.serial = 0
        self.closing = False
        self.last_rx = time.monotonic()
        self.splits: dict[tuple[int, int], dict[int, bytes]] = {}

    # ---- I/O

    async def run(self) -> None:
        # no timer per read: the gateway's reaper closes connections silent for longer than the idle timeout
        while not self.closing:
            data = await self.reader.read(READ_BYTES)
            if not data:
                return
            received = self.last_rx = time.monotonic()
            for raw in self.splitter.feed(data):
                await self.on_frame(raw, received)
                if self.closing:
                    return

    async def reply(self, h: j.Header, msg_id: int, body: bytes) -> None:
        self.serial = (self.serial + 1) & 0xFFFF
        self.writer.write(j.encode_frame(msg_id, body, h.phone, self.serial, version=h.version))
        await self.writer.drain()

    async def ack(self, h: j.Header, result: int = j.OK) -> None:
        await self.reply(h, j.PLATFORM_RESPONSE, j.encode_platform_response(h.serial, h.msg_id, result))

    # ---- frames

    async def on_frame(self, raw: bytes, received: float) -> None:
        m = self.gw.metrics
        try:
            msg = j.decode_frame(raw)
        except j.FrameError as exc:
            m.reject(exc.reason)
            kv(log, logging.WARNING, "jt808_bad_frame", peer=self.peer, reason=exc.reason, detail=exc.detail,
               raw=raw[:64].hex())  # fmt: skip
            if exc.header is not None:
                await self.ack(exc.header, j.NOT_SUPPORTED if exc.reason == "encrypted" else j.MESSAGE_ERROR)
            return
        h, body = msg.header, msg.body
        m.received_by_id(h.msg_id).inc()
        if h.split:
            whole = self._reassemble(h, body)
            if whole is None:
                await self.ack(h)  # a package of a message still incomplete
                return
            body = whole
        await self.dispatch(h, body, received)

    def _reassemble(self, h: j.Header, body: bytes) -> bytes | None:
        """Keep package `h.index` of `h.total`; the whole body once every package is in (serials are consecutive)."""
        if not 1 <= h.index <= h.total:
            self.gw.metrics.reject("bad_subpackage")
            return None
        key = (h.msg_id, (h.serial - h.index + 1) & 0xFFFF)
        parts = self.splits.setdefault(key, {})
        parts[h.index] = body
        if len(parts) < h.total:
            while len(self.splits) > MAX_PENDING_SPLITS:
                self.splits.pop(next(iter(self.splits)))
                self.gw.metrics.reject("subpackage_dropped")
            return None
        del self.splits[key]
        return b"".join(parts[i] for i in range(1, h.total + 1))

    async def dispatch(self, h: j.Header, body: bytes, received: float) -> None:
        if h.msg_id == j.REGISTER:
            await self.register(h, body)
        elif h.msg_id == j.AUTHENTICATE:
            await self.authenticate(h, body)
        elif h.msg_id in (j.LOCATION, j.BATCH_LOCATION):
            await self.locations(h, body, received)
        elif h.msg_id == j.HEARTBEAT:
            await self.ack(h)
        elif h.msg_id == j.LOGOUT:
            await self.ack(h)
            self.closing = True
        elif h.msg_id == j.TERMINAL_RESPONSE:
            pass  # the terminal acknowledging something we sent: we send no commands yet
        else:
            await self.ack(h, j.NOT_SUPPORTED)

    async def register(self, h: j.Header, body: bytes) -> None:
        gw = self.gw
        device_id = device_id_for(gw.settings.jt808_device_prefix, h.phone)
        try:
            reg = j.decode_register(body, version=h.version)
            what = f"{reg.maker}/{reg.model}/{reg.terminal_id} plate {reg.plate}"
        except j.FrameError:
            what = "unreadable registration body"
        if DEVICE_ID_RE.match(device_id) and await gw.store.is_registered(device_id=device_id):
            code = await gw.store.issue(device_id=device_id, phone=h.phone)
            kv(log, logging.INFO, "jt808_registered", device=device_id, terminal=what)
            await self.reply(h, j.REGISTER_RESPONSE, j.encode_register_response(h.serial, j.REG_OK, code))
        else:
            gw.metrics.reject("unknown_terminal")
            kv(
                log,
                logging.WARNING,
                "jt808_unknown_terminal",
                device=device_id,
                peer=self.peer,
                terminal=what,
            )
            await self.reply(
                h, j.REGISTER_RESPONSE, j.encode_register_response(h.serial, j.REG_NO_SUCH_TERMINAL)
            )

    async def authenticate(self, h: j.Header, body: bytes) -> None:
        gw = self.gw
        device_id = device_id_for(gw.settings.jt808_device_prefix, h.phone)
        try:
            code = j.decode_auth(body, version=h.version)
        except j.FrameError:
            code = ""
        term = (
            await gw.store.authenticate(device_id=device_id, code=code)
            if DEVICE_ID_RE.match(device_id)
            else None
        )
        if term is None:
            gw.metrics.reject("auth_refused")
            kv(log, logging.WARNING, "jt808_auth_refused", device=device_id, peer=self.peer)
            await self.ack(h, j.FAILURE)
            self.closing = True
            return
        self.device_id, self.phone, self.alarm_bits = device_id, h.phone, term.alarm_bits
        gw.attach(self)
        await gw.pub.apublish_all(
            [(topic_for(gw.settings.topic_root, device_id, STATUS), b"online")],
            gw.settings.gateway_publish_timeout_s,
            retain=True,
        )
        await self.ack(h)

    async def locations(self, h: j.Header, body: bytes, received: float) -> None:
        gw = self.gw
        if self.device_id is None or h.phone != self.phone:
            gw.metrics.reject("not_authenticated")
            await self.ack(h, j.FAILURE)
            return
        try:
            reports = [j.decode_location(body)] if h.msg_id == j.LOCATION else j.decode_batch(body)[1]
        except j.FrameError as exc:
            gw.metrics.reject(exc.reason)
            kv(
                log,
                logging.WARNING,
                "jt808_bad_body",
                device=self.device_id,
                reason=exc.reason,
                detail=exc.detail,
            )
            await self.ack(h, j.MESSAGE_ERROR)
            return
        s = gw.settings
        tr, bits = to_contract(
            self.device_id,
            reports,
            self.alarm_bits,
            now_ms=int(time.time() * 1000),
            max_age_days=s.gateway_max_sample_age_days,
        )
        for r in tr.rejected:
            gw.metrics.reject(r.reason)
            kv(
                log,
                logging.WARNING,
                "jt808_rejected",
                device=self.device_id,
                reason=r.reason,
                detail=r.detail,
            )
        messages = tr.messages(s.topic_root)
        if not await gw.pub.apublish_all(messages, s.gateway_publish_timeout_s):
            gw.metrics.publish_failures.inc()
            return  # unanswered: the terminal sends it again
        if bits != self.alarm_bits:
            self.alarm_bits = bits
            try:
                await gw.store.save_alarms(device_id=self.device_id, bits=bits, ts_ms=tr.samples[-1]["ts"])
            except (
                Exception
            ):  # the events are out; a lost state costs at most a repeated event after a restart
                log.exception("saving the alarm state of %s failed", self.device_id)
        gw.metrics.publish_seconds.observe(time.monotonic() - received)
        for topic, _ in messages:
            gw.metrics.published_kind(topic).inc()
        gw.metrics.count("reports", len(reports))
        await self.ack(h)


class Jt808Gateway:
    """The listening socket, the sessions by device, the MQTT publisher and the terminal store."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: TerminalStore | None = None,
        publisher: AckedPublisher | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = GatewayMetrics("jt808")
        self.store = store or TerminalStore(settings.require_database_url())
        self.pub = publisher or AckedPublisher.connect(settings.mqtt, settings.jt808_client_id)
        self.by_device: dict[str, Session] = {}
        self.sessions: set[Session] = set()
        self.port: int | None = None
        self.ready = threading.Event()

    def attach(self, s: Session) -> None:
        """`s` now speaks for its device; an older connection of the same terminal is closed."""
        assert s.device_id is not None
        old = self.by_device.get(s.device_id)
        if old is not None and old is not s:
            old.closing = True
            old.writer.close()
        self.by_device[s.device_id] = s

    def _reap(self, now: float) -> None:
        """Close the connections silent for longer than the idle timeout (one scan instead of a timer per read)."""
        idle = self.settings.jt808_idle_timeout_s
        for s in list(self.sessions):
            if now - s.last_rx > idle and not s.closing:
                kv(log, logging.INFO, "jt808_idle", device=s.device_id, peer=s.peer)
                s.closing = True
                s.writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        s = Session(self, reader, writer)
        self.sessions.add(s)
        self.metrics.connections.inc()
        try:
            await s.run()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:  # one terminal's problem never stops the server
            log.exception("jt808 session %s failed", s.peer)
        finally:
            self.sessions.discard(s)
            self.metrics.connections.dec()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if s.device_id is not None and self.by_device.get(s.device_id) is s:
                del self.by_device[s.device_id]
                await self.pub.apublish_all(
                    [(topic_for(self.settings.topic_root, s.device_id, STATUS), b"offline")],
                    SHUTDOWN_PUBLISH_S,
                    retain=True,
                )

    async def serve(self, stop: threading.Event, *, mqtt_wait_s: float = 10.0) -> None:
        """Listen until `stop` is set, then close every connection and the broker connection.

        The first broker connection is awaited up to mqtt_wait_s (bad credentials stop the process); after that the
        gateway listens anyway, and reports stay unacknowledged until the broker is back.
        """
        s = self.settings
        if s.gateway_metrics_port is not None:
            self.metrics.serve(s.gateway_metrics_port)
        await self.store.open()
        await self.pub.astart(mqtt_wait_s)  # paho on this event loop: one thread for terminals and broker
        server = await asyncio.start_server(self._handle, s.jt808_host, s.jt808_port, backlog=BACKLOG)
        self.port = server.sockets[0].getsockname()[1]
        log.info("jt808 gateway on %s:%s → %s/devices/...", s.jt808_host, self.port, s.topic_root)
        self.ready.set()
        last = reaped = time.monotonic()
        try:
            while not stop.is_set():
                await asyncio.sleep(0.2)
                now = time.monotonic()
                if now - reaped >= REAP_EVERY_S:
                    reaped = now
                    self._reap(now)
                if now - last >= STATUS_EVERY_S:
                    last = now
                    kv(
                        log,
                        logging.INFO,
                        "jt808_status",
                        connections=len(self.sessions),
                        **self.metrics.counts,
                    )
        finally:
            server.close()
            for sess in list(self.sessions):
                sess.closing = True
                sess.writer.close()
            await server.wait_closed()
            # the sessions publish their devices' `offline` as they end
            deadline = time.monotonic() + SHUTDOWN_PUBLISH_S
            while self.sessions and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            await self.store.close()
            await self.pub.astop()
            self.metrics.close()


def raise_open_files() -> int:
    """Lift this process's soft open-file limit to the hard one (one descriptor per terminal); returns it.

    Distributions default the soft limit to 1,024, far below a gateway's connections; the hard limit is what the
    administrator allows (systemd LimitNOFILE=, Docker --ulimit nofile=).
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def run(settings: Settings, stop: threading.Event) -> None:
    """The process entry point (`fleet gateway jt808`)."""
    log.info("open-file limit %d (each terminal holds one)", raise_open_files())
    asyncio.run(Jt808Gateway(settings).serve(stop))
