"""What the monitor reads from the registry and the back office: which device is in which vehicle (and its class
and status), thresholds overrides, the changes announced on `LISTEN fleet_registry`, and, at start-up, what the
database knows of each vehicle (`restore`) and the samples a vehicle's windows need (`history`).

All reads: the monitor writes none of these tables. The registry's tables are owned by the back office;
`readings` and `vehicle_state` (except its health columns) by ingest.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterable
from datetime import datetime, timedelta

import psycopg
from psycopg import sql

from fleetcore.contract import READING_COLUMNS
from fleetcore.db import Conn
from monitor.detectors import Restored, VehicleInfo
from monitor.thresholds import DEFAULT, Thresholds, for_class

log = logging.getLogger(__name__)

# The channel of the trigger in fleetcore/migrations/0310_monitor_registry_notify.sql.
CHANNEL = "fleet_registry"
UNKNOWN_DEVICE_RETRY_S = 30.0
# While the listening connection cannot be opened, try again at most this often (the worker polls every batch).
LISTEN_RETRY_S = 2.0
# At most this many stored samples replayed per vehicle (`history`): 180 s of history at 10 Hz.
HISTORY_MAX_SAMPLES = 2000

_INSTALLED = """SELECT i.device_id, v.id AS vehicle_id, v.vin, v.class, v.status
                  FROM device_installs i JOIN vehicles v ON v.id = i.vehicle_id
                 WHERE i.removed_at IS NULL"""


def _info(r: dict) -> VehicleInfo:
    return VehicleInfo(r["vehicle_id"], r["device_id"], r["class"], r["status"], r["vin"])


class Registry:
    """device_id → VehicleInfo of the devices installed now, cached; kept current by `refresh` (notifications)
    and `load` (periodic). Both return the devices whose vehicle changed, so their detectors can be dropped."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.by_device: dict[str, VehicleInfo] = {}
        self.misses: dict[str, float] = {}
        self.overrides: dict[str, dict[str, float]] = {}

    def _apply(self, rows: list[dict], scope: set[str] | None) -> set[str]:
        """Take these install rows as the truth for `scope` (None: every device); the devices removed or moved."""
        found = {r["device_id"]: r for r in rows}
        changed: set[str] = set()
        for device_id in list(self.by_device if scope is None else scope & set(self.by_device)):
            if device_id not in found:
                del self.by_device[device_id]  # no longer installed anywhere
                changed.add(device_id)
        for device_id, r in found.items():
            self.misses.pop(device_id, None)
            info = self.by_device.get(device_id)
            if info is None or info.vehicle_id != r["vehicle_id"] or info.vehicle_class != r["class"]:
                if info is not None:
                    changed.add(device_id)  # moved to another vehicle (or another class: other thresholds)
                self.by_device[device_id] = _info(r)
            else:
                info.status = r["status"]  # shared with the vehicle's detectors: seen at once
        return changed

    def load(self) -> set[str]:
        """Re-read every install and the threshold overrides; the devices removed or moved since the last read."""
        rows = self.conn.execute(_INSTALLED).fetchall()
        self.conn.commit()
        changed = self._apply(rows, None)
        try:
            rows = self.conn.execute("SELECT vehicle_class, name, value FROM monitor_thresholds").fetchall()
            self.conn.commit()
        except psycopg.errors.UndefinedTable:
            self.conn.rollback()
            rows = []
        self.overrides = {}
        for r in rows:
            self.overrides.setdefault(r["vehicle_class"], {})[r["name"]] = r["value"]
        return changed

    def refresh(self, devices: Iterable[str] = (), vehicles: Iterable[int] = ()) -> set[str]:
        """Re-read these devices and the devices of these vehicles; the devices removed or moved."""
        devices, vehicles = set(devices), set(vehicles)
        if not devices and not vehicles:
            return set()
        rows = self.conn.execute(
            _INSTALLED + " AND (i.device_id = ANY(%s) OR i.vehicle_id = ANY(%s))",
            (list(devices), list(vehicles)),
        ).fetchall()
        self.conn.commit()
        scope = devices | {d for d, info in self.by_device.items() if info.vehicle_id in vehicles}
        return self._apply(rows, scope)

    def lookup(self, device_id: str) -> VehicleInfo | None:
        info = self.by_device.get(device_id)
        if info is not None:
            return info
        if time.monotonic() - self.misses.get(device_id, -1e9) < UNKNOWN_DEVICE_RETRY_S:
            return None
        row = self.conn.execute(_INSTALLED + " AND i.device_id = %s", (device_id,)).fetchone()
        self.conn.commit()
        if row is None:
            self.misses[device_id] = time.monotonic()
            return None
        info = _info(row)
        self.by_device[device_id] = info
        return info

    def thresholds(self, vehicle_class: str) -> Thresholds:
        return for_class(vehicle_class, self.overrides) if vehicle_class else DEFAULT


