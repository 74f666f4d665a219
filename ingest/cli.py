"""`fleet ingest` (the worker), `fleet ingest replay` and `fleet ingest retention`."""

from __future__ import annotations

import argparse
import json

from fleetcore.runtime import stop_on_signals
from fleetcore.settings import get_settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest",
        help="run the ingest worker (MQTT → PostgreSQL); see also `replay` and `retention`",
        description="Without a subcommand: consume device topics and write telemetry until SIGTERM/SIGINT.",
    )
    p.set_defaults(func=cmd_worker)
    isub = p.add_subparsers(dest="ingest_command", metavar="SUBCOMMAND")
    r = isub.add_parser("replay", help="re-process quarantined messages of devices that are now registered")
    r.add_argument("--device", help="only this device id")
    r.set_defaults(func=cmd_replay)
    t = isub.add_parser("retention", help="drop readings and events older than the retention period")
    t.add_argument("--days", type=int, help="keep this many days (default FLEET_READINGS_RETENTION_DAYS)")
    t.set_defaults(func=cmd_retention)


def cmd_worker(args: argparse.Namespace) -> int:
    from fleetcore.cli import CliError
    from ingest.consumer import run

    settings = get_settings()
    if not settings.database_url:
        raise CliError("FLEET_DATABASE_URL is not set")
    if not settings.mqtt_url:
        raise CliError("FLEET_MQTT_URL is not set (mqtt://host:port)")
    try:
        run(settings, stop_on_signals())
    except ConnectionError as exc:  # bad credentials and similar: retrying cannot help
        raise CliError(str(exc)) from exc
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from ingest.replay import replay

    settings = get_settings()
    result = replay(settings.require_database_url(), settings.topic_root, device_id=args.device)
    print(json.dumps({"replayed": result.replayed, "outcomes": result.outcomes}))
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    from ingest.replay import apply_retention

    settings = get_settings()
    days = args.days if args.days is not None else settings.readings_retention_days
    if days < 1:
        print("fleet ingest retention: error: --days must be at least 1")
        return 2
    print(json.dumps(apply_retention(settings.require_database_url(), days)))
    return 0
