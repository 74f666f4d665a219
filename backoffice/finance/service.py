"""Invoices, payments and the revenue report (data access and rules)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from backoffice.finance import analysis, ledger, posting, profiles
from backoffice.finance.models import money
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
    currency: str | None = None,
    vehicle_id: int | None = None,
    station_id: int | None = None,
    actor: dict | None = None,
) -> dict:
    """Issue an invoice with its line items and post it (receivable / revenue / VAT), in the caller's transaction.

    VAT comes from the company profile's rates in force on the issue date, per rate group (China: 13 % leasing,
    6 % services); the number from the profile's series. The invoice is in the company currency: rate tables are
    kept in it (`currency`, the quote's label, is accepted for the callers' sake).
    """
    profile = profiles.get(conn)
    today = profiles.local_date(profile, None)
    t = profiles.invoice_totals(conn, profile=profile, lines=lines, on=today)
    inv_id = one(conn.execute("SELECT nextval('invoices_id_seq') AS id"))["id"]
    main_category = t["lines"][0]["tax_category"] if t["lines"] else "standard"
    number = profiles.invoice_number(
        conn, profile=profile, invoice_id=inv_id, category=main_category, on=today
    )
    conn.execute(
        """INSERT INTO invoices (id, number, order_id, customer_id, kind, currency, net, vat_rate, vat, gross,
                                 vehicle_id, station_id)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
        (
            inv_id,
            number,
            order_id,
            customer_id,
            kind,
            profile["currency"],
            t["net"],
            t["vat_rate"],
            t["vat"],
            t["gross"],
            vehicle_id,
            station_id,
        ),
    )
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO invoice_lines (invoice_id, position, code, description, quantity, unit_price, amount,
                                          tax_category, vat_rate)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            [
                (
                    inv_id,
                    i,
                    ln["code"],
                    ln["description"],
                    Decimal(str(ln["quantity"])),
                    Decimal(str(ln["unit_price"])),
                    ln["amount"],
                    ln["tax_category"],
                    ln["vat_rate"],
                )
                for i, ln in enumerate(t["lines"], 1)
            ],
        )
    inv = get_invoice_or_raise(conn, invoice_id=inv_id)
    if inv["gross"] > 0:
        posting.invoice_issued(conn, invoice=inv, actor=actor)
    return inv


def get_invoice(conn: Conn, *, invoice_id: int, for_update: bool = False) -> dict | None:
    """An invoice with lines, payments, paid amount and balance, or None."""
    inv = conn.execute(
        "SELECT * FROM invoices WHERE id = %s" + (" FOR UPDATE" if for_update else ""), (invoice_id,)
    ).fetchone()
    if inv is None:
        return None
    inv["lines"] = conn.execute(
        "SELECT position, code, description, quantity, unit_price, amount, tax_category, vat_rate FROM invoice_lines "
        "WHERE invoice_id = %s ORDER BY position",
        (invoice_id,),
    ).fetchall()
    inv["payments"] = conn.execute(
        "SELECT id, amount, method, reference, paid_at, recorded_by FROM payments WHERE invoice_id = %s ORDER BY id",
        (invoice_id,),
    ).fetchall()
    inv["paid"] = money(sum((p["amount"] for p in inv["payments"]), Decimal(0)))
    inv["credit_notes"] = conn.execute(
        "SELECT id, number, net, vat, gross, reason, issued_at, issued_by FROM fin_credit_notes "
        "WHERE invoice_id = %s ORDER BY id",
        (invoice_id,),
    ).fetchall()
    inv["refunds"] = conn.execute(
        "SELECT id, amount, method, reference, refunded_at, recorded_by FROM fin_refunds WHERE invoice_id = %s ORDER BY id",
        (invoice_id,),
    ).fetchall()
    # What the customer still owes (negative: what we owe the customer, to be refunded).
    inv["balance"] = inv["gross"] - inv["paid"] - inv["credited"] + inv["refunded"]
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
    idempotency_key: str | None = None,
) -> tuple[dict, dict]:
    """Record a payment; the invoice becomes paid when the balance reaches zero. Returns (payment, invoice).

    A paid rental invoice completes its order: the caller passes the invoice to backoffice.orders
    (rental.complete_if_paid), the owner of orders and their archive.
    """
    inv = get_invoice_or_raise(conn, invoice_id=invoice_id, for_update=True)
    if idempotency_key is not None:
        seen = conn.execute(
            "SELECT * FROM payments WHERE idempotency_key = %s", (idempotency_key,)
        ).fetchone()
        if seen is not None:  # a retried request: the payment stands once
            if seen["invoice_id"] != invoice_id or seen["amount"] != money(amount):
                raise Conflict(f"idempotency key {idempotency_key!r} was used for a different payment")
            return seen, inv
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
            """INSERT INTO payments (invoice_id, amount, method, reference, paid_at, recorded_by, idempotency_key)
           VALUES (%s, %s, %s, %s, coalesce(%s, now()), %s, %s) RETURNING *""",
            (invoice_id, amount, method, reference, paid_at, actor["username"], idempotency_key),
        )
    )
    posting.payment_received(conn, payment=pay, invoice=inv, actor=actor)
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
    if before["credit_notes"]:
        raise Conflict(f"invoice {before['number']} has credit notes; credit the rest instead of voiding")
    conn.execute(
        "UPDATE invoices SET status = 'void', voided_at = now(), void_reason = %s WHERE id = %s",
        (reason, invoice_id),
    )
    after = get_invoice_or_raise(conn, invoice_id=invoice_id)
    if after["gross"] > 0:
        posting.invoice_voided(conn, invoice=after, actor=actor)
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
        "currency": profiles.get(conn)["currency"],
        **inv,
        "net_by_line_code": {r["code"]: r["net"] for r in by_code},
        **paid,
    }


