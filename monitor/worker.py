"""`fleet monitor`: its own MQTT consumer of the device topics, the detectors, and the alert writer.

A paho network thread only enqueues each delivery; one worker thread parses, runs the pure detectors
(monitor.detectors) and writes their outputs through the alert service (monitor.service) in one transaction per
batch, so notifications reach the API at commit. Time-driven checks (device silence) run every TICK_S.

Durable consumption, as ingest does: a persistent MQTT session (clean_start false, session expiry
FLEET_MONITOR_SESSION_EXPIRY_S) with every topic at QoS 1, and manual acknowledgements, sent only once what a
message produced is committed (`AckBook`, in arrival order). What is published while the monitor is down waits
in its session and is judged when it is back; what it held uncommitted when it died comes again.

Restarts: the state is rebuilt from the database (`monitor.registry.restore`): last heard per device (ingest's
`vehicle_state.last_seen`), a last will not followed by anything, the open alerts; a vehicle's windowed detectors
replay its stored samples up to its first message after the restart (`monitor.registry.history`). A detection
already recorded (same sample time and evidence, or an older one) is not written again (`service.raise_new`),
so a redelivered or re-judged message never duplicates an alert or inflates its count.

Registry: device installs and vehicle status/class are re-read when the database announces a change (LISTEN
`fleet_registry`, a trigger on device_installs and vehicles) and every REFRESH_S; the writer also checks, in the
transaction, that each output's device is still installed in its vehicle, so a removed device never alerts on
the car it left. Geofences are re-read every GEOFENCE_REFRESH_S.

Tables: the monitor owns `alerts`, `geofences`, `monitor_thresholds` and the health columns of `vehicle_state`
(`health`, `rentable`, `open_alerts`); ingest owns the rest of `vehicle_state` and upserts those rows at the
same time. Both lock `vehicle_state` rows in ascending vehicle_id (here: a batch's outputs are written sorted
by vehicle, each vehicle's in their order), so neither can deadlock the other.

A batch is never dropped: a transient error (deadlock, serialization failure, lost connection) retries the
whole transaction with a short backoff, on a new connection after WRITE_ATTEMPTS, for as long as the process
runs; an output that can never be written (bad data) is found by writing the batch's outputs one by one, and
only that one is logged and counted (`Stats.outputs_failed`). Stopped while the database is away, the batch's
messages are not acknowledged (nor any later one): the broker delivers them again.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from psycopg.pq import TransactionStatus

from fleetcore.contract import TOPIC_KINDS, subscription
from fleetcore.db import Conn, connect
from fleetcore.mqtt import MqttConnection
from fleetcore.settings import Settings
from fleetcore.slots import PLACEHOLDER, SlotLease, StoppedBeforeClaim
from monitor import geofence, service
from monitor.detectors import Clear, Detection, FleetMonitor, Output, StateChange, VehicleInfo
from monitor.models import AUTO_RESOLVE
from monitor.registry import Registry, RegistryListener, history, restore
from monitor.thresholds import DEFAULT

log = logging.getLogger(__name__)

TICK_S = 1.0
REFRESH_S = 5.0  # the whole registry re-read (changes are also announced at once: RegistryListener)
GEOFENCE_REFRESH_S = 60.0
BATCH_MAX = 200  # bounds how long an urgent message can wait behind samples (~40 ms)
# Above the largest MQTT 5 Receive Maximum (65,535), so QoS 1 deliveries always fit.
QUEUE_MAX = 200_000
# Retrying a batch after a transient error: exponential backoff from RETRY_BASE_S up to RETRY_MAX_S, with
# jitter so two writers that deadlocked do not collide again in step; after every WRITE_ATTEMPTS failures in a
# row the connection is replaced (one that keeps failing may be the problem), and retrying goes on until stopped.
WRITE_ATTEMPTS = 5
RETRY_BASE_S = 0.05
RETRY_MAX_S = 2.0
RECONNECT_MAX_S = 30.0
# The advisory-lock namespace of `{slot}` client ids (fleetcore.slots).
SLOT_NAMESPACE = "fleet-monitor-slot"

Pair = tuple[VehicleInfo, Output]


def subscriptions(settings: Settings) -> list[tuple[str, int]]:
    """QoS 1 subscriptions to every device topic kind, as a shared subscription when a group is set."""
    prefix = f"$share/{settings.monitor_share_group}/" if settings.monitor_share_group else ""
    return [(prefix + subscription(settings.topic_root, kind), 1) for kind in TOPIC_KINDS]


@dataclass
class Stats:
    messages: int = 0
    detections: int = 0  # detections written (new alerts and repeats)
    alerts_opened: int = 0
    resolved: int = 0
    duplicates: int = 0  # detections already recorded (a redelivered or re-judged message), not written again
    stale_outputs: int = 0  # outputs for a device no longer installed in that vehicle, dropped
    acked: int = 0
    registry_changes: int = 0
    write_errors: int = 0  # write transactions that failed (each retried, or its batch split)
    write_retries: int = 0  # of those, the transient ones, retried whole (deadlock, lost connection)
    outputs_failed: int = 0  # outputs that could not be written: bad data, or still pending at stop
    started: float = field(default_factory=time.monotonic)


@dataclass
class Written:
    """What one committed transaction did; added to Stats only after the commit (a retry must not count twice)."""

    detections: int = 0
    alerts_opened: int = 0
    resolved: int = 0
    duplicates: int = 0
    stale_devices: set[str] = field(default_factory=set)
    stale_outputs: int = 0


@dataclass(slots=True)
class Delivery:
    """A received message and what acknowledging it needs: its arrival order in this process, the packet id,
    the QoS and the connection (epoch) it came on; `retained` when sent because the monitor subscribed."""

    topic: str
    payload: bytes
    arrived: datetime
    seq: int
    mid: int
    qos: int
    epoch: int
    retained: bool = False


class AckBook:
    """Acknowledges messages in the order they arrived, each once what it produced is committed.

    The worker takes urgent messages (events, status) ahead of samples, so it finishes messages out of arrival
    order; MQTT wants PUBACKs in the order the PUBLISHes arrived (MQTT 5 §4.6), so a finished message waits here
    until every earlier one is finished. Only messages of the current connection are acknowledged: one delivered
    on an earlier connection comes again (same packet id) on this one. A message never finished (stopped while
    the database was away) holds back every later acknowledgement: the broker delivers them all again.
    """

    def __init__(self, send: Callable[[int], None]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._next = 0
        self._done: dict[int, Delivery] = {}

    def finished(self, deliveries: Iterable[Delivery], epoch: int, *, ack: bool = True) -> int:
        """These messages are done (`ack=False`: done without acknowledgement); how many PUBACKs went out."""
        sent = 0
        with self._lock:
            for d in deliveries:
                self._done[d.seq] = d if ack else Delivery(d.topic, b"", d.arrived, d.seq, d.mid, 0, d.epoch)
            while self._next in self._done:
                d = self._done.pop(self._next)
                self._next += 1
                if d.qos and d.epoch == epoch:
                    self._send(d.mid)
                    sent += 1
        return sent

    def held(self) -> int:
        """Finished messages waiting for an earlier one."""
        with self._lock:
            return len(self._done)


def in_lock_order(outputs: Iterable[Pair]) -> list[Pair]:
    """The outputs by ascending vehicle_id, each vehicle's in their original order (sorted() is stable)."""
    return sorted(outputs, key=lambda pair: pair[0].vehicle_id)


