"""Vehicle state and telemetry queries; the same SQL runs on TimescaleDB and plain PostgreSQL."""

from __future__ import annotations

import datetime as dt

from fleetcore.db import Conn, one

STATE_FIELDS = (
    "lat", "lon", "speed_kmh", "heading_deg", "alt_m", "odometer_km", "engine_hours", "rpm", "coolant_c",
    "engine_load_pct", "fuel_pct", "battery_v", "ignition", "dtc",
)  # fmt: skip
AVG_FIELDS = (
    "lat", "lon", "speed_kmh", "alt_m", "rpm", "coolant_c", "engine_load_pct", "throttle_pct", "fuel_pct", "battery_v",
)  # fmt: skip
RAW_FIELDS = (
    "ts", "kind", "seq", "lat", "lon", "speed_kmh", "heading_deg", "alt_m", "hdop", "sats", "odometer_km",
    "engine_hours", "rpm", "coolant_c", "engine_load_pct", "throttle_pct", "fuel_pct", "battery_v", "ignition",
    "accel_x", "accel_y", "accel_z", "dtc",
)  # fmt: skip
MAX_RAW_ROWS = 10_000


def get_state(conn: Conn, *, vehicle_id: int) -> dict | None:
    return conn.execute("SELECT * FROM vehicle_state WHERE vehicle_id = %s", (vehicle_id,)).fetchone()


def telemetry(
    conn: Conn,
    *,
    vehicle_id: int,
    start: dt.datetime,
    end: dt.datetime,
    bucket: dt.timedelta | None = None,
    limit: int = MAX_RAW_ROWS,
) -> list[dict]:
    """Raw readings in [start, end), or averages per time bucket (date_bin works on both engines)."""
    if bucket is None:
        cols = ", ".join(RAW_FIELDS)
        return conn.execute(
            f"SELECT {cols} FROM readings WHERE vehicle_id = %s AND ts >= %s AND ts < %s ORDER BY ts LIMIT %s",
            (vehicle_id, start, end, limit),
        ).fetchall()
    avgs = ", ".join(f"avg({f})::double precision AS {f}" for f in AVG_FIELDS)
    return conn.execute(
        f"""SELECT date_bin(%s, ts, timestamptz '2000-01-01') AS bucket, count(*) AS samples,
                   max(odometer_km) AS odometer_km, bool_or(ignition) AS ignition, {avgs}
              FROM readings
             WHERE vehicle_id = %s AND ts >= %s AND ts < %s
             GROUP BY 1 ORDER BY 1 LIMIT %s""",
        (bucket, vehicle_id, start, end, limit),
    ).fetchall()


def ingest_stats(conn: Conn) -> dict:
    counters = {r["name"]: r["value"] for r in conn.execute("SELECT name, value FROM ingest_counters")}
    pending = one(conn.execute("SELECT count(*) AS n FROM ingest_quarantine WHERE replayed_at IS NULL"))["n"]
    by_reason = {
        r["reason"]: r["n"]
        for r in conn.execute(
            "SELECT reason, count(*) AS n FROM ingest_rejections GROUP BY reason ORDER BY reason"
        )
    }
    last = one(conn.execute("SELECT max(last_seen) AS t FROM vehicle_state"))["t"]
    online = one(conn.execute("SELECT count(*) AS n FROM vehicle_state WHERE online"))["n"]
    return {
        "readings_stored": counters.get("readings_stored", 0),
        "events_stored": counters.get("events_stored", 0),
        "duplicates_skipped": counters.get("duplicates_skipped", 0),
        "messages_received": counters.get("messages_received", 0),
        "messages_rejected": counters.get("messages_rejected", 0),
        "messages_quarantined": counters.get("messages_quarantined", 0),
        "quarantine_pending": pending,
        "rejections_by_reason": by_reason,
        "vehicles_online": online,
        "last_message_at": last,
    }


# A rejection listing answers at most this many bytes (payloads, details, element lists), whatever the limit: one
# listing of rejections carrying big payloads was measured at 136 MB and took the API from 80 to 407 MB.
REJECTIONS_MAX_BYTES = 2 * 1024 * 1024
# Payload bytes shown per rejection (the rest is counted in payload_bytes and flagged payload_truncated).
REJECTION_PAYLOAD_SHOWN = 64 * 1024


