"""`fleet ingest` whose parser costs (almost) nothing: an upper bound for the benchmark, not a product.

The bench writes the backlog it is about to publish to the file named by BENCH_PARSE_FREE_DATA; this worker parses
all of it with the real parser *before* it connects (outside the measured window), then runs the real worker with
a parser that is a dict lookup of those results. Everything else (MQTT read, queue, writers, COPY, state, acks) is
the product's code, so the drain rate shows what ingest would reach if parsing were free — the ceiling of moving
the parser into compiled code.
"""

from __future__ import annotations

import os
import pickle
import sys
import time
from datetime import UTC, datetime


def main() -> int:
    import ingest.consumer as consumer
    from fleetcore.cli import main as fleet
    from ingest.parse import process_message

    with open(os.environ["BENCH_PARSE_FREE_DATA"], "rb") as f:
        data: list[tuple[str, bytes]] = pickle.load(f)
    root = os.environ["FLEET_TOPIC_ROOT"]
    now = datetime.now(UTC)
    parsed = {payload: process_message(root, topic, payload, now=now) for topic, payload in data}
    # all workers connect together once every one has parsed (the bench counts from the last connect)
    base = os.environ["BENCH_PARSE_FREE_DATA"]
    open(f"{base}.ready.{os.getpid()}", "w").close()
    while not os.path.exists(f"{base}.go"):
        time.sleep(0.02)

    def lookup(root: str, topic: str, payload: bytes, *, now: datetime) -> object:
        return parsed[payload]

    base_init = consumer.Consumer.__init__

    def init(self, settings, stop, **kw) -> None:  # noqa: ANN001, ANN003
        base_init(self, settings, stop, parse=lookup, **kw)

    consumer.Consumer.__init__ = init  # type: ignore[method-assign]
    return fleet(["ingest"])


if __name__ == "__main__":
    sys.exit(main())
