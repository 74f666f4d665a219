"""Evidence a case collects by itself when it names an order: nobody types these facts in.

- order_timeline: the rental's history (backoffice.orders) with its handover readings and charges;
- trip: what the car recorded during the rental (backoffice.telemetry: km, top speed, harsh events, crashes);
- alerts: the monitor's alerts on the car during the rental (monitor.service);
- invoices: invoices and payments of the order (backoffice.finance).

Stored per kind in case_evidence (owned by backoffice.support), refreshed on demand.
"""

from __future__ import annotations

import datetime as dt

from psycopg.types.json import Jsonb

from backoffice.finance import service as finance
from backoffice.orders import service as orders
from backoffice.telemetry import service as telemetry
from fleetcore.db import Conn, one
from fleetcore.jsonable import to_json
from monitor import service as alerts

ORDER_FIELDS = (
    "id", "status", "vehicle_class", "pickup_station", "return_station", "actual_return_station", "pickup_at",
    "return_at", "picked_up_at", "returned_at", "vin", "plate", "pickup_odometer_km", "return_odometer_km",
    "pickup_fuel_pct", "return_fuel_pct", "damage", "charges", "quoted_net",
)  # fmt: skip
ALERT_FIELDS = ("id", "kind", "severity", "status", "message", "opened_at", "resolved_at", "occurrences")
MAX_ALERTS = 200


def rental_window(order: dict, now: dt.datetime) -> tuple[dt.datetime, dt.datetime] | None:
    """[pickup, return) of a rental that started; an active rental runs until now."""
    if order["picked_up_at"] is None:
        return None
    return order["picked_up_at"], order["returned_at"] or now


def collect(conn: Conn, *, order_id: int) -> dict[str, dict]:
    """Every kind of evidence for the order, as JSON-ready dicts."""
    now = one(conn.execute("SELECT now() AS t"))["t"]
    order = orders.get_or_raise(conn, order_id=order_id)
    out: dict[str, dict] = {
        "order_timeline": {
            "order": {k: order.get(k) for k in ORDER_FIELDS},
            "history": [
                {k: h[k] for k in ("at", "actor", "action", "before", "after") if k in h}
                for h in orders.history(conn, order_id=order_id)
            ],
        }
    }
    window = rental_window(order, now)
    if window is not None and order["vehicle_id"] is not None:
        start, end = window
        trip = telemetry.trip_summary(conn, vehicle_id=order["vehicle_id"], start=start, end=end)
        # The handover readings (themselves the car's telemetry state at pickup and return) bound the whole trip;
        # the readings inside the window start with the first sample after pickup.
        if order["pickup_odometer_km"] is not None and order["return_odometer_km"] is not None:
            trip["distance_km"] = round(order["return_odometer_km"] - order["pickup_odometer_km"], 1)
        out["trip"] = {"from": start, "to": end, **trip}
        rows, total = alerts.list_(
            conn, vehicle_id=order["vehicle_id"], start=start, end=end, limit=MAX_ALERTS
        )
        out["alerts"] = {"total": total, "items": [{k: a[k] for k in ALERT_FIELDS} for a in rows]}
    else:
        out["trip"] = {"note": "the rental has not started: no trip yet"}
        out["alerts"] = {"total": 0, "items": []}
    invoices = finance.list_for_order(conn, order_id=order_id)
    out["invoices"] = {
        "items": [
            {
                "id": i["id"],
                "number": i["number"],
                "kind": i["kind"],
                "status": i["status"],
                "gross": i["gross"],
                "paid": i["paid"],
                "balance": i["balance"],
                "lines": [{k: ln[k] for k in ("code", "description", "amount")} for ln in i["lines"]],
                "payments": [{k: p[k] for k in ("amount", "method", "paid_at")} for p in i["payments"]],
            }
            for i in invoices
        ]
    }
    return {k: to_json(v) for k, v in out.items()}


def attach(conn: Conn, *, case_id: int, order_id: int) -> dict[str, dict]:
    """Collect the evidence and store it on the case (replacing what an earlier collection stored)."""
    found = collect(conn, order_id=order_id)
    for kind, data in found.items():
        conn.execute(
            """INSERT INTO case_evidence (case_id, kind, data) VALUES (%s, %s, %s)
               ON CONFLICT (case_id, kind) DO UPDATE SET data = EXCLUDED.data, collected_at = now()""",
            (case_id, kind, Jsonb(data)),
        )
    return found


def list_(conn: Conn, *, case_id: int) -> list[dict]:
    return conn.execute(
        "SELECT kind, data, collected_at FROM case_evidence WHERE case_id = %s ORDER BY kind", (case_id,)
    ).fetchall()
