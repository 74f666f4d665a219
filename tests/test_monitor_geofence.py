"""Geofences stored in the database: validation, default station circles, point queries."""

from __future__ import annotations

import pytest

from fleetcore.errors import Invalid
from monitor import geofence
from tests import factories

BERLIN = {
    "type": "Polygon",
    "coordinates": [[[13.0, 52.3], [13.8, 52.3], [13.8, 52.7], [13.0, 52.7], [13.0, 52.3]]],
}


def test_store_load_and_query(conn):
    st = factories.station(conn, code="ALX", lat=52.5219, lon=13.4132)
    factories.station(conn, code="ZOO", lat=52.5069, lon=13.3320)
    g = geofence.create(conn, code="BERLIN", name="Berlin", kind="permitted", geometry=BERLIN)
    assert g["kind"] == "permitted" and g["active"]
    lot = {"type": "Polygon", "coordinates": [[[13.411, 52.521], [13.415, 52.521], [13.415, 52.523],
                                                [13.411, 52.523], [13.411, 52.521]]]}  # fmt: skip
    geofence.create(
        conn, code="ALX-LOT", name="Alexanderplatz lot", kind="station", geometry=lot, station_id=st["id"]
    )
    gs = geofence.load(conn)
    # ALX has a drawn polygon; ZOO gets the default 150 m circle.
    assert sorted(f.code for f in gs.stations) == ["ALX-LOT", "ZOO"]
    assert gs.station_at(52.522, 13.413).code == "ALX-LOT"
    assert gs.station_at(52.5069, 13.3330).code == "ZOO"  # ~70 m east of the station point
    assert gs.station_at(52.5069, 13.3370) is None  # ~340 m away
    assert gs.inside_permitted(52.5, 13.4, buffered=False)
    assert not gs.inside_permitted(52.9, 13.4, buffered=True)
    assert gs.inside_permitted(52.7005, 13.4, buffered=True)  # within the 100 m GPS-error buffer


@pytest.mark.parametrize(
    "geometry",
    [
        {"type": "Point", "coordinates": [13.4, 52.5]},
        {
            "type": "Polygon",
            "coordinates": [[[13.0, 52.0], [13.1, 52.1], [13.0, 52.1], [13.1, 52.0], [13.0, 52.0]]],
        },
        {"type": "Polygon"},
    ],
)
def test_bad_geometry_rejected(conn, geometry):
    with pytest.raises(Invalid):
        geofence.create(conn, code="BAD", name="", kind="permitted", geometry=geometry)


def test_unknown_kind_rejected(conn):
    with pytest.raises(Invalid):
        geofence.create(conn, code="X", name="", kind="country", geometry=BERLIN)
