"""Property: whatever sequence of business events happens, the books hold together.

Random sequences of invoices (rental, fuel, damage lines), payments by any method, voids, credit notes, refunds,
deposits held and settled, supplier bills and payments, fuel, payroll, manual entries, reversals, replays of posted
events, vehicle assets with depreciation, and backdated postings around a closed month. After each sequence:

* every entry balances (the deferred database check is forced before the rollback) and the trial balance balances;
* assets = liabilities + equity, and net income = the change in retained earnings;
* the receivables account equals the open invoices, payables the open bills, deposits the deposits held;
* cash opening + flows = closing; replaying every posted event posts nothing.

`make test` runs a modest number of sequences (FLEET_PROPERTY_EXAMPLES, default 40); `make test-finance-property`
runs thousands.
"""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backoffice.customers import service as customers
from backoffice.finance import ledger, payables, posting, statements
from backoffice.finance import service as finance
from fleetcore import crypto
from fleetcore.errors import Conflict, Invalid
from tests import factories
from tests.test_orders_helpers import customer_body

EXAMPLES = int(os.environ.get("FLEET_PROPERTY_EXAMPLES", "40"))
ACTOR = {"username": "prop"}
D = Decimal
ZERO = D("0.00")
CODES = (
    "rental_weekday",
    "rental_weekend",
    "extra_km",
    "fuel",
    "late_return",
    "damage",
    "no_show",
    "one_way",
)

cents = st.integers(min_value=1, max_value=500_000).map(lambda c: D(c) / 100)
idx = st.integers(min_value=0, max_value=10_000)
ops = st.one_of(
    st.tuples(st.just("invoice"), st.lists(st.tuples(st.sampled_from(CODES), cents), min_size=1, max_size=4)),
    st.tuples(
        st.just("pay"), idx, st.integers(1, 100), st.sampled_from(("card", "cash", "bank_transfer", "paypal"))
    ),
    st.tuples(st.just("void"), idx),
    st.tuples(st.just("credit"), idx, st.integers(1, 100)),
    st.tuples(st.just("refund"), idx, st.integers(1, 100)),
    st.tuples(st.just("deposit"), cents, st.sampled_from(("card", "cash"))),
    st.tuples(st.just("settle"), idx, st.booleans()),
    st.tuples(st.just("bill"), cents, st.sampled_from(("5100", "5200", "6900", "1510"))),
    st.tuples(st.just("pay_bill"), idx, st.integers(1, 100)),
    st.tuples(st.just("fuel"), cents, st.booleans()),
    st.tuples(st.just("payroll"), cents, st.integers(0, 100), st.sampled_from(("operations", "finance"))),
    st.tuples(st.just("manual"), cents, st.sampled_from(("1020", "1010", "2900", "3100", "4900", "6900"))),
    st.tuples(st.just("reverse"), idx),
    st.tuples(
        st.just("replay"),
    ),
    st.tuples(st.just("asset"), cents),
    st.tuples(
        st.just("close_last_month"),
    ),
    st.tuples(st.just("backdated"), cents),
)


@pytest.fixture
def world(conn, settings):
    """One customer and order the invoices hang on, and one vehicle (made once; each example rolls back)."""
    crypto.configure(settings)  # the customer's identifiers are encrypted with the test settings' keys
    s = factories.station(conn)
    v = factories.vehicle(conn, station_code=s["code"])
    c = customers.create(conn, data=customer_body(), actor={"username": "prop"})
    o = conn.execute(
        """INSERT INTO orders (customer_id, vehicle_class, pickup_station_id, return_station_id, pickup_at, return_at,
                               channel, quote, quoted_net, created_by)
           VALUES (%s, 'compact', %s, %s, now(), now() + interval '1 day', 'counter', '{}', 0, 'p') RETURNING id""",
        (c["id"], s["id"], s["id"]),
    ).fetchone()
    return {"conn": conn, "customer": c["id"], "order": o["id"], "vehicle": v["id"]}


def _pick(items: list, i: int):
    return items[i % len(items)] if items else None


