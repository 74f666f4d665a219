"""Quarantine replay and retention: admin tasks run by `fleet ingest replay` and `fleet ingest retention`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from psycopg import sql

from fleetcore.db import uses_timescale
from fleetcore.logfmt import kv
from fleetcore.protocol.parse import process_message
from ingest.batch import C_REPLAYED, Message
from ingest.staging import ensure_staging
from ingest.writer import BatchWriter

log = logging.getLogger(__name__)

# Messages re-processed per transaction during replay.
REPLAY_BATCH = 1000
# Plain PostgreSQL retention deletes in slices so one statement never holds locks on millions of rows.
DELETE_SLICE = 50_000


@dataclass
class ReplayResult:
    """What a replay did, per outcome."""

    replayed: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


def replay(url: str, root: str, *, device_id: str | None = None) -> ReplayResult:
    """Re-process quarantined messages of devices that are now installed in a vehicle; each row is marked done.

    The parser runs with the message's original arrival time as "now", so a sample that was valid when it
    arrived is still valid (the future-timestamp check is relative to arrival).
    """
    writer = BatchWriter(url, cache_ttl_s=0.0)
    out = ReplayResult()
    with psycopg.connect(url, autocommit=False) as conn:
        ensure_staging(conn)
        conn.commit()
        last_id = 0
        while True:
            rows = conn.execute(
                """SELECT q.id, q.topic, q.payload, q.received_at
                     FROM ingest_quarantine q
                    WHERE q.replayed_at IS NULL AND q.id > %s
                      AND (%s::text IS NULL OR q.device_id = %s)
                      AND EXISTS (SELECT 1 FROM device_installs i
                                   WHERE i.device_id = q.device_id AND i.removed_at IS NULL)
                    ORDER BY q.id
                    LIMIT %s
                    FOR UPDATE OF q SKIP LOCKED""",
                (last_id, device_id, device_id, REPLAY_BATCH),
            ).fetchall()
            if not rows:
                conn.commit()
                break
            messages = [
                Message(
                    topic,
                    bytes(payload),
                    received_at,
                    process_message(root, topic, bytes(payload), now=received_at),
                )
                for _, topic, payload, received_at in rows
            ]
            st = writer.write_tx(conn, messages, count_received=False)
            conn.execute(
                """UPDATE ingest_quarantine q SET replayed_at = now(), replay_result = u.result
                     FROM unnest(%s::bigint[], %s::text[]) AS u(id, result) WHERE q.id = u.id""",
                ([r[0] for r in rows], st.outcomes),
            )
            conn.execute(
                "INSERT INTO ingest_counters (name, value) VALUES (%s, %s) "
                "ON CONFLICT (name) DO UPDATE SET value = ingest_counters.value + EXCLUDED.value",
                (C_REPLAYED, len(rows)),
            )
            conn.commit()
            last_id = rows[-1][0]
            out.replayed += len(rows)
            for o in st.outcomes:
                out.outcomes[o] = out.outcomes.get(o, 0) + 1
    kv(log, logging.INFO, "quarantine_replayed", count=out.replayed, device=device_id or "*")
    return out


def apply_retention(url: str, days: int) -> dict[str, int]:
    """Drop readings and device events older than `days` (whole chunks on TimescaleDB); returns what was removed."""
    cutoff = datetime.now(UTC).timestamp() - days * 86400
    cutoff_ts = datetime.fromtimestamp(cutoff, UTC)
    removed: dict[str, int] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        timescale = uses_timescale(conn)
        for table in ("readings", "device_events"):
            if timescale:
                rows = conn.execute(
                    "SELECT drop_chunks(%s::regclass, older_than => %s)", (table, cutoff_ts)
                ).fetchall()
                removed[f"{table}_chunks"] = len(rows)
            else:
                total = 0
                stmt = sql.SQL(
                    "DELETE FROM {t} WHERE ctid IN (SELECT ctid FROM {t} WHERE ts < %s LIMIT %s)"
                ).format(t=sql.Identifier(table))
                while True:
                    n = conn.execute(stmt, (cutoff_ts, DELETE_SLICE)).rowcount
                    total += n
                    if n < DELETE_SLICE:
                        break
                removed[f"{table}_rows"] = total
    kv(log, logging.INFO, "retention_applied", days=days, **removed)
    return removed