def write_outputs(conn: Conn, outputs: Iterable[Pair]) -> Written:
    """Apply detector outputs in one transaction (notifications go out at commit), in vehicle lock order.

    An output whose device is no longer installed in its vehicle (removed or moved since the detectors learnt it)
    is dropped; a detection already recorded is skipped (`service.raise_new`).
    """
    done = Written()
    pairs = in_lock_order(outputs)
    with conn.transaction():
        rows = conn.execute(
            "SELECT device_id, vehicle_id FROM device_installs WHERE removed_at IS NULL AND device_id = ANY(%s)",
            (sorted({info.device_id for info, _ in pairs}),),
        ).fetchall()
        installed = {r["device_id"]: r["vehicle_id"] for r in rows}
        for info, o in pairs:
            if installed.get(info.device_id) != info.vehicle_id:
                done.stale_outputs += 1
                done.stale_devices.add(info.device_id)
                continue
            if isinstance(o, Detection):
                written = service.raise_new(
                    conn, vehicle_id=info.vehicle_id, kind=o.kind, severity=o.severity, ts=o.ts,
                    message=o.message, evidence=o.evidence,
                )  # fmt: skip
                if written is None:
                    done.duplicates += 1
                    continue
                done.detections += 1
                done.alerts_opened += int(written[1])
            elif isinstance(o, Clear):
                if o.kind in AUTO_RESOLVE and service.auto_resolve(
                    conn, vehicle_id=info.vehicle_id, kind=o.kind, ts=o.ts, reason=o.reason
                ):
                    done.resolved += 1
            elif isinstance(o, StateChange):
                service.vehicle_event(
                    conn, vehicle_id=info.vehicle_id, vin=info.vin, event=o.what, ts=o.ts, data=o.data
                )
    return done