# ---- credit notes and refunds ----------------------------------------------------------------------------------


def issue_credit_note(conn: Conn, *, invoice_id: int, amount: Decimal, reason: str, actor: dict) -> dict:
    """Credit part or all of an invoice (gross `amount`); VAT is credited in the invoice's proportion.

    An open invoice's balance falls (at zero it is settled); a paid one's turns negative, which `refund` pays out.
    Called by finance and by the customer-service compensation flow. Returns the credit note with the invoice.
    """
    inv = get_invoice_or_raise(conn, invoice_id=invoice_id, for_update=True)
    if inv["status"] == "void":
        raise Conflict(f"invoice {inv['number']} is void; there is nothing to credit")
    profile = profiles.get(conn)
    amount = profiles.money(amount, profile["minor_unit"])
    if amount <= 0:
        raise Invalid("amount must be positive", details={"field": "amount"})
    creditable = inv["gross"] - inv["credited"]
    if amount > creditable:
        raise Invalid(
            f"credit {amount} exceeds what is left to credit on {inv['number']} ({creditable})",
            details={"field": "amount", "creditable": str(creditable)},
        )
    if amount == creditable:  # the last credit takes exactly what is left, so the invoice nets to zero
        vat = inv["vat"] - sum((c["vat"] for c in inv["credit_notes"]), Decimal(0))
    else:
        vat = profiles.money(amount * inv["vat"] / inv["gross"], profile["minor_unit"])
    today = profiles.local_date(profile, None)
    number = profiles.credit_note_number(conn, profile=profile, on=today)
    note = one(
        conn.execute(
            """INSERT INTO fin_credit_notes (number, invoice_id, net, vat, gross, reason, issued_by)
               VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING *""",
            (number, invoice_id, amount - vat, vat, amount, reason, actor["username"]),
        )
    )
    conn.execute("UPDATE invoices SET credited = credited + %s WHERE id = %s", (amount, invoice_id))
    after = get_invoice_or_raise(conn, invoice_id=invoice_id)
    if after["status"] == "open" and after["balance"] <= 0:
        conn.execute("UPDATE invoices SET status = 'paid', paid_at = now() WHERE id = %s", (invoice_id,))
    posting.credit_note_issued(conn, note=note, invoice=after, actor=actor)
    audit(
        conn,
        actor=actor,
        action="invoice.credit_note",
        entity="invoices",
        entity_id=invoice_id,
        after={"credit_note": number, "gross": str(amount), "vat": str(vat)},
    )
    return {"credit_note": note, "invoice": get_invoice_or_raise(conn, invoice_id=invoice_id)}


def refund(conn: Conn, *, invoice_id: int, amount: Decimal, method: str, reference: str, actor: dict) -> dict:
    """Pay money back to a customer whose invoice is over-settled (credit note after payment, overpayment)."""
    inv = get_invoice_or_raise(conn, invoice_id=invoice_id, for_update=True)
    owed = -inv["balance"]
    if owed <= 0:
        raise Conflict(f"invoice {inv['number']} owes the customer nothing (balance {inv['balance']})")
    amount = money(amount)
    if amount <= 0 or amount > owed:
        raise Invalid(
            f"refund must be positive and at most {owed}",
            details={"field": "amount", "refundable": str(owed)},
        )
    r = one(
        conn.execute(
            """INSERT INTO fin_refunds (invoice_id, amount, method, reference, recorded_by)
               VALUES (%s, %s, %s, %s, %s) RETURNING *""",
            (invoice_id, amount, method, reference, actor["username"]),
        )
    )
    conn.execute("UPDATE invoices SET refunded = refunded + %s WHERE id = %s", (amount, invoice_id))
    posting.refund_paid(conn, refund=r, invoice=inv, actor=actor)
    audit(
        conn, actor=actor, action="invoice.refund", entity="invoices", entity_id=invoice_id, after=to_json(r)
    )
    return {"refund": r, "invoice": get_invoice_or_raise(conn, invoice_id=invoice_id)}


# ---- rental deposits -------------------------------------------------------------------------------------------


