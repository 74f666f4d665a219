"""Dispatch: choose the vehicle for a confirmed order, or propose moving one from the nearest station."""

from __future__ import annotations

import logging

import psycopg

from backoffice.maintenance import service as maintenance
from backoffice.orders import holds, service
from backoffice.stations import service as stations
from backoffice.vehicles import service as vehicles
from fleetcore.db import Conn, one
from fleetcore.errors import Conflict, Invalid, NotFound
from fleetcore.geo import haversine_km

log = logging.getLogger(__name__)

# A car handed over with less than a quarter tank costs the customer a refuelling stop at once.
MIN_FUEL_PCT = 25.0
# Statuses a vehicle may have when it is handed to a customer ('reserved' = held for some order).
DISPATCHABLE_STATUSES = ("available", "reserved")


def candidates(
    conn: Conn, *, order: dict, station_id: int | None = None, vin: str | None = None
) -> list[dict]:
    """Vehicles of the order's class (at one station, or anywhere) with everything dispatch decides on."""
    lo, hi = holds.period_bounds(order["pickup_at"], order["return_at"])
    # One read over vehicles, stations, telemetry state and holds (alerts: the monitor domain's table, read here
    # until its service offers it).
    return conn.execute(
        """SELECT v.id, v.vin, v.plate, v.class, v.status, v.home_station_id, s.code AS station, s.lat, s.lon,
                  st.odometer_km, st.fuel_pct, st.ts AS state_ts, coalesce(st.rentable, false) AS rentable,
                  st.health,
                  (SELECT count(*) FROM alerts a WHERE a.vehicle_id = v.id AND a.status <> 'resolved'
                      AND a.severity = 'critical') AS open_critical,
                  EXISTS (SELECT 1 FROM vehicle_assignments x WHERE x.vehicle_id = v.id AND x.released_at IS NULL
                             AND x.order_id <> %(order)s AND x.period && tstzrange(%(lo)s, %(hi)s, '[)')) AS overlapping,
                  EXISTS (SELECT 1 FROM vehicle_assignments x WHERE x.vehicle_id = v.id AND x.released_at IS NULL
                             AND x.order_id <> %(order)s AND upper(x.period) > now()) AS has_bookings
             FROM vehicles v
             JOIN stations s ON s.id = v.home_station_id
             LEFT JOIN vehicle_state st ON st.vehicle_id = v.id
            WHERE v.class = %(cls)s AND (%(st)s::bigint IS NULL OR v.home_station_id = %(st)s)
              AND (%(vin)s::text IS NULL OR v.vin = %(vin)s)
            ORDER BY st.odometer_km ASC NULLS LAST, v.id""",
        {
            "order": order["id"],
            "lo": lo,
            "hi": hi,
            "cls": order["vehicle_class"],
            "st": station_id,
            "vin": vin,
        },
    ).fetchall()


def rejection_reasons(c: dict, *, service_due: bool) -> list[str]:
    """Why a vehicle cannot be handed out for this order (pure; empty = eligible)."""
    reasons = []
    if c["status"] not in DISPATCHABLE_STATUSES:
        reasons.append(f"status is {c['status']}")
    if c["overlapping"]:
        reasons.append("booked for an overlapping period")
    if c["state_ts"] is None or c["odometer_km"] is None or c["fuel_pct"] is None:
        reasons.append("no telemetry state (odometer/fuel)")
    if c["open_critical"]:
        reasons.append("open critical alert")
    elif not c["rentable"] or c["health"] == "critical":
        reasons.append("not rentable (vehicle health)")
    if c["fuel_pct"] is not None and c["fuel_pct"] < MIN_FUEL_PCT:
        reasons.append(f"fuel {c['fuel_pct']:.0f} % below {MIN_FUEL_PCT:.0f} %")
    if service_due:
        reasons.append("due for service before the end of the rental")
    return reasons


