"""Batch writer: applies a batch's plan (`ingest.batch.plan_batch`) to PostgreSQL in ONE transaction.

A batch is either fully stored (and then acknowledged to the broker) or not at all (and then redelivered). Samples
are deduplicated by the unique index readings_sample_key (vehicle, time, device, kind, seq), so redelivery never
stores a sample twice: a plain INSERT first, redone with ON CONFLICT DO NOTHING when it meets a duplicate (see
docs/ingest.md). vehicle_state is upserted in the same transaction, or, with `defer_state`, left to
`ingest.state` (the batch hands its staged rows on in `BatchStats.state_rows`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import psycopg

from fleetcore.db import Conn
from fleetcore.logfmt import kv
from fleetcore.protocol.parse import Rejection
from ingest.batch import BatchPlan, BatchStats, Message, device_ids, plan_batch
from ingest.connection import RetryingConnection, short_error
from ingest.metrics import IngestMetrics
from ingest.staging import (
    COPY_QUARANTINE,
    COPY_READINGS,
    COPY_REJECTIONS,
    COPY_STAGE,
    COPY_STAGE_EVENTS,
    COUNTERS_UPSERT,
    INSERT_EVENTS,
    INSERT_READINGS,
    INSERT_READINGS_PLAIN,
    READINGS_TYPES,
    STAGE_COLUMNS,
    STAGE_TYPES,
)
from ingest.vehicle_state import LOCK_STATE, PRESENCE_UPSERT, STATE_UPSERT, STATE_UPSERT_MULTI

log = logging.getLogger(__name__)

# Device → vehicle lookups are cached this long: a re-installed device is attributed to its new vehicle
# (and a newly registered one leaves quarantine) at most this many seconds late.
DEVICE_CACHE_TTL_S = 10.0
# Messages per batch whose lag (commit time − sample time) is observed in the histogram.
LAG_SAMPLES_PER_BATCH = 100
# After a batch met a duplicate, this many following batches take the ON CONFLICT path (a redelivery after a
# restart arrives over several batches); then the plain INSERT is tried again.
DEDUPE_BATCHES = 50
# The device cache is cleared past this many entries: fleets are far smaller; bounds memory against junk ids.
DEVICE_CACHE_MAX = 200_000


class DuplicateInBatch(Exception):
    """The plain INSERT met a sample already stored: the batch is redone with ON CONFLICT DO NOTHING."""


class BatchWriter(RetryingConnection):
    """Writes batches of parsed messages to one database connection, one transaction per batch."""

    def __init__(
        self,
        url: str,
        *,
        metrics: IngestMetrics | None = None,
        cache_ttl_s: float = DEVICE_CACHE_TTL_S,
        defer_state: bool = False,
    ) -> None:
        super().__init__(url, metrics=metrics)
        # True: batches leave vehicle_state alone and hand their rows on (BatchStats.state_rows) to be written
        # later by ingest.state, coalesced over many batches (the ingest worker); False: each batch upserts it.
        self.defer_state = defer_state
        self.cache_ttl_s = cache_ttl_s
        self._devices: dict[str, tuple[int | None, float]] = {}
        # > 0: that many more batches insert readings with ON CONFLICT DO NOTHING (see DEDUPE_BATCHES)
        self._dedupe_batches = 0
        self._readings_types: list[str] = []

    def prepare(self, conn: Conn) -> None:
        if self.defer_state:
            # binary COPY straight into readings needs its exact column types (real, smallint, …)
            types: dict[str, str] = dict(conn.execute(READINGS_TYPES).fetchall())
            self._readings_types = [types[c] for c in STAGE_COLUMNS]

    # -- device registry ----------------------------------------------------------------------------------

    def resolve(self, conn: Conn, devices: set[str]) -> dict[str, int | None]:
        """device_id → vehicle_id of its active install (None when not installed), cached briefly."""
        now = time.monotonic()
        out: dict[str, int | None] = {}
        missing = []
        for d in devices:
            hit = self._devices.get(d)
            if hit is not None and hit[1] > now:
                out[d] = hit[0]
            else:
                missing.append(d)
        if missing:
            rows = conn.execute(
                "SELECT device_id, vehicle_id FROM device_installs WHERE removed_at IS NULL AND device_id = ANY(%s)",
                (missing,),
            ).fetchall()
            found = {r[0]: r[1] for r in rows}
            expires = now + self.cache_ttl_s
            for d in missing:
                v = found.get(d)
                self._devices[d] = (v, expires)
                out[d] = v
            if len(self._devices) > DEVICE_CACHE_MAX:
                self._devices.clear()
        return out

    def forget_devices(self) -> None:
        self._devices.clear()

    # -- one batch ----------------------------------------------------------------------------------------

    def write_tx(
        self,
        conn: Conn,
        messages: Sequence[Message],
        *,
        count_received: bool = True,
        dedupe: bool | None = True,
    ) -> BatchStats:
        """Write one batch inside the caller's transaction (no commit here): look up its devices, plan, apply.

        dedupe=True inserts readings with ON CONFLICT DO NOTHING; None tries a plain INSERT unless a duplicate
        was met lately, and raises DuplicateInBatch (the transaction is then aborted) when one is met.
        """
        ids = device_ids(messages)
        plan = plan_batch(messages, self.resolve(conn, ids) if ids else {})
        return self.apply(conn, plan, count_received=count_received, dedupe=dedupe)

    def apply(self, conn: Conn, plan: BatchPlan, *, count_received: bool, dedupe: bool | None) -> BatchStats:
        """Run the plan's statements inside the caller's transaction; its stats, with what the database counted."""
        st = plan.stats
        stage_rows = plan.stage_rows
        defer_state = self.defer_state
        with conn.cursor() as cur:
            if stage_rows and plan.presence and not defer_state:
                # Both the sample upsert and the presence upsert below lock vehicle_state rows, each in vehicle
                # order; a batch committing concurrently (another writer or worker) could meet the same rows in
                # the other order and deadlock, so the rows of both are locked here first, in one order.
                cur.execute(LOCK_STATE, (plan.state_lock_ids(),))
            if stage_rows and defer_state and not dedupe and self._dedupe_batches <= 0:
                # straight into readings: no staging table, no INSERT … SELECT (~2.5 µs of PostgreSQL per row)
                try:
                    with cur.copy(COPY_READINGS) as copy:
                        copy.set_types(self._readings_types)
                        for row in stage_rows:
                            copy.write_row(row)
                except psycopg.errors.UniqueViolation as exc:
                    raise DuplicateInBatch from exc
                st.readings_stored = len(stage_rows)
                st.state_rows = stage_rows
            elif stage_rows:
                with cur.copy(COPY_STAGE) as copy:
                    copy.set_types(STAGE_TYPES)
                    for row in stage_rows:
                        copy.write_row(row)
                if dedupe or self._dedupe_batches > 0:
                    if not dedupe:
                        self._dedupe_batches -= 1
                    cur.execute(INSERT_READINGS)
                else:
                    # No duplicate seen lately: a plain INSERT (a third cheaper than ON CONFLICT's speculative
                    # insertion); a duplicate makes it fail, and write() redoes the batch with ON CONFLICT.
                    try:
                        cur.execute(INSERT_READINGS_PLAIN)
                    except psycopg.errors.UniqueViolation as exc:
                        raise DuplicateInBatch from exc
                st.readings_stored = cur.rowcount
                st.duplicates += len(stage_rows) - cur.rowcount
                if defer_state:
                    st.state_rows = stage_rows  # duplicates included: a redelivery must rebuild the state
                else:
                    multi = plan.multi_sample_vehicles()
                    if multi is not None:
                        cur.execute(STATE_UPSERT_MULTI, {"multi": multi})
                    else:
                        cur.execute(STATE_UPSERT)
            if plan.events:
                with cur.copy(COPY_STAGE_EVENTS) as copy:
                    for ev in plan.events:
                        copy.write_row(ev)
                cur.execute(INSERT_EVENTS)
                st.events_stored = cur.rowcount
                st.duplicates += len(plan.events) - cur.rowcount
            if plan.presence:
                cur.execute(PRESENCE_UPSERT, plan.presence_params())
            if plan.rejections:
                with cur.copy(COPY_REJECTIONS) as copy:
                    for rej in plan.rejections:
                        copy.write_row(rej)
            if plan.quarantine:
                with cur.copy(COPY_QUARANTINE) as copy:
                    for q in plan.quarantine:
                        copy.write_row(q)
            counters = st.counters(count_received)
            if counters:
                names = sorted(counters)  # fixed lock order across workers
                cur.execute(COUNTERS_UPSERT, (names, [counters[n] for n in names]))
        return st

    def write(self, messages: Sequence[Message], *, count_received: bool = True) -> BatchStats:
        """Write and commit one batch; raises on failure (the transaction is rolled back)."""

        def tx(conn: Conn) -> BatchStats:
            try:
                return self.write_tx(conn, messages, count_received=count_received, dedupe=None)
            except DuplicateInBatch:
                conn.rollback()
                self._dedupe_batches = DEDUPE_BATCHES
                return self.write_tx(conn, messages, count_received=count_received)

        return self.in_transaction(tx)

    def commit(
        self,
        messages: Sequence[Message],
        stop: threading.Event,
        *,
        on_retry: Callable[[int, BaseException], None] | None = None,
    ) -> BatchStats | None:
        """Write one batch until it is committed; None only when `stop` is set while the database is down.

        Connection problems are retried with exponential backoff, holding the batch. A batch the database
        refuses for its content is split: each message is written on its own, and one that still fails is
        kept as a rejection (reason write_error), so one bad message never blocks the stream.
        """
        try:
            done = self.retrying(lambda: self.write(messages), stop, on_retry)
        except Exception as exc:
            kv(log, logging.ERROR, "batch_refused", messages=len(messages), error=short_error(exc))
            if len(messages) == 1:
                t0 = time.perf_counter()
                st = self._write_refused(messages[0], exc)
                self._observe(messages, st, time.perf_counter() - t0)
                return st
            st = BatchStats()
            for m in messages:
                one = self.commit([m], stop, on_retry=on_retry)
                if one is None:
                    return None
                st.merge(one)
            return st  # each message was observed by its own commit
        if done is None:
            return None
        st, seconds = done
        self._observe(messages, st, seconds)
        return st

    def _write_refused(self, m: Message, exc: BaseException) -> BatchStats:
        """Keep a message the database refused as a rejection (its own transaction)."""
        device = getattr(m.result, "device_id", None)
        rej = Rejection(device, "write_error", short_error(exc))
        return self.write([Message(m.topic, m.payload, m.received_at, rej)])

    def _observe(self, messages: Sequence[Message], st: BatchStats, seconds: float) -> None:
        mt = self.metrics
        if mt is None:
            return
        mt.commit_seconds.observe(seconds)
        mt.batch_size.observe(len(messages))
        for kind, n in st.kinds.items():
            mt.messages.labels(kind).inc(n)
        for reason, n in st.reasons.items():
            mt.rejections.labels(reason).inc(n)
        if st.readings_stored:
            mt.rows.labels("readings").inc(st.readings_stored)
        if st.events_stored:
            mt.rows.labels("device_events").inc(st.events_stored)
        if st.rejected or st.elements_rejected:
            mt.rows.labels("ingest_rejections").inc(st.rejected + st.elements_rejected)
        if st.quarantined:
            mt.rows.labels("ingest_quarantine").inc(st.quarantined)
        if st.duplicates:
            mt.duplicates.inc(st.duplicates)
        now = datetime.now(UTC)
        lag = mt.lag_seconds
        # A histogram observation costs a few µs under a lock; a spread sample of each batch is as good for
        # quantiles and keeps the metric off the hot path.
        for m in messages[:: max(1, len(messages) // LAG_SAMPLES_PER_BATCH)]:
            readings = getattr(m.result, "readings", None)
            if readings:
                lag.observe((now - readings[-1][0]).total_seconds())