def get_deposit(conn: Conn, *, order_id: int) -> dict | None:
    return conn.execute("SELECT * FROM fin_deposits WHERE order_id = %s", (order_id,)).fetchone()


def hold_deposit(
    conn: Conn,
    *,
    order_id: int,
    customer_id: int,
    amount: Decimal,
    method: str,
    actor: dict,
    vehicle_id: int | None = None,
    station_id: int | None = None,
) -> dict:
    """Take a deposit at pickup (cash or bank against the deposits liability); one per order."""
    amount = money(amount)
    if amount <= 0:
        raise Invalid("deposit must be positive", details={"field": "deposit"})
    if get_deposit(conn, order_id=order_id) is not None:
        raise Conflict(f"order {order_id} holds a deposit already")
    dep = one(
        conn.execute(
            """INSERT INTO fin_deposits (order_id, customer_id, amount, method) VALUES (%s, %s, %s, %s)
               RETURNING *""",
            (order_id, customer_id, amount, method),
        )
    )
    posting.deposit_held(conn, deposit=dep, vehicle_id=vehicle_id, station_id=station_id, actor=actor)
    audit(
        conn,
        actor=actor,
        action="deposit.hold",
        entity="fin_deposits",
        entity_id=dep["id"],
        after=to_json(dep),
    )
    return dep


def settle_deposit(
    conn: Conn, *, order_id: int, invoice_id: int | None, apply: bool, actor: dict
) -> dict | None:
    """At return: apply the deposit to the rental invoice (up to its balance) and release the rest; None if none."""
    dep = conn.execute("SELECT * FROM fin_deposits WHERE order_id = %s FOR UPDATE", (order_id,)).fetchone()
    if dep is None:
        return None
    if dep["status"] != "held":
        raise Conflict(f"the deposit of order {order_id} is settled already")
    applied = Decimal("0.00")
    if apply and invoice_id is not None:
        inv = get_invoice_or_raise(conn, invoice_id=invoice_id)
        applied = min(dep["amount"], max(inv["balance"], Decimal(0)))
        if applied > 0 and inv["status"] == "open":
            record_payment(
                conn,
                invoice_id=invoice_id,
                amount=applied,
                method="deposit",
                reference=f"deposit of order {order_id}",
                paid_at=None,
                actor=actor,
            )
        else:
            applied = Decimal("0.00")
    released = dep["amount"] - applied
    dep = one(
        conn.execute(
            """UPDATE fin_deposits SET status = 'settled', applied = %s, released = %s, settled_at = now()
                WHERE id = %s RETURNING *""",
            (applied, released, dep["id"]),
        )
    )
    if released > 0:
        posting.deposit_released(conn, deposit=dep, amount=released, actor=actor)
    audit(
        conn,
        actor=actor,
        action="deposit.settle",
        entity="fin_deposits",
        entity_id=dep["id"],
        after={"applied": str(applied), "released": str(released)},
    )
    return dep


# ---- the interfaces other domains call -------------------------------------------------------------------------


def post_payroll(conn: Conn, *, period: str, lines: list[dict], actor: dict, run: str = "main") -> dict:
    """Post a payroll run (HR calls this in its own transaction); the same period and run post once.

    `period` is 'YYYY-MM'; each line: {department, gross, withholdings (employee income tax + social security held
    back), employer_contributions (optional), employee_ref (optional, never a name)}. Wages and employer contributions
    are expensed per department at the month's end; net wages and the dues to tax office and social insurance become
    liabilities. A second call for the same period and run returns the first entry (a different one: 409).
    """
    p = ledger.parse_period(period)
    clean = []
    for i, ln in enumerate(lines, 1):
        try:
            gross = money(ln["gross"])
            withheld = money(ln.get("withholdings", 0))
            employer = money(ln.get("employer_contributions", 0))
        except (KeyError, ArithmeticError, ValueError) as exc:
            raise Invalid(
                f"lines[{i}]: gross, withholdings and employer_contributions must be amounts"
            ) from exc
        if min(gross, withheld, employer) < 0:
            raise Invalid(f"lines[{i}]: amounts may not be negative", details={"line": i})
        dept = str(ln.get("department") or "")
        if not dept:
            raise Invalid(f"lines[{i}]: department is required", details={"line": i})
        clean.append(
            {
                **ln,
                "gross": gross,
                "withholdings": withheld,
                "employer_contributions": employer,
                "department": dept,
            }
        )
    return posting.payroll(conn, period=p, run=run, lines=clean, actor=actor)


def profitability(conn: Conn, *, by: str, start: dt.date, end: dt.date) -> dict:
    """Profit per vehicle, station or class over [start, end] with telemetry km and engine hours (for analytics)."""
    return analysis.profitability(conn, by=by, start=start, end=end)


def cost_by_category(conn: Conn, *, start: dt.date, end: dt.date, top: int = 10) -> dict:
    """Cost structure by expense account, its monthly trend and the top cost drivers (for analytics)."""
    return analysis.cost_by_category(conn, start=start, end=end, top=top)
