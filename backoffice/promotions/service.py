"""Discount codes: the one owner of discount_codes.

A code is single-use and expires. Redemption is one conditional UPDATE: of two transactions redeeming the same code,
the second waits on the row lock, re-reads the row after the first commits, finds it redeemed and gets a Conflict,
so exactly one order ever gets the discount.
"""

from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal

from fleetcore.audit import audit
from fleetcore.db import Conn, one
from fleetcore.errors import Conflict, Invalid, NotFound

# Unambiguous characters (no 0/O, 1/I) so a code read out on the phone is typed right.
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 10
MAX_VALID_DAYS = 366


def new_code(prefix: str = "FLT") -> str:
    """A random code such as FLT-7KQ2M9XC4H (about 50 bits of randomness)."""
    return f"{prefix}-" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def issue(
    conn: Conn,
    *,
    source: str,
    valid_days: int,
    actor: dict | None,
    percent: Decimal | None = None,
    amount: Decimal | None = None,
    customer_id: int | None = None,
    now: dt.datetime | None = None,
) -> dict:
    """Create a single-use code worth `percent` of the rental days or a fixed `amount` (exactly one of the two)."""
    if (percent is None) == (amount is None):
        raise Invalid("a discount code has either a percent or an amount")
    if not 1 <= valid_days <= MAX_VALID_DAYS:
        raise Invalid(f"valid_days must be between 1 and {MAX_VALID_DAYS}")
    start = now or one(conn.execute("SELECT now() AS t"))["t"]
    row = one(
        conn.execute(
            """INSERT INTO discount_codes (code, percent, amount, customer_id, source, valid_until, created_by)
               VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING *""",
            (
                new_code(),
                percent,
                amount,
                customer_id,
                source,
                start + dt.timedelta(days=valid_days),
                (actor or {}).get("username", "system"),
            ),
        )
    )
    audit(
        conn,
        actor=actor,
        action="discount_code.issue",
        entity="discount_codes",
        entity_id=row["code"],
        after={"source": source, "percent": percent, "amount": amount, "valid_until": row["valid_until"]},
    )
    return row


def get(conn: Conn, *, code: str) -> dict | None:
    return conn.execute("SELECT * FROM discount_codes WHERE code = %s", (code.strip().upper(),)).fetchone()


def get_or_raise(conn: Conn, *, code: str) -> dict:
    row = get(conn, code=code)
    if row is None:
        raise NotFound(f"no discount code {code!r}")
    return row


def _why_not(row: dict | None, code: str, customer_id: int, now: dt.datetime) -> Exception:
    if row is None:
        return Invalid(f"discount_code: unknown code {code!r}", details={"field": "discount_code"})
    if row["redeemed_at"] is not None:
        return Conflict(
            f"discount code {code} was already used (order {row['redeemed_order_id']})",
            details={"field": "discount_code"},
        )
    if row["valid_until"] <= now:
        return Invalid(
            f"discount_code: {code} expired at {row['valid_until'].isoformat()}",
            details={"field": "discount_code"},
        )
    if row["customer_id"] is not None and row["customer_id"] != customer_id:
        return Invalid(
            f"discount_code: {code} belongs to another customer", details={"field": "discount_code"}
        )
    return Invalid(f"discount_code: {code} cannot be used", details={"field": "discount_code"})


def redeem(conn: Conn, *, code: str, order_id: int, customer_id: int, actor: dict) -> dict:
    """Use the code for this order, once: 409 if already used, 422 if unknown, expired or someone else's."""
    code = code.strip().upper()
    row = conn.execute(
        """UPDATE discount_codes SET redeemed_at = now(), redeemed_order_id = %s
            WHERE code = %s AND redeemed_at IS NULL AND valid_until > now()
              AND (customer_id IS NULL OR customer_id = %s)
        RETURNING *""",
        (order_id, code, customer_id),
    ).fetchone()
    if row is None:
        now = one(conn.execute("SELECT now() AS t"))["t"]
        raise _why_not(get(conn, code=code), code, customer_id, now)
    audit(
        conn,
        actor=actor,
        action="discount_code.redeem",
        entity="discount_codes",
        entity_id=code,
        after={"order_id": order_id},
    )
    return row


def list_(
    conn: Conn, *, customer_id: int | None = None, source: str | None = None, limit: int = 100
) -> list[dict]:
    return conn.execute(
        """SELECT * FROM discount_codes WHERE (%(c)s::bigint IS NULL OR customer_id = %(c)s)
              AND (%(s)s::text IS NULL OR starts_with(source, %(s)s)) ORDER BY created_at DESC LIMIT %(l)s""",
        {"c": customer_id, "s": source, "l": limit},
    ).fetchall()
