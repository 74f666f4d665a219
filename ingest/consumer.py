"""The ingest worker: MQTT (QoS 1, persistent session, manual acks) → pure parser → batch writer → PostgreSQL.

Delivery: a message is acknowledged to the broker only after the transaction holding it has committed, so
at-least-once from broker to database; storage dedupes, so exactly-once in storage. The vehicle state its
samples produce is written one of two ways (`FLEET_INGEST_STATE_FLUSH_MS`):
- 0 (default): upserted in the same transaction as the batch's readings, so one commit covers both and the
  message is acknowledged right after it;
- > 0: coalesced over many committed batches (`ingest.state`) by the "ingest-state" thread on its own connection
  within that many ms, and the messages acknowledged only after that flush, so a crash redelivers them and the
  redelivery rebuilds the state it had not yet written. Fewer PostgreSQL rows per message, more worker CPU
  (measured in docs/ingest.md): for deployments where a shared database, not the workers, is the limit.

Threads: paho's network thread receives and parses (pure, no I/O) and appends to a queue; the calling
thread takes batches (by size or age) and hands them to `FLEET_INGEST_WRITERS` writer threads (default 2), each
committing on its own database connection, so one batch's COPY and statements run while another commits and while
the next is received (the GIL is released during I/O). Committed batches are released in the order they were
taken (`_AckSequencer`), and acknowledged in that order (directly, or by the state thread after each state
flush), so PUBACKs go out in the order the PUBLISHes arrived, as MQTT requires.

Memory bound: at most `FLEET_INGEST_MAX_INFLIGHT` messages (default 20,000; each its raw payload plus parsed
rows, ~1-2 KB, so ~40 MB) wait in the queue, plus the batches being written (at most one per writer), plus, in
coalesced mode, for the committed messages waiting for their state flush, a packet id each and one pending state
row per vehicle, however large the backlog in the broker. Two mechanisms: the worker announces MQTT 5 Receive
Maximum = that number (+ two state flushes' worth of messages in coalesced mode) (flow control, at most 65,535 by
MQTT 5 §3.1.2.11.3), and, because Mosquitto 2.0.11 was seen to exceed it for live traffic once acks flow (and QoS
0 is never flow-controlled), the network thread blocks when the queue is full, which stops reading the socket
(TCP back-pressure) until the writer takes the next batch.
"""

from __future__ import annotations

import collections
import functools
import gc
import logging
import queue
import struct
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from paho.mqtt.client import PUBACK, MQTTErrorCode, MQTTMessage
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from fleetcore.contract import TOPIC_KINDS
from fleetcore.mqtt import MqttConnection
from fleetcore.settings import Settings
from ingest.metrics import IngestMetrics, kv
from ingest.slots import PLACEHOLDER, SlotLease, StoppedBeforeClaim
from ingest.state import PendingState
from ingest.writer import BatchStats, BatchWriter, Message, _Rejection

log = logging.getLogger(__name__)

# MQTT 5 Receive Maximum is a Two Byte Integer (MQTT 5 §3.1.2.11.3).
MAX_RECEIVE_MAXIMUM = 65535
# How often the worker logs a one-line summary.
STATS_EVERY_S = 10.0
# Socket read size for the buffered reader below: many small PUBLISH packets per system call.
READ_CHUNK = 256 * 1024
# Retiring worker: the broker's queue for its session counts as drained after this long without a message.
RETIRE_IDLE_S = 5.0
# Allocations between young-generation GC passes in a worker (CPython's default is 700).
GC_THRESHOLD_GEN0 = 50_000

# One received QoS 1 PUBLISH on the fast path: (packet id, topic, payload).
Publish = tuple[int, str, bytes]


