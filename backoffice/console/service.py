"""What the dispatcher console reads: the fleet on the map, position deltas, a vehicle's panel, the day's
operations board and search. It owns no table; everything comes from the other domains' services.

Positions are polled (GET /api/v1/console/positions?since=cursor, once a second) rather than pushed: a delta is
one indexed-free scan of vehicle_state (one row per vehicle), stateless, and any API process answers it; alerts
and vehicle health arrive on the WebSocket. A state row's `updated_at` is the writer's transaction start, which
can precede its commit, so each delta reaches back POSITIONS_OVERLAP_S before the cursor: a row committed late is
sent again rather than lost, and re-applying a position is harmless.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from zoneinfo import ZoneInfo

from shapely.geometry import mapping

from backoffice.customers import service as customers
from backoffice.maintenance import service as maintenance
from backoffice.orders import service as orders
from backoffice.stations import service as stations
from backoffice.telemetry import service as telemetry
from backoffice.vehicles import service as vehicles
from fleetcore.db import Conn
from fleetcore.errors import Invalid
from monitor import dtc_codes, geofence
from monitor import service as alerts

# Longer than ingest's commit latency (p99 365 ms per batch, state flush every 500 ms when coalesced: README).
POSITIONS_OVERLAP = dt.timedelta(seconds=3)
# A cursor older than this gets the whole fleet again (a console that slept, or a clock that jumped).
MAX_DELTA_AGE = dt.timedelta(minutes=10)
MAX_FLEET = 100_000
PANEL_ALERTS = 10
SEARCH_LIMIT = 10
ACTIVE = ["open", "acknowledged"]
BLOCKING_STATUSES = ("maintenance", "out_of_service")
PICKED_UP = ("active", "returned", "completed")
ORDER_FIRST = {"active": 0, "assigned": 1, "confirmed": 2, "pending": 3}


def _positions_by_id(cols: dict) -> dict[int, dict]:
    keys = ("lat", "lon", "heading", "speed", "online", "health", "open_alerts", "ts")
    return {vid: {k: cols[k][i] for k in keys} for i, vid in enumerate(cols["id"])}


def fleet(conn: Conn) -> dict:
    """Every vehicle with its latest position and health, the stations and geofences, and a cursor."""
    cols = telemetry.positions(conn)
    pos = _positions_by_id(cols)
    out = []
    for v in vehicles.list_(conn, limit=MAX_FLEET):
        if v["status"] == "retired":
            continue
        p = pos.get(v["id"], {})
        out.append(
            {
                "id": v["id"], "vin": v["vin"], "plate": v["plate"], "make": v["make"], "model": v["model"],
                "vehicle_class": v["class"], "status": v["status"], "station": v["station"],
                "lat": p.get("lat"), "lon": p.get("lon"), "heading": p.get("heading"), "speed": p.get("speed"),
                "online": bool(p.get("online")), "health": p.get("health") or "ok",
                "open_alerts": p.get("open_alerts") or 0, "ts": p.get("ts"),
            }
        )  # fmt: skip
    fences = [
        {"code": f.code, "name": f.name, "kind": f.kind, "geometry": mapping(f.geometry)}
        for f in geofence.load(conn).fences
    ]
    return {
        "cursor": cols["now"],
        "vehicles": out,
        "stations": stations.list_(conn),
        "geofences": fences,
        "station_radius_m": geofence.DEFAULT_STATION_RADIUS_M,
    }


def positions_since(conn: Conn, *, since: dt.datetime) -> dict:
    """The vehicles whose state or registry status changed since `since` (a cursor from fleet() or here)."""
    if since.tzinfo is None:
        raise Invalid("since needs a UTC offset (pass back the cursor you were given)")
    cols = telemetry.positions(conn, changed_after=since - POSITIONS_OVERLAP)
    if cols["now"] - since > MAX_DELTA_AGE:
        cols = telemetry.positions(conn)
    changed = vehicles.list_changed(conn, after=since - POSITIONS_OVERLAP)
    return {**cols, "cursor": cols.pop("now"), "status": changed}


def _contact(conn: Conn, customer_id: int) -> dict:
    c = customers.get_or_raise(conn, customer_id=customer_id)
    return {
        "id": c["id"],
        "name": f"{c['first_name']} {c['last_name']}",
        "phone": c["phone"],
        "email": c["email"],
    }


def vehicle_panel(conn: Conn, *, vin: str) -> dict:
    """A vehicle's live state with DTC descriptions, current order and renter's contact, alerts, service plan."""
    v = vehicles.get_or_raise(conn, vin=vin)
    state = dict(telemetry.get_state(conn, vehicle_id=v["id"]) or {})
    dtcs = []
    for code in state.pop("dtc", None) or []:
        desc, severity = dtc_codes.describe(code)
        dtcs.append({"code": code, "description": desc, "severity": severity})
    state["dtc"] = dtcs
    order = orders.current_for_vehicle(conn, vehicle_id=v["id"])
    if order is not None:
        order = {**order, "customer": _contact(conn, order["customer_id"])}
    recent, _ = alerts.list_(conn, vehicle_id=v["id"], limit=PANEL_ALERTS)
    return {
        **v,
        "vehicle_class": v["class"],
        "state": state,
        "order": order,
        "alerts": recent,
        "service": maintenance.service_info(conn, vehicle_id=v["id"]),
    }


def _local_day(day: dt.date, tz: ZoneInfo) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=tz)
    end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=tz)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def board(conn: Conn, *, timezone: str, day: dt.date | None = None) -> dict:
    """Per station: the day's pickups and returns, available cars and the balance; the relocations that even
    out the balances; and the vehicles blocked by an active critical alert or by the workshop."""
    tz = ZoneInfo(timezone)
    day = day or dt.datetime.now(tz).date()
    start, end = _local_day(day, tz)
    blocked = _blocked(conn)
    blocked_ids = {b["id"] for b in blocked}
    available: dict[str, list[str]] = defaultdict(list)
    for v in vehicles.list_(conn, status="available", limit=MAX_FLEET):
        if v["id"] not in blocked_ids and v["station"]:
            available[v["station"]].append(v["plate"])
    pickups: dict[str, list[dict]] = defaultdict(list)
    returns: dict[str, list[dict]] = defaultdict(list)
    for o in orders.day_sheet(conn, start=start, end=end):
        base = {"id": o["id"], "status": o["status"], "plate": o["plate"], "vehicle_class": o["vehicle_class"],
                "customer": o["customer_name"]}  # fmt: skip
        if start <= o["pickup_at"] < end:
            pickups[o["pickup_station"]].append(
                {**base, "at": o["pickup_at"], "done": o["status"] in PICKED_UP}
            )
        returned = o["returned_at"] is not None
        if start <= o["return_at"] < end or (returned and start <= o["returned_at"] < end):
            station = o["actual_return_station"] if returned else o["return_station"]
            returns[station].append({**base, "at": o["return_at"], "done": returned})
    rows = []
    for s in stations.list_(conn):
        code = s["code"]
        open_pickups = sum(not p["done"] for p in pickups[code])
        expected = sum(not r["done"] for r in returns[code])
        rows.append(
            {
                "code": code, "name": s["name"], "available": len(available[code]),
                "pickups": pickups[code], "returns": returns[code], "pickups_open": open_pickups,
                "balance": len(available[code]) + expected - open_pickups,
            }
        )  # fmt: skip
    return {
        "day": day,
        "timezone": timezone,
        "stations": rows,
        "relocations": relocations(rows, available),
        "blocked": blocked,
    }


def relocations(rows: list[dict], available: dict[str, list[str]]) -> list[dict]:
    """Greedy moves from the largest surplus to the largest deficit until no station is short (or no spare car).

    A surplus station gives only cars beyond its own open pickups, so a move never creates a new deficit."""
    surplus = {r["code"]: min(r["balance"], len(available[r["code"]])) for r in rows if r["balance"] > 0}
    deficit = {r["code"]: -r["balance"] for r in rows if r["balance"] < 0}
    spare = {code: list(available[code]) for code in surplus}
    moves: dict[tuple[str, str], list[str]] = defaultdict(list)
    for to in sorted(deficit, key=lambda c: (-deficit[c], c)):
        need = deficit[to]
        for src in sorted(surplus, key=lambda c: (-surplus[c], c)):
            while need and surplus[src] > 0:
                moves[(src, to)].append(spare[src].pop())
                surplus[src] -= 1
                need -= 1
            if not need:
                break
    return [{"from_station": a, "to_station": b, "vehicles": plates} for (a, b), plates in moves.items()]


def _blocked(conn: Conn) -> list[dict]:
    """Vehicles with an active critical alert, and those in the workshop (maintenance, out of service)."""
    out: dict[int, dict] = {}
    critical, _ = alerts.list_(conn, status=ACTIVE, severity=["critical"], limit=1000)
    kinds: dict[int, set[str]] = defaultdict(set)
    for a in critical:
        kinds[a["vehicle_id"]].add(a["kind"])
    for vid, ks in kinds.items():
        v = vehicles.get_by_id(conn, vehicle_id=vid)
        if v is not None:
            out[vid] = {"id": vid, "vin": v["vin"], "plate": v["plate"], "station": v["station"],
                        "status": v["status"], "reason": "alert", "detail": ", ".join(sorted(ks))}  # fmt: skip
    for status in BLOCKING_STATUSES:
        for v in vehicles.list_(conn, status=status, limit=MAX_FLEET):
            out.setdefault(
                v["id"],
                {"id": v["id"], "vin": v["vin"], "plate": v["plate"], "station": v["station"],
                 "status": v["status"], "reason": "service", "detail": status},
            )  # fmt: skip
    return sorted(out.values(), key=lambda b: (b["reason"], b["plate"]))


def search(conn: Conn, *, q: str) -> dict:
    """Vehicles by plate or VIN; customers by name (with the car of their running or next order)."""
    q = q.strip()
    if len(q) < 2:
        raise Invalid("search needs at least 2 characters")
    found = customers.list_(conn, q=q, limit=SEARCH_LIMIT)["items"]
    people = []
    for c in found:
        mine = orders.list_(conn, customer_id=c["id"], limit=50)["items"]
        live = sorted(
            (o for o in mine if o["status"] in ORDER_FIRST),
            key=lambda o: (ORDER_FIRST[o["status"]], o["pickup_at"]),
        )
        o = live[0] if live else None
        vid = (o["vehicle_id"] or o["reserved_vehicle_id"]) if o else None
        car = vehicles.get_by_id(conn, vehicle_id=vid) if vid else None
        people.append(
            {
                "id": c["id"], "name": f"{c['first_name']} {c['last_name']}", "phone": c["phone"],
                "order_id": o["id"] if o else None, "order_status": o["status"] if o else None,
                "vin": car["vin"] if car else None, "plate": car["plate"] if car else None,
            }
        )  # fmt: skip
    return {"q": q, "vehicles": vehicles.search(conn, q=q, limit=SEARCH_LIMIT), "customers": people}
