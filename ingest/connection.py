"""One database connection of an ingest writer thread: opened with its staging tables when needed, and a retry
loop that holds the work while the database is away. The batch writer and the state flusher each own one."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg

from fleetcore.db import Conn
from fleetcore.logfmt import kv
from ingest.metrics import IngestMetrics
from ingest.staging import ensure_staging

log = logging.getLogger(__name__)

T = TypeVar("T")

# Reconnect backoff while the database is unreachable: 0.5 s doubling up to 10 s.
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 10.0


def is_transient(exc: BaseException, conn: Conn | None) -> bool:
    """True when retrying the same work can succeed (connection lost, server restarting, deadlock)."""
    if conn is None or conn.closed or conn.broken:
        return True
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def short_error(exc: BaseException) -> str:
    """The exception's type and first line, for a log field or a rejection detail (at most 300 characters)."""
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:300]


class RetryingConnection:
    """A connection (autocommit off) reopened when lost, and `retrying` to run work on it until it succeeds."""

    def __init__(self, url: str, *, metrics: IngestMetrics | None = None) -> None:
        self.url = url
        self.metrics = metrics
        self.conn: Conn | None = None

    def connect(self) -> Conn:
        """The open connection, opened (with its staging tables) when needed."""
        if self.conn is None or self.conn.closed or self.conn.broken:
            self.close()
            conn = psycopg.connect(
                self.url, autocommit=False, connect_timeout=5, application_name="fleet-ingest"
            )
            ensure_staging(conn)
            self.prepare(conn)
            conn.commit()
            self.conn = conn
        return self.conn

    def prepare(self, conn: Conn) -> None:
        """What a subclass reads once per new connection (inside its first transaction)."""

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None

    def in_transaction(self, fn: Callable[[Conn], T]) -> T:
        """fn(conn) in one transaction, committed; rolled back when it raises."""
        conn = self.connect()
        try:
            result = fn(conn)
            conn.commit()
            return result
        except BaseException:
            with contextlib.suppress(Exception):
                conn.rollback()
            raise

    def retrying(
        self,
        fn: Callable[[], T],
        stop: threading.Event,
        on_retry: Callable[[int, BaseException], None] | None = None,
    ) -> tuple[T, float] | None:
        """fn() and the seconds its successful attempt took, retried with backoff while the database is away.

        None only when `stop` is set while the database is down; an error retrying cannot cure is raised.
        """
        attempt = 0
        delay = BACKOFF_START_S
        while True:
            t0 = time.perf_counter()
            try:
                result = fn()
            except Exception as exc:
                if not is_transient(exc, self.conn):
                    raise
                attempt += 1
                if self.metrics:
                    self.metrics.db_errors.inc()
                kv(
                    log,
                    logging.WARNING,
                    "db_unavailable",
                    attempt=attempt,
                    retry_in_s=delay,
                    error=short_error(exc),
                )
                if on_retry:
                    on_retry(attempt, exc)
                stale = self.conn is not None and (self.conn.closed or self.conn.broken)
                if stale:
                    self.close()
                if stale and attempt == 1:
                    # the connection died while idle (a database restart): try a fresh one at once, even when
                    # stopping, so a final flush after the database came back is not given up
                    continue
                if stop.wait(delay):
                    return None
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            if attempt:
                kv(log, logging.INFO, "db_recovered", attempts=attempt)
            return result, time.perf_counter() - t0