class _BufferedSocket:
    """Socket wrapper that reads in large chunks; paho otherwise makes ~4 recv() calls per small message.

    `pending()` tells paho's loop that buffered bytes are waiting (the hook paho has for SSL sockets).
    """

    __slots__ = ("_sock", "_buf", "_pos")

    def __init__(self, sock: object) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, n: int) -> bytes:
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            data = self._sock.recv(READ_CHUNK)  # type: ignore[attr-defined]
            if len(data) <= n:
                return data
            self._buf = buf = data
            pos = 0
        out = buf[pos : pos + n]
        self._pos = pos + len(out)
        return out

    def fill(self) -> int:
        """One recv() appended to what is buffered (a partial packet); its length, 0 at end of stream."""
        data = self._sock.recv(READ_CHUNK)  # type: ignore[attr-defined]
        if data:
            if self._pos < len(self._buf):
                self._buf = self._buf[self._pos :] + data
            else:
                self._buf = data
            self._pos = 0
        return len(data)

    def pending(self) -> int:
        return len(self._buf) - self._pos

    def take_packet(self) -> tuple[int, bytes] | None:
        """A whole MQTT packet (first byte, body) from the buffer, or None when the buffer holds only part of one."""
        buf, pos = self._buf, self._pos
        end = len(buf)
        if end - pos < 2:
            return None
        # Remaining Length: variable byte integer, at most 4 bytes (MQTT 5 §1.5.5)
        length, mult, i = 0, 1, pos + 1
        while True:
            if i >= end or mult > 128**3:
                return None
            b = buf[i]
            i += 1
            length += (b & 0x7F) * mult
            if not b & 0x80:
                break
            mult *= 128
        if i + length > end:
            return None
        self._pos = i + length
        return buf[pos], buf[i : i + length]

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


def _decode_publish(packet: bytes) -> Publish | None:
    """(packet id, topic, payload) of a QoS 1 PUBLISH body without properties; None when paho must decode it."""
    # PUBLISH variable header (MQTT 5 §3.3.2): topic (2-byte length + UTF-8), packet id, properties.
    if len(packet) < 2:
        return None
    tlen = (packet[0] << 8) | packet[1]
    pos = 2 + tlen
    if len(packet) < pos + 3 or packet[pos + 2] != 0:  # has properties
        return None
    try:
        topic = packet[2:pos].decode("utf-8")
    except UnicodeDecodeError:
        return None
    return (packet[pos] << 8) | packet[pos + 1], topic, packet[pos + 3 :]


