"""JSON-ready values for API answers and JSONB columns."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any


def to_json(x: Any) -> Any:
    """Decimals as strings (money must not become binary floats), datetimes as ISO 8601, recursively."""
    if isinstance(x, Decimal):
        return str(x)
    if isinstance(x, dt.datetime | dt.date):
        return x.isoformat()
    if isinstance(x, dict):
        return {k: to_json(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [to_json(v) for v in x]
    return x
