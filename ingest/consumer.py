"""The ingest worker: MQTT (QoS 1, persistent session, manual acks) → pure parser → batch writer → PostgreSQL.

Modules, in the direction messages flow (and imports go, from this composition root down): `ingest.client` (MQTT
framing) → this module (flow control: the queue, batching) → `fleetcore.protocol.parse` (pure) → `ingest.pipeline` (writer
threads, ordered acknowledgements) → `ingest.writer` (plan `ingest.batch`, apply by COPY) → `ingest.state`
(coalesced vehicle state). The SQL lives in `ingest.staging` and `ingest.vehicle_state`.

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
taken (`ingest.pipeline.AckSequencer`), and acknowledged in that order (directly, or by the state thread after each
state flush), so PUBACKs go out in the order the PUBLISHes arrived, as MQTT requires.

Memory bound: at most `FLEET_INGEST_MAX_INFLIGHT` messages (default 20,000; each its raw payload plus parsed
rows, ~1-2 KB, so ~40 MB) and at most `FLEET_INGEST_MAX_INFLIGHT_BYTES` of payload (default 64 MiB; a payload
over `FLEET_INGEST_MAX_PAYLOAD_BYTES` is rejected by the parser and only its first 1 KiB kept) are received and
not yet committed (the queue plus the batches being written, at most one per writer), plus, in
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
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from paho.mqtt.client import MQTTMessage
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from fleetcore.contract import HEAD_ONLY_REASONS, REJECTED_HEAD_BYTES
from fleetcore.logfmt import kv
from fleetcore.protocol import parse as parse_module
from fleetcore.protocol.parse import Rejection, process_message
from fleetcore.settings import Settings
from fleetcore.slots import PLACEHOLDER, SlotLease, StoppedBeforeClaim
from ingest.client import CountingConnection, IngestClient, Publish
from ingest.metrics import IngestMetrics
from ingest.pipeline import Delivery, Pipeline
from ingest.state import StateFlusher
from ingest.writer import BatchWriter

log = logging.getLogger(__name__)

# Lock namespace of ingest workers' client-id slots (fleetcore.slots); unchanged since the slots were ingest's own.
SLOT_NAMESPACE = "fleet-ingest-slot"

# MQTT 5 Receive Maximum is a Two Byte Integer (MQTT 5 §3.1.2.11.3).
MAX_RECEIVE_MAXIMUM = 65535
# Retiring worker: the broker's queue for its session counts as drained after this long without a message.
RETIRE_IDLE_S = 5.0
# Allocations between young-generation GC passes in a worker (CPython's default is 700).
GC_THRESHOLD_GEN0 = 50_000
# How long the taking thread waits before it looks again at a full set of writers or an empty queue.
POLL_S = 0.25
# How long a network thread blocked on a full queue waits before it looks again.
FULL_QUEUE_WAIT_S = 0.5


def subscriptions(settings: Settings) -> list[tuple[str, int]]:
    """One QoS 1 subscription to everything under `{root}/devices/` (as a shared subscription when a group is
    set): every topic a device can publish on (the broker's ACL allows `{root}/devices/<its id>/#` only) reaches
    the parser, so a malformed one (an extra level, `TELEMETRY`, `gps`) becomes a `bad_topic` rejection instead of
    matching no subscription and being lost silently."""
    prefix = f"$share/{settings.ingest_share_group}/" if settings.ingest_share_group else ""
    return [(f"{prefix}{settings.topic_root}/devices/#", 1)]


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
        self._default_parse = parse is None
        if parse is None:
            # the per-message limits (too_large, too_many_samples) are the parser's: it refuses before parsing
            parse = functools.partial(
                process_message,
                fast=settings.ingest_compiled_parser,
                max_payload_bytes=settings.ingest_max_payload_bytes,
                max_samples=settings.ingest_max_samples,
            )
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
        # ... and the payload bytes of the messages received and not yet committed (queue + batches being written)
        self.max_inflight_bytes = settings.ingest_max_inflight_bytes
        extra = 2 * settings.ingest_state_flush_messages if self.coalesce else 0
        self.receive_maximum = min(settings.ingest_max_inflight + extra, MAX_RECEIVE_MAXIMUM)
        self.queue: collections.deque[Delivery] = collections.deque()
        self.cond = threading.Condition()
        self.epoch = 0
        self.closing = False
        url = settings.require_database_url()
        self.pipeline = Pipeline(
            [
                BatchWriter(url, metrics=self.metrics, defer_state=self.coalesce)
                for _ in range(settings.ingest_writers)
            ],
            # vehicle_state, coalesced over the committed batches, on a connection of its own
            StateFlusher(url, metrics=self.metrics),
            cond=self.cond,
            stop=stop,
            send_acks=self._send_acks,
            epoch=lambda: self.epoch,
            status=self._status,
            coalesce=self.coalesce,
            state_flush_s=settings.ingest_state_flush_ms / 1000.0,
            state_flush_messages=settings.ingest_state_flush_messages,
        )
        self.totals = self.pipeline.totals
        # retire: take this session out of the share group (UNSUBSCRIBE), drain what the broker queued for it,
        # then end it (DISCONNECT with session expiry 0) — for a worker that is removed for good
        self.retire = retire
        self._last_rx = time.monotonic()  # last message received or acknowledgement sent
        self._refused = 0  # messages that arrived after the worker began to stop (not acknowledged)
        self.mqtt = CountingConnection(
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
        self.client: IngestClient = self.mqtt.client  # type: ignore[assignment]
        self.client.direct_on_message = self.client.on_message
        self.client.direct_on_batch = self._on_batch
        # Set once the broker has acknowledged every subscription of the current connection.
        self.subscribed = threading.Event()
        self._subacks = 0
        self.client.on_subscribe = self._on_subscribe
        self.client.on_unsubscribe = self._on_unsubscribe

    # -- paho network thread ------------------------------------------------------------------------------

    def _connection_up(self) -> None:
        with self.cond:
            self.epoch += 1
        self._subacks = 0
        self.subscribed.clear()
        self.metrics.mqtt_connected.set(1)
        kv(log, logging.INFO, "mqtt_up", epoch=self.epoch, client_id=self.settings.ingest_client_id)
        if self.retire:
            self.client.unsubscribe([topic for topic, _ in subscriptions(self.settings)])

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
                    result = Rejection(None, "parse_error", f"{type(exc).__name__}: {exc}"[:300])
                if type(result) is Rejection and result.reason in HEAD_ONLY_REASONS:
                    # refused for its size: only its head is kept (and held), the rest is freed now
                    payload = payload[:REJECTED_HEAD_BYTES]
                items.append(Delivery(topic, payload, now, result, mid, qos, epoch, mono))
        except Exception:  # never let an exception escape into paho's loop; unacked messages come back
            log.exception("error handling %d messages", len(publishes))
            return
        q = self.queue
        cap = self.hard_cap
        max_bytes = self.max_inflight_bytes
        pipeline = self.pipeline
        with self.cond:
            while items:
                # never more than the hard cap held, in messages or (received and not yet committed) payload
                # bytes: what does not fit waits (and the socket is not read)
                while (len(q) >= cap or pipeline.inflight_bytes >= max_bytes) and not (
                    self.stop.is_set() or self.closing
                ):
                    self.cond.wait(FULL_QUEUE_WAIT_S)
                if self.closing or self.stop.is_set():
                    return  # not queued, not acknowledged: the broker delivers them again
                room = cap - len(q)
                n = 0
                added = 0
                while n < room and n < len(items) and (n == 0 or pipeline.inflight_bytes + added < max_bytes):
                    added += len(items[n].payload)
                    n += 1
                was_empty = not q
                q.extend(items[:n])
                del items[:n]
                pipeline.inflight_bytes += added
                if was_empty or len(q) >= self.batch_size:
                    self.cond.notify()

    def _send_acks(self, mids: list[int]) -> int:
        """PUBACK these packet ids (all received on the current connection); returns how many."""
        self.client.ack_many(mids)
        self._last_rx = time.monotonic()  # acks free the broker's window: more may follow
        return len(mids)

    # -- taking batches (calling thread) ------------------------------------------------------------------

    def _compiled_parser(self) -> bool:
        """Whether messages go through the parser's compiled fast path (built, and not switched off)."""
        return (
            self._default_parse and self.settings.ingest_compiled_parser and parse_module.compiled_fast_path()
        )

    def _take(self) -> list[Delivery]:
        """Take the next batch and hand it to a free writer: up to batch_size messages, once that many are held or
        the oldest is batch_ms old. Taken and handed over under one hold of the queue's lock, so a message is
        always counted in the queue or in the pipeline (`idle()`)."""
        q = self.queue
        with self.cond:
            while not q:
                if self.stop.is_set() or self.pipeline.error is not None:
                    return []
                if self.retire and self._drained():
                    kv(log, logging.INFO, "retire_drained", client_id=self.settings.ingest_client_id)
                    self.stop.set()
                    return []
                self.cond.wait(POLL_S)
            deadline = q[0].queued_at + self.batch_s
            while len(q) < self.batch_size and not self.stop.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.cond.wait(remaining)
            n = min(len(q), self.batch_size)
            batch = [q.popleft() for _ in range(n)]
            self.pipeline.submit(batch)
            self.cond.notify_all()  # wakes a network thread blocked on the hard cap
            return batch

    def _drained(self) -> bool:
        """Retiring: out of the group, nothing left to commit, nothing received and no ack sent for RETIRE_IDLE_S."""
        return (
            self.subscribed.is_set()
            and time.monotonic() - self._last_rx >= RETIRE_IDLE_S
            and self.pipeline.idle()  # called under self.cond, like the pipeline's count of batches out
        )

    def idle(self) -> bool:
        """Nothing held: the queue is empty, and every batch taken was committed and its messages acknowledged
        (or, coalesced, its state flushed and its messages acknowledged)."""
        with self.cond:
            return not self.queue and self.pipeline.idle()

    def _status(self) -> dict[str, int]:
        return {"held": len(self.queue), "connected": int(self.mqtt.connected.is_set())}

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
        pipeline = self.pipeline
        kv(
            log,
            logging.INFO,
            "ingest_started",
            client_id=self.settings.ingest_client_id,
            share_group=self.settings.ingest_share_group or "-",
            batch_size=self.batch_size,
            batch_ms=self.settings.ingest_batch_ms,
            receive_maximum=self.receive_maximum,
            writers=len(pipeline.writers),
            compiled_parser=self._compiled_parser(),
        )
        # Batches go to the writers in take order; each commits on its own connection, so one batch's COPY and
        # statements run while another commits. At most len(writers) batches are out of the queue at a time.
        pipeline.start()
        try:
            while True:
                if pipeline.error is not None:
                    raise pipeline.error
                if self.mqtt.fatal_error:
                    raise ConnectionError(f"MQTT broker refused the connection: {self.mqtt.fatal_error}")
                if self.stop.is_set() and not self.closing:
                    self.closing = True  # from here on nothing new is taken in; what is held is flushed
                if pipeline.blocked:  # a batch was left uncommitted: nothing after it may be acknowledged
                    kv(
                        log,
                        logging.WARNING,
                        "stopped_during_db_outage",
                        unacknowledged=len(self.queue) + pipeline.held(),
                    )
                    break
                with self.cond:
                    if pipeline.busy():
                        self.cond.wait(POLL_S)
                        continue  # every writer is busy (or waiting for the database)
                batch = self._take()
                self.metrics.queue_depth.set(len(self.queue) + len(batch))
                if not batch and self.stop.is_set():
                    break
        finally:
            self.closing = True
            with self.cond:
                self.cond.notify_all()
            state_done = pipeline.finish()
            if self.retire and self._refused:
                # something arrived after the queue looked drained: keep the session so it is delivered again
                kv(log, logging.WARNING, "retire_incomplete", refused=self._refused, hint="run retire again")
            elif (
                self.retire
                and pipeline.error is None
                and not pipeline.blocked
                and state_done
                and self.mqtt.connected.is_set()
            ):
                # everything received was committed and acknowledged: end the session with the connection
                props = Properties(PacketTypes.DISCONNECT)
                props.SessionExpiryInterval = 0
                self.client.disconnect(properties=props)
                kv(log, logging.INFO, "session_ended", client_id=self.settings.ingest_client_id)
            self.mqtt.stop()
            pipeline.close()
            self.metrics.close()
            kv(log, logging.INFO, "ingest_stopped", **{k: v for k, v in self.totals.items()})


def run(settings: Settings, stop: threading.Event, *, retire: bool = False) -> dict:
    """Run one ingest worker until `stop` is set (the entry point `fleet ingest` and `fleet demo` use); its totals.

    A client id with `{slot}` claims a stable slot first (`ingest.slots`). `retire=True`: see Consumer.retire.
    """
    lease = None
    if PLACEHOLDER in settings.ingest_client_id:
        lease = SlotLease(
            settings.require_database_url(), settings.ingest_client_id, stop, namespace=SLOT_NAMESPACE
        )
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