class IngestClient(mqtt.Client):
    """paho Client tuned for a high-rate QoS 1 consumer with manual acks.

    Measured on the 2-core dev box with 150-byte messages: stock paho 2.2 receives ~8,600 msg/s (one select()
    and ~4 recv() per packet, an MQTT 5 Properties object and an MQTTMessageInfo with its own Condition per
    PUBLISH, per-topic callback matching). Here, when `direct_on_batch` is set (MQTT 5, manual acks, plain
    TCP), each network-loop pass makes one recv() of up to READ_CHUNK bytes and hands every whole QoS 1 PUBLISH
    without properties in it to that callback as one list; PUBACKs go out batched (`ack_many`). Every other
    packet (CONNACK, SUBACK, PINGRESP, PUBLISH with properties or QoS 0/2) is handled by paho as usual.
    """

    # When set, QoS 1 PUBLISH packets go to this callback in lists of (mid, topic, payload), skipping paho's
    # per-message objects and callback matching.
    direct_on_batch: Callable[[list[Publish]], None] | None = None
    # When set, every message paho itself decodes goes straight to this callback (no per-topic matching).
    direct_on_message: Callable[[mqtt.Client, object, MQTTMessage], None] | None = None

    def _create_socket(self):  # noqa: ANN202
        sock = super()._create_socket()
        if self._transport == "tcp" and not self._ssl:
            return _BufferedSocket(sock)
        return sock

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        sock = self._sock
        fn = self.direct_on_batch
        if (
            type(sock) is not _BufferedSocket
            or fn is None
            or self._protocol != mqtt.MQTTv5
            or not self._manual_ack
            or self._in_packet["command"] != 0
        ):
            return self._loop_read_paho(max_packets)
        try:
            if sock.fill() == 0:
                return self._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
        except BlockingIOError:
            if not sock.pending():
                return MQTTErrorCode.MQTT_ERR_SUCCESS
        except OSError as err:
            self._easy_log(mqtt.MQTT_LOG_ERR, "failed to receive on socket: %s", err)
            return self._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
        publishes: list[Publish] = []
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        while True:
            whole = sock.take_packet()
            if whole is None:
                break
            cmd, body = whole
            if (cmd & 0xF6) == 0x32:  # PUBLISH with QoS 1 (any DUP / RETAIN flag)
                p = _decode_publish(body)
                if p is not None:
                    publishes.append(p)
                    continue
            if publishes:  # keep the order of what arrived
                self._deliver(fn, publishes)
                publishes = []
            rc = self._handle_whole(cmd, body)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
        if publishes:
            self._deliver(fn, publishes)
        with self._msgtime_mutex:
            self._last_bytes_received = mqtt.time_func()  # paho's keepalive clock
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return self._loop_rc_handle(rc)
        return rc

    def _deliver(self, fn: Callable[[list[Publish]], None], publishes: list[Publish]) -> None:
        with self._in_callback_mutex:
            fn(publishes)

    def _handle_whole(self, cmd: int, body: bytes) -> MQTTErrorCode:
        """Let paho handle one whole packet taken from the buffer."""
        self._in_packet = {
            "command": cmd,
            "have_remaining": 1,
            "remaining_count": [],
            "remaining_mult": 1,
            "remaining_length": len(body),
            "packet": bytearray(body),
            "to_process": 0,
            "pos": 0,
        }
        try:
            rc = self._packet_handle()
        except MalformedPacket:
            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        self._in_packet = {
            "command": 0,
            "have_remaining": 0,
            "remaining_count": [],
            "remaining_mult": 1,
            "remaining_length": 0,
            "packet": bytearray(b""),
            "to_process": 0,
            "pos": 0,
        }
        return rc

    def _loop_read_paho(self, max_packets: int) -> MQTTErrorCode:
        """paho's loop_read, draining what the buffered socket already holds in the same pass."""
        rc = super().loop_read(max_packets)
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            sock = self._sock
            if sock is None or not isinstance(sock, _BufferedSocket) or not sock.pending():
                break
            rc = super().loop_read(1)
        return rc

    def _handle_on_message(self, message: MQTTMessage) -> None:
        fn = self.direct_on_message
        if fn is None:
            return super()._handle_on_message(message)
        with self._in_callback_mutex:
            fn(self, self._userdata, message)

    def ack_many(self, mids: list[int]) -> None:
        """Acknowledge many QoS 1 messages in one write (PUBACK with reason omitted = success, MQTT 5 §3.4.2.1)."""
        if not mids:
            return
        if self._protocol != mqtt.MQTTv5 or not hasattr(self, "_packet_queue"):
            for mid in mids:
                self.ack(mid, 1)
            return
        blob = b"".join([_PUBACK.pack(PUBACK, 2, mid) for mid in mids])
        self._packet_queue(PUBACK, blob, 0, 0)


_PUBACK = struct.Struct("!BBH")


class _Connection(MqttConnection):
    """MqttConnection that counts connections, so acks are only sent on the connection that delivered."""

    def __init__(self, *args, on_up: Callable[[], None], on_down: Callable[[], None], **kwargs) -> None:  # noqa: ANN002, ANN003
        self._on_up = on_up
        self._on_down = on_down
        super().__init__(*args, **kwargs)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if not reason_code.is_failure:
            self._on_up()
        super()._on_connect(client, userdata, flags, reason_code, properties)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        self._on_down()
        super()._on_disconnect(client, userdata, flags, reason_code, properties)


def subscriptions(settings: Settings) -> list[tuple[str, int]]:
    """QoS 1 subscriptions to every device topic kind, as a shared subscription when a group is set."""
    prefix = f"$share/{settings.ingest_share_group}/" if settings.ingest_share_group else ""
    return [(f"{prefix}{settings.topic_root}/devices/+/{kind}", 1) for kind in TOPIC_KINDS]


