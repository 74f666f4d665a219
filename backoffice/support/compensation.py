"""Compensation for a case: a credit note through finance's service, or a discount code (backoffice.promotions).

The one place that calls finance for support. Finance's ledger (`issue_credit_note(conn, *, invoice_id, amount,
reason, actor)`) is being built in parallel: when backoffice.finance.service has it, the credit note is posted
there; until then the credit note is recorded on the case as `pending_finance`, with everything finance needs to
post it later.
"""

from __future__ import annotations

from decimal import Decimal

from backoffice.finance import service as finance
from backoffice.promotions import service as promotions
from fleetcore.db import Conn
from fleetcore.errors import Invalid
from fleetcore.jsonable import to_json

CREDIT_NOTE_FUNCTION = "issue_credit_note"


def finance_posts_credit_notes() -> bool:
    """True when finance's service offers issue_credit_note (the ledger has landed)."""
    return callable(getattr(finance, CREDIT_NOTE_FUNCTION, None))


def credit_note(
    conn: Conn, *, case: dict, invoice_id: int | None, amount: Decimal, reason: str, actor: dict
) -> dict:
    """A credit note on one of the case's order's invoices (posted by finance when it can)."""
    check_credit_note(conn, case=case, invoice_id=invoice_id, amount=amount)
    issue = getattr(finance, CREDIT_NOTE_FUNCTION, None)
    if callable(issue):
        note = issue(conn, invoice_id=invoice_id, amount=amount, reason=reason, actor=actor)
        return {"kind": "credit_note", "status": "posted", "invoice_id": invoice_id, "amount": amount,
                "credit_note": to_json(note)}  # fmt: skip
    return {"kind": "credit_note", "status": "pending_finance", "invoice_id": invoice_id, "amount": amount,
            "reason": reason}  # fmt: skip


def check_credit_note(conn: Conn, *, case: dict, invoice_id: int | None, amount: Decimal) -> None:
    """A credit note must name an invoice of the case's order and stay within its gross amount."""
    if invoice_id is None:
        raise Invalid("compensation.invoice_id: a credit note names the invoice it reduces")
    invoice = finance.get_invoice_or_raise(conn, invoice_id=invoice_id)
    if case["order_id"] is None or invoice["order_id"] != case["order_id"]:
        raise Invalid(f"compensation.invoice_id: invoice {invoice_id} is not an invoice of the case's order")
    if amount > invoice["gross"]:
        raise Invalid(f"compensation.amount: {amount} exceeds the invoice's gross {invoice['gross']}")


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
