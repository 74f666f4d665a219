"""`fleet monitor`: its own MQTT consumer of the device topics, the detectors, and the alert writer.

A paho network thread only enqueues (topic, payload, arrival time); one worker thread parses, runs the pure
detectors (monitor.detectors) and writes their outputs through the alert service (monitor.service) in one
transaction per batch, so notifications reach the API at commit. Time-driven checks (device silence) run every
TICK_S; the registry (vehicle status: is it rented?) is re-read every REFRESH_S and geofences every
GEOFENCE_REFRESH_S.

Tables: the monitor owns `alerts`, `geofences`, `monitor_thresholds` and the health columns of `vehicle_state`
(`health`, `rentable`, `open_alerts`); ingest owns the rest of `vehicle_state` and upserts those rows at the
same time. Both lock `vehicle_state` rows in ascending vehicle_id (here: a batch's outputs are written sorted
by vehicle, each vehicle's in their order), so neither can deadlock the other.

A batch is never dropped: a transient error (deadlock, serialization failure, lost connection) retries the
whole transaction with a short backoff, on a new connection after WRITE_ATTEMPTS, for as long as the process
runs; an output that can never be written (bad data) is found by writing the batch's outputs one by one, and
only that one is logged and counted (`Stats.outputs_failed`).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from psycopg.pq import TransactionStatus

from fleetcore.contract import subscription
from fleetcore.db import Conn, connect
from fleetcore.mqtt import MqttConnection
from fleetcore.settings import Settings
from monitor import geofence, service
from monitor.detectors import Clear, Detection, FleetMonitor, Output, StateChange, VehicleInfo
from monitor.models import AUTO_RESOLVE
from monitor.thresholds import DEFAULT, Thresholds, for_class

log = logging.getLogger(__name__)

TICK_S = 1.0
REFRESH_S = 5.0  # a rental that starts is seen within this (well inside the 20 s movement window)
GEOFENCE_REFRESH_S = 60.0
UNKNOWN_DEVICE_RETRY_S = 30.0
BATCH_MAX = 200  # bounds how long an urgent message can wait behind samples (~40 ms)
QUEUE_MAX = 200_000
# Retrying a batch after a transient error: exponential backoff from RETRY_BASE_S up to RETRY_MAX_S, with
# jitter so two writers that deadlocked do not collide again in step; after every WRITE_ATTEMPTS failures in a
# row the connection is replaced (one that keeps failing may be the problem), and retrying goes on until stopped.
WRITE_ATTEMPTS = 5
RETRY_BASE_S = 0.05
RETRY_MAX_S = 2.0
RECONNECT_MAX_S = 30.0

Pair = tuple[VehicleInfo, Output]


@dataclass
class Stats:
    messages: int = 0
    detections: int = 0
    alerts_opened: int = 0
    resolved: int = 0
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


class Registry:
    """device_id → VehicleInfo from the registry, cached; vehicle status refreshed periodically."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.by_device: dict[str, VehicleInfo] = {}
        self.misses: dict[str, float] = {}
        self.overrides: dict[str, dict[str, float]] = {}

    _SQL = """SELECT i.device_id, v.id AS vehicle_id, v.vin, v.class, v.status
                FROM device_installs i JOIN vehicles v ON v.id = i.vehicle_id
               WHERE i.removed_at IS NULL"""

    def load(self) -> None:
        rows = self.conn.execute(self._SQL).fetchall()
        self.conn.commit()
        for r in rows:
            info = self.by_device.get(r["device_id"])
            if info is None or info.vehicle_id != r["vehicle_id"]:
                self.by_device[r["device_id"]] = VehicleInfo(
                    r["vehicle_id"], r["device_id"], r["class"], r["status"], r["vin"]
                )
            else:
                info.status = r["status"]
        try:
            rows = self.conn.execute("SELECT vehicle_class, name, value FROM monitor_thresholds").fetchall()
            self.conn.commit()
        except psycopg.errors.UndefinedTable:
            self.conn.rollback()
            rows = []
        self.overrides = {}
        for r in rows:
            self.overrides.setdefault(r["vehicle_class"], {})[r["name"]] = r["value"]

    def lookup(self, device_id: str) -> VehicleInfo | None:
        info = self.by_device.get(device_id)
        if info is not None:
            return info
        if time.monotonic() - self.misses.get(device_id, -1e9) < UNKNOWN_DEVICE_RETRY_S:
            return None
        row = self.conn.execute(self._SQL + " AND i.device_id = %s", (device_id,)).fetchone()
        self.conn.commit()
        if row is None:
            self.misses[device_id] = time.monotonic()
            return None
        info = VehicleInfo(row["vehicle_id"], row["device_id"], row["class"], row["status"], row["vin"])
        self.by_device[device_id] = info
        return info

    def thresholds(self, vehicle_class: str) -> Thresholds:
        return for_class(vehicle_class, self.overrides) if vehicle_class else DEFAULT


