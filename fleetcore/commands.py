"""Core subcommands: `fleet migrate`."""

from __future__ import annotations

import argparse

from fleetcore.db import migrate
from fleetcore.settings import get_settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("migrate", help="apply database migrations (FLEET_DATABASE_URL)")
    p.set_defaults(func=cmd_migrate)


def cmd_migrate(args: argparse.Namespace) -> int:
    settings = get_settings()
    applied = migrate(settings.require_database_url(), settings)
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    return 0
