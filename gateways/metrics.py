"""Counters of a gateway process (Prometheus, FLEET_GATEWAY_METRICS_PORT) and its structured log lines."""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# Vendor message in → last broker acknowledgement: a millisecond on a quiet local broker; 100 ms is the
# budget the JT/T 808 benchmark holds the p99 to (bench/jt808.py).
PUBLISH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class GatewayMetrics:
    """The counters of one gateway, in a registry of its own (tests run several gateways in one process)."""

    def __init__(self, gateway: str) -> None:
        self.gateway = gateway
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.received = Counter(
            "fleet_gateway_received", "Vendor messages received, by type", ["type"], registry=r
        )
        self.published = Counter(
            "fleet_gateway_published",
            "Contract messages acknowledged by the broker, by kind",
            ["kind"],
            registry=r,
        )
        self.rejected = Counter(
            "fleet_gateway_rejected",
            "Vendor records or fields not republished, by reason",
            ["reason"],
            registry=r,
        )
        self.publish_failures = Counter(
            "fleet_gateway_publish_failures", "Publishes refused or not acknowledged in time", registry=r
        )
        self.publish_seconds = Histogram(
            "fleet_gateway_publish_seconds",
            "Vendor message received → every republish acknowledged by the broker",
            buckets=PUBLISH_BUCKETS,
            registry=r,
        )
        self.connections = Gauge(
            "fleet_gateway_connections", "Open device connections (JT/T 808)", registry=r
        )
        self._server: Any = None
        # plain totals for tests and the periodic status line (prometheus_client keeps no cheap totals)
        self.counts: dict[str, int] = {}
        self._received: dict[int, Any] = {}
        self._published: dict[str, Any] = {}

    def received_by_id(self, msg_id: int) -> Any:
        """The `received` child of a JT/T 808 message id (label children cached: one dict lookup per frame)."""
        child = self._received.get(msg_id)
        if child is None:
            child = self._received[msg_id] = self.received.labels(f"{msg_id:04x}")
        return child

    def published_kind(self, topic: str) -> Any:
        """The `published` child of a contract topic's kind (its last level)."""
        kind = topic[topic.rfind("/") + 1 :]
        child = self._published.get(kind)
        if child is None:
            child = self._published[kind] = self.published.labels(kind)
        return child

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def reject(self, reason: str, n: int = 1) -> None:
        self.rejected.labels(reason).inc(n)
        self.count(f"rejected.{reason}", n)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        result = start_http_server(port, addr=addr, registry=self.registry)
        self._server = result[0] if isinstance(result, tuple) else None

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def kv(log: logging.Logger, level: int, event: str, **fields: Any) -> None:
    """Log one structured line: `event=NAME key=value ...` (values with spaces are quoted)."""
    if not log.isEnabledFor(level):
        return
    parts = [f"event={event}"]
    for k, v in fields.items():
        s = f"{v:.4f}" if isinstance(v, float) else str(v)
        if " " in s or "=" in s or not s:
            s = '"' + s.replace('"', '\\"') + '"'
        parts.append(f"{k}={s}")
    log.log(level, " ".join(parts))