class Consumer:
    """One ingest worker. `run()` blocks until `stop` is set, then flushes, acknowledges and disconnects."""

    def __init__(
        self,
        settings: Settings,
        stop: threading.Event,
        *,
        parse: Callable | None = None,
        metrics: IngestMetrics | None = None,
        retire: bool = False,
    ) -> None:
        if parse is None:
            from fleetcore.protocol.parse import process_message

            parse = process_message
            if not settings.ingest_compiled_parser:
                parse = functools.partial(process_message, fast=False)
        self.settings = settings
        self.stop = stop
        self.parse: Callable = parse
        self.root = settings.topic_root
        self.metrics = metrics or IngestMetrics()
        self.batch_size = settings.ingest_batch_size
        self.batch_s = settings.ingest_batch_ms / 1000.0
        # vehicle_state coalesced over committed batches (state thread) or upserted in each batch (default)
        self.coalesce = settings.ingest_state_flush_ms > 0
        # The broker's window covers the queue, the batches being written and, when coalesced, the committed
        # messages that wait for their state flush (two flushes' worth: one being written, the next filling); the
        # queue alone is capped at ingest_max_inflight (the memory bound: those hold payloads; the others only
        # packet ids).
        self.hard_cap = min(settings.ingest_max_inflight, MAX_RECEIVE_MAXIMUM)
        extra = 2 * settings.ingest_state_flush_messages if self.coalesce else 0
        self.receive_maximum = min(settings.ingest_max_inflight + extra, MAX_RECEIVE_MAXIMUM)
        self.state_flush_s = settings.ingest_state_flush_ms / 1000.0
        self.state_flush_messages = settings.ingest_state_flush_messages
        self.queue: collections.deque = collections.deque()
        self.cond = threading.Condition()
        self.epoch = 0
        self.closing = False
        url = settings.require_database_url()
        self.writers = [
            BatchWriter(url, metrics=self.metrics, defer_state=self.coalesce)
            for _ in range(settings.ingest_writers)
        ]
        # vehicle_state, coalesced over the committed batches (ingest.state), on a connection of its own; the
        # acknowledgements of those batches wait for it (all under self._state_cond)
        self.state_writer = BatchWriter(url, metrics=self.metrics)
        self._state_cond = threading.Condition()
        self._pending = PendingState()
        # (packet id, connection epoch) of the QoS 1 messages waiting for the state flush, in order
        self._deferred: list[tuple[int, int]] = []
        self._deferred_since = 0.0  # when the oldest of them was committed
        self._flushing = False
        self._state_final = False  # set when the writers are done: flush what is left, then end
        # batches handed to writers and not yet finished (under self.cond); at most one per writer, so at most
        # len(writers) batches are out of the queue at a time: part of the memory bound
        self._writing = 0
        self._writer_error: BaseException | None = None
        self.totals: collections.Counter[str] = collections.Counter()
        self._window: collections.Counter[str] = collections.Counter()
        self._last_stats = time.monotonic()
        # retire: take this session out of the share group (UNSUBSCRIBE), drain what the broker queued for it,
        # then end it (DISCONNECT with session expiry 0) — for a worker that is removed for good
        self.retire = retire
        self._last_rx = time.monotonic()  # last message received or acknowledgement sent
        self._refused = 0  # messages that arrived after the worker began to stop (not acknowledged)
        self.mqtt = _Connection(
            settings.mqtt,
            settings.ingest_client_id,
            subscriptions=[] if retire else subscriptions(settings),
            clean_start=False,
            session_expiry_s=settings.ingest_session_expiry_s,
            manual_ack=True,
            on_message=self._on_message,
            receive_maximum=self.receive_maximum,
            client_class=IngestClient,
            on_up=self._connection_up,
            on_down=self._connection_down,
        )
        self.mqtt.client.direct_on_message = self.mqtt.client.on_message  # type: ignore[attr-defined]
        self.mqtt.client.direct_on_batch = self._on_batch  # type: ignore[attr-defined]
        # Set once the broker has acknowledged every subscription of the current connection.
        self.subscribed = threading.Event()
        self._subacks = 0
        self.mqtt.client.on_subscribe = self._on_subscribe
        self.mqtt.client.on_unsubscribe = self._on_unsubscribe

    # -- paho network thread ------------------------------------------------------------------------------

    def _connection_up(self) -> None:
        with self.cond:
            self.epoch += 1
        self._subacks = 0
        self.subscribed.clear()
        self.metrics.mqtt_connected.set(1)
        kv(log, logging.INFO, "mqtt_up", epoch=self.epoch, client_id=self.settings.ingest_client_id)
        if self.retire:
            self.mqtt.client.unsubscribe([topic for topic, _ in subscriptions(self.settings)])

    def _connection_down(self) -> None:
        self.metrics.mqtt_connected.set(0)
        kv(log, logging.WARNING, "mqtt_down", epoch=self.epoch, held=len(self.queue))

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:  # noqa: ANN001
        try:
            failed = [str(rc) for rc in reason_codes if rc.is_failure]
            if failed:
                kv(log, logging.ERROR, "subscribe_refused", reasons=",".join(failed))
                return
            self._subacks += 1
            if self._subacks == len(self.mqtt.subscriptions):
                self.subscribed.set()
                kv(log, logging.INFO, "subscribed", topics=len(self.mqtt.subscriptions), epoch=self.epoch)
        except Exception:  # never let an exception escape a callback
            log.exception("error in on_subscribe")

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, properties) -> None:  # noqa: ANN001
        """Retiring: the session has left the share group; from here on only what was queued for it arrives."""
        self._last_rx = time.monotonic()
        self.subscribed.set()
        kv(log, logging.INFO, "unsubscribed", client_id=self.settings.ingest_client_id)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: MQTTMessage) -> None:
        """A message paho decoded itself (PUBLISH with properties, QoS 0/2): the same path as a batch of one."""
        self._on_batch([(msg.mid, msg.topic, bytes(msg.payload))], qos=msg.qos)

    def _on_batch(self, publishes: list[Publish], qos: int = 1) -> None:
        """The PUBLISH packets of one socket read: parsed, then queued under one lock acquisition."""
        if self.closing:
            self._refused += len(publishes)
            return  # not acknowledged: the broker delivers them again to the next session
        self._last_rx = time.monotonic()
        try:
            now = datetime.now(UTC)  # one arrival time per socket read (they arrived within microseconds)
            mono = time.monotonic()
            epoch = self.epoch
            root = self.root
            parse = self.parse
            items = []
            for mid, topic, payload in publishes:
                try:
                    result = parse(root, topic, payload, now=now)
                except Exception as exc:  # a parser bug must not stop the stream: keep it as a rejection
                    log.exception("parser failed on %s", topic)
                    result = _Rejection(None, "parse_error", f"{type(exc).__name__}: {exc}"[:300])
                items.append((mid, qos, epoch, Message(topic, payload, now, result), mono))
        except Exception:  # never let an exception escape into paho's loop; unacked messages come back
            log.exception("error handling %d messages", len(publishes))
            return
        q = self.queue
        cap = self.hard_cap
        with self.cond:
            while items:
                # never more than the hard cap held: what does not fit waits (and the socket is not read)
                while len(q) >= cap and not self.stop.is_set() and not self.closing:
                    self.cond.wait(0.5)
                if self.closing or self.stop.is_set():
                    return  # not queued, not acknowledged: the broker delivers them again
                room = cap - len(q)
                was_empty = not q
                q.extend(items[:room])
                del items[:room]
                if was_empty or len(q) >= self.batch_size:
                    self.cond.notify()

    # -- writer (calling thread) --------------------------------------------------------------------------

    def _compiled_parser(self) -> bool:
        """Whether messages go through the parser's compiled fast path (built, and not switched off)."""
        from fleetcore.protocol import parse as parse_module

        return self.parse is parse_module.process_message and parse_module._fast_parse is not None

    def _take(self) -> list:
        """The next batch: up to batch_size messages, once that many are held or the oldest is batch_ms old."""
        q = self.queue
        with self.cond:
            while not q:
                if self.stop.is_set() or self._writer_error is not None:
                    return []
                if self.retire and self._drained():
                    kv(log, logging.INFO, "retire_drained", client_id=self.settings.ingest_client_id)
                    self.stop.set()
                    return []
                self.cond.wait(0.25)
            deadline = q[0][4] + self.batch_s
            while len(q) < self.batch_size and not self.stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.cond.wait(remaining)
            n = min(len(q), self.batch_size)
            batch = [q.popleft() for _ in range(n)]
            self.cond.notify_all()  # wakes a network thread blocked on the hard cap
            return batch

    def _drained(self) -> bool:
        """Retiring: out of the group, nothing left to commit, nothing received and no ack sent for RETIRE_IDLE_S."""
        with self._state_cond:
            state_done = not self._deferred and not self._pending.vehicles and not self._flushing
        return (
            self.subscribed.is_set()
            and time.monotonic() - self._last_rx >= RETIRE_IDLE_S
            and self._writing == 0  # no batch being written (read under self.cond, like its updates)
            and state_done
        )

    def _release(self, batch: list, st: BatchStats) -> None:
        """A committed batch whose turn has come (the sequencer calls this in take order). Per-batch state: its
        messages are acknowledged now. Coalesced: its samples join the pending state, its messages the
        acknowledgements that wait for the next state flush."""
        with self._state_cond:
            window = self._window
            for k in ("messages", "readings_stored", "duplicates", "rejected", "quarantined"):
                window[k] += getattr(st, k)
            if self.coalesce:
                idle = not self._deferred and not self._pending.vehicles
                if idle:
                    self._deferred_since = time.monotonic()
                self._pending.add(st.state_rows)
                self._pending.messages += len(batch)
                self._deferred.extend([(mid, ep) for mid, qos, ep, _, _ in batch if qos])
                if idle or self._pending.messages >= self.state_flush_messages:
                    self._state_cond.notify_all()  # the state thread (re)computes when the next flush is due
                return
        epoch = self.epoch
        self._count_acked(self._send_acks([mid for mid, qos, ep, _, _ in batch if qos and ep == epoch]))

    def _ack(self, deferred: list[tuple[int, int]]) -> int:
        """Acknowledge the (packet id, connection epoch) pairs that arrived on the current connection."""
        epoch = self.epoch
        # A message delivered on an earlier connection is redelivered by the broker on this one (same
        # packet id); acking the old id now could ack a different, uncommitted message, so it is skipped.
        return self._send_acks([mid for mid, ep in deferred if ep == epoch])

    def _send_acks(self, mids: list[int]) -> int:
        """PUBACK these packet ids (all received on the current connection); returns how many."""
        self.mqtt.client.ack_many(mids)  # type: ignore[attr-defined]
        self._last_rx = time.monotonic()  # acks free the broker's window: more may follow
        return len(mids)

    def _state_loop(self) -> None:
        """The state thread: write the pending state when due, then acknowledge the messages it covers."""
        cond = self._state_cond
        try:
            while True:
                with cond:
                    while True:
                        has_work = bool(self._deferred or self._pending.vehicles)
                        if not has_work and self._state_final:
                            return
                        if not has_work:
                            cond.wait(0.25)
                            continue
                        wait = self._deferred_since + self.state_flush_s - time.monotonic()
                        if (
                            wait <= 0
                            or self._state_final
                            or self._pending.messages >= self.state_flush_messages
                        ):
                            break
                        cond.wait(wait)
                    pending, deferred = self._pending, self._deferred
                    self._pending, self._deferred = PendingState(), []
                    self._flushing = True
                try:
                    if pending.vehicles and self.state_writer.commit_state(pending, self.stop) is None:
                        # stopped while the database is down: nothing more is acknowledged; the broker delivers
                        # these messages again and the state is rebuilt from them
                        kv(log, logging.WARNING, "state_not_written", unacknowledged=len(deferred))
                        return
                    acked = self._ack(deferred)
                finally:
                    with cond:
                        self._flushing = False
                self._count_acked(acked)
        except BaseException as exc:  # a bug, not a database problem (commit_state retries those)
            self._writer_error = exc
            with self.cond:
                self.cond.notify_all()

    def _count_acked(self, acked: int) -> None:
        with self._state_cond:
            window = self._window
            window["acked"] += acked
            now = time.monotonic()
            if now - self._last_stats >= STATS_EVERY_S:
                self._log_stats(window, now - self._last_stats)
                self.totals.update(window)
                window.clear()
                self._last_stats = now

    def _write_loop(self, writer: BatchWriter, jobs: queue.SimpleQueue, seq: _AckSequencer) -> None:
        """One writer thread: commit the batches it is handed on its own connection, in any order."""
        try:
            while True:
                job = jobs.get()
                if job is None:
                    return
                n, batch = job
                try:
                    st = writer.commit([b[3] for b in batch], self.stop)
                    seq.finished(n, batch, st)
                finally:
                    with self.cond:
                        self._writing -= 1
                        self.cond.notify_all()  # wakes the dispatcher waiting for a free writer
        except BaseException as exc:  # a bug, not a database problem (commit retries those): the worker stops
            self._writer_error = exc
            with self.cond:
                self.cond.notify_all()

    def run(self) -> None:
        """Consume until stopped."""
        # The queue holds up to max_inflight messages of many small objects each; with the default thresholds
        # the cyclic GC re-scans them over and over (measured: +5 µs per message). The hot path creates no
        # reference cycles, so collections are made rare and what start-up built is left out of them.
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_THRESHOLD_GEN0, 50, 100)
        metrics_port = self.settings.ingest_metrics_port
        if metrics_port is not None:
            self.metrics.serve(metrics_port)
            kv(log, logging.INFO, "metrics_listening", port=self.metrics.port)
        self.mqtt.start()
        if self.mqtt.fatal_error:
            raise ConnectionError(f"MQTT broker refused the connection: {self.mqtt.fatal_error}")
        kv(
            log,
            logging.INFO,
            "ingest_started",
            client_id=self.settings.ingest_client_id,
            share_group=self.settings.ingest_share_group or "-",
            batch_size=self.batch_size,
            batch_ms=self.settings.ingest_batch_ms,
            receive_maximum=self.receive_maximum,
            writers=len(self.writers),
            compiled_parser=self._compiled_parser(),
        )
        # Batches go to the writers in take order; each commits on its own connection, so one batch's COPY and
        # statements run while another commits. At most len(writers) batches are out of the queue at a time.
        jobs: queue.SimpleQueue = queue.SimpleQueue()
        sequencer = _AckSequencer(self._release)
        threads = [
            threading.Thread(
                target=self._write_loop, args=(w, jobs, sequencer), name=f"ingest-writer-{i}", daemon=True
            )
            for i, w in enumerate(self.writers)
        ]
        for t in threads:
            t.start()
        state_thread = threading.Thread(target=self._state_loop, name="ingest-state", daemon=True)
        if self.coalesce:
            state_thread.start()
        self._last_stats = time.monotonic()
        n = 0
        try:
            while True:
                if self._writer_error is not None:
                    raise self._writer_error
                if self.mqtt.fatal_error:
                    raise ConnectionError(f"MQTT broker refused the connection: {self.mqtt.fatal_error}")
                if self.stop.is_set() and not self.closing:
                    self.closing = True  # from here on nothing new is taken in; what is held is flushed
                if sequencer.blocked:  # a batch was left uncommitted: nothing after it may be acknowledged
                    kv(
                        log,
                        logging.WARNING,
                        "stopped_during_db_outage",
                        unacknowledged=len(self.queue) + sequencer.held(),
                    )
                    break
                with self.cond:
                    if self._writing >= len(self.writers):
                        self.cond.wait(0.25)
                        continue  # every writer is busy (or waiting for the database)
                batch = self._take()
                self.metrics.queue_depth.set(len(self.queue) + len(batch))
                if not batch:
                    if self.stop.is_set():
                        break
                    continue
                with self.cond:
                    self._writing += 1  # only this thread adds, so the check above still holds
                jobs.put((n, batch))
                n += 1
        finally:
            self.closing = True
            with self.cond:
                self.cond.notify_all()
            for _ in threads:
                jobs.put(None)
            for t in threads:  # the batches handed out are committed (or given up when stopped) first
                t.join(None if self._writer_error is None else 5)
            with self._state_cond:  # then the state of what was committed, and its acknowledgements
                self._state_final = True
                self._state_cond.notify_all()
            if self.coalesce:
                state_thread.join(None if self._writer_error is None else 5)
            state_done = not state_thread.is_alive() and not self._deferred and not self._pending.vehicles
            self.totals.update(self._window)
            self._window.clear()
            if self.retire and self._refused:
                # something arrived after the queue looked drained: keep the session so it is delivered again
                kv(log, logging.WARNING, "retire_incomplete", refused=self._refused, hint="run retire again")
            elif (
                self.retire
                and self._writer_error is None
                and not sequencer.blocked
                and state_done
                and self.mqtt.connected.is_set()
            ):
                # everything received was committed and acknowledged: end the session with the connection
                props = Properties(PacketTypes.DISCONNECT)
                props.SessionExpiryInterval = 0
                self.mqtt.client.disconnect(properties=props)
                kv(log, logging.INFO, "session_ended", client_id=self.settings.ingest_client_id)
            self.mqtt.stop()
            for w in (*self.writers, self.state_writer):
                w.close()
            self.metrics.close()
            kv(log, logging.INFO, "ingest_stopped", **{k: v for k, v in self.totals.items()})

    def _log_stats(self, window: collections.Counter, seconds: float) -> None:
        kv(
            log,
            logging.INFO,
            "ingest_stats",
            msgs_per_s=round(window["messages"] / seconds, 1),
            stored=window["readings_stored"],
            duplicates=window["duplicates"],
            rejected=window["rejected"],
            quarantined=window["quarantined"],
            held=len(self.queue),
            connected=int(self.mqtt.connected.is_set()),
        )


