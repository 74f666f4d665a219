"""Devices: the one owner of devices and device_installs (which device is in which vehicle, and when).

Functions that act on a vehicle take the vehicle row as backoffice.vehicles.service returns it (id, vin, status,
device_id): the vehicles domain registers cars with their devices, so this domain does not look vehicles up.
"""

from __future__ import annotations

from fleetcore.audit import audit
from fleetcore.db import Conn
from fleetcore.errors import Conflict, Invalid, NotFound


def get(conn: Conn, *, device_id: str) -> dict | None:
    """The registered device (device_id, protocol, created_at), or None."""
    return conn.execute("SELECT * FROM devices WHERE device_id = %s", (device_id,)).fetchone()


def get_active_install(conn: Conn, *, device_id: str) -> dict | None:
    """The device's current install (vehicle_id, installed_at), or None."""
    return conn.execute(
        "SELECT * FROM device_installs WHERE device_id = %s AND removed_at IS NULL", (device_id,)
    ).fetchone()


def list_active(conn: Conn, *, device_ids: list[str]) -> dict[str, int]:
    """Which of these devices are installed, and in which vehicle: {device_id: vehicle_id}."""
    rows = conn.execute(
        "SELECT device_id, vehicle_id FROM device_installs WHERE removed_at IS NULL AND device_id = ANY(%s)",
        (device_ids,),
    ).fetchall()
    return {r["device_id"]: r["vehicle_id"] for r in rows}


def list_installs(conn: Conn, *, vehicle_id: int) -> list[dict]:
    """Every device binding of the vehicle, newest first."""
    return conn.execute(
        """SELECT di.id, di.device_id, d.protocol, di.installed_at, di.removed_at
             FROM device_installs di JOIN devices d USING (device_id)
            WHERE di.vehicle_id = %s ORDER BY di.installed_at DESC, di.id DESC""",
        (vehicle_id,),
    ).fetchall()


def check_free(conn: Conn, *, device_id: str, vehicle_id: int) -> None:
    """Conflict if the device is installed in a vehicle other than this one."""
    # The other vehicle's VIN (vehicles is owned by backoffice.vehicles) is read for the message only.
    row = conn.execute(
        """SELECT v.vin FROM device_installs di JOIN vehicles v ON v.id = di.vehicle_id
            WHERE di.device_id = %s AND di.removed_at IS NULL AND di.vehicle_id <> %s""",
        (device_id, vehicle_id),
    ).fetchone()
    if row:
        raise Conflict(f"device {device_id!r} is installed in {row['vin']}; remove it there first")


def bind(conn: Conn, *, device_id: str, vehicle_id: int, protocol: str | None = None) -> None:
    """Bind a device to a vehicle, ending any previous binding of either (no checks, no audit: the callers')."""
    conn.execute(
        "INSERT INTO devices (device_id, protocol) VALUES (%s, coalesce(%s, 'json')) "
        "ON CONFLICT (device_id) DO UPDATE SET protocol = coalesce(%s, devices.protocol)",
        (device_id, protocol, protocol),
    )
    conn.execute(
        "UPDATE device_installs SET removed_at = now() WHERE removed_at IS NULL AND (device_id = %s OR vehicle_id = %s)",
        (device_id, vehicle_id),
    )
    conn.execute(
        "INSERT INTO device_installs (device_id, vehicle_id) VALUES (%s, %s)", (device_id, vehicle_id)
    )
    # vehicle_state is written by ingest; the device column follows the install so readings find their vehicle.
    conn.execute(
        "INSERT INTO vehicle_state (vehicle_id, device_id) VALUES (%s, %s) "
        "ON CONFLICT (vehicle_id) DO UPDATE SET device_id = EXCLUDED.device_id",
        (vehicle_id, device_id),
    )


def install(conn: Conn, *, vehicle: dict, device_id: str, actor: dict, protocol: str | None = None) -> None:
    """A technician installs a device (replacing the vehicle's current one); audited as vehicle.device.install."""
    if vehicle["status"] == "retired":
        raise Invalid(f"vehicle {vehicle['vin']} is retired")
    check_free(conn, device_id=device_id, vehicle_id=vehicle["id"])
    bind(conn, device_id=device_id, vehicle_id=vehicle["id"], protocol=protocol)
    audit(
        conn,
        actor=actor,
        action="vehicle.device.install",
        entity="vehicles",
        entity_id=vehicle["vin"],
        before={"device_id": vehicle["device_id"]},
        after={"device_id": device_id, "protocol": protocol},
    )


def remove(conn: Conn, *, vehicle: dict, actor: dict) -> dict:
    """End the vehicle's current device binding; returns the ended install. NotFound if none."""
    row = conn.execute(
        "UPDATE device_installs SET removed_at = now() WHERE vehicle_id = %s AND removed_at IS NULL RETURNING *",
        (vehicle["id"],),
    ).fetchone()
    if row is None:
        raise NotFound("the vehicle has no device installed")
    conn.execute("UPDATE vehicle_state SET device_id = NULL WHERE vehicle_id = %s", (vehicle["id"],))
    audit(
        conn,
        actor=actor,
        action="vehicle.device.remove",
        entity="vehicles",
        entity_id=vehicle["vin"],
        before={"device_id": row["device_id"]},
        after={"device_id": None},
    )
    return row
