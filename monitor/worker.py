"""`fleet monitor`: its own MQTT consumer of the device topics, the detectors, and the alert writer.

A paho network thread only enqueues (topic, payload, arrival time); one worker thread parses, runs the pure
detectors (monitor.detectors) and writes alerts through monitor.service in one transaction per batch, so notifications reach the API
at commit. Time-driven checks (device silence) run every TICK_S; the registry (vehicle status: is it rented?)
is re-read every REFRESH_S and geofences every GEOFENCE_REFRESH_S.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg

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


@dataclass
class Stats:
    messages: int = 0
    detections: int = 0
    alerts_opened: int = 0
    resolved: int = 0
    write_errors: int = 0
    started: float = field(default_factory=time.monotonic)


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


def write_outputs(conn: Conn, outputs: list[tuple[VehicleInfo, Output]], stats: Stats) -> None:
    """Apply detector outputs in one transaction (notifications go out at commit)."""
    with conn.transaction():
        for info, o in outputs:
            if isinstance(o, Detection):
                _, created = service.raise_(
                    conn, vehicle_id=info.vehicle_id, kind=o.kind, severity=o.severity, ts=o.ts,
                    message=o.message, evidence=o.evidence,
                )  # fmt: skip
                stats.detections += 1
                stats.alerts_opened += int(created)
            elif isinstance(o, Clear):
                if o.kind in AUTO_RESOLVE and service.auto_resolve(
                    conn, vehicle_id=info.vehicle_id, kind=o.kind, ts=o.ts, reason=o.reason
                ):
                    stats.resolved += 1
            elif isinstance(o, StateChange):
                service.vehicle_event(
                    conn, vehicle_id=info.vehicle_id, vin=info.vin, event=o.what, ts=o.ts, data=o.data
                )


class MonitorService:
    """The consumer: build with settings, `run(stop)` until the event is set."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.queue: queue.Queue[tuple[str, bytes, datetime]] = queue.Queue(maxsize=QUEUE_MAX)
        # Events (crash, tow, ...) and status jump the telemetry backlog: a dispatcher must see a crash in
        # seconds even when the worker is behind on 1 Hz samples.
        self.urgent: queue.Queue[tuple[str, bytes, datetime]] = queue.Queue(maxsize=QUEUE_MAX)
        self.stats = Stats()
        self.ready = threading.Event()
        self.dropped = 0

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
        conn = connect(s.require_database_url())
        registry = Registry(conn)
        registry.load()
        geo = geofence.load(conn, buffer_m=DEFAULT.geofence_buffer_m)
        conn.commit()
        fleet = FleetMonitor(s.topic_root, registry.lookup, thresholds=registry.thresholds, geofences=geo)
        mqtt = MqttConnection(
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
        )
        mqtt.start()
        log.info("monitor consuming %s as %s", subscription(s.topic_root), s.monitor_client_id)
        self.ready.set()
        next_tick = next_refresh = time.monotonic()
        next_geo = time.monotonic() + GEOFENCE_REFRESH_S
        try:
            while not stop.is_set():
                batch = self._drain()
                outputs: list = []
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
                written = self._write(conn, outputs) if outputs else True
                if conn.closed or conn.broken:
                    fresh = self._reconnect(stop)
                    if fresh is None:
                        break
                    conn = registry.conn = fresh
                    if not written:
                        self._write(conn, outputs)  # once more on the new connection
                if mono >= next_refresh:
                    next_refresh = mono + REFRESH_S
                    log.info(
                        "monitor: %d messages, %d detections, backlog %d samples / %d urgent, %d dropped",
                        self.stats.messages, self.stats.detections, self.queue.qsize(), self.urgent.qsize(),
                        self.dropped,
                    )  # fmt: skip
                    self._safe(conn, registry.load)
                if mono >= next_geo:
                    next_geo = mono + GEOFENCE_REFRESH_S
                    self._safe(conn, lambda c=conn: fleet.set_geofences(geofence.load(c)))
        finally:
            mqtt.stop()
            conn.close()
            log.info("monitor stopped: %s", self.stats)

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

    def _write(self, conn: Conn, outputs: list) -> bool:
        try:
            write_outputs(conn, outputs, self.stats)
            return True
        except psycopg.Error:
            self.stats.write_errors += 1
            log.exception("writing %d detector outputs failed", len(outputs))
            return False

    def _reconnect(self, stop: threading.Event) -> Conn | None:
        """A new database connection after the old one broke (server restart); None when stopped meanwhile."""
        delay = 1.0
        while True:
            try:
                conn = connect(self.settings.require_database_url())
                log.info("monitor reconnected to the database")
                return conn
            except psycopg.OperationalError as exc:
                log.warning("database unavailable (%s); retrying in %.0f s", exc, delay)
                if stop.wait(delay):
                    return None
                delay = min(delay * 2, 30.0)

    @staticmethod
    def _safe(conn: Conn, fn) -> None:  # noqa: ANN001
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
