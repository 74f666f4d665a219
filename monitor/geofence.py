"""Geofences: station areas, permitted operating regions and restricted zones as shapely polygons (WGS84)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from shapely import STRtree, affinity
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry
from shapely.prepared import prep

from fleetcore.db import Conn, one
from fleetcore.errors import Invalid

KINDS = ("station", "permitted", "restricted")
# Stations without a drawn polygon get a circle of this radius: a rental lot plus its access road.
DEFAULT_STATION_RADIUS_M = 150.0
M_PER_DEG_LAT = 111_320.0  # mean metres per degree of latitude (WGS84, within 0.5 %)


def metres_to_deg(m: float) -> float:
    """Metres as degrees of latitude (used for buffers; conservative in longitude away from the equator)."""
    return m / M_PER_DEG_LAT


@dataclass(frozen=True, slots=True)
class Geofence:
    id: int | None
    code: str
    kind: str
    geometry: BaseGeometry
    name: str = ""
    station_id: int | None = None


class GeofenceSet:
    """All geofences, indexed for point queries; built once and swapped when the table changes."""

    def __init__(self, fences: list[Geofence] | None = None, buffer_m: float = 100.0) -> None:
        self.fences = list(fences or [])
        self.buffer_m = buffer_m
        self.stations = [f for f in self.fences if f.kind == "station"]
        self.restricted = [f for f in self.fences if f.kind == "restricted"]
        self.permitted = [f for f in self.fences if f.kind == "permitted"]
        self._station_tree = STRtree([f.geometry for f in self.stations]) if self.stations else None
        self._restricted_tree = STRtree([f.geometry for f in self.restricted]) if self.restricted else None
        buf = metres_to_deg(self.buffer_m)
        self._permitted = [prep(f.geometry) for f in self.permitted]
        self._permitted_buffered = [prep(f.geometry.buffer(buf)) for f in self.permitted]

    @property
    def has_permitted(self) -> bool:
        return bool(self.permitted)

    def station_at(self, lat: float, lon: float) -> Geofence | None:
        """The station area containing the point, if any."""
        if self._station_tree is None:
            return None
        idx = self._station_tree.query(Point(lon, lat), predicate="intersects")
        return self.stations[int(idx[0])] if len(idx) else None

    def restricted_at(self, lat: float, lon: float) -> Geofence | None:
        if self._restricted_tree is None:
            return None
        idx = self._restricted_tree.query(Point(lon, lat), predicate="intersects")
        return self.restricted[int(idx[0])] if len(idx) else None

    def inside_permitted(self, lat: float, lon: float, *, buffered: bool) -> bool:
        """True when inside any permitted region (with the GPS-error buffer when `buffered`)."""
        pt = Point(lon, lat)
        regions = self._permitted_buffered if buffered else self._permitted
        return any(r.intersects(pt) for r in regions)


def circle(lat: float, lon: float, radius_m: float) -> BaseGeometry:
    """An approximate circle (an ellipse in degrees, so it is round on the ground)."""
    dlat = metres_to_deg(radius_m)
    dlon = dlat / max(math.cos(math.radians(lat)), 0.01)
    return affinity.scale(Point(lon, lat).buffer(1.0, 32), xfact=dlon, yfact=dlat)


def create(
    conn: Conn,
    *,
    code: str,
    name: str,
    kind: str,
    geometry: dict,
    station_id: int | None = None,
) -> dict:
    """Store a geofence (GeoJSON Polygon/MultiPolygon in lon/lat); the geometry is validated with shapely."""
    if kind not in KINDS:
        raise Invalid(f"geofence kind must be one of {', '.join(KINDS)}")
    try:
        geom = shape(geometry)
    except Exception as exc:  # shapely raises several types for bad GeoJSON
        raise Invalid(f"geometry is not valid GeoJSON: {exc}") from exc
    if geom.geom_type not in ("Polygon", "MultiPolygon") or not geom.is_valid or geom.is_empty:
        raise Invalid("geometry must be a valid, non-empty Polygon or MultiPolygon")
    return one(
        conn.execute(
            """INSERT INTO geofences (code, name, kind, station_id, geometry) VALUES (%s, %s, %s, %s, %s)
           RETURNING id, code, name, kind, station_id, geometry, active""",
            (code, name, kind, station_id, json.dumps(geometry)),
        )
    )


def list_(conn: Conn) -> list[dict]:
    return conn.execute(
        "SELECT id, code, name, kind, station_id, geometry, active FROM geofences ORDER BY id"
    ).fetchall()


def load(conn: Conn, *, buffer_m: float = 100.0) -> GeofenceSet:
    """Active geofences plus a default circle for every station that has no drawn polygon."""
    fences: list[Geofence] = []
    drawn_stations: set[int] = set()
    for row in conn.execute("SELECT id, code, name, kind, station_id, geometry FROM geofences WHERE active"):
        fences.append(
            Geofence(
                row["id"], row["code"], row["kind"], shape(row["geometry"]), row["name"], row["station_id"]
            )
        )
        if row["kind"] == "station" and row["station_id"] is not None:
            drawn_stations.add(row["station_id"])
    for st in conn.execute("SELECT id, code, name, lat, lon FROM stations ORDER BY id"):
        if st["id"] not in drawn_stations:
            fences.append(
                Geofence(
                    None,
                    st["code"],
                    "station",
                    circle(st["lat"], st["lon"], DEFAULT_STATION_RADIUS_M),
                    st["name"],
                    st["id"],
                )
            )
    return GeofenceSet(fences, buffer_m=buffer_m)