def in_lock_order(outputs: Iterable[Pair]) -> list[Pair]:
    """The outputs by ascending vehicle_id, each vehicle's in their original order (sorted() is stable)."""
    return sorted(outputs, key=lambda pair: pair[0].vehicle_id)


def write_outputs(conn: Conn, outputs: Iterable[Pair]) -> Written:
    """Apply detector outputs in one transaction (notifications go out at commit), in vehicle lock order."""
    done = Written()
    with conn.transaction():
        for info, o in in_lock_order(outputs):
            if isinstance(o, Detection):
                _, created = service.raise_(
                    conn, vehicle_id=info.vehicle_id, kind=o.kind, severity=o.severity, ts=o.ts,
                    message=o.message, evidence=o.evidence,
                )  # fmt: skip
                done.detections += 1
                done.alerts_opened += int(created)
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
    """An MqttConnection that sets `subscribed` once the broker has acknowledged every subscription of the
    current connection (the SUBACKs), and clears it on connect and disconnect (like ingest's consumer)."""

    def __init__(self, *args, subscribed: threading.Event, **kwargs) -> None:  # noqa: ANN002, ANN003
        super().__init__(*args, **kwargs)
        self.subscribed = subscribed
        self._subacks = 0
        self.client.on_subscribe = self._on_subscribe

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
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
                log.info("monitor subscribed to %d topic filters", self._subacks)
        except Exception:  # never let an exception escape a callback
            log.exception("error in on_subscribe")


