"""`fleet ingest` (the worker), `fleet ingest replay` and `fleet ingest retention`."""

from __future__ import annotations

import argparse
import json

from fleetcore.errors import CliError
from fleetcore.runtime import stop_on_signals
from fleetcore.settings import get_settings
from fleetcore.slots import PLACEHOLDER
from ingest.consumer import run
from ingest.replay import apply_retention, replay


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
    rt = isub.add_parser(
        "retire",
        help="take a worker's session out of the share group, drain what the broker queued for it, end the session",
        description="For a worker removed for good (scaling down): its persistent session would otherwise stay a "
        "member of the share group and keep receiving a share of the stream that nobody reads.",
    )
    rt.add_argument("--client-id", help="the removed worker's client id (default FLEET_INGEST_CLIENT_ID)")
    rt.set_defaults(func=cmd_retire)
    t = isub.add_parser("retention", help="drop readings and events older than the retention period")
    t.add_argument("--days", type=int, help="keep this many days (default FLEET_READINGS_RETENTION_DAYS)")
    t.set_defaults(func=cmd_retention)


def cmd_worker(args: argparse.Namespace) -> int:

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


def cmd_retire(args: argparse.Namespace) -> int:

    settings = get_settings()
    if args.client_id:
        settings = settings.model_copy(update={"ingest_client_id": args.client_id})
    if PLACEHOLDER in settings.ingest_client_id:
        raise CliError(
            f"give the retired worker's --client-id (FLEET_INGEST_CLIENT_ID is the template {settings.ingest_client_id!r})"
        )
    if not settings.database_url or not settings.mqtt_url:
        raise CliError("FLEET_DATABASE_URL and FLEET_MQTT_URL must be set")
    print(json.dumps(run(settings, stop_on_signals(), retire=True)))
    return 0


def cmd_replay(args: argparse.Namespace) -> int:

    settings = get_settings()
    result = replay(settings.require_database_url(), settings.topic_root, device_id=args.device)
    print(json.dumps({"replayed": result.replayed, "outcomes": result.outcomes}))
    return 0


def cmd_retention(args: argparse.Namespace) -> int:

    settings = get_settings()
    days = args.days if args.days is not None else settings.readings_retention_days
    if days < 1:
        print("fleet ingest retention: error: --days must be at least 1")
        return 2
    print(json.dumps(apply_retention(settings.require_database_url(), days)))
    return 0
