"""Who listens to which domain event (fleetcore.events): wired once by every entry point of the platform.

Maintenance and procurement know nothing of finance (an import-linter contract); finance books their costs by
listening, in the event's own transaction.
"""

from __future__ import annotations

from backoffice.finance import payables as finance_payables
from fleetcore import events


def wire() -> None:
    """Register every listener (idempotent)."""
    events.subscribe("maintenance.work_order_closed", finance_payables.on_work_order_closed)
    events.subscribe("procurement.delivered", finance_payables.on_vehicle_delivered)


wire()