class _AckSequencer:
    """Releases committed batches in the order they were taken from the queue.

    Writers may commit out of order, but PUBACKs go out in the order the PUBLISHes arrived (MQTT 5 §4.6), so a
    batch waits here until every earlier one is released. A batch that was not committed (the worker was stopped
    while the database was down) blocks every later one for good: they are not acknowledged, the broker delivers
    them again, and storage dedupes what was committed.
    """

    def __init__(self, release: Callable[[list, BatchStats], None]) -> None:
        self._release = release
        self._lock = threading.Lock()
        self._next = 0
        self._done: dict[int, tuple[list, BatchStats | None]] = {}
        self.blocked = False

    def finished(self, n: int, batch: list, st: BatchStats | None) -> None:
        """Batch number `n` is done: `st` when committed, None when given up."""
        with self._lock:
            self._done[n] = (batch, st)
            while not self.blocked and self._next in self._done:
                if self._done[self._next][1] is None:
                    self.blocked = True
                    break
                b, s = self._done.pop(self._next)
                self._next += 1
                self._release(b, s)  # type: ignore[arg-type]

    def held(self) -> int:
        """Messages in finished batches that are waiting (or blocked) here."""
        with self._lock:
            return sum(len(b) for b, _ in self._done.values())


def run(settings: Settings, stop: threading.Event, *, retire: bool = False) -> dict:
    """Run one ingest worker until `stop` is set (the entry point `fleet ingest` and `fleet demo` use); its totals.

    A client id with `{slot}` claims a stable slot first (`ingest.slots`). `retire=True`: see Consumer.retire.
    """
    lease = None
    if PLACEHOLDER in settings.ingest_client_id:
        lease = SlotLease(settings.require_database_url(), settings.ingest_client_id, stop)
        try:
            settings = settings.model_copy(update={"ingest_client_id": lease.claim()})
        except StoppedBeforeClaim:
            return {}
    try:
        consumer = Consumer(settings, stop, retire=retire)
        consumer.run()
        return {"client_id": settings.ingest_client_id, **consumer.totals}
    finally:
        if lease is not None:
            lease.release()
