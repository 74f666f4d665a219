"""Business events → journal entries. Each function runs in the caller's transaction (the event's own) and names
the event with a source key, so the same event never posts twice (ledger.post returns the first entry).

| event | debit | credit | key |
|---|---|---|---|
| invoice issued | 1110 receivables (gross) | 41xx–44xx revenue per line (net), 2200 output VAT | invoice:<id>:issued |
| payment received | 1010 cash / 1020 bank / 2300 deposits | 1110 | payment:<id> |
| invoice voided | the reversal of the issue entry | | invoice:<id>:void |
| credit note | 4950 credit notes (net), 2200 VAT | 1110 | credit_note:<id> |
| refund paid | 1110 | 1010 / 1020 | refund:<id> |
| deposit held / released | 1010/1020 / 2300 | 2300 / 1010/1020 | deposit:<order>:held / :released |
| work order closed | 5100 parts, 5200 labour, 1200 input VAT | 2100 payables | maintenance:<id>:closed |
| vehicle delivered | 1510 vehicles, 1200 input VAT | 2100 payables | procurement:<id>:delivered |
| supplier payment | 2100 | 1020 | supplier_payment:<id> |
| depreciation | 5400 | 1519 accumulated depreciation | depreciation:<vehicle>:<YYYY-MM> |
| fuel / charging | 5300, 1200 | 1020 (paid) or 2100 (billed) | fuel:<id> |
| payroll | 6100 wages, 6200 employer social security | 2410 net wages, 2420 taxes and social security | payroll:<YYYY-MM>:<run> |
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from backoffice.finance import ledger, profiles
from fleetcore.db import Conn
from fleetcore.errors import Invalid

# Revenue account per invoice line code (pricing's codes); anything else is other income.
REVENUE_ACCOUNTS = {
    "rental_weekday": "4100",
    "rental_weekend": "4100",
    "extra_km": "4100",
    "one_way": "4100",
    "late_return": "4100",
    "fuel": "4200",
    "charging": "4200",
    "cancelled": "4300",
    "no_show": "4300",
    "damage": "4400",
}
OTHER_INCOME = "4900"
AR, INPUT_VAT, OUTPUT_VAT, DEPOSITS, AP = "1110", "1200", "2200", "2300", "2100"
CASH, BANK = "1010", "1020"
VEHICLES, ACC_DEPRECIATION = "1510", "1519"
PARTS, LABOUR, FUEL, DEPRECIATION = "5100", "5200", "5300", "5400"
WAGES, EMPLOYER_SS, NET_WAGES, PAYROLL_DUES = "6100", "6200", "2410", "2420"
CREDIT_NOTES = "4950"


def money_account(method: str) -> str:
    """Where money in or out of a method lands: the till for cash, the bank for cards, transfers and PayPal."""
    return CASH if method == "cash" else BANK


def _dims(invoice: dict) -> dict:
    return {
        "invoice_id": invoice["id"],
        "order_id": invoice.get("order_id"),
        "customer_id": invoice.get("customer_id"),
        "vehicle_id": invoice.get("vehicle_id"),
        "station_id": invoice.get("station_id"),
    }


def _date(conn: Conn, ts: dt.datetime | None) -> dt.date:
    return profiles.local_date(profiles.get(conn), ts)


def invoice_issued(conn: Conn, *, invoice: dict, actor: dict | None) -> dict:
    d = _dims(invoice)
    by_account: dict[str, Decimal] = {}
    for ln in invoice["lines"]:
        acc = REVENUE_ACCOUNTS.get(ln["code"], OTHER_INCOME)
        by_account[acc] = by_account.get(acc, Decimal(0)) + ln["amount"]
    lines = [{"account": AR, "amount": invoice["gross"], **d}]
    lines += [{"account": a, "amount": -n, **d} for a, n in sorted(by_account.items()) if n]
    if invoice["vat"]:
        lines.append({"account": OUTPUT_VAT, "amount": -invoice["vat"], **d})
    return ledger.post(
        conn,
        entry_date=_date(conn, invoice["issued_at"]),
        kind="invoice",
        lines=lines,
        actor=actor,
        memo=f"invoice {invoice['number']}",
        source_key=f"invoice:{invoice['id']}:issued",
    )


def payment_received(conn: Conn, *, payment: dict, invoice: dict, actor: dict | None) -> dict:
    d = _dims(invoice)
    debit = DEPOSITS if payment["method"] == "deposit" else money_account(payment["method"])
    return ledger.post(
        conn,
        entry_date=_date(conn, payment["paid_at"]),
        kind="payment",
        lines=[
            {"account": debit, "amount": payment["amount"], **d},
            {"account": AR, "amount": -payment["amount"], **d},
        ],
        actor=actor,
        memo=f"payment on {invoice['number']} ({payment['method']})",
        source_key=f"payment:{payment['id']}",
    )


def invoice_voided(conn: Conn, *, invoice: dict, actor: dict | None) -> dict:
    issued = ledger.get_entry_by_key(conn, source_key=f"invoice:{invoice['id']}:issued")
    if issued is None:  # issued before the ledger existed: post it now so the void has something to reverse
        issued = invoice_issued(conn, invoice=invoice, actor=actor)
    return ledger.reverse(
        conn,
        entry_id=issued["id"],
        actor=actor,
        entry_date=_date(conn, invoice.get("voided_at")),
        memo=f"void of invoice {invoice['number']}",
        source_key=f"invoice:{invoice['id']}:void",
        operational=True,
    )


def credit_note_issued(conn: Conn, *, note: dict, invoice: dict, actor: dict | None) -> dict:
    d = _dims(invoice)
    lines = [{"account": AR, "amount": -note["gross"], **d}]
    if note["net"]:
        lines.append({"account": CREDIT_NOTES, "amount": note["net"], **d})
    if note["vat"]:
        lines.append({"account": OUTPUT_VAT, "amount": note["vat"], **d})
    return ledger.post(
        conn,
        entry_date=_date(conn, note["issued_at"]),
        kind="credit_note",
        lines=lines,
        actor=actor,
        memo=f"credit note {note['number']} on {invoice['number']}",
        source_key=f"credit_note:{note['id']}",
    )


def refund_paid(conn: Conn, *, refund: dict, invoice: dict, actor: dict | None) -> dict:
    d = _dims(invoice)
    return ledger.post(
        conn,
        entry_date=_date(conn, refund["refunded_at"]),
        kind="refund",
        lines=[
            {"account": AR, "amount": refund["amount"], **d},
            {"account": money_account(refund["method"]), "amount": -refund["amount"], **d},
        ],
        actor=actor,
        memo=f"refund on {invoice['number']}",
        source_key=f"refund:{refund['id']}",
    )


def deposit_held(
    conn: Conn, *, deposit: dict, vehicle_id: int | None, station_id: int | None, actor: dict | None
) -> dict:
    d = {
        "order_id": deposit["order_id"],
        "customer_id": deposit["customer_id"],
        "vehicle_id": vehicle_id,
        "station_id": station_id,
    }
    return ledger.post(
        conn,
        entry_date=_date(conn, deposit["held_at"]),
        kind="deposit",
        lines=[
            {"account": money_account(deposit["method"]), "amount": deposit["amount"], **d},
            {"account": DEPOSITS, "amount": -deposit["amount"], **d},
        ],
        actor=actor,
        memo=f"deposit held for order {deposit['order_id']}",
        source_key=f"deposit:{deposit['order_id']}:held",
    )


def deposit_released(conn: Conn, *, deposit: dict, amount: Decimal, actor: dict | None) -> dict:
    d = {"order_id": deposit["order_id"], "customer_id": deposit["customer_id"]}
    return ledger.post(
        conn,
        entry_date=_date(conn, deposit["settled_at"]),
        kind="deposit_release",
        lines=[
            {"account": DEPOSITS, "amount": amount, **d},
            {"account": money_account(deposit["method"]), "amount": -amount, **d},
        ],
        actor=actor,
        memo=f"deposit released for order {deposit['order_id']}",
        source_key=f"deposit:{deposit['order_id']}:released",
    )


def supplier_bill(
    conn: Conn,
    *,
    payable: dict,
    debits: list[tuple[str, Decimal]],
    kind: str,
    source_key: str,
    station_id: int | None,
    actor: dict | None,
) -> dict:
    """A bill from a supplier: expense or asset lines (net) and input VAT against the payable (gross)."""
    d = {"vehicle_id": payable.get("vehicle_id"), "station_id": station_id, "payable_id": payable["id"]}
    lines = [{"account": acc, "amount": amt, **d} for acc, amt in debits if amt]
    if payable["vat"]:
        lines.append({"account": INPUT_VAT, "amount": payable["vat"], **d})
    lines.append({"account": AP, "amount": -payable["gross"], **d})
    return ledger.post(
        conn,
        entry_date=payable["bill_date"],
        kind=kind,
        lines=lines,
        actor=actor,
        memo=f"{payable['supplier']}: {payable['reference']}",
        source_key=source_key,
    )


def supplier_paid(conn: Conn, *, payment: dict, payable: dict, actor: dict | None) -> dict:
    d = {"payable_id": payable["id"], "vehicle_id": payable.get("vehicle_id")}
    return ledger.post(
        conn,
        entry_date=payment["paid_on"],
        kind="supplier_payment",
        lines=[
            {"account": AP, "amount": payment["amount"], **d},
            {"account": BANK, "amount": -payment["amount"], "cash_flow": payable["cash_flow"], **d},
        ],
        actor=actor,
        memo=f"payment to {payable['supplier']}: {payable['reference']}",
        source_key=f"supplier_payment:{payment['id']}",
    )


def depreciation(conn: Conn, *, asset: dict, period: dt.date, amount: Decimal, actor: dict | None) -> dict:
    d = {"vehicle_id": asset["vehicle_id"], "station_id": asset.get("station_id")}
    return ledger.post(
        conn,
        entry_date=ledger.month_end(period),
        kind="depreciation",
        lines=[
            {"account": DEPRECIATION, "amount": amount, **d},
            {"account": ACC_DEPRECIATION, "amount": -amount, **d},
        ],
        actor=actor,
        memo=f"depreciation {period:%Y-%m}, vehicle {asset['vehicle_id']}",
        source_key=f"depreciation:{asset['vehicle_id']}:{period:%Y-%m}",
    )


def fuel_cost(conn: Conn, *, cost: dict, actor: dict | None) -> dict:
    d = {"vehicle_id": cost["vehicle_id"], "station_id": cost.get("station_id")}
    credit = AP if cost.get("payable_id") else BANK
    lines = [{"account": FUEL, "amount": cost["net"], **d}]
    if cost["vat"]:
        lines.append({"account": INPUT_VAT, "amount": cost["vat"], **d})
    lines.append(
        {"account": credit, "amount": -(cost["net"] + cost["vat"]), "payable_id": cost.get("payable_id"), **d}
    )
    return ledger.post(
        conn,
        entry_date=cost["date"],
        kind="fuel",
        lines=lines,
        actor=actor,
        memo=cost.get("memo", "fuel and charging"),
        source_key=cost["source_key"],
    )


def payroll(conn: Conn, *, period: dt.date, run: str, lines: list[dict], actor: dict | None) -> dict:
    """One entry per payroll run: per department, gross wages and employer contributions against the dues."""
    if not lines:
        raise Invalid("a payroll run needs at least one line")
    gross_by: dict[str, Decimal] = {}
    employer_by: dict[str, Decimal] = {}
    net_total = dues_total = Decimal(0)
    for i, ln in enumerate(lines, 1):
        gross, withheld = ln["gross"], ln["withholdings"]
        employer = ln.get("employer_contributions", Decimal(0))
        if withheld > gross:
            raise Invalid(f"lines[{i}]: withholdings {withheld} exceed gross {gross}", details={"line": i})
        dept = ln["department"]
        gross_by[dept] = gross_by.get(dept, Decimal(0)) + gross
        employer_by[dept] = employer_by.get(dept, Decimal(0)) + employer
        net_total += gross - withheld
        dues_total += withheld + employer
    # One line per department and account (budgets are per account x department); employees stay in HR's records.
    out: list[dict] = [
        {"account": WAGES, "amount": g, "department": d} for d, g in sorted(gross_by.items()) if g
    ]
    out += [
        {"account": EMPLOYER_SS, "amount": e, "department": d} for d, e in sorted(employer_by.items()) if e
    ]
    if net_total:
        out.append({"account": NET_WAGES, "amount": -net_total})
    if dues_total:
        out.append({"account": PAYROLL_DUES, "amount": -dues_total})
    return ledger.post(
        conn,
        entry_date=ledger.month_end(period),
        kind="payroll",
        lines=out,
        actor=actor,
        memo=f"payroll {period:%Y-%m} ({run})",
        source_key=f"payroll:{period:%Y-%m}:{run}",
    )
