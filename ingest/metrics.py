"""Prometheus metrics of one ingest worker, and key=value structured log lines."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# Batch sizes in messages: powers of two up to well past the default batch of 2000.
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000, 10000, 20000)
# Commit latency: a healthy COPY batch commits in milliseconds; seconds mean the database is struggling.
COMMIT_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Lag now − sample time: sub-second in steady state; minutes to hours while a backlog or a device buffer drains.
LAG_BUCKETS = (
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
    0.4,
    0.5,
    0.75,
    1.0,
    1.5,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    900.0,
    3600.0,
    86400.0,
)


class IngestMetrics:
    """The metrics of one worker, in a registry of its own (several workers may live in one test process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages = Counter(
            "fleet_ingest_messages", "MQTT messages received, by topic kind", ["kind"], registry=r
        )
        self.rows = Counter("fleet_ingest_rows_written", "Rows committed, by table", ["table"], registry=r)
        self.duplicates = Counter(
            "fleet_ingest_duplicates", "Samples skipped because already stored", registry=r
        )
        self.rejections = Counter(
            "fleet_ingest_rejections", "Rejected messages or elements, by reason", ["reason"], registry=r
        )
        self.batch_size = Histogram(
            "fleet_ingest_batch_messages", "Messages per committed batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.commit_seconds = Histogram(
            "fleet_ingest_commit_seconds",
            "Time to write and commit one batch",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.lag_seconds = Histogram(
            "fleet_ingest_lag_seconds",
            "Commit time minus sample time (newest sample of each message; up to 100 spread messages per batch)",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.state_seconds = Histogram(
            "fleet_ingest_state_flush_seconds",
            "Time to write and commit one coalesced vehicle_state flush",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.state_messages = Histogram(
            "fleet_ingest_state_flush_messages",
            "Messages whose samples one vehicle_state flush applied (acknowledged after it)",
            buckets=(*BATCH_BUCKETS, 20000, 50000),
            registry=r,
        )
        self.queue_depth = Gauge(
            "fleet_ingest_queue_depth", "Messages held, not yet acknowledged", registry=r
        )
        self.db_errors = Counter(
            "fleet_ingest_db_errors", "Failed batch attempts (database unavailable)", registry=r
        )
        self.mqtt_connected = Gauge(
            "fleet_ingest_mqtt_connected", "1 while connected to the broker", registry=r
        )
        self._server: Any = None

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        """Expose /metrics on `port` (0 picks a free port; see `port`)."""
        result = start_http_server(port, addr=addr, registry=self.registry)
        self._server = result[0] if isinstance(result, tuple) else None

    @property
    def port(self) -> int | None:
        return self._server.server_port if self._server else None

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
