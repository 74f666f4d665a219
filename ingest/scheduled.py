"""Periodic ingest jobs: quarantine replay and retention (registered by the composition root's scheduler)."""

from __future__ import annotations

from fleetcore.jobs import Job
from fleetcore.settings import Settings
from ingest.replay import apply_retention, replay


def _replay_quarantine(settings: Settings) -> object:
    return replay(settings.require_database_url(), settings.topic_root).replayed


def _retention(settings: Settings) -> object:
    return apply_retention(settings.require_database_url(), settings.readings_retention_days)


JOBS = (
    # Devices registered late get their data within 10 min.
    Job("ingest.quarantine_replay", 600, _replay_quarantine),
    # Chunks are a day wide; dropping more often frees nothing.
    Job("ingest.retention", 86400, _retention),
)
