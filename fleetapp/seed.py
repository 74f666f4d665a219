"""Register the simulated stations, vehicles and devices in the back-office registry (idempotent)."""

from __future__ import annotations

from backoffice.fleet import service as fleet
from fleetcore.db import Conn, one
from simulators.city import STATIONS
from simulators.runner import ScenarioLike, fleet_registry


def seed_registry(
    conn: Conn, *, vehicles: int, seed: int, scenario: ScenarioLike = None, jt808_prefix: str | None = None
) -> list[dict]:
    """Create the simulator's stations and the first `vehicles` cars with their devices; safe to call again.

    Vehicle identity (VIN, plate, device id, class, protocol) depends only on the index, never on the seed, so one
    database serves runs with any seed. The seed is accepted for symmetry with the simulator. Cars that the
    simulator drives are registered `rented`; parked-only cars (and those with an unauthorized-movement fault in
    `scenario`) `available`. With jt808_prefix the cars carry JT/T 808 terminals (device ids from their phone
    numbers) instead. Returns the registry rows of the fleet (see runner.fleet_registry).
    """
    del seed  # identities are index-based on purpose (see docstring)
    rows = fleet_registry(vehicles, scenario, jt808_prefix=jt808_prefix)
    with conn.transaction():
        station_ids = {}
        for st in STATIONS:
            existing = fleet.get_station(conn, code=st.code)
            if existing is None:
                existing = fleet.create_station(conn, code=st.code, name=st.name, lat=st.lat, lon=st.lon)
            station_ids[st.code] = existing["id"]
        for r in rows:
            v = conn.execute("SELECT id, status FROM vehicles WHERE vin = %s", (r["vin"],)).fetchone()
            if v is None:
                v = one(
                    conn.execute(
                        """INSERT INTO vehicles (vin, plate, make, model, year, class, home_station_id, status)
                       VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id, status""",
                        (
                            r["vin"],
                            r["plate"],
                            r["make"],
                            r["model"],
                            r["year"],
                            r["class"],
                            station_ids[r["station"]],
                            r["status"],
                        ),
                    )
                )
                conn.execute(
                    "INSERT INTO vehicle_status_history (vehicle_id, status, changed_by, note) "
                    "VALUES (%s, %s, 'simulator', 'registered by fleet simulate --register')",
                    (v["id"], r["status"]),
                )
            elif v["status"] != r["status"] and v["status"] in ("available", "rented"):
                conn.execute(
                    "UPDATE vehicles SET status = %s, updated_at = now() WHERE id = %s",
                    (r["status"], v["id"]),
                )
                conn.execute(
                    "INSERT INTO vehicle_status_history (vehicle_id, status, changed_by, note) "
                    "VALUES (%s, %s, 'simulator', 'scenario')",
                    (v["id"], r["status"]),
                )
            r["vehicle_id"] = v["id"]
            installed = conn.execute(
                "SELECT vehicle_id FROM device_installs WHERE device_id = %s AND removed_at IS NULL",
                (r["device_id"],),
            ).fetchone()
            if installed is None or installed["vehicle_id"] != v["id"]:
                fleet.install_device(
                    conn, device_id=r["device_id"], vehicle_id=v["id"], protocol=r["protocol"]
                )
    return rows
