"""The console's base map, exported from the simulator's city model (simulators.city): roads and stations as
GeoJSON, written at build time next to the bundle (`make console`), so the map needs no tile server.

`python -m backoffice.console.basemap [OUT]` writes it (default: backoffice/console/static/city.geojson); a test
checks the committed file is what the city model exports today.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from simulators.city import NODES, ROADS, STATIONS

OUT = Path(__file__).resolve().parent / "static" / "city.geojson"
DECIMALS = 5  # ~1 m, finer than the hand-placed coordinates (docs: a few tens of metres)


def _pt(lat: float, lon: float) -> list[float]:
    return [round(lon, DECIMALS), round(lat, DECIMALS)]


def export() -> dict:
    """The road network (one LineString per road, with its type) and the stations (Points) as GeoJSON."""
    features: list[dict] = []
    for a, b, kind, mids in ROADS:
        pts = [NODES[a][:2], *mids, NODES[b][:2]]
        features.append(
            {
                "type": "Feature",
                "properties": {"layer": "road", "kind": kind},
                "geometry": {"type": "LineString", "coordinates": [_pt(lat, lon) for lat, lon in pts]},
            }
        )
    for s in STATIONS:
        features.append(
            {
                "type": "Feature",
                "properties": {"layer": "station", "code": s.code, "name": s.name},
                "geometry": {"type": "Point", "coordinates": _pt(s.lat, s.lon)},
            }
        )
    return {"type": "FeatureCollection", "name": "city", "features": features}


def render() -> str:
    return json.dumps(export(), separators=(",", ":"), sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else OUT
    out.write_text(render())
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