def transient(exc: BaseException, conn: Conn) -> bool:
    """True when the same transaction can succeed later: deadlock, serialization failure, connection lost."""
    if conn.closed or conn.broken:
        return True
    # DeadlockDetected and SerializationFailure are OperationalErrors (SQLSTATE class 40), as are a server
    # shutting down and a connection that failed.
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


class _Stopped(Exception):
    """Stop was set while a write waited to be retried."""


class _Connection(MqttConnection):
    """An MqttConnection that numbers its connections (`epoch`: acknowledgements go only on the connection that
    delivered) and sets `subscribed` once the broker has acknowledged every subscription of the current
    connection (the SUBACKs), clearing it on connect and disconnect (like ingest's consumer)."""

    def __init__(self, *args, subscribed: threading.Event, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.subscribed = subscribed
        self.epoch = 0
        self._subacks = 0
        self.client.on_subscribe = self._on_subscribe

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if not reason_code.is_failure:
            self.epoch += 1
        self._subacks = 0
        self.subscribed.clear()
        super()._on_connect(client, userdata, flags, reason_code, properties)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        self.subscribed.clear()
        super()._on_disconnect(client, userdata, flags, reason_code, properties)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:  # noqa: ANN001
        try:
            failed = [str(rc) for rc in reason_codes if rc.is_failure]
            if failed:
                log.error("monitor subscription refused: %s", ", ".join(failed))
                return
            self._subacks += 1
            if self._subacks == len(self.subscriptions):
                self.subscribed.set()
                log.info("monitor subscribed to %d topic filters (connection %d)", self._subacks, self.epoch)
        except Exception:  # never let an exception escape a callback
            log.exception("error in on_subscribe")


class MonitorService:
    """The consumer: build with settings, `run(stop)` until the event is set."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.queue: queue.Queue[Delivery] = queue.Queue(maxsize=QUEUE_MAX)
        # Events (crash, tow, ...) and status jump the telemetry backlog: a dispatcher must see a crash in
        # seconds even when the worker is behind on 1 Hz samples.
        self.urgent: queue.Queue[Delivery] = queue.Queue(maxsize=QUEUE_MAX)
        self.stats = Stats()
        self.ready = threading.Event()  # connected to the database, state restored, MQTT client started
        # Set once the broker has processed every subscription (all SUBACKs); cleared while disconnected.
        self.subscribed = threading.Event()
        # Set once the worker has emptied its queues after subscribing: the session's backlog is judged, and
        # from then on silence counts (device_offline); cleared while disconnected.
        self.caught_up = threading.Event()
        self.dropped = 0
        self.conn: Conn | None = None
        self.registry: Registry | None = None
        self.fleet: FleetMonitor | None = None
        self.mqtt: _Connection | None = None
        self.listener = RegistryListener(settings.require_database_url()) if settings.database_url else None
        self.acks = AckBook(self._send_ack)
        self.client_id = settings.monitor_client_id
        self._seq = 0  # arrival order (paho's network thread only)
        self._closing = False
        self._stop = threading.Event()

    # -- paho network thread ----------------------------------------------------------------------------------

    def _on_message(self, client, userdata, message) -> None:  # noqa: ANN001
        seq = self._seq
        self._seq += 1
        if self._closing:
            return  # not acknowledged: the broker delivers it again to the next session
        epoch = self.mqtt.epoch if self.mqtt is not None else 0
        d = Delivery(message.topic, bytes(message.payload), datetime.now(UTC), seq, message.mid, message.qos,
                     epoch, bool(message.retain))  # fmt: skip
        try:
            if d.topic.endswith("/event") or d.topic.endswith("/status"):
                self.urgent.put_nowait(d)
            else:
                self.queue.put_nowait(d)
        except queue.Full:
            # only QoS 0 deliveries can overflow (QoS 1 ones are bounded by the Receive Maximum): counted, and
            # finished without an acknowledgement so later ones are not held back
            self.dropped += 1
            self.acks.finished([d], epoch, ack=False)

    def _send_ack(self, mid: int) -> None:
        assert self.mqtt is not None
        self.mqtt.client.ack(mid, 1)

    # -- the worker thread ------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop` is set; a client id with `{slot}` claims a stable slot first (fleetcore.slots)."""
        self._stop = stop
        lease = None
        if PLACEHOLDER in self.client_id:
            lease = SlotLease(
                self.settings.require_database_url(), self.client_id, stop, namespace=SLOT_NAMESPACE
            )
            try:
                self.client_id = lease.claim()
            except StoppedBeforeClaim:
                return
        try:
            self._run(stop)
        finally:
            if lease is not None:
                lease.release()

    def _run(self, stop: threading.Event) -> None:
        s = self.settings
        # LISTEN before the registry is read, so no change between the read and the LISTEN is missed.
        if self.listener is not None:
            self.listener.open()
        self.conn = conn = connect(s.require_database_url())
        self.registry = registry = Registry(conn)
        registry.load()
        geo = geofence.load(conn, buffer_m=DEFAULT.geofence_buffer_m)
        conn.commit()
        self.fleet = fleet = FleetMonitor(
            s.topic_root,
            registry.lookup,
            thresholds=registry.thresholds,
            geofences=geo,
            history=self._history,
        )
        restored = restore(conn, registry.by_device)
        for device_id, known in restored.items():
            fleet.restore(registry.by_device[device_id], known)
        log.info(
            "monitor restored %d vehicles from the database (%d with open alerts, %d with a last will)",
            len(restored), sum(1 for r in restored.values() if r.open_alerts),
            sum(1 for r in restored.values() if r.offline_since),
        )  # fmt: skip
        self.mqtt = mqtt = _Connection(
            s.mqtt,
            self.client_id,
            subscriptions=subscriptions(s),
            clean_start=False,
            session_expiry_s=s.monitor_session_expiry_s,
            manual_ack=True,
            receive_maximum=s.monitor_max_inflight,
            on_message=self._on_message,
            subscribed=self.subscribed,
        )
        mqtt.start()
        if mqtt.fatal_error:
            raise ConnectionError(f"MQTT broker refused the connection: {mqtt.fatal_error}")
        log.info(
            "monitor consuming %s as %s (share group %s)",
            subscription(s.topic_root), self.client_id, s.monitor_share_group or "-",
        )  # fmt: skip
        self.ready.set()
        next_tick = next_refresh = time.monotonic()
        next_geo = time.monotonic() + GEOFENCE_REFRESH_S
        try:
            while not stop.is_set():
                self._follow_registry()
                batch = self._drain()
                outputs: list[Pair] = []
                for d in batch:
                    self.stats.messages += 1
                    try:
                        outputs += fleet.handle(d.topic, d.payload, d.arrived, retained=d.retained)
                    except Exception:  # one bad message never stops the stream
                        log.exception("detector error on %s", d.topic)
                self._check_caught_up()
                mono = time.monotonic()
                if mono >= next_tick:
                    next_tick = mono + TICK_S
                    outputs += fleet.tick(datetime.now(UTC), silence=self.caught_up.is_set())
                if outputs and not self.write(outputs):
                    break  # stopped while the database was away: this batch and every later one unacknowledged
                self.stats.acked += self.acks.finished(batch, mqtt.epoch)
                if (self._db().closed or self._db().broken) and not self._reconnect():
                    break
                if mono >= next_refresh:
                    next_refresh = mono + REFRESH_S
                    log.info(
                        "monitor: %d messages, %d detections, %d duplicates skipped, backlog %d samples / %d "
                        "urgent, %d dropped, %d acked, %d awaiting an earlier ack, %d write retries, %d outputs "
                        "failed, %d stale",
                        self.stats.messages, self.stats.detections, self.stats.duplicates, self.queue.qsize(),
                        self.urgent.qsize(), self.dropped, self.stats.acked, self.acks.held(),
                        self.stats.write_retries, self.stats.outputs_failed, self.stats.stale_outputs,
                    )  # fmt: skip
                    self._safe(lambda: self._forget(registry.load()))
                if mono >= next_geo:
                    next_geo = mono + GEOFENCE_REFRESH_S
                    self._safe(lambda: fleet.set_geofences(geofence.load(self._db())))
        finally:
            self._closing = True
            mqtt.stop()
            if self.listener is not None:
                self.listener.close()
            self._db().close()
            log.info("monitor stopped: %s", self.stats)

    def _db(self) -> Conn:
        assert self.conn is not None, "run() has not connected yet"
        return self.conn

    def _history(self, info: VehicleInfo, before: datetime, seconds: float) -> list[dict]:
        """The vehicle's stored samples before its first message in this process (empty if unreadable)."""
        conn = self._db()
        try:
            return history(conn, info, before, seconds)
        except psycopg.Error as exc:
            log.warning(
                "history of vehicle %s unreadable (%s); its windows start empty", info.vehicle_id, exc
            )
            with contextlib.suppress(psycopg.Error):
                conn.rollback()
            return []

    def _check_caught_up(self) -> None:
        """Caught up once the queues were found empty after subscribing (the session's backlog is in them by
        the time the SUBACKs arrive: the broker sends it right after the CONNACK, up to the Receive Maximum)."""
        if not self.subscribed.is_set():
            if self.caught_up.is_set():
                self.caught_up.clear()
            return
        if not self.caught_up.is_set() and self.urgent.empty() and self.queue.empty():
            self.caught_up.set()
            log.info("monitor caught up with its session's backlog after %d messages", self.stats.messages)

    def _follow_registry(self) -> None:
        """Apply the registry changes the database announced (all of it again if announcements may be lost)."""
        if self.listener is None or self.registry is None:
            return
        devices, vehicles, reopened = self.listener.poll()
        if not (devices or vehicles or reopened):
            return
        registry = self.registry
        self.stats.registry_changes += len(devices) + len(vehicles)
        self._safe(lambda: self._forget(registry.load() if reopened else registry.refresh(devices, vehicles)))

    def _forget(self, devices: Iterable[str]) -> None:
        """Drop the detectors of devices removed or moved: a moved device starts afresh in its new vehicle."""
        assert self.fleet is not None
        for device_id in devices:
            if self.fleet.forget(device_id):
                log.info("monitor: device %s removed or moved; its detectors reset", device_id)

    def _drain(self) -> list[Delivery]:
        """Urgent messages first (all of them), else up to BATCH_MAX samples; waits briefly when idle."""
        batch: list[Delivery] = []
        for q, limit in ((self.urgent, QUEUE_MAX), (self.queue, BATCH_MAX)):
            while len(batch) < limit:
                try:
                    batch.append(q.get_nowait())
                except queue.Empty:
                    break
            if batch:
                return batch
        try:
            return [self.queue.get(timeout=0.05)]
        except queue.Empty:
            return []

    def write(self, outputs: list[Pair]) -> bool:
        """Write a batch's outputs; on a bad output, write them one by one so only that one is lost. False when
        stopped before they could be written (the database was away)."""
        try:
            self._count(self._commit(outputs))
            return True
        except _Stopped:
            self._lost(outputs, "stopped while the database was unavailable")
            return False
        except Exception as exc:  # not transient: one of the outputs can never be written
            log.warning("writing %d detector outputs failed (%s); writing them one by one", len(outputs), exc)
        pending = in_lock_order(outputs)
        for i, pair in enumerate(pending):
            try:
                self._count(self._commit([pair]))
            except _Stopped:
                self._lost(pending[i:], "stopped while the database was unavailable")
                return False
            except Exception:
                self.stats.outputs_failed += 1
                log.exception(
                    "detector output for vehicle %s can never be written, skipped: %r",
                    pair[0].vehicle_id,
                    pair[1],
                )
        return True

    def _commit(self, outputs: list[Pair]) -> Written:
        """One transaction with the outputs, retried on transient errors until it commits; _Stopped if stopped."""
        attempt = 0
        while True:
            conn = self._db()
            try:
                if conn.info.transaction_status != TransactionStatus.IDLE:
                    conn.rollback()  # a read left open would turn this transaction into a savepoint
                return write_outputs(conn, outputs)
            except Exception as exc:
                self.stats.write_errors += 1
                if not transient(exc, conn):
                    raise
                attempt += 1
                self.stats.write_retries += 1
                log.warning("writing %d detector outputs: %s: %s (attempt %d); retrying",
                            len(outputs), type(exc).__name__, exc, attempt)  # fmt: skip
            if conn.closed or conn.broken or attempt % WRITE_ATTEMPTS == 0:
                if not self._reconnect():
                    raise _Stopped
            elif self._stop.wait(
                min(RETRY_BASE_S * 2 ** (attempt - 1), RETRY_MAX_S) * random.uniform(0.5, 1.0)
            ):
                raise _Stopped

    def _count(self, done: Written) -> None:
        self.stats.detections += done.detections
        self.stats.alerts_opened += done.alerts_opened
        self.stats.resolved += done.resolved
        self.stats.duplicates += done.duplicates
        self.stats.stale_outputs += done.stale_outputs
        if done.stale_devices and self.registry is not None:
            registry = self.registry
            self._safe(lambda: self._forget(registry.refresh(done.stale_devices)))

    def _lost(self, outputs: list[Pair], why: str) -> None:
        self.stats.outputs_failed += len(outputs)
        log.error("%d detector outputs not written: %s", len(outputs), why)

    def _reconnect(self) -> bool:
        """Replace the database connection (server restart, broken or failing connection); False if stopped."""
        with contextlib.suppress(psycopg.Error):
            self._db().close()
        delay = 1.0
        while not self._stop.is_set():
            try:
                self.conn = connect(self.settings.require_database_url())
            except psycopg.OperationalError as exc:
                log.warning("database unavailable (%s); retrying in %.0f s", exc, delay)
                if self._stop.wait(delay):
                    return False
                delay = min(delay * 2, RECONNECT_MAX_S)
                continue
            if self.registry is not None:
                self.registry.conn = self.conn
            log.info("monitor reconnected to the database")
            return True
        return False

    def _safe(self, fn: Callable[[], object]) -> None:
        conn = self._db()
        try:
            fn()
            conn.commit()
        except psycopg.Error:
            log.exception("refresh failed")
            with contextlib.suppress(psycopg.Error):
                conn.rollback()  # a broken connection is replaced by the main loop


def run(settings: Settings, stop: threading.Event, worker: MonitorService | None = None) -> None:
    """Run the monitor process until `stop` is set."""
    (worker or MonitorService(settings)).run(stop)
