"""Compensation for a case: a credit note through finance's service, or a discount code (backoffice.promotions).

The one place support calls finance: `finance.service.issue_credit_note(conn, *, invoice_id, amount, reason,
actor)` issues the credit note (VAT credited in the invoice's proportion) and posts it to the ledger, in the case's
transaction.
"""

from __future__ import annotations

from decimal import Decimal

from backoffice.finance import service as finance
from backoffice.promotions import service as promotions
from fleetcore.db import Conn
from fleetcore.errors import Invalid
from fleetcore.jsonable import to_json


def credit_note(
    conn: Conn, *, case: dict, invoice_id: int | None, amount: Decimal, reason: str, actor: dict
) -> dict:
    """A credit note on one of the case's order's invoices, issued and posted by finance."""
    check_credit_note(conn, case=case, invoice_id=invoice_id, amount=amount)
    assert invoice_id is not None  # check_credit_note refuses a missing one
    issued = finance.issue_credit_note(conn, invoice_id=invoice_id, amount=amount, reason=reason, actor=actor)
    note = issued["credit_note"]
    return {"kind": "credit_note", "status": "posted", "invoice_id": invoice_id, "amount": amount,
            "credit_note": note["number"], "gross": note["gross"], "vat": note["vat"]}  # fmt: skip


def check_credit_note(conn: Conn, *, case: dict, invoice_id: int | None, amount: Decimal) -> None:
    """A credit note must name an invoice of the case's order and stay within what is left to credit on it."""
    if invoice_id is None:
        raise Invalid("compensation.invoice_id: a credit note names the invoice it reduces")
    invoice = finance.get_invoice_or_raise(conn, invoice_id=invoice_id)
    if case["order_id"] is None or invoice["order_id"] != case["order_id"]:
        raise Invalid(f"compensation.invoice_id: invoice {invoice_id} is not an invoice of the case's order")
    creditable = invoice["gross"] - invoice.get("credited", Decimal(0))
    if amount > creditable:
        raise Invalid(
            f"compensation.amount: {amount} exceeds what is left to credit on the invoice ({creditable})"
        )


def discount_code(
    conn: Conn,
    *,
    case: dict,
    percent: Decimal | None,
    amount: Decimal | None,
    valid_days: int,
    actor: dict,
) -> dict:
    """A single-use discount code for the customer's next rental."""
    code = promotions.issue(
        conn,
        source=f"support.case:{case['id']}",
        valid_days=valid_days,
        percent=percent,
        amount=amount,
        customer_id=case["customer_id"],
        actor=actor,
    )
    return {"kind": "discount_code", "status": "issued", "code": code["code"], "percent": percent,
            "amount": amount, "valid_until": code["valid_until"]}  # fmt: skip


def execute(conn: Conn, *, case: dict, plan: dict, actor: dict) -> dict:
    """Carry out the compensation agreed with the customer (`plan` as CompensationIn dumped)."""
    reason = f"case {case['id']}: {case['subject']}"[:500]
    amount = None if plan.get("amount") is None else Decimal(str(plan["amount"]))
    if plan["kind"] == "credit_note":
        assert amount is not None  # CompensationIn guarantees it
        result = credit_note(
            conn, case=case, invoice_id=plan.get("invoice_id"), amount=amount, reason=reason, actor=actor
        )
    else:
        percent = None if plan.get("percent") is None else Decimal(str(plan["percent"]))
        result = discount_code(
            conn,
            case=case,
            percent=percent,
            amount=amount,
            valid_days=int(plan.get("valid_days", 90)),
            actor=actor,
        )
    return to_json(result)
