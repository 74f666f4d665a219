"""The SQL a batch is written with: the per-connection staging tables, the COPY and INSERT statements for readings,
events, rejections and quarantine, and the counters upsert (the vehicle_state SQL is `ingest.vehicle_state`)."""

from __future__ import annotations

from psycopg import sql

from fleetcore.contract import READING_COLUMNS
from fleetcore.db import Conn
from ingest.vehicle_state import CREATE_STAGE_STATE, STAGE_READINGS

# Staging table: READING_COLUMNS + vehicle_id + received_at. Numeric columns are float8 whatever their final
# type, so an int where a float is expected (JSON `"speed_kmh": 50`) still COPYs; INSERT ... SELECT casts.
_STAGE_TYPE_OF = {
    "ts": "timestamptz",
    "device_id": "text",
    "kind": "text",
    "seq": "int8",
    "ignition": "bool",
    "dtc": "text[]",
    "obd_extra": "jsonb",
}
STAGE_COLUMNS = (*READING_COLUMNS, "vehicle_id", "received_at")
STAGE_TYPES = [_STAGE_TYPE_OF.get(c, "float8") for c in READING_COLUMNS] + ["int8", "timestamptz"]
# Positions in a staged reading row of what is appended to the parser's reading row.
STAGE_VEHICLE = len(READING_COLUMNS)
STAGE_RECEIVED = STAGE_VEHICLE + 1

_CREATE_STAGE = (
    sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {t} ({cols}) ON COMMIT DELETE ROWS")
    .format(
        t=sql.Identifier(STAGE_READINGS),
        cols=sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t))
            for c, t in zip(STAGE_COLUMNS, STAGE_TYPES, strict=True)
        ),
    )
    .as_string()
)
_CREATE_STAGE_EVENTS = (
    "CREATE TEMP TABLE IF NOT EXISTS ingest_stage_events (ts timestamptz, device_id text, vehicle_id int8, "
    "seq int8, type text, data text, received_at timestamptz) ON COMMIT DELETE ROWS"
)
_STAGE_COLS = sql.SQL(", ").join(map(sql.Identifier, STAGE_COLUMNS))
COPY_STAGE = (
    sql.SQL("COPY {t} ({cols}) FROM STDIN (FORMAT BINARY)")
    .format(t=sql.Identifier(STAGE_READINGS), cols=_STAGE_COLS)
    .as_string()
)
INSERT_READINGS_PLAIN = (
    sql.SQL("INSERT INTO readings ({cols}) SELECT {cols} FROM {t}")
    .format(cols=_STAGE_COLS, t=sql.Identifier(STAGE_READINGS))
    .as_string()
)
INSERT_READINGS = INSERT_READINGS_PLAIN + " ON CONFLICT DO NOTHING"
READINGS_TYPES = (
    "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
    "WHERE attrelid = 'readings'::regclass AND attnum > 0 AND NOT attisdropped"
)
# With the state deferred (no state upsert to feed from the staging table) and no duplicate seen lately: rows go
# straight into the hypertable; a duplicate makes it fail like the plain INSERT, and the batch is redone staged.
COPY_READINGS = sql.SQL("COPY readings ({}) FROM STDIN (FORMAT BINARY)").format(_STAGE_COLS).as_string()
COPY_STAGE_EVENTS = (
    "COPY ingest_stage_events (ts, device_id, vehicle_id, seq, type, data, received_at) FROM STDIN"
)
INSERT_EVENTS = (
    "INSERT INTO device_events (ts, device_id, vehicle_id, seq, type, data, received_at) "
    "SELECT ts, device_id, vehicle_id, seq, type, data::jsonb, received_at FROM ingest_stage_events "
    "ON CONFLICT DO NOTHING"
)
COPY_REJECTIONS = (
    "COPY ingest_rejections (received_at, topic, device_id, payload, reason, detail, elements) FROM STDIN"
)
COPY_QUARANTINE = "COPY ingest_quarantine (received_at, topic, device_id, payload) FROM STDIN"

# Counter names are upserted (names added later need no migration); pass them sorted: one lock order.
COUNTERS_UPSERT = (
    "INSERT INTO ingest_counters (name, value) SELECT * FROM unnest(%s::text[], %s::bigint[]) "
    "ON CONFLICT (name) DO UPDATE SET value = ingest_counters.value + EXCLUDED.value"
)


def ensure_staging(conn: Conn) -> None:
    """Create this connection's staging tables (temporary, emptied at every commit)."""
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
