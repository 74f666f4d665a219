"""Coalesced vehicle state (opt-in, `FLEET_INGEST_STATE_FLUSH_MS` > 0): many committed batches' samples → one
vehicle_state update per vehicle.

Updating the wide vehicle_state row costs PostgreSQL several µs per sample in a drain (docs/ingest.md). In this
mode the worker commits a batch's readings without touching the state, folds
the batch's samples into a `PendingState` (in memory, per vehicle and per field, by sample time) and writes the
state once per flush: when `FLEET_INGEST_STATE_FLUSH_MS` passed or enough messages are waiting. Each message is
acknowledged to the broker only after the flush holding its samples has committed, so the guarantee stays
"acknowledged = stored, state included": after a crash the broker redelivers every message whose state was not
written, storage dedupes the readings, and the state is rebuilt from the redelivered samples.

The result is the one the per-batch upsert (`ingest.vehicle_state.state_upsert`, which renders the statements of
both paths) gives for the same samples: a field takes the value of the newest sample (by sample time) that
carries it, among samples not older than the state's sample time; a sample older than the state changes nothing;
device_id is the last arrival's, last_seen the latest arrival time.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from fleetcore.contract import READING_COLUMNS
from fleetcore.db import Conn
from fleetcore.logfmt import kv
from ingest.batch import C_STATE_APPLIED
from ingest.connection import RetryingConnection, short_error
from ingest.staging import COUNTERS_UPSERT, STAGE_RECEIVED, STAGE_VEHICLE
from ingest.vehicle_state import (
    COPY_STATE,
    LOCK_READ_STATE,
    STATE_AHEAD_TOLERANCE_S,
    STATE_FIELDS,
    STATE_STAGE_TYPES,
    STATE_UPSERT_COALESCED,
)

log = logging.getLogger(__name__)

# Fields kept per vehicle, with the index of each in a staged reading row (READING_COLUMNS + vehicle, arrival).
FIELDS = (*STATE_FIELDS, "dtc")
_IDX = tuple(READING_COLUMNS.index(f) for f in FIELDS)
_AHEAD = timedelta(seconds=STATE_AHEAD_TOLERANCE_S)


class VehiclePending:
    """One vehicle's not yet written state: `ts` the newest sample time, `device_id`/`arrived` of the latest
    arrival, `values[k]`/`times[k]` the newest non-null value of FIELDS[k] and its sample time, `oldest` a lower
    bound of those times."""

    __slots__ = ("ts", "device_id", "arrived", "values", "times", "oldest")

    def __init__(
        self,
        ts: datetime | None,
        device_id: str,
        arrived: datetime,
        values: list,
        times: list[datetime | None],
    ) -> None:
        self.ts = ts
        self.device_id = device_id
        self.arrived = arrived
        self.values = values
        self.times = times
        self.oldest = ts


class PendingState:
    """The not yet written state of each vehicle: per field the newest value and its sample time."""

    __slots__ = ("vehicles", "messages")

    def __init__(self) -> None:
        self.vehicles: dict[int, VehiclePending] = {}
        self.messages = 0

    def __len__(self) -> int:
        return len(self.vehicles)

    def add(self, rows: list[tuple]) -> None:
        """Fold staged reading rows (READING_COLUMNS + vehicle_id + received_at), in any order."""
        vehicles = self.vehicles
        idx = _IDX
        for row in rows:
            ts = row[0]
            vid = row[STAGE_VEHICLE]
            p = vehicles.get(vid)
            if ts > row[STAGE_RECEIVED] + _AHEAD:
                # stamped ahead of its arrival: counts for device_id and last_seen only (as in the SQL upsert)
                if p is None:
                    vehicles[vid] = VehiclePending(
                        None, row[1], row[STAGE_RECEIVED], [None] * len(idx), [None] * len(idx)
                    )
                elif row[STAGE_RECEIVED] >= p.arrived:
                    p.device_id = row[1]
                    p.arrived = row[STAGE_RECEIVED]
                continue
            if p is not None and p.ts is None:  # only ahead-of-arrival samples so far
                p.ts = p.oldest = ts
            if p is None:
                vals = [row[i] for i in idx]
                vehicles[vid] = VehiclePending(
                    ts, row[1], row[STAGE_RECEIVED], vals, [None if v is None else ts for v in vals]
                )
                continue
            if row[STAGE_RECEIVED] >= p.arrived:
                p.device_id = row[1]
                p.arrived = row[STAGE_RECEIVED]
            vals = p.values
            times = p.times
            if ts >= p.ts:
                # the common case: samples arrive in time order, so every value they carry is the newest
                p.ts = ts
                for k, i in enumerate(idx):
                    v = row[i]
                    if v is not None:
                        vals[k] = v
                        times[k] = ts
            else:
                if ts < p.oldest:
                    p.oldest = ts
                for k, i in enumerate(idx):
                    v = row[i]
                    if v is not None:
                        t = times[k]
                        if t is None or ts >= t:
                            vals[k] = v
                            times[k] = ts

    def split(self) -> list[PendingState]:
        """One PendingState per vehicle (to write them one by one)."""
        out = []
        for vid, p in self.vehicles.items():
            one = PendingState()
            one.vehicles[vid] = p
            out.append(one)
        if out:
            out[0].messages = self.messages  # counted once
        return out

    def rows(self, state_ts: dict[int, datetime | None]) -> list[tuple]:
        """Rows for the coalesced staging table, in vehicle order; `state_ts`: each vehicle's state sample time.

        A value whose sample is older than the state's sample time is left out (NULL), as the per-batch upsert
        leaves out samples older than the state.
        """
        out = []
        for vid in sorted(self.vehicles):
            p = self.vehicles[vid]
            vals = p.values
            cur = state_ts.get(vid)
            # filter only when some value may be older than the state (in a drain, every value is newer)
            if cur is not None and p.oldest is not None and cur > p.oldest:
                vals = [v if t is not None and t >= cur else None for v, t in zip(vals, p.times, strict=True)]
            # a vehicle whose samples are all older than the state gets only device_id and last_seen updated
            # (the upsert keeps the state's ts), as in the per-batch upsert
            out.append((vid, p.device_id, p.ts, *vals, p.arrived))
        return out


def write_state(conn: Conn, pending: PendingState) -> int:
    """Apply `pending` to vehicle_state inside the caller's transaction; returns the rows written."""
    if not pending.vehicles:
        return 0
    with conn.cursor() as cur:
        cur.execute(LOCK_READ_STATE, (sorted(pending.vehicles),))
        state_ts = dict(cur.fetchall())
        rows = pending.rows(state_ts)
        with cur.copy(COPY_STATE) as copy:
            copy.set_types(STATE_STAGE_TYPES)
            for row in rows:
                copy.write_row(row)
        cur.execute(STATE_UPSERT_COALESCED)
        if pending.messages:
            cur.execute(COUNTERS_UPSERT, ([C_STATE_APPLIED], [pending.messages]))
    return len(rows)


class StateFlusher(RetryingConnection):
    """Writes coalesced state on a connection of its own (the worker's "ingest-state" thread)."""

    def commit(self, pending: PendingState, stop: threading.Event) -> int | None:
        """Write `pending` until committed; the rows written, None when stopped while the database is down.

        Connection problems are retried with backoff. State the database refuses for its content (no known
        cause: the readings holding the same values were committed) is written vehicle by vehicle, and a vehicle
        that still fails is logged and skipped: its readings are stored, its state waits for its next sample.
        """

        def attempt(p: PendingState) -> int:
            return self.in_transaction(lambda conn: write_state(conn, p))

        try:
            done = self.retrying(lambda: attempt(pending), stop)
        except Exception as exc:
            kv(log, logging.ERROR, "state_refused", vehicles=len(pending), error=short_error(exc))
            written = 0
            for one in pending.split():
                try:
                    d = self.retrying(lambda one=one: attempt(one), stop)  # type: ignore[misc]
                except Exception as exc1:
                    kv(
                        log,
                        logging.ERROR,
                        "state_skipped",
                        vehicle=next(iter(one.vehicles)),
                        error=short_error(exc1),
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