def evaluate(conn: Conn, *, order: dict, cands: list[dict]) -> tuple[list[dict], list[dict]]:
    """Split candidates into eligible (lowest odometer first: spreads wear) and rejected with reasons."""
    eligible, rejected = [], []
    included_km = int(order["quote"].get("included_km", 0))
    for c in cands:
        due = False
        if c["odometer_km"] is not None:
            # Due if the service falls inside the rental, assuming the customer drives the full allowance.
            due = maintenance.service_due(
                conn, vehicle_id=c["id"], until=order["return_at"], odometer_km=c["odometer_km"] + included_km
            )
        reasons = rejection_reasons(c, service_due=due)
        if reasons:
            rejected.append({"vin": c["vin"], "station": c["station"], "reasons": reasons})
        else:
            eligible.append(c)
    eligible.sort(key=lambda c: (c["odometer_km"], c["id"]))
    return eligible, rejected


def propose(conn: Conn, *, order: dict, pickup_station: dict) -> dict | None:
    """The nearest other station's eligible vehicle that it can spare (no live bookings of its own), or None."""
    best = None
    eligible, _ = evaluate(conn, order=order, cands=candidates(conn, order=order))
    for c in eligible:
        if c["home_station_id"] == pickup_station["id"] or c["has_bookings"]:
            continue
        d = haversine_km(pickup_station["lat"], pickup_station["lon"], c["lat"], c["lon"])
        key = (d, c["odometer_km"], c["id"])
        if best is None or key < best[0]:
            best = (key, c)
    if best is None:
        return None
    c = best[1]
    return {
        "from_station": c["station"],
        "to_station": pickup_station["code"],
        "vin": c["vin"],
        "plate": c["plate"],
        "distance_km": round(best[0][0], 1),
        "odometer_km": c["odometer_km"],
        "fuel_pct": c["fuel_pct"],
    }


def _take(conn: Conn, *, order: dict, vehicle: dict, actor: dict) -> None:
    """Move the order's hold onto this vehicle (the exclusion constraint re-checks overlap) and mark it."""
    holds.move(conn, order=order, vehicle_id=vehicle["id"])
    conn.execute(
        "UPDATE orders SET vehicle_id = %s, status = 'assigned', updated_at = now() WHERE id = %s",
        (vehicle["id"], order["id"]),
    )
    if vehicle["status"] == "available":
        vehicles.move_status(
            conn,
            vehicle_id=vehicle["id"],
            status="reserved",
            actor=actor,
            note=f"assigned to order {order['id']}",
        )
    if order["vehicle_id"] and order["vehicle_id"] != vehicle["id"]:
        holds.release_vehicle_if_idle(
            conn, vehicle_id=order["vehicle_id"], actor=actor, note=f"order {order['id']} re-assigned"
        )


def assign(conn: Conn, *, order_id: int, vin: str | None, accept_transfer: bool, actor: dict) -> dict:
    """Assign the best vehicle (or the given one); without one at the station, answer with a transfer proposal.

    An assignment is audited as order.assign (a proposal changes nothing).
    """
    result = _assign(conn, order_id=order_id, vin=vin, accept_transfer=accept_transfer, actor=actor)
    if result["status"] == "assigned":
        service.audit_order(
            conn,
            actor=actor,
            action="assign",
            order_id=order_id,
            before=None,
            after={"vehicle": result["vehicle"], "transfer": result.get("transfer")},
        )
    return result