class RegistryListener:
    """`LISTEN fleet_registry` on a connection of its own (autocommit), polled by the worker between batches.

    `poll()` returns the devices and vehicles announced since the last call, and whether the connection was
    (re)opened, in which case announcements may have been missed and the caller re-reads the whole registry.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: psycopg.Connection | None = None
        self._retry_at = 0.0

    def open(self) -> bool:
        self.close()
        self._retry_at = time.monotonic() + LISTEN_RETRY_S
        try:
            conn = psycopg.connect(
                self.url, autocommit=True, connect_timeout=5, application_name="fleet-monitor"
            )
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
        except psycopg.Error as exc:
            log.warning(
                "registry listener: %s", str(exc).strip().splitlines()[0] if str(exc).strip() else exc
            )
            return False
        self.conn = conn
        return True

    def poll(self) -> tuple[set[str], set[int], bool]:
        devices: set[str] = set()
        vehicles: set[int] = set()
        if self.conn is None or self.conn.closed or self.conn.broken:
            if time.monotonic() < self._retry_at:
                return devices, vehicles, False
            return devices, vehicles, self.open()
        try:
            for n in self.conn.notifies(timeout=0):
                try:
                    msg = json.loads(n.payload)
                except ValueError:
                    continue
                if msg.get("device_id"):
                    devices.add(str(msg["device_id"]))
                elif msg.get("vehicle_id") is not None:
                    vehicles.add(int(msg["vehicle_id"]))
        except psycopg.Error:
            log.warning("registry listener lost its connection; reopening")
            self._retry_at = 0.0
            return devices, vehicles, self.open()
        return devices, vehicles, False

    def close(self) -> None:
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()
            self.conn = None


def restore(conn: Conn, devices: dict[str, VehicleInfo]) -> dict[str, Restored]:
    """What the database knows of each installed device's vehicle at start-up: last heard (ingest's arrival
    time of its newest message), ignition and speed, a last will not followed by anything, the open alerts and
    the newest crash."""
    out = {device_id: Restored() for device_id in devices}
    by_vehicle = {info.vehicle_id: out[d] for d, info in devices.items()}
    rows = conn.execute(
        """SELECT i.device_id, s.device_id AS state_device, s.last_seen, s.ignition, s.speed_kmh, s.online,
                  s.online_changed_at
             FROM device_installs i JOIN vehicle_state s ON s.vehicle_id = i.vehicle_id
            WHERE i.removed_at IS NULL"""
    ).fetchall()
    for r in rows:
        st = out.get(r["device_id"])
        if st is None or r["state_device"] != r["device_id"]:
            continue  # not ours, or what the state says was heard from the vehicle's previous device
        st.last_heard, st.ignition, st.speed_kmh = r["last_seen"], r["ignition"], r["speed_kmh"]
        went = r["online_changed_at"]
        if r["online"] is False and went is not None and (r["last_seen"] is None or went >= r["last_seen"]):
            st.offline_since = went
    for r in conn.execute(
        "SELECT vehicle_id, kind, severity, last_seen_at FROM alerts WHERE status <> 'resolved'"
    ).fetchall():
        st = by_vehicle.get(r["vehicle_id"])
        if st is None:
            continue
        st.open_alerts[r["kind"]] = r["severity"]
        if r["kind"] == "crash":
            st.last_crash_ts = r["last_seen_at"]
    conn.commit()
    return out


_HISTORY = (
    sql.SQL(
        "SELECT {cols} FROM readings WHERE vehicle_id = %s AND ts < %s AND ts >= %s ORDER BY ts DESC LIMIT %s"
    )
    .format(cols=sql.SQL(", ").join(map(sql.Identifier, READING_COLUMNS)))
    .as_string()
)


def history(conn: Conn, info: VehicleInfo, before: datetime, seconds: float) -> list[dict]:
    """The vehicle's stored samples from `seconds` before `before` up to it (newest HISTORY_MAX_SAMPLES), oldest
    first, as reading dicts (served by the readings_sample_key index on (vehicle_id, ts DESC, ...))."""
    rows = conn.execute(
        _HISTORY, (info.vehicle_id, before, before - timedelta(seconds=seconds), HISTORY_MAX_SAMPLES)
    ).fetchall()
    conn.commit()
    return rows[::-1]
