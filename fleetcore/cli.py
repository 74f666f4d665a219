"""The `fleet` command: one entry point, one subcommand per process or admin task."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from pydantic import ValidationError

from fleetcore.errors import DomainError

# Each module exposes register(subparsers); subcommands set `func(args) -> int | None`.
COMMAND_MODULES = (
    "fleetcore.commands",
    "backoffice.cli",
    "ingest.cli",
    "monitor.cli",
    "simulators.cli",
    "fleetcore.demo",
    "fleetcore.scheduler",
)


class CliError(Exception):
    """A user mistake: printed without a traceback, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleet", description="Vehicle telematics and rental operations platform"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
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
    except (CliError, DomainError) as exc:
        print(f"fleet {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"fleet {args.command}: invalid settings: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    # Run the imported module's main, so subcommands and this module share one CliError class.
    from fleetcore.cli import main as _main

    sys.exit(_main())
