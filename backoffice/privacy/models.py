"""Schemas of data-subject requests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, Field

from backoffice.customers.models import CustomerOut


class CustomerExport(BaseModel):
    """Everything the platform holds about one customer, as of `exported_at`."""

    exported_at: dt.datetime
    customer: CustomerOut
    orders: list[dict[str, Any]] = Field(description="every order of the customer, with its status and times")
    invoices: list[dict[str, Any]] = Field(description="every invoice with its lines and payments")
    audit: list[dict[str, Any]] = Field(
        description="who changed the customer's record, when and which fields"
    )
