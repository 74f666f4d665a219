"""The outbox's delivery job: every 30 s, send what is due through SMTP (FLEET_SMTP_URL)."""

from __future__ import annotations

import logging

from backoffice.notifications import service
from backoffice.notifications.smtp import SmtpSender
from fleetcore.db import connect
from fleetcore.jobs import Job
from fleetcore.settings import Settings

log = logging.getLogger(__name__)


def _dispatch(settings: Settings) -> object:
    if not settings.smtp_url:
        return "FLEET_SMTP_URL not set: messages stay queued"
    sender = SmtpSender(settings.smtp_url, sender=settings.mail_from)
    url = settings.require_database_url()
    result = service.dispatch(lambda: connect(url, autocommit=True), sender=sender)
    return f"sent={result.sent} failed={result.failed} given_up={result.given_up}"


JOBS = (Job("notifications.outbox_dispatch", 30, _dispatch),)
