"""`fleet gateway teltonika`: Teltonika trackers' MQTT topic in, the device contract out, on one broker connection.

paho's network thread only enqueues; one worker thread translates a batch (gateways.teltonika.translate), publishes
the contract messages with QoS 1, waits until the broker acknowledged all of them, and only then acknowledges the
trackers' messages (manual acks on a persistent session). A crash in between means the broker redelivers the
tracker's message after the restart, and the deterministic translation makes the second publish a duplicate that
ingest stores once.

Records that cannot be republished (an unset or future clock, a malformed document) are acknowledged, counted in
fleet_gateway_rejected{reason} and logged with the raw payload (docs/gateways.md says why they do not go to ingest).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from fleetcore.mqtt import MqttConnection
from fleetcore.settings import Settings
from gateways.metrics import GatewayMetrics, kv
from gateways.publisher import MAX_INFLIGHT, AckedPublisher
from gateways.teltonika import Mapping, imei_from_topic, load_mapping, translate

log = logging.getLogger(__name__)

BATCH_MAX = 200  # tracker messages translated and published together (one wait for their acknowledgements)
BATCH_WAIT_S = 0.02  # how long the worker waits to fill a batch once it has one message
# Unacknowledged tracker messages the broker may hand us (MQTT 5 Receive Maximum): bounds the queue in memory.
RECEIVE_MAXIMUM = 2000
# The broker keeps queueing the trackers' data for a stopped gateway this long (a deploy, a restart).
SESSION_EXPIRY_S = 86400
RETRY_S = (0.5, 1.0, 2.0, 5.0)  # back-off while the broker does not acknowledge our republish
STATUS_EVERY_S = 60.0
RAW_LOG_BYTES = 512  # of a rejected payload, in the log line


@dataclass(slots=True)
class Inbound:
    mid: int
    qos: int
    topic: str
    payload: bytes
    arrived: float


class TeltonikaGateway:
    """One gateway process's state: the broker connection, the mapping, the work queue and the counters."""

    def __init__(self, settings: Settings, stop: threading.Event, *, mapping: Mapping | None = None) -> None:
        self.settings = settings
        self.stop = stop
        self.mapping = mapping or load_mapping(settings.teltonika_mapping_file)
        self.metrics = GatewayMetrics("teltonika")
        self.queue: queue.Queue[Inbound] = queue.Queue()
        self.subscribed = threading.Event()
        conn = MqttConnection(
            settings.mqtt,
            settings.teltonika_client_id,
            subscriptions=[(settings.teltonika_topic, 1)],
            clean_start=False,
            session_expiry_s=SESSION_EXPIRY_S,
            manual_ack=True,
            on_message=self._on_message,
            max_inflight=MAX_INFLIGHT,
            receive_maximum=RECEIVE_MAXIMUM,
        )
        conn.client.on_subscribe = lambda *a: self.subscribed.set()
        self.pub = AckedPublisher(conn)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        self.queue.put(Inbound(msg.mid, msg.qos, msg.topic, bytes(msg.payload), time.monotonic()))

    def _take(self) -> list[Inbound]:
        try:
            first = self.queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + BATCH_WAIT_S
        while len(batch) < BATCH_MAX:
            left = deadline - time.monotonic()
            try:
                batch.append(self.queue.get(timeout=left) if left > 0 else self.queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def handle(self, batch: list[Inbound]) -> bool:
        """Translate, publish and acknowledge one batch; False when stopped before the broker acknowledged."""
        s = self.settings
        now_ms = int(time.time() * 1000)
        out: list[tuple[str, bytes]] = []
        for m in batch:
            self.metrics.received.labels("data").inc()
            imei = imei_from_topic(s.teltonika_topic, m.topic) or ""
            tr = translate(
                s.teltonika_device_prefix + imei,
                m.payload,
                self.mapping,
                now_ms=now_ms,
                max_age_days=s.gateway_max_sample_age_days,
            )
            for r in tr.rejected:
                self.metrics.reject(r.reason)
                kv(
                    log,
                    logging.WARNING,
                    "teltonika_rejected",
                    device=tr.device_id,
                    topic=m.topic,
                    reason=r.reason,
                    detail=r.detail,
                    raw=m.payload[:RAW_LOG_BYTES].decode("utf-8", "replace"),
                )
            for topic, payload in tr.messages(s.topic_root):
                out.append((topic, payload))
                self.metrics.published.labels(topic.rsplit("/", 1)[1]).inc()
        attempt = 0
        while not self.pub.publish_all(out, s.gateway_publish_timeout_s):
            self.metrics.publish_failures.inc()
            if self.stop.wait(RETRY_S[min(attempt, len(RETRY_S) - 1)]):
                return False  # unacknowledged: the broker redelivers them to the next session
            attempt += 1
        done = time.monotonic()
        for m in batch:
            self.pub.conn.client.ack(m.mid, m.qos)
            self.metrics.publish_seconds.observe(done - m.arrived)
        self.metrics.count("messages", len(batch))
        self.metrics.count("published", len(out))
        return True

    def run(self) -> None:
        """Consume until `stop` is set; what is in flight then stays unacknowledged and comes back next time."""
        if self.settings.gateway_metrics_port is not None:
            self.metrics.serve(self.settings.gateway_metrics_port)
        self.pub.start()
        if self.pub.conn.fatal_error:
            raise ConnectionError(f"MQTT broker refused the gateway: {self.pub.conn.fatal_error}")
        log.info(
            "teltonika gateway: %s → %s/devices/...", self.settings.teltonika_topic, self.settings.topic_root
        )
        last = time.monotonic()
        try:
            while not self.stop.is_set():
                batch = self._take()
                if batch and not self.handle(batch):
                    break
                if time.monotonic() - last >= STATUS_EVERY_S:
                    last = time.monotonic()
                    kv(log, logging.INFO, "teltonika_status", **self.metrics.counts)
        finally:
            self.pub.stop()
            self.metrics.close()


def run(settings: Settings, stop: threading.Event) -> None:
    """The process entry point (`fleet gateway teltonika`)."""
    TeltonikaGateway(settings, stop).run()
