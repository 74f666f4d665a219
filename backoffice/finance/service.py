"""Invoices, payments and the revenue report (data access and rules)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from backoffice.finance.models import VAT_RATE, money
from fleetcore.audit import audit
from fleetcore.db import Conn, one
from fleetcore.errors import Conflict, Invalid, NotFound
from fleetcore.jsonable import to_json

MAX_PAGE = 500


def create_invoice(
    conn: Conn,
    *,
    order_id: int,
    customer_id: int,
    kind: str,
    lines: list[dict],
    currency: str = "EUR",
) -> dict:
    """Issue an invoice with its line items; VAT at the standard rate on the net total."""
    net = money(sum((Decimal(str(ln["amount"])) for ln in lines), Decimal(0)))
    vat = money(net * VAT_RATE)
    inv_id = one(conn.execute("SELECT nextval('invoices_id_seq') AS id"))["id"]
    number = f"INV-{dt.date.today().year}-{inv_id:06d}"
    conn.execute(
        """INSERT INTO invoices (id, number, order_id, customer_id, kind, currency, net, vat_rate, vat, gross)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (inv_id, number, order_id, customer_id, kind, currency, net, VAT_RATE, vat, net + vat),
    )
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO invoice_lines (invoice_id, position, code, description, quantity, unit_price, amount)
               VALUES (%s, %s, %s, %s, %s, %s, %s)""",
            [
                (
                    inv_id,
                    i,
                    ln["code"],
                    ln["description"],
                    Decimal(str(ln["quantity"])),
                    Decimal(str(ln["unit_price"])),
                    Decimal(str(ln["amount"])),
                )
                for i, ln in enumerate(lines, 1)
            ],
        )
    return get_invoice_or_raise(conn, invoice_id=inv_id)


def get_invoice(conn: Conn, *, invoice_id: int, for_update: bool = False) -> dict | None:
    """An invoice with lines, payments, paid amount and balance, or None."""
    inv = conn.execute(
        "SELECT * FROM invoices WHERE id = %s" + (" FOR UPDATE" if for_update else ""), (invoice_id,)
    ).fetchone()
    if inv is None:
        return None
    inv["lines"] = conn.execute(
        "SELECT position, code, description, quantity, unit_price, amount FROM invoice_lines "
        "WHERE invoice_id = %s ORDER BY position",
        (invoice_id,),
    ).fetchall()
    inv["payments"] = conn.execute(
        "SELECT id, amount, method, reference, paid_at, recorded_by FROM payments WHERE invoice_id = %s ORDER BY id",
        (invoice_id,),
    ).fetchall()
    inv["paid"] = money(sum((p["amount"] for p in inv["payments"]), Decimal(0)))
    inv["balance"] = inv["gross"] - inv["paid"]
    return inv


def get_invoice_or_raise(conn: Conn, *, invoice_id: int, for_update: bool = False) -> dict:
    """An invoice; 404 otherwise."""
    inv = get_invoice(conn, invoice_id=invoice_id, for_update=for_update)
    if inv is None:
        raise NotFound(f"no invoice {invoice_id}")
    return inv


def list_for_order(conn: Conn, *, order_id: int) -> list[dict]:
    """Every invoice of an order, oldest first, with lines and payments."""
    return [
        get_invoice_or_raise(conn, invoice_id=r["id"])
        for r in conn.execute(
            "SELECT id FROM invoices WHERE order_id = %s ORDER BY id", (order_id,)
        ).fetchall()
    ]


def list_invoices(
    conn: Conn,
    *,
    order_id: int | None = None,
    customer_id: int | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> dict:
    """A page of invoices (without lines) with the total count."""
    p = {"o": order_id, "c": customer_id, "s": status, "limit": min(limit, MAX_PAGE), "offset": offset}
    where = """(%(o)s::bigint IS NULL OR order_id = %(o)s) AND (%(c)s::bigint IS NULL OR customer_id = %(c)s)
               AND (%(s)s::text IS NULL OR status = %(s)s)"""
    total = one(conn.execute(f"SELECT count(*) AS n FROM invoices WHERE {where}", p))["n"]
    items = conn.execute(
        f"SELECT * FROM invoices WHERE {where} ORDER BY id DESC LIMIT %(limit)s OFFSET %(offset)s", p
    ).fetchall()
    return {"items": items, "total": total, "limit": p["limit"], "offset": offset}


def record_payment(
    conn: Conn,
    *,
    invoice_id: int,
    amount: Decimal,
    method: str,
    reference: str,
    paid_at: dt.datetime | None,
    actor: dict,
) -> tuple[dict, dict]:
    """Record a payment; the invoice becomes paid when the balance reaches zero. Returns (payment, invoice).

    A paid rental invoice completes its order: the caller passes the invoice to backoffice.orders
    (rental.complete_if_paid), the owner of orders and their archive.
    """
    inv = get_invoice_or_raise(conn, invoice_id=invoice_id, for_update=True)
    if inv["status"] != "open":
        raise Conflict(f"invoice {inv['number']} is {inv['status']}; payments go to open invoices only")
    amount = money(amount)
    if amount > inv["balance"]:
        raise Invalid(
            f"payment {amount} exceeds the open balance {inv['balance']} of invoice {inv['number']}",
            details={"balance": str(inv["balance"])},
        )
    pay = one(
        conn.execute(
            """INSERT INTO payments (invoice_id, amount, method, reference, paid_at, recorded_by)
           VALUES (%s, %s, %s, %s, coalesce(%s, now()), %s) RETURNING *""",
            (invoice_id, amount, method, reference, paid_at, actor["username"]),
        )
    )
    audit(
        conn, actor=actor, action="payment.create", entity="payments", entity_id=pay["id"], after=to_json(pay)
    )
    if amount == inv["balance"]:
        conn.execute(
            "UPDATE invoices SET status = 'paid', paid_at = %s WHERE id = %s", (pay["paid_at"], invoice_id)
        )
    return pay, get_invoice_or_raise(conn, invoice_id=invoice_id)


def void_invoice(conn: Conn, *, invoice_id: int, reason: str, actor: dict) -> dict:
    """Void an open invoice without payments (a paid one needs a credit note, not a void)."""
    before = get_invoice_or_raise(conn, invoice_id=invoice_id, for_update=True)
    if before["status"] != "open":
        raise Conflict(f"invoice {before['number']} is {before['status']}; only open invoices can be voided")
    if before["payments"]:
        raise Conflict(f"invoice {before['number']} has payments; refund them first")
    conn.execute(
        "UPDATE invoices SET status = 'void', voided_at = now(), void_reason = %s WHERE id = %s",
        (reason, invoice_id),
    )
    after = get_invoice_or_raise(conn, invoice_id=invoice_id)
    audit(
        conn,
        actor=actor,
        action="invoice.void",
        entity="invoices",
        entity_id=invoice_id,
        before=to_json({"status": before["status"]}),
        after=to_json({"status": after["status"], "reason": reason}),
    )
    return after


def revenue(conn: Conn, *, start: dt.datetime, end: dt.datetime) -> dict:
    """Invoiced (by issue time, void excluded) and collected (by payment time) amounts in [start, end)."""
    if end <= start:
        raise Invalid("'to' must be after 'from'")
    inv = one(
        conn.execute(
            """SELECT count(*) AS invoices, coalesce(sum(net), 0) AS net, coalesce(sum(vat), 0) AS vat,
                  coalesce(sum(gross), 0) AS gross,
                  coalesce(sum(gross) FILTER (WHERE status = 'open'), 0) AS open_gross
             FROM invoices WHERE status <> 'void' AND issued_at >= %s AND issued_at < %s""",
            (start, end),
        )
    )
    by_code = conn.execute(
        """SELECT l.code, sum(l.amount) AS net FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id
            WHERE i.status <> 'void' AND i.issued_at >= %s AND i.issued_at < %s GROUP BY l.code ORDER BY l.code""",
        (start, end),
    ).fetchall()
    paid = one(
        conn.execute(
            "SELECT count(*) AS payments, coalesce(sum(amount), 0) AS collected FROM payments "
            "WHERE paid_at >= %s AND paid_at < %s",
            (start, end),
        )
    )
    return {
        "from": start,
        "to": end,
        "currency": "EUR",
        **inv,
        "net_by_line_code": {r["code"]: r["net"] for r in by_code},
        **paid,
    }
