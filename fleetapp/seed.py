"""Register the simulated stations, vehicles and devices in the back-office registry (idempotent)."""

from __future__ import annotations

from backoffice.devices import service as devices
from backoffice.stations import service as stations
from backoffice.vehicles import service as vehicle_service
from fleetcore.db import Conn
from simulators.city import STATIONS
from simulators.runner import ScenarioLike, fleet_registry

SIMULATOR = {"username": "simulator"}  # names the writer in the vehicles' status history


def seed_registry(
    conn: Conn, *, vehicles: int, seed: int, scenario: ScenarioLike = None, jt808_prefix: str | None = None
) -> list[dict]:
    """Create the simulator's stations and the first `vehicles` cars with their devices; safe to call again.

    Vehicle identity (VIN, plate, device id, class, protocol) depends only on the index, never on the seed, so one
    database serves runs with any seed. The seed is accepted for symmetry with the simulator. Cars that the
    simulator drives are `rented` (registered available, then rented out); parked-only cars (and those with an
    unauthorized-movement fault in `scenario`) `available`. With jt808_prefix the cars carry JT/T 808 terminals
    (device ids from their phone numbers) instead. Returns the registry rows of the fleet (see
    runner.fleet_registry). Writes go through the stations, vehicles and devices services, in bulk where they can.
    """
    del seed  # identities are index-based on purpose (see docstring)
    rows = fleet_registry(vehicles, scenario, jt808_prefix=jt808_prefix)
    with conn.transaction():
        for st in STATIONS:
            if stations.get(conn, code=st.code) is None:
                stations.create(conn, code=st.code, name=st.name, lat=st.lat, lon=st.lon, actor=None)
        known = {v["vin"]: v for v in vehicle_service.list_by_vins(conn, vins=[r["vin"] for r in rows])}
        new = [r for r in rows if r["vin"] not in known]
        created = vehicle_service.create_many(
            conn,
            vehicles=[
                {
                    "vin": r["vin"],
                    "plate": r["plate"],
                    "make": r["make"],
                    "model": r["model"],
                    "year": r["year"],
                    "vehicle_class": r["class"],
                    "station": r["station"],
                }
                for r in new
            ],
            actor=SIMULATOR,
            note="registered by fleet simulate --register",
        )
        known.update({v["vin"]: v for v in created})
        # Scenario statuses: only cars the simulator itself parks or drives (available <-> rented) are moved.
        for status in ("available", "rented"):
            ids = [
                known[r["vin"]]["id"]
                for r in rows
                if r["status"] == status and known[r["vin"]]["status"] in ("available", "rented")
            ]
            vehicle_service.move_status_many(
                conn, vehicle_ids=ids, status=status, actor=SIMULATOR, note="scenario"
            )
        installed = devices.list_active(conn, device_ids=[r["device_id"] for r in rows])
        for r in rows:
            r["vehicle_id"] = known[r["vin"]]["id"]
            if installed.get(r["device_id"]) != r["vehicle_id"]:
                devices.bind(
                    conn, device_id=r["device_id"], vehicle_id=r["vehicle_id"], protocol=r["protocol"]
                )
    return rows
