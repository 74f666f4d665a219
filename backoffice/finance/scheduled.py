"""Periodic finance jobs (run by the scheduler process): monthly depreciation and budget variance notices."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

from backoffice.finance import budgets, payables, profiles
from fleetcore.db import connect
from fleetcore.jobs import Job
from fleetcore.settings import Settings

log = logging.getLogger(__name__)
SYSTEM_ACTOR = {"username": "system"}


def _depreciation_job(settings: Settings) -> object:
    """Depreciation of every month that has ended (this month's is posted once it ends); idempotent per month."""
    with connect(settings.require_database_url()) as conn:
        today = profiles.local_date(profiles.get(conn), None)
        last_month = today.replace(day=1) - dt.timedelta(days=1)
        posted = payables.run_depreciation(conn, upto=last_month, actor=SYSTEM_ACTOR)
        conn.commit()
    return len([p for p in posted if "entry_id" in p])


def _variance_job(settings: Settings) -> object:
    """Budget variance notices for this month and the last (late postings move last month's figures)."""
    with connect(settings.require_database_url()) as conn:
        today = profiles.local_date(profiles.get(conn), None)
        months = (today.replace(day=1), (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1))
        threshold = Decimal(str(settings.finance_budget_variance_pct))
        raised = [
            n
            for m in months
            for n in budgets.raise_variance_notices(
                conn, period=m, threshold_pct=threshold, actor=SYSTEM_ACTOR
            )
        ]
        conn.commit()
    return len(raised)


# Depreciation hourly (a month's run is posted within the hour after it ends); variance notices every 6 hours.
JOBS = (
    Job("finance.depreciation", 3600, _depreciation_job),
    Job("finance.budget_variance", 6 * 3600, _variance_job),
)
