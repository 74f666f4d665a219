"""`fleet monitor` (the live detection process) and `fleet monitor geofence-add`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from fleetcore.db import connect
from fleetcore.errors import Invalid
from fleetcore.runtime import stop_on_signals
from fleetcore.settings import get_settings
from monitor import geofence
from monitor.worker import run


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("monitor", help="live fault and accident detection (alerts)")
    p.set_defaults(func=_run)
    msub = p.add_subparsers(dest="monitor_command", metavar="SUBCOMMAND")
    g = msub.add_parser("geofence-add", help="add a geofence polygon (GeoJSON file)")
    g.add_argument("--code", required=True)
    g.add_argument("--name", default="")
    g.add_argument("--kind", required=True, choices=geofence.KINDS)
    g.add_argument("--station", help="station code (for kind=station)")
    g.add_argument("geojson", type=Path, help="file with a GeoJSON Polygon/MultiPolygon or Feature")
    g.set_defaults(func=_geofence_add)


def _run(args: argparse.Namespace) -> int:
    run(get_settings(), stop_on_signals())
    return 0


def _geofence_add(args: argparse.Namespace) -> int:
    try:
        doc = json.loads(args.geojson.read_text())
    except (OSError, ValueError) as exc:
        raise Invalid(f"{args.geojson}: {exc}") from exc
    geometry = doc.get("geometry", doc) if isinstance(doc, dict) else doc
    with connect(get_settings().require_database_url()) as conn:
        station_id = None
        if args.station:
            row = conn.execute("SELECT id FROM stations WHERE code = %s", (args.station,)).fetchone()
            if row is None:
                raise Invalid(f"unknown station {args.station}")
            station_id = row["id"]
        g = geofence.create(
            conn, code=args.code, name=args.name, kind=args.kind, geometry=geometry, station_id=station_id
        )
    print(f"geofence {g['code']} ({g['kind']}) added, id {g['id']}")
    return 0
