"""The `fleet` command: one entry point, one subcommand per process or admin task.

Each package's command module is imported here explicitly and exposes `register(subparsers)`; a subcommand sets
`func(args) -> int | None`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from pydantic import ValidationError

from backoffice import cli as backoffice_cli
from fleetapp import backup, broker, demo, keys, scheduler, serve, wiring
from fleetapp.seed import seed_registry
from fleetcore.db import migrate
from fleetcore.errors import CliError, ConfigError, DomainError
from fleetcore.settings import get_settings
from gateways import cli as gateways_cli
from ingest import cli as ingest_cli
from monitor import cli as monitor_cli
from simulators import cli as simulators_cli

COMMAND_MODULES = (
    serve,
    backoffice_cli,
    ingest_cli,
    monitor_cli,
    simulators_cli,
    gateways_cli,
    demo,
    scheduler,
    broker,
    backup,
    keys,
)


def _register_migrate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("migrate", help="apply database migrations (FLEET_DATABASE_URL)")
    p.set_defaults(func=cmd_migrate)


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = get_settings()
    applied = migrate(settings.require_database_url(), settings)
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleet", description="Vehicle telematics and rental operations platform"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _register_migrate(sub)
    for module in COMMAND_MODULES:
        module.register(sub)
    # `fleet simulate --register` writes the registry through the back office's services.
    sub.choices["simulate"].set_defaults(register_fleet=seed_registry)
    return parser


def main(argv: list[str] | None = None) -> int:
    wiring.wire()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        rc = args.func(args)
    except (CliError, ConfigError, DomainError) as exc:
        print(f"fleet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"fleet {args.command}: invalid settings: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
