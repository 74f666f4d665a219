"""Typing helpers for the customer/order/finance services (connections return dict rows)."""

from __future__ import annotations

# Re-exported for the order services; `one` lives in fleetcore.db so every domain can use it.
from fleetcore.db import Conn, one

__all__ = ["Conn", "one"]