def _assign(conn: Conn, *, order_id: int, vin: str | None, accept_transfer: bool, actor: dict) -> dict:
    order = service.get_or_raise(conn, order_id=order_id, for_update=True)
    if order["status"] not in ("confirmed", "assigned"):
        raise Conflict(f"order {order_id} is {order['status']}; only confirmed orders can be dispatched")
    pickup_station = stations.get_by_id(conn, station_id=order["pickup_station_id"])
    if pickup_station is None:  # the foreign key keeps this from happening
        raise NotFound(f"order {order_id} has no pickup station")
    if vin:
        return _assign_given(
            conn,
            order=order,
            vin=vin.upper(),
            accept_transfer=accept_transfer,
            pickup_station=pickup_station,
            actor=actor,
        )
    if accept_transfer:
        raise Invalid("accept_transfer needs the vin of the proposed vehicle")
    eligible, rejected = evaluate(
        conn, order=order, cands=candidates(conn, order=order, station_id=order["pickup_station_id"])
    )
    for c in eligible:
        try:
            _take(conn, order=order, vehicle=c, actor=actor)
        except psycopg.errors.ExclusionViolation:  # taken by a concurrent booking since we looked
            rejected.append({"vin": c["vin"], "station": c["station"], "reasons": ["taken concurrently"]})
            continue
        return _result(conn, order_id=order_id, vehicle=c, rejected=rejected, action="assigned")
    proposal = propose(conn, order=order, pickup_station=pickup_station)
    if proposal is None:
        raise Conflict(
            f"no healthy {order['vehicle_class']} vehicle at {pickup_station['code']} and none to spare "
            "at other stations",
            details={"rule": "dispatch", "rejected": rejected},
        )
    return {
        "status": "proposal",
        "order_id": order_id,
        "proposal": proposal,
        "rejected": rejected,
        "accept": {"vin": proposal["vin"], "accept_transfer": True},
    }


def _assign_given(
    conn: Conn,
    *,
    order: dict,
    vin: str,
    accept_transfer: bool,
    pickup_station: dict,
    actor: dict,
) -> dict:
    found = candidates(conn, order=order, vin=vin)
    if not found:
        exists = vehicles.get(conn, vin=vin)
        if exists is None:
            raise NotFound(f"no vehicle with VIN {vin}")
        raise Invalid(f"vehicle {vin} is {exists['class']}, the order is for {order['vehicle_class']}")
    c = found[0]
    eligible, rejected = evaluate(conn, order=order, cands=[c])
    if not eligible:
        raise Conflict(
            f"vehicle {vin} cannot be dispatched: {'; '.join(rejected[0]['reasons'])}",
            details={"rule": "dispatch", "rejected": rejected},
        )
    transfer = None
    if c["home_station_id"] != order["pickup_station_id"]:
        if not accept_transfer:
            raise Conflict(
                f"vehicle {vin} is at {c['station']}, not {pickup_station['code']}; "
                "send accept_transfer=true to move it",
                details={"rule": "station"},
            )
        if c["has_bookings"]:
            raise Conflict(
                f"station {c['station']} cannot spare {vin}: it has bookings of its own",
                details={"rule": "spare"},
            )
        distance = haversine_km(pickup_station["lat"], pickup_station["lon"], c["lat"], c["lon"])
        vehicles.relocate(conn, vehicle_id=c["id"], home_station_id=pickup_station["id"])
        row = one(
            conn.execute(
                """INSERT INTO vehicle_transfers (vehicle_id, order_id, from_station_id, to_station_id, distance_km,
                                              requested_by) VALUES (%s, %s, %s, %s, %s, %s) RETURNING *""",
                (
                    c["id"],
                    order["id"],
                    c["home_station_id"],
                    pickup_station["id"],
                    distance,
                    actor["username"],
                ),
            )
        )
        transfer = {
            "from_station": c["station"],
            "to_station": pickup_station["code"],
            "distance_km": round(distance, 1),
            "id": row["id"],
        }
    try:
        _take(conn, order=order, vehicle=c, actor=actor)
    except psycopg.errors.ExclusionViolation as exc:
        raise Conflict(f"vehicle {vin} was booked concurrently for an overlapping period") from exc
    out = _result(conn, order_id=order["id"], vehicle=c, rejected=[], action="assigned")
    out["transfer"] = transfer
    return out


def _result(conn: Conn, *, order_id: int, vehicle: dict, rejected: list, action: str) -> dict:
    return {
        "status": action,
        "order": service.get_or_raise(conn, order_id=order_id),
        "vehicle": {k: vehicle[k] for k in ("vin", "plate", "station", "odometer_km", "fuel_pct")},
        "rejected": rejected,
    }
