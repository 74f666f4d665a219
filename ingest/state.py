"""Coalesced vehicle state (opt-in, `FLEET_INGEST_STATE_FLUSH_MS` > 0): many committed batches' samples → one
vehicle_state update per vehicle.

Updating the wide vehicle_state row costs PostgreSQL several µs per sample in a drain (docs/ingest.md). In this
mode the worker commits a batch's readings without touching the state, folds
the batch's samples into a `PendingState` (in memory, per vehicle and per field, by sample time) and writes the
state once per flush: when `FLEET_INGEST_STATE_FLUSH_MS` passed or enough messages are waiting. Each message is
acknowledged to the broker only after the flush holding its samples has committed, so the guarantee stays
"acknowledged = stored, state included": after a crash the broker redelivers every message whose state was not
written, storage dedupes the readings, and the state is rebuilt from the redelivered samples.

The result is the one the per-batch upsert (`ingest.writer._state_upsert`) gives for the same samples: a field
takes the value of the newest sample (by sample time) that carries it, among samples not older than the state's
sample time; a sample older than the state changes nothing; device_id is the last arrival's, last_seen the latest
arrival time.
"""

from __future__ import annotations

from datetime import datetime

from fleetcore.contract import READING_COLUMNS
from fleetcore.db import Conn
from ingest.writer import _COUNTERS_UPSERT, C_STATE_APPLIED, STATE_FIELDS, _state_upsert

# Fields kept per vehicle, with the index of each in a staged reading row (READING_COLUMNS + vehicle, arrival).
FIELDS = (*STATE_FIELDS, "dtc")
_IDX = tuple(READING_COLUMNS.index(f) for f in FIELDS)
_VID = len(READING_COLUMNS)
_ARRIVED = _VID + 1

CREATE_STAGE_STATE = (
    "CREATE TEMP TABLE IF NOT EXISTS ingest_stage_state (vehicle_id int8, device_id text, ts timestamptz, "
    + ", ".join(f"{f} {'bool' if f == 'ignition' else 'float8'}" for f in STATE_FIELDS)
    + ", dtc text[], received_at timestamptz) ON COMMIT DELETE ROWS"
)
_STAGE_TYPES = (
    ["int8", "text", "timestamptz"]
    + ["bool" if f == "ignition" else "float8" for f in STATE_FIELDS]
    + ["text[]", "timestamptz"]
)
_COPY_STATE = (
    "COPY ingest_stage_state (vehicle_id, device_id, ts, "
    + ", ".join(STATE_FIELDS)
    + ", dtc, received_at) FROM STDIN (FORMAT BINARY)"
)
# The per-batch upsert's single-sample statement, fed from the coalesced rows: one row per vehicle, fields that
# must not apply already NULL (resolved against the locked state's sample time), so COALESCE keeps the old value.
_UPSERT_STATE = _state_upsert(multi=False).as_string().replace("ingest_stage_readings", "ingest_stage_state")
# Locks the rows to update in vehicle order (the order every writer locks in) and reads their sample time.
_LOCK_READ_STATE = (
    "SELECT vehicle_id, ts FROM vehicle_state WHERE vehicle_id = ANY(%s) ORDER BY vehicle_id FOR UPDATE"
)


class PendingState:
    """The not yet written state of each vehicle: per field the newest value and its sample time.

    Per vehicle a list [ts, device_id, arrived, values, value_times, oldest]: `ts` the newest sample time,
    `device_id`/`arrived` of the latest arrival, `values[k]`/`value_times[k]` the newest non-null value of
    FIELDS[k] and its sample time, `oldest` a lower bound of those times.
    """

    __slots__ = ("vehicles", "messages")

    def __init__(self) -> None:
        self.vehicles: dict[int, list] = {}
        self.messages = 0

    def __len__(self) -> int:
        return len(self.vehicles)

    def add(self, rows: list[tuple]) -> None:
        """Fold staged reading rows (READING_COLUMNS + vehicle_id + received_at), in any order."""
        vehicles = self.vehicles
        idx = _IDX
        for row in rows:
            ts = row[0]
            vid = row[_VID]
            p = vehicles.get(vid)
            if p is None:
                vals = [row[i] for i in idx]
                vehicles[vid] = [
                    ts,
                    row[1],
                    row[_ARRIVED],
                    vals,
                    [None if v is None else ts for v in vals],
                    ts,
                ]
                continue
            if row[_ARRIVED] >= p[2]:
                p[1] = row[1]
                p[2] = row[_ARRIVED]
            vals = p[3]
            times = p[4]
            if ts >= p[0]:
                # the common case: samples arrive in time order, so every value they carry is the newest
                p[0] = ts
                for k, i in enumerate(idx):
                    v = row[i]
                    if v is not None:
                        vals[k] = v
                        times[k] = ts
            else:
                if ts < p[5]:
                    p[5] = ts
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
        """Rows for ingest_stage_state, in vehicle order; `state_ts`: each vehicle's current state sample time.

        A value whose sample is older than the state's sample time is left out (NULL), as the per-batch upsert
        leaves out samples older than the state.
        """
        out = []
        for vid in sorted(self.vehicles):
            ts, device, arrived, vals, times, oldest = self.vehicles[vid]
            cur = state_ts.get(vid)
            # filter only when some value may be older than the state (in a drain, every value is newer)
            if cur is not None and cur > oldest:
                vals = [v if t is not None and t >= cur else None for v, t in zip(vals, times, strict=True)]
            # a vehicle whose samples are all older than the state gets only device_id and last_seen updated
            # (the upsert keeps the state's ts), as in the per-batch upsert
            out.append((vid, device, ts, *vals, arrived))
        return out


def write_state(conn: Conn, pending: PendingState) -> int:
    """Apply `pending` to vehicle_state inside the caller's transaction; returns the rows written."""
    if not pending.vehicles:
        return 0
    with conn.cursor() as cur:
        cur.execute(_LOCK_READ_STATE, (sorted(pending.vehicles),))
        state_ts = dict(cur.fetchall())
        rows = pending.rows(state_ts)
        with cur.copy(_COPY_STATE) as copy:
            copy.set_types(_STAGE_TYPES)
            for row in rows:
                copy.write_row(row)
        cur.execute(_UPSERT_STATE)
        if pending.messages:
            cur.execute(_COUNTERS_UPSERT, ([C_STATE_APPLIED], [pending.messages]))
    return len(rows)
