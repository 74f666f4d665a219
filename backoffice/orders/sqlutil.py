"""Typing helpers for the customer/order/finance services (connections return dict rows)."""

from __future__ import annotations

from typing import Any

import psycopg

from fleetcore.db import Conn  # noqa: F401  (re-exported for the order services)


def one(cur: psycopg.Cursor[Any]) -> dict:
    """The row of a query that always returns exactly one (aggregate, RETURNING, now())."""
    row = cur.fetchone()
    if row is None:
        raise RuntimeError("query returned no row")
    return row
