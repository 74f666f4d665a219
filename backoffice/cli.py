"""Back-office admin subcommands: stations, vehicles, users."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backoffice.auth import service as users
from backoffice.stations import service as stations
from backoffice.vehicles import importer
from fleetcore.db import connect
from fleetcore.errors import CliError
from fleetcore.settings import get_settings

CLI = {"username": "cli"}  # the actor of CLI writes in the audit log


def register(sub: argparse._SubParsersAction) -> None:
    st = sub.add_parser("stations", help="manage rental stations").add_subparsers(
        dest="action", required=True
    )
    add = st.add_parser("add", help="add a station")
    add.add_argument("--code", required=True)
    add.add_argument("--name", required=True)
    add.add_argument("--lat", type=float, required=True)
    add.add_argument("--lon", type=float, required=True)
    add.set_defaults(func=cmd_stations_add)
    ls = st.add_parser("list", help="list stations")
    ls.set_defaults(func=cmd_stations_list)

    ve = sub.add_parser("vehicles", help="manage vehicles").add_subparsers(dest="action", required=True)
    imp = ve.add_parser(
        "import", help="import vehicles from CSV (vin,plate,make,model,year,class,station,device_id)"
    )
    imp.add_argument("file")
    imp.set_defaults(func=cmd_vehicles_import)

    us = sub.add_parser("users", help="manage staff users").add_subparsers(dest="action", required=True)
    ua = us.add_parser("add", help="add a staff user")
    ua.add_argument("--username", required=True)
    ua.add_argument("--role", required=True)
    ua.add_argument("--full-name", default="")
    ua.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    ua.set_defaults(func=cmd_users_add)


def cmd_stations_add(args: argparse.Namespace) -> int:
    with connect(get_settings().require_database_url()) as conn:
        s = stations.create(conn, code=args.code, name=args.name, lat=args.lat, lon=args.lon, actor=CLI)
    print(f"station {s['code']} added (id {s['id']})")
    return 0


def cmd_stations_list(args: argparse.Namespace) -> int:
    with connect(get_settings().require_database_url()) as conn:
        for s in stations.list_(conn):
            print(f"{s['code']:<10} {s['lat']:>10.5f} {s['lon']:>11.5f}  {s['name']}")
    return 0


def cmd_vehicles_import(args: argparse.Namespace) -> int:
    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read {path}: {exc}") from exc
    with connect(get_settings().require_database_url()) as conn:
        try:
            n = importer.import_csv(conn, text=text, actor=CLI)
        except importer.ImportFailed as exc:
            problems = exc.details if isinstance(exc.details, list) else []
            for d in problems:
                print(f"{path}:{d['line']}: {d['problem']}", file=sys.stderr)
            raise CliError(f"nothing imported: {len(problems)} problem(s) in {path}") from None
    print(f"imported {n} vehicles")
    return 0


def cmd_users_add(args: argparse.Namespace) -> int:
    if not args.password_stdin:
        raise CliError("pass the password on standard input with --password-stdin")
    password = sys.stdin.readline().rstrip("\r\n")
    with connect(get_settings().require_database_url()) as conn:
        u = users.create(
            conn,
            username=args.username,
            role=args.role,
            password=password,
            full_name=args.full_name,
            actor=CLI,
        )
    print(f"user {u['username']} ({u['role']}) added")
    return 0
