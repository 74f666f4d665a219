"""`fleet gateway teltonika` and `fleet gateway jt808`: the protocol gateway processes."""

from __future__ import annotations

import argparse

from fleetcore.errors import CliError
from fleetcore.runtime import stop_on_signals
from fleetcore.settings import get_settings
from gateways.jt808.server import run as run_jt808
from gateways.teltonika import MappingError
from gateways.teltonika_worker import run as run_teltonika


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "gateway",
        help="translate vendor device protocols (Teltonika MQTT, JT/T 808 TCP) into the device contract",
        description="Each gateway republishes what vendor units send as contract messages on "
        "{root}/devices/{device_id}/... (docs/gateways.md).",
    )
    gsub = p.add_subparsers(dest="gateway_command", metavar="PROTOCOL", required=True)
    t = gsub.add_parser("teltonika", help="Teltonika FMB/FMC codec JSON over MQTT (FLEET_TELTONIKA_TOPIC)")
    t.add_argument(
        "--mapping", help="AVL ID mapping file (default FLEET_TELTONIKA_MAPPING_FILE or the built-in)"
    )
    t.set_defaults(func=cmd_teltonika)
    j = gsub.add_parser("jt808", help="JT/T 808-2013/2019 terminals over TCP")
    j.add_argument("--host", help="bind address (default FLEET_JT808_HOST)")
    j.add_argument("--port", type=int, help="TCP port (default FLEET_JT808_PORT, 7611)")
    j.set_defaults(func=cmd_jt808)


def cmd_teltonika(args: argparse.Namespace) -> int:
    settings = get_settings()
    if args.mapping:
        settings = settings.model_copy(update={"teltonika_mapping_file": args.mapping})
    if not settings.mqtt_url:
        raise CliError("FLEET_MQTT_URL is not set (mqtt://host:port)")
    try:
        run_teltonika(settings, stop_on_signals())
    except (ConnectionError, MappingError) as exc:
        raise CliError(str(exc)) from exc
    return 0


def cmd_jt808(args: argparse.Namespace) -> int:
    settings = get_settings()
    update = {k: v for k, v in (("jt808_host", args.host), ("jt808_port", args.port)) if v is not None}
    if update:
        settings = settings.model_copy(update=update)
    if not settings.mqtt_url:
        raise CliError("FLEET_MQTT_URL is not set (mqtt://host:port)")
    settings.require_database_url()
    try:
        run_jt808(settings, stop_on_signals())
    except (ConnectionError, OSError) as exc:
        raise CliError(str(exc)) from exc
    return 0
