"""Batch writer: parsed messages → readings, events, vehicle state, rejections, quarantine and counters.

Everything one batch produces is written in ONE transaction, so a batch is either fully stored (and then
acknowledged to the broker) or not at all (and then redelivered). Samples are deduplicated by the unique
index readings_sample_key (vehicle, time, device, kind, seq), so redelivery never stores a sample twice: a plain
INSERT first, redone with ON CONFLICT DO NOTHING when it meets a duplicate (see docs/ingest.md).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

import psycopg
from psycopg import sql

from fleetcore.contract import READING_COLUMNS
from fleetcore.db import Conn
from fleetcore.protocol.parse import Parsed
from ingest.metrics import IngestMetrics, kv

if TYPE_CHECKING:
    from ingest.state import PendingState

log = logging.getLogger(__name__)

T = TypeVar("T")

# Device → vehicle lookups are cached this long: a re-installed device is attributed to its new vehicle
# (and a newly registered one leaves quarantine) at most this many seconds late.
DEVICE_CACHE_TTL_S = 10.0
# Reconnect backoff while the database is unreachable: 0.5 s doubling up to 10 s.
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 10.0
# Messages per batch whose lag (commit time − sample time) is observed in the histogram.
LAG_SAMPLES_PER_BATCH = 100

# Staging table: READING_COLUMNS + vehicle_id + received_at. Numeric columns are float8 whatever their final
# type, so an int where a float is expected (JSON `"speed_kmh": 50`) still COPYs; INSERT ... SELECT casts.
_STAGE_TYPES = {
    "ts": "timestamptz",
    "device_id": "text",
    "kind": "text",
    "seq": "int8",
    "ignition": "bool",
    "dtc": "text[]",
}
STAGE_COLUMNS = (*READING_COLUMNS, "vehicle_id", "received_at")
STAGE_TYPES = [_STAGE_TYPES.get(c, "float8") for c in READING_COLUMNS] + ["int8", "timestamptz"]

# Fields of vehicle_state taken from the newest sample that carries them (NMEA has no engine data, OBD no position).
STATE_FIELDS = (
    "lat",
    "lon",
    "speed_kmh",
    "heading_deg",
    "alt_m",
    "odometer_km",
    "engine_hours",
    "rpm",
    "coolant_c",
    "engine_load_pct",
    "fuel_pct",
    "battery_v",
    "ignition",
)

# Counter names in ingest_counters (rows are upserted, so names added later need no migration).
C_RECEIVED = "messages_received"
C_REJECTED = "messages_rejected"
C_ELEMENTS_REJECTED = "samples_rejected"
C_QUARANTINED = "messages_quarantined"
C_READINGS = "readings_stored"
C_EVENTS = "events_stored"
C_DUPLICATES = "duplicates_skipped"
C_REPLAYED = "quarantine_replayed"
# Messages whose batch's samples a coalesced state flush applied (ingest.state); with the state deferred, a
# message is acknowledged after this count includes it.
C_STATE_APPLIED = "messages_state_applied"


@dataclass(slots=True)
class Message:
    """One MQTT message as received: raw topic and payload, arrival time, and what the pure parser made of it."""

    topic: str
    payload: bytes
    received_at: datetime
    result: object  # fleetcore.protocol.parse.Parsed | fleetcore.protocol.parse.Rejection


@dataclass
class BatchStats:
    """What one committed batch did."""

    messages: int = 0
    readings_staged: int = 0
    readings_stored: int = 0
    events_stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    elements_rejected: int = 0
    quarantined: int = 0
    reasons: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)
    # Per message: stored | rejected:<reason> | quarantined (replay records it).
    outcomes: list[str] = field(default_factory=list)
    # With the state deferred (BatchWriter(defer_state=True)): the staged reading rows, for ingest.state.
    state_rows: list[tuple] = field(default_factory=list)

    def counters(self, count_received: bool) -> dict[str, int]:
        c = {
            C_REJECTED: self.rejected,
            C_ELEMENTS_REJECTED: self.elements_rejected,
            C_QUARANTINED: self.quarantined,
            C_READINGS: self.readings_stored,
            C_EVENTS: self.events_stored,
            C_DUPLICATES: self.duplicates,
        }
        if count_received:
            c[C_RECEIVED] = self.messages
        return {k: v for k, v in c.items() if v}


def _is_rejection(result: object) -> bool:
    return type(result) is not Parsed


_CREATE_STAGE = sql.SQL(
    "CREATE TEMP TABLE IF NOT EXISTS ingest_stage_readings ({cols}) ON COMMIT DELETE ROWS"
).format(
    cols=sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t))
        for c, t in zip(STAGE_COLUMNS, STAGE_TYPES, strict=True)
    )
)
_CREATE_STAGE_EVENTS = (
    "CREATE TEMP TABLE IF NOT EXISTS ingest_stage_events (ts timestamptz, device_id text, vehicle_id int8, "
    "seq int8, type text, data text, received_at timestamptz) ON COMMIT DELETE ROWS"
)
_STAGE_COLS = sql.SQL(", ").join(map(sql.Identifier, STAGE_COLUMNS))
_COPY_STAGE = (
    sql.SQL("COPY ingest_stage_readings ({}) FROM STDIN (FORMAT BINARY)").format(_STAGE_COLS).as_string()
)
_INSERT_READINGS_PLAIN = (
    sql.SQL("INSERT INTO readings ({cols}) SELECT {cols} FROM ingest_stage_readings")
    .format(cols=_STAGE_COLS)
    .as_string()
)
_INSERT_READINGS = _INSERT_READINGS_PLAIN + " ON CONFLICT DO NOTHING"
_READINGS_TYPES = (
    "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
    "WHERE attrelid = 'readings'::regclass AND attnum > 0 AND NOT attisdropped"
)
# With the state deferred (no state upsert to feed from the staging table) and no duplicate seen lately: rows go
# straight into the hypertable; a duplicate makes it fail like the plain INSERT, and the batch is redone staged.
_COPY_READINGS = sql.SQL("COPY readings ({}) FROM STDIN (FORMAT BINARY)").format(_STAGE_COLS).as_string()
# After a batch met a duplicate, this many following batches take the ON CONFLICT path (a redelivery after a
# restart arrives over several batches); then the plain INSERT is tried again.
DEDUPE_BATCHES = 50
_INSERT_EVENTS = (
    "INSERT INTO device_events (ts, device_id, vehicle_id, seq, type, data, received_at) "
    "SELECT ts, device_id, vehicle_id, seq, type, data::jsonb, received_at FROM ingest_stage_events "
    "ON CONFLICT DO NOTHING"
)


def _state_upsert(*, multi: bool) -> sql.Composed:
    """Upsert vehicle_state from the staged samples, by sample time: a sample older than the state never wins.

    A vehicle with one staged sample (the usual case: a batch holds one sample per vehicle unless a device
    uploads a buffer or a backlog drains) takes that sample's values directly; the ON CONFLICT clause decides by
    sample time whether they replace the state. Only vehicles with several samples (their ids are the
    statement's parameter, counted by the writer, so no window function is needed) go through per-field
    "newest non-null" aggregates over the samples newer than the state. Both branches produce the same values
    for a single sample. `multi=False` renders the statement without the aggregate branch.

    Per sample on the 2-core dev box (2,000-sample batches, 2,000 vehicles): 13.5 µs with a window function and
    a join for every vehicle, 6.8 µs with this split (bench/results.md has the end-to-end effect).
    """
    newer = sql.SQL("(cur.ts IS NULL OR s.ts >= cur.ts)")
    picks = [
        sql.SQL(
            "(array_agg(s.{f} ORDER BY s.ts DESC) FILTER (WHERE s.{f} IS NOT NULL AND {newer}))[1]"
        ).format(f=sql.Identifier(f), newer=newer)
        for f in STATE_FIELDS
    ]
    # dtc arrays of different lengths cannot be array_agg'ed into one 2-D array, so go through a string.
    dtc_pick = sql.SQL(
        "string_to_array((array_agg(array_to_string(s.dtc, ',') ORDER BY s.ts DESC) "
        "FILTER (WHERE s.dtc IS NOT NULL AND {newer}))[1], ',')"
    ).format(newer=newer)
    cols = sql.SQL(", ").join(map(sql.Identifier, STATE_FIELDS))
    # the same string round trip as the aggregate branch, so both give identical arrays
    single = sql.SQL(
        "SELECT s.vehicle_id, s.device_id, s.ts, {cols}, string_to_array(array_to_string(s.dtc, ','), ','), "
        "s.received_at, now() FROM ingest_stage_readings s"
    ).format(cols=sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(f)) for f in STATE_FIELDS))
    newer_than_state = sql.SQL("EXCLUDED.ts IS NOT NULL AND (vs.ts IS NULL OR vs.ts <= EXCLUDED.ts)")
    sets = [
        sql.SQL("{f} = CASE WHEN {cond} THEN COALESCE(EXCLUDED.{f}, vs.{f}) ELSE vs.{f} END").format(
            f=sql.Identifier(f), cond=newer_than_state
        )
        for f in (*STATE_FIELDS, "dtc")
    ]
    if multi:
        source = sql.SQL(
            "SELECT * FROM ("
            "{single} WHERE NOT EXISTS (SELECT FROM unnest(%(multi)s::int8[]) AS m(id) WHERE m.id = s.vehicle_id) "
            "UNION ALL "
            "SELECT s.vehicle_id, (array_agg(s.device_id ORDER BY s.received_at DESC))[1], "
            "max(s.ts) FILTER (WHERE {newer}), {picks}, {dtc}, max(s.received_at), now() "
            "FROM ingest_stage_readings s LEFT JOIN vehicle_state cur ON cur.vehicle_id = s.vehicle_id "
            "WHERE EXISTS (SELECT FROM unnest(%(multi)s::int8[]) AS m(id) WHERE m.id = s.vehicle_id) "
            "GROUP BY s.vehicle_id"
            ") AS u ORDER BY 1"
        ).format(single=single, newer=newer, picks=sql.SQL(", ").join(picks), dtc=dtc_pick)
    else:
        source = sql.SQL("{single} ORDER BY 1").format(single=single)
    # ORDER BY 1: a fixed lock order, so two workers never deadlock here
    return sql.SQL(
        "INSERT INTO vehicle_state AS vs (vehicle_id, device_id, ts, {cols}, dtc, last_seen, updated_at) "
        "{source} "
        "ON CONFLICT (vehicle_id) DO UPDATE SET {sets}, ts = GREATEST(vs.ts, EXCLUDED.ts), "
        "device_id = EXCLUDED.device_id, last_seen = GREATEST(vs.last_seen, EXCLUDED.last_seen), updated_at = now()"
    ).format(cols=cols, source=source, sets=sql.SQL(", ").join(sets))


# Rendered once: composing SQL objects on every batch was a measurable share of the writer's CPU.
_STATE_UPSERT = _state_upsert(multi=False).as_string()
_STATE_UPSERT_MULTI = _state_upsert(multi=True).as_string()

# Status and events: online flag (latest status message by arrival; status messages carry no sample time)
# and last_seen. A replayed, older status never overrides a newer one.
_PRESENCE_UPSERT = """
INSERT INTO vehicle_state AS vs (vehicle_id, device_id, online, online_changed_at, last_seen)
SELECT v, d, coalesce(o, false), CASE WHEN o IS NULL THEN NULL ELSE oat END, seen
FROM unnest(%s::bigint[], %s::text[], %s::boolean[], %s::timestamptz[], %s::timestamptz[]) AS u(v, d, o, oat, seen)
ORDER BY v
ON CONFLICT (vehicle_id) DO UPDATE SET
    online = CASE WHEN {newer} THEN EXCLUDED.online ELSE vs.online END,
    online_changed_at = CASE WHEN {newer} AND EXCLUDED.online IS DISTINCT FROM vs.online
                             THEN EXCLUDED.online_changed_at ELSE vs.online_changed_at END,
    last_seen = GREATEST(vs.last_seen, EXCLUDED.last_seen),
    updated_at = now()
""".replace(
    "{newer}",
    "(EXCLUDED.online_changed_at IS NOT NULL AND "
    "(vs.online_changed_at IS NULL OR EXCLUDED.online_changed_at >= vs.online_changed_at))",
)

_LOCK_STATE = "SELECT 1 FROM vehicle_state WHERE vehicle_id = ANY(%s) ORDER BY vehicle_id FOR UPDATE"

_COUNTERS_UPSERT = (
    "INSERT INTO ingest_counters (name, value) SELECT * FROM unnest(%s::text[], %s::bigint[]) "
    "ON CONFLICT (name) DO UPDATE SET value = ingest_counters.value + EXCLUDED.value"
)


def _transient(exc: BaseException, conn: Conn | None) -> bool:
    """True when retrying the same batch can succeed (connection lost, server restarting, deadlock)."""
    if conn is None or conn.closed or conn.broken:
        return True
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


class BatchWriter:
    """Writes batches of parsed messages to one database connection, one transaction per batch."""

    def __init__(
        self,
        url: str,
        *,
        metrics: IngestMetrics | None = None,
        cache_ttl_s: float = DEVICE_CACHE_TTL_S,
        defer_state: bool = False,
    ) -> None:
        self.url = url
        # True: batches leave vehicle_state alone and hand their rows on (BatchStats.state_rows) to be written
        # later by ingest.state, coalesced over many batches (the ingest worker); False: each batch upserts it.
        self.defer_state = defer_state
        self.metrics = metrics
        self.cache_ttl_s = cache_ttl_s
        self.conn: Conn | None = None
        self._devices: dict[str, tuple[int | None, float]] = {}
        # > 0: that many more batches insert readings with ON CONFLICT DO NOTHING (see DEDUPE_BATCHES)
        self._dedupe_batches = 0
        self._readings_types: list[str] = []

    # -- connection ---------------------------------------------------------------------------------------

    def connect(self) -> Conn:
        """The open connection, opened (with its staging tables) when needed."""
        if self.conn is None or self.conn.closed or self.conn.broken:
            self.close()
            conn = psycopg.connect(
                self.url, autocommit=False, connect_timeout=5, application_name="fleet-ingest"
            )
            ensure_staging(conn)
            if self.defer_state:
                # binary COPY straight into readings needs its exact column types (real, smallint, …)
                types: dict[str, str] = dict(conn.execute(_READINGS_TYPES).fetchall())
                self._readings_types = [types[c] for c in STAGE_COLUMNS]
            conn.commit()
            self.conn = conn
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None

    # -- device registry ----------------------------------------------------------------------------------

    def resolve(self, conn: Conn, device_ids: set[str]) -> dict[str, int | None]:
        """device_id → vehicle_id of its active install (None when not installed), cached briefly."""
        now = time.monotonic()
        out: dict[str, int | None] = {}
        missing = []
        for d in device_ids:
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
            if len(self._devices) > 200_000:  # fleets are far smaller; bounds memory against junk device ids
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
        """Write one batch inside the caller's transaction (no commit here).

        dedupe=True inserts readings with ON CONFLICT DO NOTHING; None tries a plain INSERT unless a duplicate
        was met lately, and raises _DuplicateInBatch (the transaction is then aborted) when one is met.
        """
        st = BatchStats(messages=len(messages))
        ids = set()
        for m in messages:
            r = m.result
            if not _is_rejection(r):
                ids.add(r.device_id)  # type: ignore[attr-defined]
        vehicles = self.resolve(conn, ids) if ids else {}

        stage_rows: list[tuple] = []
        events: list[tuple] = []
        rejections: list[tuple] = []
        quarantine: list[tuple] = []
        presence: dict[int, list] = {}  # vehicle → [device, online, online_at, last_seen]
        samples_per_vehicle: dict[int, int] = {}
        for m in messages:
            r = m.result
            if _is_rejection(r):
                st.rejected += 1
                st.reasons[r.reason] += 1  # type: ignore[attr-defined]
                st.kinds["rejected"] += 1
                rejections.append((m.received_at, m.topic, r.device_id, m.payload, r.reason, r.detail))  # type: ignore[attr-defined]
                st.outcomes.append(f"rejected:{r.reason}")  # type: ignore[attr-defined]
                continue
            st.kinds[r.kind] += 1  # type: ignore[attr-defined]
            vid = vehicles.get(r.device_id)  # type: ignore[attr-defined]
            if vid is None:
                st.quarantined += 1
                quarantine.append((m.received_at, m.topic, r.device_id, m.payload))  # type: ignore[attr-defined]
                st.outcomes.append("quarantined")
                continue
            st.outcomes.append("stored")
            extra = (vid, m.received_at)
            readings = r.readings  # type: ignore[attr-defined]
            if readings:
                samples_per_vehicle[vid] = samples_per_vehicle.get(vid, 0) + len(readings)
                for row in readings:
                    stage_rows.append(row + extra)
            for ev in r.events:  # type: ignore[attr-defined]
                events.append(
                    (
                        ev.ts,
                        r.device_id,  # type: ignore[attr-defined]
                        vid,
                        ev.seq,
                        ev.type,
                        json.dumps(ev.data, default=str),
                        m.received_at,
                    )
                )
            for rej in r.rejections:  # type: ignore[attr-defined]
                st.elements_rejected += 1
                st.reasons[rej.reason] += 1
                rejections.append((m.received_at, m.topic, r.device_id, m.payload, rej.reason, rej.detail))  # type: ignore[attr-defined]
            status = getattr(r, "status", None)
            if r.events or status is not None:  # type: ignore[attr-defined]
                p = presence.get(vid)
                if p is None:
                    p = presence[vid] = [r.device_id, None, None, m.received_at]  # type: ignore[attr-defined]
                p[3] = max(p[3], m.received_at)
                if status is not None and (p[2] is None or m.received_at >= p[2]):
                    p[1] = status == "online"
                    p[2] = m.received_at

        with conn.cursor() as cur:
            defer_state = self.defer_state
            if stage_rows and presence and not defer_state:
                # Both the sample upsert and the presence upsert below lock vehicle_state rows, each in vehicle
                # order; a batch committing concurrently (another writer or worker) could meet the same rows in
                # the other order and deadlock, so the rows of both are locked here first, in one order.
                cur.execute(_LOCK_STATE, (sorted(samples_per_vehicle.keys() | presence.keys()),))
            if stage_rows:
                st.readings_staged = len(stage_rows)
            if stage_rows and defer_state and not dedupe and self._dedupe_batches <= 0:
                # straight into readings: no staging table, no INSERT … SELECT (~2.5 µs of PostgreSQL per row)
                try:
                    with cur.copy(_COPY_READINGS) as copy:
                        copy.set_types(self._readings_types)
                        for row in stage_rows:
                            copy.write_row(row)
                except psycopg.errors.UniqueViolation as exc:
                    raise _DuplicateInBatch from exc
                st.readings_stored = len(stage_rows)
                st.state_rows = stage_rows
            elif stage_rows:
                with cur.copy(_COPY_STAGE) as copy:
                    copy.set_types(STAGE_TYPES)
                    for row in stage_rows:
                        copy.write_row(row)
                if dedupe or self._dedupe_batches > 0:
                    if not dedupe:
                        self._dedupe_batches -= 1
                    cur.execute(_INSERT_READINGS)
                else:
                    # No duplicate seen lately: a plain INSERT (a third cheaper than ON CONFLICT's speculative
                    # insertion); a duplicate makes it fail, and write() redoes the batch with ON CONFLICT.
                    try:
                        cur.execute(_INSERT_READINGS_PLAIN)
                    except psycopg.errors.UniqueViolation as exc:
                        raise _DuplicateInBatch from exc
                st.readings_stored = cur.rowcount
                st.duplicates += len(stage_rows) - cur.rowcount
                if defer_state:
                    st.state_rows = stage_rows  # duplicates included: a redelivery must rebuild the state
                elif len(samples_per_vehicle) < len(stage_rows):
                    multi = [v for v, n in samples_per_vehicle.items() if n > 1]
                    cur.execute(_STATE_UPSERT_MULTI, {"multi": multi})
                else:
                    cur.execute(_STATE_UPSERT)
            if events:
                with cur.copy(
                    "COPY ingest_stage_events (ts, device_id, vehicle_id, seq, type, data, received_at) FROM STDIN"
                ) as copy:
                    for ev in events:
                        copy.write_row(ev)
                cur.execute(_INSERT_EVENTS)
                st.events_stored = cur.rowcount
                st.duplicates += len(events) - cur.rowcount
            if presence:
                vids = sorted(presence)
                cur.execute(
                    _PRESENCE_UPSERT,
                    (
                        vids,
                        [presence[v][0] for v in vids],
                        [presence[v][1] for v in vids],
                        [presence[v][2] for v in vids],
                        [presence[v][3] for v in vids],
                    ),
                )
            if rejections:
                with cur.copy(
                    "COPY ingest_rejections (received_at, topic, device_id, payload, reason, detail) FROM STDIN"
                ) as copy:
                    for rej in rejections:
                        copy.write_row(rej)
            if quarantine:
                with cur.copy(
                    "COPY ingest_quarantine (received_at, topic, device_id, payload) FROM STDIN"
                ) as copy:
                    for q in quarantine:
                        copy.write_row(q)
            counters = st.counters(count_received)
            if counters:
                names = sorted(counters)  # fixed lock order across workers
                cur.execute(_COUNTERS_UPSERT, (names, [counters[n] for n in names]))
        return st

    def write(self, messages: Sequence[Message], *, count_received: bool = True) -> BatchStats:
        """Write and commit one batch; raises on failure (the transaction is rolled back)."""
        conn = self.connect()
        try:
            try:
                st = self.write_tx(conn, messages, count_received=count_received, dedupe=None)
            except _DuplicateInBatch:
                conn.rollback()
                self._dedupe_batches = DEDUPE_BATCHES
                st = self.write_tx(conn, messages, count_received=count_received)
            conn.commit()
            return st
        except BaseException:
            with contextlib.suppress(Exception):
                conn.rollback()
            raise

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
            done = self._retrying(lambda: self.write(messages), stop, on_retry)
        except Exception as exc:
            kv(log, logging.ERROR, "batch_refused", messages=len(messages), error=_short(exc))
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
                _merge(st, one)
            return st  # each message was observed by its own commit
        if done is None:
            return None
        st, seconds = done
        self._observe(messages, st, seconds)
        return st

    def _retrying(
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
                if not _transient(exc, self.conn):
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
                    error=_short(exc),
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

    def commit_state(self, pending: PendingState, stop: threading.Event) -> int | None:
        """Write coalesced state (ingest.state) until committed; the rows written, None when stopped while down.

        Connection problems are retried with backoff. State the database refuses for its content (no known
        cause: the readings holding the same values were committed) is written vehicle by vehicle, and a vehicle
        that still fails is logged and skipped: its readings are stored, its state waits for its next sample.
        """
        from ingest.state import write_state

        def attempt(p: PendingState) -> int:
            conn = self.connect()
            try:
                n = write_state(conn, p)
                conn.commit()
                return n
            except BaseException:
                with contextlib.suppress(Exception):
                    conn.rollback()
                raise

        try:
            done = self._retrying(lambda: attempt(pending), stop)
        except Exception as exc:
            kv(log, logging.ERROR, "state_refused", vehicles=len(pending), error=_short(exc))
            written = 0
            for one in pending.split():
                try:
                    d = self._retrying(lambda one=one: attempt(one), stop)  # type: ignore[misc]
                except Exception as exc1:
                    kv(
                        log,
                        logging.ERROR,
                        "state_skipped",
                        vehicle=next(iter(one.vehicles)),
                        error=_short(exc1),
                    )
                    continue
                if d is None:
                    return None
                written += d[0]
            return written
        if done is None:
            return None
        written, seconds = done
        if self.metrics:
            self.metrics.state_seconds.observe(seconds)
            self.metrics.state_messages.observe(pending.messages)
            self.metrics.rows.labels("vehicle_state").inc(written)
        return written

    def _write_refused(self, m: Message, exc: BaseException) -> BatchStats:
        """Keep a message the database refused as a rejection (its own transaction)."""
        device = getattr(m.result, "device_id", None)
        rej = _Rejection(device, "write_error", _short(exc))
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


class _DuplicateInBatch(Exception):
    """The plain INSERT met a sample already stored: the batch is redone with ON CONFLICT DO NOTHING."""


@dataclass(slots=True, frozen=True)
class _Rejection:
    device_id: str | None
    reason: str
    detail: str


def _merge(into: BatchStats, one: BatchStats) -> None:
    for f in (
        "messages",
        "readings_staged",
        "readings_stored",
        "events_stored",
        "duplicates",
        "rejected",
        "elements_rejected",
        "quarantined",
    ):
        setattr(into, f, getattr(into, f) + getattr(one, f))
    into.reasons.update(one.reasons)
    into.kinds.update(one.kinds)
    into.outcomes.extend(one.outcomes)
    into.state_rows.extend(one.state_rows)


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:300]


def ensure_staging(conn: Conn) -> None:
    """Create this connection's staging tables (temporary, emptied at every commit)."""
    from ingest.state import CREATE_STAGE_STATE

    conn.execute(_CREATE_STAGE)
    conn.execute(_CREATE_STAGE_EVENTS)
    conn.execute(CREATE_STAGE_STATE)


def read_counters(conn: Conn) -> dict[str, int]:
    """All ingest counters as a dict."""
    rows = conn.execute("SELECT name, value FROM ingest_counters").fetchall()
    return {
        (r["name"] if isinstance(r, dict) else r[0]): (r["value"] if isinstance(r, dict) else r[1])
        for r in rows
    }
