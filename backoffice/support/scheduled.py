"""Customer-service jobs: SLA escalation of overdue cases, and follow-up visits after returns."""

from __future__ import annotations

import datetime as dt

from backoffice.support import care, service
from fleetcore.db import connect
from fleetcore.jobs import Job
from fleetcore.settings import Settings


def _escalate(settings: Settings) -> object:
    with connect(settings.require_database_url()) as conn:
        done = service.escalate_overdue(conn, now=dt.datetime.now(dt.UTC))
        conn.commit()
    return f"escalated={len(done)}"


def _follow_ups(settings: Settings) -> object:
    with connect(settings.require_database_url()) as conn:
        n = care.schedule_after_returns(conn, now=dt.datetime.now(dt.UTC))
        conn.commit()
    return f"follow_ups={n}"


JOBS = (
    Job("support.sla_escalation", 300, _escalate),
    Job("support.follow_ups_after_return", 3600, _follow_ups),
)
