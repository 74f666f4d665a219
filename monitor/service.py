"""The alert service: raise / repeat / acknowledge / resolve / auto-resolve, vehicle health, live notifications.

Table ownership: the monitor owns `alerts`, `geofences`, `monitor_thresholds` and the health columns of
`vehicle_state` (`health`, `rentable`, `open_alerts`, written only by `refresh_vehicle`); ingest owns the rest
of `vehicle_state`. Every function takes the caller's connection and runs in the caller's transaction; staff
actions (ack, resolve) write their audit record (fleetcore.audit) in that same transaction.

One active (open or acknowledged) alert per (vehicle, kind) is enforced by the partial unique index
`alerts_one_active`; a repeat bumps `occurrences` and `last_seen_at`, raises the severity if the new one is
higher and appends evidence (up to MAX_EVIDENCE items). Every change is announced with
`pg_notify(CHANNEL, json)` in the same transaction, so listeners see it exactly when it is committed.

Lock order: a transaction that touches several vehicles must do so in ascending vehicle_id (the monitor's
worker sorts each batch), taking a vehicle's `alerts` row before its `vehicle_state` row; ingest locks
`vehicle_state` rows in ascending vehicle_id too, so the two writers never wait on each other in a cycle.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from psycopg.types.json import Jsonb

from fleetcore.audit import audit
from fleetcore.db import Conn, one
from fleetcore.errors import Conflict, Invalid, NotFound
from monitor.models import HEALTH_CRITICAL_SEVERITIES, HEALTH_WARNING_SEVERITIES, SEVERITIES, STATUSES

CHANNEL = "fleet_alerts"
MAX_EVIDENCE = 20
# pg_notify payloads must stay under 8000 bytes; evidence is left out of notifications past this size.
NOTIFY_LIMIT = 7000
ALERT_COLUMNS = (
    "a.id, a.vehicle_id, v.vin, v.plate, a.kind, a.severity, a.status, a.message, a.opened_at, a.last_seen_at, "
    "a.occurrences, a.evidence, a.acknowledged_at, a.acknowledged_by, a.resolved_at, a.resolved_by, "
    "a.resolution_note, a.created_at, a.updated_at"
)
# A severity's rank in SQL: its position in models.SEVERITIES, passed as the %(severities)s parameter.
_SEV_RANK = "array_position(%(severities)s::text[], {})"


def jsonable(row: dict) -> dict:
    """A row with datetimes as ISO 8601 strings."""
    return {k: (v.isoformat() if isinstance(v, dt.datetime | dt.date) else v) for k, v in row.items()}


def notify(conn: Conn, *, message: dict) -> None:
    """Announce a change to LISTEN-ers (delivered when the transaction commits)."""
    text = json.dumps(message, default=str)
    if len(text) > NOTIFY_LIMIT and "alert" in message:
        slim = {**message, "alert": {k: v for k, v in message["alert"].items() if k != "evidence"}}
        text = json.dumps(slim, default=str)
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, text))


def get(conn: Conn, *, alert_id: int) -> dict | None:
    return conn.execute(
        f"SELECT {ALERT_COLUMNS} FROM alerts a JOIN vehicles v ON v.id = a.vehicle_id WHERE a.id = %s",
        (alert_id,),
    ).fetchone()


def get_or_raise(conn: Conn, *, alert_id: int) -> dict:
    row = get(conn, alert_id=alert_id)
    if row is None:
        raise NotFound(f"alert {alert_id} not found")
    return row


def get_active(conn: Conn, *, vehicle_id: int, kind: str) -> dict | None:
    """The open or acknowledged alert of this kind for the vehicle."""
    return conn.execute(
        f"""SELECT {ALERT_COLUMNS} FROM alerts a JOIN vehicles v ON v.id = a.vehicle_id
             WHERE a.vehicle_id = %s AND a.kind = %s AND a.status <> 'resolved'""",
        (vehicle_id, kind),
    ).fetchone()


def list_(
    conn: Conn,
    *,
    status: list[str] | None = None,
    kind: list[str] | None = None,
    severity: list[str] | None = None,
    vin: str | None = None,
    vehicle_id: int | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[dict], int]:
    """Alerts matching the filters (newest first) and the total count; the time filter is on overlap."""
    for name, values, allowed in (("status", status, STATUSES), ("severity", severity, SEVERITIES)):
        bad = set(values or ()) - set(allowed)
        if bad:
            raise Invalid(f"unknown {name} {', '.join(sorted(bad))}; allowed: {', '.join(allowed)}")
    where: list[str] = ["true"]
    params: list[Any] = []
    if status:
        where.append("a.status = ANY(%s)")
        params.append(status)
    if kind:
        where.append("a.kind = ANY(%s)")
        params.append(kind)
    if severity:
        where.append("a.severity = ANY(%s)")
        params.append(severity)
    if vin:
        where.append("v.vin = %s")
        params.append(vin)
    if vehicle_id is not None:
        where.append("a.vehicle_id = %s")
        params.append(vehicle_id)
    if start is not None:
        where.append("a.last_seen_at >= %s")
        params.append(start)
    if end is not None:
        where.append("a.opened_at < %s")
        params.append(end)
    cond = " AND ".join(where)
    total = one(
        conn.execute(
            f"SELECT count(*) AS n FROM alerts a JOIN vehicles v ON v.id = a.vehicle_id WHERE {cond}", params
        )
    )["n"]
    rows = conn.execute(
        f"""SELECT {ALERT_COLUMNS} FROM alerts a JOIN vehicles v ON v.id = a.vehicle_id WHERE {cond}
             ORDER BY a.opened_at DESC, a.id DESC LIMIT %s OFFSET %s""",
        [*params, limit, offset],
    ).fetchall()
    return rows, total


def raise_(
    conn: Conn,
    *,
    vehicle_id: int,
    kind: str,
    severity: str,
    ts: dt.datetime,
    message: str,
    evidence: dict | None = None,
) -> tuple[dict, bool]:
    """Open an alert, or count a repeat on the active one. Returns (alert, created)."""
    written = _raise(conn, vehicle_id=vehicle_id, kind=kind, severity=severity, ts=ts, message=message,
                     evidence=evidence, only_new=False)  # fmt: skip
    assert written is not None  # only_new=False always writes
    return written


def raise_new(
    conn: Conn,
    *,
    vehicle_id: int,
    kind: str,
    severity: str,
    ts: dt.datetime,
    message: str,
    evidence: dict | None = None,
) -> tuple[dict, bool] | None:
    """`raise_`, unless this trigger is already recorded: None when an alert of this vehicle and kind (active or
    resolved) has a later trigger, or this very one (same sample time, same evidence).

    The monitor's writer uses it: a message redelivered after a restart, or judged again after the state was
    rebuilt, gives the same detection with the same sample time, which must not count as a new occurrence (nor
    reopen an alert someone resolved). Detections carry sample time and a vehicle's samples are judged in time
    order, so a genuinely new trigger is always later than the recorded ones. Known limit: an identical trigger
    is recognised by its evidence only while the alert keeps evidence (the first MAX_EVIDENCE occurrences).
    """
    return _raise(conn, vehicle_id=vehicle_id, kind=kind, severity=severity, ts=ts, message=message,
                  evidence=evidence, only_new=True)  # fmt: skip


def _raise(
    conn: Conn,
    *,
    vehicle_id: int,
    kind: str,
    severity: str,
    ts: dt.datetime,
    message: str,
    evidence: dict | None,
    only_new: bool,
) -> tuple[dict, bool] | None:
    if severity not in SEVERITIES:
        raise Invalid(f"unknown severity {severity!r}")
    item = [evidence] if evidence is not None else []
    # only_new: the NOT EXISTS skips a trigger already recorded on any alert of the kind; the conflict clause's
    # WHERE does the same against the active alert another writer may have inserted meanwhile (the unique index
    # makes this insert wait for that one's commit, then the condition is checked against the committed row).
    seen = "(o.last_seen_at > %(ts)s OR (o.last_seen_at = %(ts)s AND o.evidence @> %(evidence)s))"
    guard = (
        f"WHERE NOT EXISTS (SELECT 1 FROM alerts o WHERE o.vehicle_id = %(vehicle_id)s AND o.kind = %(kind)s "
        f"AND {seen})"
        if only_new
        else ""
    )
    repeat_guard = (
        "WHERE EXCLUDED.last_seen_at > a.last_seen_at OR (EXCLUDED.last_seen_at = a.last_seen_at "
        "AND NOT a.evidence @> EXCLUDED.evidence)"
        if only_new
        else ""
    )
    row = conn.execute(
        f"""INSERT INTO alerts AS a (vehicle_id, kind, severity, message, opened_at, last_seen_at, evidence)
        SELECT %(vehicle_id)s, %(kind)s, %(severity)s, %(message)s, %(ts)s, %(ts)s, %(evidence)s {guard}
        ON CONFLICT (vehicle_id, kind) WHERE status <> 'resolved' DO UPDATE SET
            occurrences = a.occurrences + 1,
            last_seen_at = greatest(a.last_seen_at, EXCLUDED.last_seen_at),
            severity = CASE WHEN {_SEV_RANK.format("EXCLUDED.severity")} > {_SEV_RANK.format("a.severity")}
                            THEN EXCLUDED.severity ELSE a.severity END,
            message = EXCLUDED.message,
            evidence = CASE WHEN jsonb_array_length(a.evidence) >= {MAX_EVIDENCE} THEN a.evidence
                            ELSE a.evidence || EXCLUDED.evidence END,
            updated_at = now()
        {repeat_guard}
        RETURNING id, (xmax = 0) AS created""",
        {
            "vehicle_id": vehicle_id,
            "kind": kind,
            "severity": severity,
            "message": message,
            "ts": ts,
            "evidence": Jsonb(item),
            "severities": list(SEVERITIES),
        },
    ).fetchone()
    if row is None:
        return None
    alert = get_or_raise(conn, alert_id=row["id"])
    created = bool(row["created"])
    notify(
        conn,
        message={"type": "alert", "event": "opened" if created else "repeated", "alert": jsonable(alert)},
    )
    refresh_vehicle(conn, vehicle_id=vehicle_id)
    return alert, created


def auto_resolve(conn: Conn, *, vehicle_id: int, kind: str, ts: dt.datetime, reason: str = "") -> dict | None:
    """Resolve the active alert of this kind because its condition cleared (resolved_by = 'auto').

    An observation older than the alert's first trigger cannot clear it (a message redelivered after a restart
    must not resolve an alert that a later one opened).
    """
    row = conn.execute(
        """UPDATE alerts SET status = 'resolved', resolved_at = %s, resolved_by = 'auto', resolution_note = %s,
                             updated_at = now()
            WHERE vehicle_id = %s AND kind = %s AND status <> 'resolved' AND opened_at <= %s RETURNING id""",
        (ts, reason or "condition cleared", vehicle_id, kind, ts),
    ).fetchone()
    if row is None:
        return None
    alert = get_or_raise(conn, alert_id=row["id"])
    notify(conn, message={"type": "alert", "event": "resolved", "alert": jsonable(alert)})
    refresh_vehicle(conn, vehicle_id=vehicle_id)
    return alert


def ack(conn: Conn, *, alert_id: int, user: dict) -> dict:
    """open → acknowledged (who, when); acknowledging twice is harmless; a resolved alert is a conflict."""
    before = conn.execute("SELECT * FROM alerts WHERE id = %s FOR UPDATE", (alert_id,)).fetchone()
    if before is None:
        raise NotFound(f"alert {alert_id} not found")
    if before["status"] == "resolved":
        raise Conflict(f"alert {alert_id} is already resolved")
    if before["status"] == "open":
        conn.execute(
            """UPDATE alerts SET status = 'acknowledged', acknowledged_at = now(), acknowledged_by = %s,
                                 updated_at = now() WHERE id = %s""",
            (user["username"], alert_id),
        )
        _audit(conn, user, "alert.ack", alert_id, before)
    alert = get_or_raise(conn, alert_id=alert_id)
    notify(conn, message={"type": "alert", "event": "acknowledged", "alert": jsonable(alert)})
    return alert


def resolve(conn: Conn, *, alert_id: int, user: dict, note: str = "") -> dict:
    """open/acknowledged → resolved (who, when, note)."""
    before = conn.execute("SELECT * FROM alerts WHERE id = %s FOR UPDATE", (alert_id,)).fetchone()
    if before is None:
        raise NotFound(f"alert {alert_id} not found")
    if before["status"] == "resolved":
        raise Conflict(f"alert {alert_id} is already resolved")
    conn.execute(
        """UPDATE alerts SET status = 'resolved', resolved_at = now(), resolved_by = %s, resolution_note = %s,
                             acknowledged_at = coalesce(acknowledged_at, now()),
                             acknowledged_by = coalesce(acknowledged_by, %s), updated_at = now()
            WHERE id = %s""",
        (user["username"], note, user["username"], alert_id),
    )
    _audit(conn, user, "alert.resolve", alert_id, before)
    alert = get_or_raise(conn, alert_id=alert_id)
    notify(conn, message={"type": "alert", "event": "resolved", "alert": jsonable(alert)})
    refresh_vehicle(conn, vehicle_id=alert["vehicle_id"])
    return alert


def _audit(conn: Conn, user: dict, action: str, alert_id: int, before: dict) -> None:
    after = one(conn.execute("SELECT * FROM alerts WHERE id = %s", (alert_id,)))
    slim = {k: v for k, v in (before or {}).items() if k != "evidence"}
    audit(
        conn,
        actor=user,
        action=action,
        entity="alert",
        entity_id=alert_id,
        before=slim,
        after={k: v for k, v in after.items() if k != "evidence"},
    )


def refresh_vehicle(conn: Conn, *, vehicle_id: int) -> dict | None:
    """Recompute health / rentable / open_alerts; returns the new values (and notifies) only if they changed.

    Health: critical with any active critical alert, warning with any active high or medium one, else ok.
    Rentable is false while a critical alert is not resolved (acknowledged still counts).
    """
    row = conn.execute(
        """WITH a AS (
               SELECT count(*)::int AS n,
                      coalesce(bool_or(severity = ANY(%(crit)s)), false) AS crit,
                      coalesce(bool_or(severity = ANY(%(warn)s)), false) AS warn
                 FROM alerts WHERE vehicle_id = %(v)s AND status <> 'resolved')
           INSERT INTO vehicle_state AS s (vehicle_id, health, rentable, open_alerts)
           SELECT %(v)s, CASE WHEN crit THEN 'critical' WHEN warn THEN 'warning' ELSE 'ok' END, NOT crit, n FROM a
           ON CONFLICT (vehicle_id) DO UPDATE SET
               health = EXCLUDED.health, rentable = EXCLUDED.rentable, open_alerts = EXCLUDED.open_alerts
           WHERE (s.health, s.rentable, s.open_alerts)
                 IS DISTINCT FROM (EXCLUDED.health, EXCLUDED.rentable, EXCLUDED.open_alerts)
           RETURNING vehicle_id, health, rentable, open_alerts""",
        {"v": vehicle_id, "crit": list(HEALTH_CRITICAL_SEVERITIES), "warn": list(HEALTH_WARNING_SEVERITIES)},
    ).fetchone()
    if row is None:
        return None
    vin = conn.execute("SELECT vin FROM vehicles WHERE id = %s", (vehicle_id,)).fetchone()
    msg = {
        "type": "vehicle",
        "event": "health",
        "vehicle_id": vehicle_id,
        "vin": vin["vin"] if vin else None,
        "health": row["health"],
        "rentable": row["rentable"],
        "open_alerts": row["open_alerts"],
    }
    notify(conn, message=msg)
    return msg


def vehicle_event(conn: Conn, *, vehicle_id: int, vin: str, event: str, ts: Any, data: dict) -> None:
    """Announce a vehicle state change that is not an alert (online/offline, station enter/exit)."""
    notify(
        conn,
        message={
            "type": "vehicle",
            "event": event,
            "vehicle_id": vehicle_id,
            "vin": vin,
            "ts": ts.isoformat() if isinstance(ts, dt.datetime) else ts,
            **data,
        },
    )


def handling_times(conn: Conn, *, username: str, start: dt.datetime, end: dt.datetime) -> dict:
    """How fast a dispatcher handled alerts opened in [start, end): acknowledgements and resolutions by this user,
    with mean minutes from the alert's opening (the alert row keeps who acknowledged and who resolved it)."""
    r = one(
        conn.execute(
            """SELECT count(*) FILTER (WHERE acknowledged_by = %(u)s) AS acknowledged,
                      avg(extract(epoch FROM acknowledged_at - opened_at) / 60.0)
                          FILTER (WHERE acknowledged_by = %(u)s) AS ack_minutes,
                      count(*) FILTER (WHERE resolved_by = %(u)s) AS resolved,
                      avg(extract(epoch FROM resolved_at - opened_at) / 60.0)
                          FILTER (WHERE resolved_by = %(u)s) AS resolve_minutes
                 FROM alerts WHERE opened_at >= %(f)s AND opened_at < %(t)s""",
            {"u": username, "f": start, "t": end},
        )
    )
    return {
        "alerts_acknowledged": r["acknowledged"],
        "mean_ack_minutes": None if r["ack_minutes"] is None else round(float(r["ack_minutes"]), 2),
        "alerts_resolved": r["resolved"],
        "mean_resolve_minutes": None
        if r["resolve_minutes"] is None
        else round(float(r["resolve_minutes"]), 2),
    }
