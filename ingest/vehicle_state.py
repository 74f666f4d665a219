"""The vehicle_state SQL ingest writes with, in one place: the per-batch upsert from the staged readings, the same
upsert fed from coalesced rows (`ingest.state`), the presence upsert, and the row locks taken in vehicle order.

Both ways of writing the state (per batch in the writer, coalesced in the state flusher) render their statement
from `state_upsert`, so the two cannot drift apart.
"""

from __future__ import annotations

from psycopg import sql

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
# A sample stamped more than this ahead of its own arrival is stored but kept out of vehicle_state: one sample
# 290 s ahead (inside the 300 s future allowance) froze a car's state for ~5 minutes, every real sample being
# "older". 2 s covers a device clock's jitter against the server's (both NTP/GPS-disciplined).
STATE_AHEAD_TOLERANCE_S = 2

# The staging tables the state is upserted from: a batch's staged readings, or the coalesced rows of many batches.
STAGE_READINGS = "ingest_stage_readings"
STAGE_STATE = "ingest_stage_state"

# Coalesced rows: one per vehicle, fields that must not apply already NULL (`ingest.state.PendingState.rows`).
STATE_STAGE_COLUMNS = ("vehicle_id", "device_id", "ts", *STATE_FIELDS, "dtc", "received_at")
STATE_STAGE_TYPES = (
    ["int8", "text", "timestamptz"]
    + ["bool" if f == "ignition" else "float8" for f in STATE_FIELDS]
    + ["text[]", "timestamptz"]
)
CREATE_STAGE_STATE = (
    sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {t} ({cols}) ON COMMIT DELETE ROWS")
    .format(
        t=sql.Identifier(STAGE_STATE),
        cols=sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t))
            for c, t in zip(STATE_STAGE_COLUMNS, STATE_STAGE_TYPES, strict=True)
        ),
    )
    .as_string()
)
COPY_STATE = (
    sql.SQL("COPY {t} ({cols}) FROM STDIN (FORMAT BINARY)")
    .format(t=sql.Identifier(STAGE_STATE), cols=sql.SQL(", ").join(map(sql.Identifier, STATE_STAGE_COLUMNS)))
    .as_string()
)


def state_upsert(*, source: str = STAGE_READINGS, multi: bool = False) -> sql.Composed:
    """Upsert vehicle_state from the staged samples in `source`, by sample time: a sample older than the state
    never wins.

    A vehicle with one staged sample (the usual case: a batch holds one sample per vehicle unless a device
    uploads a buffer or a backlog drains) takes that sample's values directly; the ON CONFLICT clause decides by
    sample time whether they replace the state. Only vehicles with several samples (their ids are the
    statement's parameter, counted by the writer, so no window function is needed) go through per-field
    "newest non-null" aggregates over the samples newer than the state. Both branches produce the same values
    for a single sample. `multi=False` renders the statement without the aggregate branch, which is also the
    statement for the coalesced rows (one per vehicle, from `STAGE_STATE`).

    Per sample on the 2-core dev box (2,000-sample batches, 2,000 vehicles): 13.5 µs with a window function and
    a join for every vehicle, 6.8 µs with this split (bench/results.md has the end-to-end effect).
    """
    src: sql.Composable = sql.Identifier(source)
    if source == STAGE_READINGS:
        # samples ahead of their arrival count for device_id and last_seen only (ts and fields NULL); the coalesced
        # rows were filtered in ingest.state the same way
        ok = sql.SQL("ts <= received_at + make_interval(secs => {})").format(
            sql.Literal(STATE_AHEAD_TOLERANCE_S)
        )
        src = sql.SQL("(SELECT vehicle_id, device_id, received_at, {cols} FROM {t})").format(
            cols=sql.SQL(", ").join(
                sql.SQL("CASE WHEN {ok} THEN {f} END AS {f}").format(ok=ok, f=sql.Identifier(f))
                for f in ("ts", *STATE_FIELDS, "dtc")
            ),
            t=sql.Identifier(source),
        )
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
        "s.received_at, now() FROM {src} s"
    ).format(
        cols=sql.SQL(", ").join(sql.SQL("s.{}").format(sql.Identifier(f)) for f in STATE_FIELDS), src=src
    )
    newer_than_state = sql.SQL("EXCLUDED.ts IS NOT NULL AND (vs.ts IS NULL OR vs.ts <= EXCLUDED.ts)")
    sets = [
        sql.SQL("{f} = CASE WHEN {cond} THEN COALESCE(EXCLUDED.{f}, vs.{f}) ELSE vs.{f} END").format(
            f=sql.Identifier(f), cond=newer_than_state
        )
        for f in (*STATE_FIELDS, "dtc")
    ]
    if multi:
        source_sql = sql.SQL(
            "SELECT * FROM ("
            "{single} WHERE NOT EXISTS (SELECT FROM unnest(%(multi)s::int8[]) AS m(id) WHERE m.id = s.vehicle_id) "
            "UNION ALL "
            "SELECT s.vehicle_id, (array_agg(s.device_id ORDER BY s.received_at DESC))[1], "
            "max(s.ts) FILTER (WHERE {newer}), {picks}, {dtc}, max(s.received_at), now() "
            "FROM {src} s LEFT JOIN vehicle_state cur ON cur.vehicle_id = s.vehicle_id "
            "WHERE EXISTS (SELECT FROM unnest(%(multi)s::int8[]) AS m(id) WHERE m.id = s.vehicle_id) "
            "GROUP BY s.vehicle_id"
            ") AS u ORDER BY 1"
        ).format(single=single, newer=newer, picks=sql.SQL(", ").join(picks), dtc=dtc_pick, src=src)
    else:
        source_sql = sql.SQL("{single} ORDER BY 1").format(single=single)
    # ORDER BY 1: a fixed lock order, so two workers never deadlock here
    return sql.SQL(
        "INSERT INTO vehicle_state AS vs (vehicle_id, device_id, ts, {cols}, dtc, last_seen, updated_at) "
        "{source} "
        "ON CONFLICT (vehicle_id) DO UPDATE SET {sets}, ts = GREATEST(vs.ts, EXCLUDED.ts), "
        "device_id = EXCLUDED.device_id, last_seen = GREATEST(vs.last_seen, EXCLUDED.last_seen), updated_at = now()"
    ).format(cols=cols, source=source_sql, sets=sql.SQL(", ").join(sets))


# Rendered once: composing SQL objects on every batch was a measurable share of the writer's CPU.
STATE_UPSERT = state_upsert().as_string()
STATE_UPSERT_MULTI = state_upsert(multi=True).as_string()
# The single-sample statement fed from the coalesced rows: one row per vehicle, fields that must not apply already
# NULL (resolved against the locked state's sample time), so COALESCE keeps the old value.
STATE_UPSERT_COALESCED = state_upsert(source=STAGE_STATE).as_string()

# Status and events: online flag (latest status message by arrival; status messages carry no sample time)
# and last_seen. A replayed, older status never overrides a newer one.
PRESENCE_UPSERT = """
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

# Locks the rows a batch will update in vehicle order (the order every writer locks in).
LOCK_STATE = "SELECT 1 FROM vehicle_state WHERE vehicle_id = ANY(%s) ORDER BY vehicle_id FOR UPDATE"
# The same lock for a coalesced flush, reading each row's sample time.
LOCK_READ_STATE = (
    "SELECT vehicle_id, ts FROM vehicle_state WHERE vehicle_id = ANY(%s) ORDER BY vehicle_id FOR UPDATE"
)