class MonitorService:
    """The consumer: build with settings, `run(stop)` until the event is set."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.queue: queue.Queue[tuple[str, bytes, datetime]] = queue.Queue(maxsize=QUEUE_MAX)
        # Events (crash, tow, ...) and status jump the telemetry backlog: a dispatcher must see a crash in
        # seconds even when the worker is behind on 1 Hz samples.
        self.urgent: queue.Queue[tuple[str, bytes, datetime]] = queue.Queue(maxsize=QUEUE_MAX)
        self.stats = Stats()
        self.ready = threading.Event()  # connected to the database, MQTT client started
        # Set once the broker has processed every subscription (all SUBACKs); cleared while disconnected.
        self.subscribed = threading.Event()
        self.dropped = 0
        self.conn: Conn | None = None
        self.registry: Registry | None = None
        self._stop = threading.Event()

    def _on_message(self, client, userdata, message) -> None:  # noqa: ANN001
        try:
            item = (message.topic, bytes(message.payload), datetime.now(UTC))
            topic = message.topic
            if topic.endswith("/event") or topic.endswith("/status"):
                self.urgent.put_nowait(item)
            else:
                self.queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1  # back-pressure: the worker is far behind; counted and logged by the worker

    def run(self, stop: threading.Event) -> None:
        s = self.settings
        self._stop = stop
        self.conn = conn = connect(s.require_database_url())
        self.registry = registry = Registry(conn)
        registry.load()
        geo = geofence.load(conn, buffer_m=DEFAULT.geofence_buffer_m)
        conn.commit()
        fleet = FleetMonitor(s.topic_root, registry.lookup, thresholds=registry.thresholds, geofences=geo)
        mqtt = _Connection(
            s.mqtt,
            s.monitor_client_id,
            # Events and status at QoS 1 (never lost); samples at QoS 0: the monitor judges the live stream,
            # ingest is the durable consumer, and QoS 0 spares a PUBACK per sample and the broker's in-flight
            # window (mosquitto's default max_inflight_messages is 20) that throttled 1,000 msg/s.
            subscriptions=[
                (subscription(s.topic_root, "event"), 1),
                (subscription(s.topic_root, "status"), 1),
                (subscription(s.topic_root, "telemetry"), 0),
                (subscription(s.topic_root, "obd"), 0),
                (subscription(s.topic_root, "nmea"), 0),
            ],
            on_message=self._on_message,
            max_inflight=1000,
            subscribed=self.subscribed,
        )
        mqtt.start()
        log.info("monitor consuming %s as %s", subscription(s.topic_root), s.monitor_client_id)
        self.ready.set()
        next_tick = next_refresh = time.monotonic()
        next_geo = time.monotonic() + GEOFENCE_REFRESH_S
        try:
            while not stop.is_set():
                batch = self._drain()
                outputs: list[Pair] = []
                for topic, payload, arrived in batch:
                    self.stats.messages += 1
                    try:
                        outputs += fleet.handle(topic, payload, arrived)
                    except Exception:  # one bad message never stops the stream
                        log.exception("detector error on %s", topic)
                mono = time.monotonic()
                if mono >= next_tick:
                    next_tick = mono + TICK_S
                    outputs += fleet.tick(datetime.now(UTC))
                if outputs:
                    self.write(outputs)
                if (self.conn.closed or self.conn.broken) and not self._reconnect():
                    break
                if mono >= next_refresh:
                    next_refresh = mono + REFRESH_S
                    log.info(
                        "monitor: %d messages, %d detections, backlog %d samples / %d urgent, %d dropped, "
                        "%d write retries, %d outputs failed",
                        self.stats.messages, self.stats.detections, self.queue.qsize(), self.urgent.qsize(),
                        self.dropped, self.stats.write_retries, self.stats.outputs_failed,
                    )  # fmt: skip
                    self._safe(registry.load)
                if mono >= next_geo:
                    next_geo = mono + GEOFENCE_REFRESH_S
                    self._safe(lambda: fleet.set_geofences(geofence.load(self._db())))
        finally:
            mqtt.stop()
            self._db().close()
            log.info("monitor stopped: %s", self.stats)

    def _db(self) -> Conn:
        assert self.conn is not None, "run() has not connected yet"
        return self.conn

    def _drain(self) -> list[tuple[str, bytes, datetime]]:
        """Urgent messages first (all of them), else up to BATCH_MAX samples; waits briefly when idle."""
        batch: list[tuple[str, bytes, datetime]] = []
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

    def write(self, outputs: list[Pair]) -> None:
        """Write a batch's outputs; on a bad output, write them one by one so only that one is lost."""
        try:
            self._count(self._commit(outputs))
            return
        except _Stopped:
            self._lost(outputs, "stopped while the database was unavailable")
            return
        except Exception as exc:  # not transient: one of the outputs can never be written
            log.warning("writing %d detector outputs failed (%s); writing them one by one", len(outputs), exc)
        pending = in_lock_order(outputs)
        for i, pair in enumerate(pending):
            try:
                self._count(self._commit([pair]))
            except _Stopped:
                self._lost(pending[i:], "stopped while the database was unavailable")
                return
            except Exception:
                self.stats.outputs_failed += 1
                log.exception(
                    "detector output for vehicle %s can never be written, skipped: %r",
                    pair[0].vehicle_id,
                    pair[1],
                )

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

    def _safe(self, fn) -> None:  # noqa: ANN001
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