def list_rejections(
    conn: Conn,
    *,
    reason: str | None = None,
    device_id: str | None = None,
    limit: int = 100,
    offset: int = 0,
    before_id: int | None = None,
    max_bytes: int = REJECTIONS_MAX_BYTES,
) -> list[dict]:
    """Newest first. Pages by `before_id` (the last id of the previous page) or offset; the page ends early once
    its payloads, details and element lists reach `max_bytes` (always at least one row)."""
    rows = conn.execute(
        """SELECT id, received_at, topic, device_id, reason, detail, elements,
                  substring(payload from 1 for %(shown)s) AS payload, octet_length(payload) AS payload_bytes
             FROM ingest_rejections
            WHERE (%(r)s::text IS NULL OR reason = %(r)s) AND (%(d)s::text IS NULL OR device_id = %(d)s)
              AND (%(b)s::bigint IS NULL OR id < %(b)s)
            ORDER BY id DESC LIMIT %(l)s OFFSET %(o)s""",
        {
            "r": reason,
            "d": device_id,
            "b": before_id,
            "l": limit,
            "o": offset,
            "shown": REJECTION_PAYLOAD_SHOWN,
        },
    ).fetchall()
    out: list[dict] = []
    total = 0
    for r in rows:
        raw = bytes(r.pop("payload"))
        r["payload_truncated"] = len(raw) < r["payload_bytes"]
        try:
            r["payload"] = raw.decode("utf-8")
            r["payload_encoding"] = "utf-8"
        except UnicodeDecodeError:
            r["payload"] = raw.hex()
            r["payload_encoding"] = "hex"
        total += len(r["payload"]) + len(r["detail"]) + len(str(r["elements"] or ""))
        if out and total > max_bytes:
            break
        out.append(r)
    return out


def trip_summary(conn: Conn, *, vehicle_id: int, start: dt.datetime, end: dt.datetime) -> dict:
    """What the car itself recorded in [start, end): distance from the odometer, top speed, harsh events by type."""
    r = one(
        conn.execute(
            """SELECT count(*) AS readings, min(ts) AS first_at, max(ts) AS last_at,
                      min(odometer_km) AS odometer_start_km, max(odometer_km) AS odometer_end_km,
                      max(speed_kmh)::double precision AS max_speed_kmh
                 FROM readings WHERE vehicle_id = %s AND ts >= %s AND ts < %s""",
            (vehicle_id, start, end),
        )
    )
    events = conn.execute(
        """SELECT type, count(*) AS n FROM device_events
            WHERE vehicle_id = %s AND ts >= %s AND ts < %s GROUP BY type ORDER BY type""",
        (vehicle_id, start, end),
    ).fetchall()
    by_type = {e["type"]: e["n"] for e in events}
    km = None
    if r["odometer_start_km"] is not None and r["odometer_end_km"] is not None:
        km = round(r["odometer_end_km"] - r["odometer_start_km"], 1)
    return {
        **r,
        "distance_km": km,
        "events": by_type,
        "harsh_events": sum(n for t, n in by_type.items() if t.startswith("harsh_")),
        "crashes": by_type.get("crash", 0),
    }


def usage(conn: Conn, *, start: dt.datetime, end: dt.datetime) -> dict[int, dict]:
    """Distance (km) and engine hours per vehicle in [start, end): the spread of the odometer and hour-meter
    readings inside the window (both counters only grow; a window without two readings gives zero)."""
    return {
        r["vehicle_id"]: r
        for r in conn.execute(
            """SELECT vehicle_id,
                      coalesce(max(odometer_km) - min(odometer_km), 0)::numeric(12, 1) AS km,
                      coalesce(max(engine_hours) - min(engine_hours), 0)::numeric(10, 1) AS engine_hours,
                      count(*) AS readings
                 FROM readings WHERE ts >= %s AND ts < %s GROUP BY vehicle_id""",
            (start, end),
        )
    }


# Positions for the live map: one row per vehicle, as parallel arrays (the console applies 5,000 of these a
# second; arrays keep the answer about 40 bytes per vehicle). Coordinates to 5 decimals (~1 m).
POSITION_COLUMNS = """array_agg(vehicle_id ORDER BY vehicle_id) AS id,
       array_agg(round(lat::numeric, 5)::double precision ORDER BY vehicle_id) AS lat,
       array_agg(round(lon::numeric, 5)::double precision ORDER BY vehicle_id) AS lon,
       array_agg(round(heading_deg)::int ORDER BY vehicle_id) AS heading,
       array_agg(round(speed_kmh)::int ORDER BY vehicle_id) AS speed,
       array_agg(online ORDER BY vehicle_id) AS online,
       array_agg(health ORDER BY vehicle_id) AS health,
       array_agg(coalesce(open_alerts, 0) ORDER BY vehicle_id) AS open_alerts,
       array_agg((extract(epoch FROM ts) * 1000)::bigint ORDER BY vehicle_id) AS ts"""


def positions(conn: Conn, *, changed_after: dt.datetime | None = None) -> dict:
    """Latest position, heading, speed, online flag and health of every vehicle whose state row changed after
    `changed_after` (all of them without it), as parallel arrays, plus `now`: the database clock of the read."""
    row = one(
        conn.execute(
            f"""SELECT {POSITION_COLUMNS}, now() AS now FROM vehicle_state
                 WHERE %(after)s::timestamptz IS NULL OR updated_at > %(after)s""",
            {"after": changed_after},
        )
    )
    return {k: (v if v is not None else []) for k, v in row.items()}