def _apply(conn, w: dict, op: tuple, st_: dict) -> None:
    today = dt.date.today()
    kind = op[0]
    try:
        with conn.transaction():
            if kind == "invoice":
                lines = [
                    {"code": c, "description": c, "quantity": 1, "unit_price": a, "amount": a}
                    for c, a in op[1]
                ]
                kind_ = "damage" if any(c == "damage" for c, _ in op[1]) else "rental"
                # one live invoice per order and kind: each invoice gets an order of its own
                oid = conn.execute(
                    """INSERT INTO orders (customer_id, vehicle_class, pickup_station_id, return_station_id, pickup_at,
                                           return_at, channel, quote, quoted_net, created_by)
                       SELECT customer_id, vehicle_class, pickup_station_id, return_station_id, pickup_at, return_at,
                              channel, quote, quoted_net, created_by FROM orders WHERE id = %s RETURNING id""",
                    (w["order"],),
                ).fetchone()["id"]
                created = finance.create_invoice(
                    conn,
                    order_id=oid,
                    customer_id=w["customer"],
                    kind=kind_,
                    lines=lines,
                    vehicle_id=w["vehicle"],
                )
                st_["invoices"].append(created["id"])
            elif kind == "pay":
                inv = finance.get_invoice(conn, invoice_id=_pick(st_["invoices"], op[1]) or 0)
                if inv and inv["status"] == "open" and inv["balance"] > 0:
                    amount = max(D("0.01"), (inv["balance"] * op[2] / 100).quantize(D("0.01")))
                    finance.record_payment(
                        conn, invoice_id=inv["id"], amount=min(amount, inv["balance"]), method=op[3],
                        reference="", paid_at=None, actor=ACTOR,
                    )  # fmt: skip
            elif kind == "void":
                i = _pick(st_["invoices"], op[1])
                if i:
                    finance.void_invoice(conn, invoice_id=i, reason="property", actor=ACTOR)
            elif kind == "credit":
                inv = finance.get_invoice(conn, invoice_id=_pick(st_["invoices"], op[1]) or 0)
                if inv and inv["gross"] - inv["credited"] > 0:
                    left = inv["gross"] - inv["credited"]
                    amt = max(D("0.01"), (left * op[2] / 100).quantize(D("0.01")))
                    finance.issue_credit_note(
                        conn, invoice_id=inv["id"], amount=min(amt, left), reason="prop", actor=ACTOR
                    )
            elif kind == "refund":
                inv = finance.get_invoice(conn, invoice_id=_pick(st_["invoices"], op[1]) or 0)
                if inv and inv["balance"] < 0:
                    amt = max(D("0.01"), (-inv["balance"] * op[2] / 100).quantize(D("0.01")))
                    finance.refund(
                        conn,
                        invoice_id=inv["id"],
                        amount=min(amt, -inv["balance"]),
                        method="card",
                        reference="",
                        actor=ACTOR,
                    )
            elif kind == "deposit":
                st_["next_order"] += 1
                finance.hold_deposit(
                    conn,
                    order_id=st_["next_order"],
                    customer_id=w["customer"],
                    amount=op[1],
                    method=op[2],
                    actor=ACTOR,
                )
                st_["deposits"].append(st_["next_order"])
            elif kind == "settle":
                oid = _pick(st_["deposits"], op[1])
                if oid:
                    finance.settle_deposit(
                        conn, order_id=oid, invoice_id=_pick(st_["invoices"], op[1]), apply=op[2], actor=ACTOR
                    )
            elif kind == "bill":
                st_["n"] += 1
                p = payables.create_bill(
                    conn, supplier="Supplier", reference=f"B{st_['n']}", source="manual", debits=[(op[2], op[1])],
                    bill_date=today, actor=ACTOR, cash_flow="investing" if op[2] == "1510" else "operating",
                )  # fmt: skip
                st_["bills"].append(p["id"])
            elif kind == "pay_bill":
                pid = _pick(st_["bills"], op[1])
                if pid:
                    p = payables.get_payable(conn, payable_id=pid)
                    left = p["gross"] - p["paid"]
                    if left > 0:
                        amt = max(D("0.01"), (left * op[2] / 100).quantize(D("0.01")))
                        payables.pay_supplier(
                            conn,
                            payable_id=pid,
                            amount=min(amt, left),
                            paid_on=today,
                            reference="",
                            actor=ACTOR,
                        )
            elif kind == "fuel":
                st_["n"] += 1
                payables.record_fuel_cost(
                    conn, vehicle_id=w["vehicle"], net=op[1], on=today, supplier="Aral", reference=f"F{st_['n']}",
                    paid=op[2], actor=ACTOR,
                )  # fmt: skip
            elif kind == "payroll":
                st_["n"] += 1
                gross = op[1]
                withheld = (gross * op[2] / 100).quantize(D("0.01"))
                finance.post_payroll(
                    conn, period=today.strftime("%Y-%m"), run=f"r{st_['n']}", actor=ACTOR,
                    lines=[{"department": op[3], "gross": gross, "withholdings": withheld, "employer_contributions": withheld / 2}],
                )  # fmt: skip
            elif kind == "manual":
                ledger.post(
                    conn, entry_date=today, kind="manual", actor=ACTOR,
                    lines=[{"account": "1020", "amount": op[1]}, {"account": op[2], "amount": -op[1]}],
                )  # fmt: skip
            elif kind == "reverse":
                ids = [
                    r["id"]
                    for r in conn.execute("SELECT id FROM fin_journal_entries WHERE reverses_id IS NULL")
                ]
                e = _pick(ids, op[1])
                if e:
                    ledger.reverse(conn, entry_id=e, actor=ACTOR)
            elif kind == "replay":
                before = conn.execute("SELECT count(*) AS n FROM fin_journal_entries").fetchone()["n"]
                for i in st_["invoices"]:
                    inv = finance.get_invoice_or_raise(conn, invoice_id=i)
                    if inv["gross"] > 0:
                        posting.invoice_issued(conn, invoice=inv, actor=ACTOR)
                    for p in inv["payments"]:
                        posting.payment_received(
                            conn, payment={**p, "method": p["method"]}, invoice=inv, actor=ACTOR
                        )
                after = conn.execute("SELECT count(*) AS n FROM fin_journal_entries").fetchone()["n"]
                assert after == before, "a replayed event posted again"
            elif kind == "asset":
                st_["next_vehicle"] += 1
                payables.register_asset(
                    conn, vehicle_id=st_["next_vehicle"], cost=op[1] + 1, in_service=today, actor=ACTOR
                )
                payables.run_depreciation(conn, upto=today, actor=ACTOR)
            elif kind == "close_last_month":
                if not st_["closed"]:
                    ledger.close_period(
                        conn, period=(today.replace(day=1) - dt.timedelta(days=1)).replace(day=1), actor=ACTOR
                    )
                    st_["closed"] = True
            elif kind == "backdated":
                last = today.replace(day=1) - dt.timedelta(days=1)
                try:
                    ledger.post(
                        conn, entry_date=last, kind="manual", actor=ACTOR,
                        lines=[{"account": "1010", "amount": op[1]}, {"account": "4900", "amount": -op[1]}],
                    )  # fmt: skip
                    assert not st_["closed"], "posted into a closed period"
                except Conflict:
                    assert st_["closed"]
    except (Conflict, Invalid):
        pass  # a refused operation (e.g. voiding a paid invoice) changes nothing: its savepoint is rolled back


