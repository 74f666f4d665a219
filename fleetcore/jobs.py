"""Periodic jobs: the Job type every domain's scheduled.py declares, and the runner (APScheduler).

Jobs run in their own process (`fleet scheduler`, never inside API workers); the composition root lists them.
Each job opens its own connection, times itself, logs, rolls back on failure and never kills the scheduler.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from apscheduler.schedulers.background import BackgroundScheduler

from fleetcore.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    every_s: int
    run: Callable[[Settings], object]


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


def run(settings: Settings, stop: threading.Event, jobs: tuple[Job, ...]) -> None:
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
