"""`fleet scheduler`: every domain's periodic jobs, run in their own process by fleetcore.jobs."""

from __future__ import annotations

import argparse

from backoffice.finance import scheduled as finance_scheduled
from backoffice.notifications import scheduled as notifications_scheduled
from backoffice.orders import scheduled as orders_scheduled
from backoffice.support import scheduled as support_scheduled
from fleetapp import wiring
from fleetcore.jobs import Job, run, run_job
from fleetcore.runtime import stop_on_signals
from fleetcore.settings import get_settings
from ingest import scheduled as ingest_scheduled

JOBS: tuple[Job, ...] = (
    *orders_scheduled.JOBS,
    *ingest_scheduled.JOBS,
    *notifications_scheduled.JOBS,
    *finance_scheduled.JOBS,
    *support_scheduled.JOBS,
)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scheduler", help="run periodic jobs (no-show sweep, quarantine replay, retention)")
    p.add_argument(
        "--once", action="store_true", help="run every job once now and exit (exit 1 if one failed)"
    )
    p.set_defaults(func=cmd_scheduler)


def cmd_scheduler(args: argparse.Namespace) -> int:
    settings = get_settings()
    settings.require_database_url()
    wiring.wire()
    if args.once:
        return 0 if all([run_job(job, settings) for job in JOBS]) else 1
    run(settings, stop_on_signals(), JOBS)
    return 0