def _check_invariants(conn) -> None:
    conn.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the deferred balance checks run now, before the rollback
    today = dt.date.today()
    start, end = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1), ledger.month_end(today)
    assert conn.execute("SELECT coalesce(sum(amount), 0) AS s FROM fin_journal_lines").fetchone()["s"] == 0
    tb = statements.trial_balance(conn, start=start, end=end)
    assert tb["balanced"]
    bs = statements.balance_sheet(conn, start=start, end=end)
    assert bs["balanced"]
    inc = statements.income_statement(conn, start=start, end=end)
    assert bs["retained_earnings"] - bs["previous"]["retained_earnings"] == inc["net_income"]
    cf = statements.cash_flow(conn, start=start, end=end)
    assert cf["balanced"] and cf["opening_cash"] + cf["net_change"] == cf["closing_cash"]
    bal = ledger.balances(conn)
    ar = conn.execute(
        """SELECT coalesce(sum(i.gross - coalesce((SELECT sum(amount) FROM payments p WHERE p.invoice_id = i.id), 0)
                               - i.credited + i.refunded), 0) AS s
             FROM invoices i WHERE i.status <> 'void'"""
    ).fetchone()["s"]
    assert bal.get("1110", ZERO) == ar
    ap = conn.execute("SELECT coalesce(sum(gross - paid), 0) AS s FROM fin_payables").fetchone()["s"]
    assert -bal.get("2100", ZERO) == ap
    held = conn.execute(
        "SELECT coalesce(sum(amount), 0) AS s FROM fin_deposits WHERE status = 'held'"
    ).fetchone()["s"]
    assert -bal.get("2300", ZERO) == held


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(sequence=st.lists(ops, min_size=1, max_size=30))
def test_books_hold_together_under_any_sequence(world, sequence):
    conn = world["conn"]
    state = {"invoices": [], "deposits": [], "bills": [], "n": 0, "next_order": 10_000_000,
             "next_vehicle": 10_000_000, "closed": False}  # fmt: skip
    with conn.transaction(force_rollback=True):
        for op in sequence:
            _apply(conn, world, op, state)
        _check_invariants(conn)
