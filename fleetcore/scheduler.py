"""`fleet scheduler`: periodic jobs in their own process (never inside API workers), via APScheduler.

Each job opens its own connection, times itself, logs, rolls back on failure and never kills the scheduler.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from apscheduler.schedulers.background import BackgroundScheduler

from fleetcore.db import connect
from fleetcore.runtime import stop_on_signals
from fleetcore.settings import Settings, get_settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    every_s: int
    run: Callable[[Settings], object]


def _no_shows(settings: Settings) -> object:
    from backoffice.orders.scheduled import sweep_no_shows

    with connect(settings.require_database_url(), autocommit=True) as conn:
        return sweep_no_shows(conn)


def _replay_quarantine(settings: Settings) -> object:
    from ingest.replay import replay

    return replay(settings.require_database_url(), settings.topic_root).replayed


def _retention(settings: Settings) -> object:
    from ingest.replay import apply_retention

    return apply_retention(settings.require_database_url(), settings.readings_retention_days)


JOBS = (
    Job(
        "orders.no_show_sweep", 300, _no_shows
    ),  # pickups are booked to the quarter hour; 5 min is fine-grained enough
    Job(
        "ingest.quarantine_replay", 600, _replay_quarantine
    ),  # devices registered late get their data within 10 min
    Job("ingest.retention", 86400, _retention),  # chunks are a day wide; dropping more often frees nothing
)


def run_job(job: Job, settings: Settings) -> bool:
    """Run one job, timing and logging it; a failure is logged, never raised."""
    t0 = time.perf_counter()
    try:
        result = job.run(settings)
    except Exception:
        log.exception("job=%s status=failed duration_ms=%.0f", job.name, (time.perf_counter() - t0) * 1000)
        return False
    log.info(
        "job=%s status=ok duration_ms=%.0f result=%s", job.name, (time.perf_counter() - t0) * 1000, result
    )
    return True


def run(settings: Settings, stop: threading.Event, jobs: tuple[Job, ...] = JOBS) -> None:
    """Run every job on its interval until `stop` is set."""
    scheduler = BackgroundScheduler(timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1})
    for job in jobs:
        scheduler.add_job(
            run_job, "interval", seconds=job.every_s, args=(job, settings), id=job.name, name=job.name
        )
    scheduler.start()
    log.info("scheduler started with %d jobs", len(jobs))
    try:
        stop.wait()
    finally:
        scheduler.shutdown(wait=True)
        log.info("scheduler stopped")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scheduler", help="run periodic jobs (no-show sweep, quarantine replay, retention)")
    p.add_argument(
        "--once", action="store_true", help="run every job once now and exit (exit 1 if one failed)"
    )
    p.set_defaults(func=cmd_scheduler)


def cmd_scheduler(args: argparse.Namespace) -> int:
    settings = get_settings()
    settings.require_database_url()
    if args.once:
        return 0 if all([run_job(job, settings) for job in JOBS]) else 1
    run(settings, stop_on_signals())
    return 0
