"""`fleet api`: the HTTP API process (uvicorn serving the app assembled in fleetapp.api)."""

from __future__ import annotations

import argparse

import uvicorn

from fleetapp.api import create_app
from fleetcore.settings import get_settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("api", help="run the HTTP API")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.set_defaults(func=cmd_api)


def cmd_api(args: argparse.Namespace) -> int:
    settings = get_settings()
    settings.require_database_url()
    uvicorn.run(
        create_app(settings),
        host=args.host or settings.api_host,
        port=args.port if args.port is not None else settings.api_port,
        log_level="info",
    )
    return 0
