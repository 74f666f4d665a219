"""Payables and fixed assets: supplier bills (from work orders, vehicle deliveries, fuel cards, or entered by
finance), supplier payments, fuel and charging costs, the vehicle asset register and monthly depreciation.

The one writer of fin_payables, fin_supplier_payments and fin_fixed_assets. The listeners `on_work_order_closed`
and `on_vehicle_delivered` are wired to the maintenance and procurement events by the composition root: they run in
the event's transaction, so the cost is booked exactly when (and only if) the event commits.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from backoffice.finance import ledger, posting, profiles
from backoffice.vehicles import service as vehicles
from fleetcore.audit import audit
from fleetcore.db import Conn, one
from fleetcore.errors import Conflict, Invalid, NotFound
from fleetcore.jsonable import to_json

# Payment terms when the bill names none: 30 days net (the common B2B term, also § 286 (3) BGB's default delay).
DEFAULT_TERMS = dt.timedelta(days=30)
WORKSHOP = "maintenance workshop"


def _vat(conn: Conn, profile: dict, net: Decimal, on: dt.date) -> Decimal:
    rate = profiles.tax_rate(
        conn, country=profile["country"], category=profile["purchase_tax_category"], on=on
    )
    return profiles.money(net * rate, profile["minor_unit"])


def get_payable(conn: Conn, *, payable_id: int, for_update: bool = False) -> dict:
    row = conn.execute(
        "SELECT * FROM fin_payables WHERE id = %s" + (" FOR UPDATE" if for_update else ""), (payable_id,)
    ).fetchone()
    if row is None:
        raise NotFound(f"no payable {payable_id}")
    return row


def list_payables(conn: Conn, *, status: str | None = None, limit: int = 200, offset: int = 0) -> list[dict]:
    return conn.execute(
        """SELECT * FROM fin_payables WHERE %(s)s::text IS NULL OR status = %(s)s
            ORDER BY due_date, id LIMIT %(l)s OFFSET %(o)s""",
        {"s": status, "l": limit, "o": offset},
    ).fetchall()


def create_bill(
    conn: Conn,
    *,
    supplier: str,
    reference: str,
    source: str,
    debits: list[tuple[str, Decimal]],
    bill_date: dt.date,
    actor: dict | None,
    vat: Decimal | None = None,
    due_date: dt.date | None = None,
    vehicle_id: int | None = None,
    station_id: int | None = None,
    cash_flow: str = "operating",
    source_key: str | None = None,
    kind: str = "supplier_bill",
) -> dict:
    """A supplier's bill: the payable and its entry (debits net, input VAT, payables gross). One per key."""
    profile = profiles.get(conn)
    mu = profile["minor_unit"]
    debits = [(a, profiles.money(x, mu)) for a, x in debits]
    net = sum((x for _, x in debits), Decimal(0))
    if net < 0 or any(x < 0 for _, x in debits):
        raise Invalid("amounts may not be negative")
    vat = _vat(conn, profile, net, bill_date) if vat is None else profiles.money(vat, mu)
    if net + vat <= 0:
        raise Invalid("a bill needs a positive amount")
    due_date = due_date or bill_date + DEFAULT_TERMS
    if due_date < bill_date:
        raise Invalid("due_date is before the bill date", details={"field": "due_date"})
    if conn.execute(
        "SELECT 1 FROM fin_payables WHERE supplier = %s AND reference = %s", (supplier, reference)
    ).fetchone():
        raise Conflict(f"{supplier} bill {reference!r} is recorded already")
    payable = one(
        conn.execute(
            """INSERT INTO fin_payables (supplier, reference, source, cash_flow, net, vat, gross, bill_date, due_date,
                                         vehicle_id, created_by)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *""",
            (
                supplier,
                reference,
                source,
                cash_flow,
                net,
                vat,
                net + vat,
                bill_date,
                due_date,
                vehicle_id,
                (actor or {}).get("username", "system"),
            ),
        )
    )
    posting.supplier_bill(
        conn,
        payable=payable,
        debits=debits,
        kind=kind,
        source_key=source_key or f"payable:{payable['id']}",
        station_id=station_id,
        actor=actor,
    )
    audit(
        conn,
        actor=actor,
        action="finance.payable.create",
        entity="fin_payables",
        entity_id=payable["id"],
        after={"source": source, "reference": reference, "gross": str(payable["gross"])},
    )
    return payable


def pay_supplier(
    conn: Conn, *, payable_id: int, amount: Decimal, paid_on: dt.date, reference: str, actor: dict
) -> dict:
    """Pay (part of) a supplier bill from the bank."""
    payable = get_payable(conn, payable_id=payable_id, for_update=True)
    if payable["status"] != "open":
        raise Conflict(f"payable {payable_id} is paid already")
    amount = profiles.money(amount, profiles.get(conn)["minor_unit"])
    left = payable["gross"] - payable["paid"]
    if amount <= 0 or amount > left:
        raise Invalid(f"amount must be positive and at most the open {left}", details={"field": "amount"})
    pay = one(
        conn.execute(
            """INSERT INTO fin_supplier_payments (payable_id, amount, paid_on, reference, recorded_by)
               VALUES (%s, %s, %s, %s, %s) RETURNING *""",
            (payable_id, amount, paid_on, reference, actor["username"]),
        )
    )
    conn.execute(
        """UPDATE fin_payables SET paid = paid + %s, status = CASE WHEN paid + %s = gross THEN 'paid' ELSE 'open' END
            WHERE id = %s""",
        (amount, amount, payable_id),
    )
    posting.supplier_paid(conn, payment=pay, payable=payable, actor=actor)
    audit(
        conn,
        actor=actor,
        action="finance.supplier_payment.create",
        entity="fin_payables",
        entity_id=payable_id,
        after=to_json(pay),
    )
    return {"payment": pay, "payable": get_payable(conn, payable_id=payable_id)}


def record_fuel_cost(
    conn: Conn,
    *,
    vehicle_id: int,
    net: Decimal,
    on: dt.date,
    supplier: str,
    reference: str,
    paid: bool,
    actor: dict,
    vat: Decimal | None = None,
    quantity: Decimal | None = None,
    unit: str = "l",
) -> dict:
    """Fuel or charging bought for a vehicle: paid at once by card (bank) or billed by a fuel-card supplier."""
    v = vehicles.get_by_id(conn, vehicle_id=vehicle_id)
    if v is None:
        raise Invalid(f"vehicle_id: no vehicle {vehicle_id}", details={"field": "vehicle_id"})
    profile = profiles.get(conn)
    if not paid:
        p = create_bill(
            conn,
            supplier=supplier,
            reference=reference,
            source="fuel",
            debits=[(posting.FUEL, net)],
            vat=vat,
            bill_date=on,
            vehicle_id=vehicle_id,
            station_id=v["home_station_id"],
            actor=actor,
            source_key=f"fuel:{supplier}:{reference}",
            kind="fuel",
        )
        return {
            "payable": p,
            "entry": ledger.get_entry_by_key(conn, source_key=f"fuel:{supplier}:{reference}"),
        }
    net = profiles.money(net, profile["minor_unit"])
    if net <= 0:
        raise Invalid("net must be positive", details={"field": "net"})
    vat = _vat(conn, profile, net, on) if vat is None else profiles.money(vat, profile["minor_unit"])
    memo = f"{supplier} {reference}" + (f" ({quantity} {unit})" if quantity else "")
    entry = posting.fuel_cost(
        conn,
        cost={
            "vehicle_id": vehicle_id,
            "station_id": v["home_station_id"],
            "net": net,
            "vat": vat,
            "date": on,
            "memo": memo,
            "source_key": f"fuel:{supplier}:{reference}",
        },
        actor=actor,
    )
    return {"payable": None, "entry": entry}


# ---- listeners of operations -----------------------------------------------------------------------------------


def on_work_order_closed(conn: Conn, *, record: dict, actor: dict | None) -> dict | None:
    """maintenance.work_order_closed: parts and labour expensed against the workshop's bill."""
    if record["parts_cost"] + record["labour_cost"] <= 0:
        return None
    v = vehicles.get_by_id(conn, vehicle_id=record["vehicle_id"])
    return create_bill(
        conn,
        supplier=WORKSHOP,
        reference=record["work_order"],
        source="maintenance",
        debits=[(posting.PARTS, record["parts_cost"]), (posting.LABOUR, record["labour_cost"])],
        bill_date=profiles.local_date(profiles.get(conn), record["closed_at"]),
        vehicle_id=record["vehicle_id"],
        station_id=v["home_station_id"] if v else None,
        actor=actor,
        source_key=f"maintenance:{record['id']}:closed",
        kind="maintenance",
    )


def on_vehicle_delivered(conn: Conn, *, procurement: dict, vehicle: dict, actor: dict | None) -> dict | None:
    """procurement.delivered: the vehicle capitalised at its net price against the supplier's bill; an asset."""
    if procurement["price"] <= 0:
        return None
    delivered = procurement["delivered_on"]
    payable = create_bill(
        conn,
        supplier=procurement["supplier"],
        reference=f"procurement {procurement['id']}",
        source="procurement",
        debits=[(posting.VEHICLES, procurement["price"])],
        bill_date=delivered,
        vehicle_id=vehicle["id"],
        station_id=vehicle.get("home_station_id") or procurement.get("station_id"),
        cash_flow="investing",
        actor=actor,
        source_key=f"procurement:{procurement['id']}:delivered",
        kind="procurement",
    )
    register_asset(
        conn,
        vehicle_id=vehicle["id"],
        cost=procurement["price"],
        in_service=delivered,
        station_id=procurement.get("station_id"),
        actor=actor,
    )
    return payable


# ---- fixed assets and depreciation -----------------------------------------------------------------------------


def register_asset(
    conn: Conn,
    *,
    vehicle_id: int,
    cost: Decimal,
    in_service: dt.date,
    actor: dict | None,
    useful_life_months: int | None = None,
    residual_value: Decimal | None = None,
    station_id: int | None = None,
) -> dict:
    """A vehicle in the asset register, depreciated straight-line by the profile's policy unless told otherwise."""
    profile = profiles.get(conn)
    life = useful_life_months or profile["useful_life_months"]
    residual = (
        profiles.money(cost * profile["residual_pct"], profile["minor_unit"])
        if residual_value is None
        else residual_value
    )
    first = in_service.replace(day=1)
    if profile["depreciation_from_next_month"]:
        first = (first + dt.timedelta(days=32)).replace(day=1)
    if conn.execute("SELECT 1 FROM fin_fixed_assets WHERE vehicle_id = %s", (vehicle_id,)).fetchone():
        raise Conflict(f"vehicle {vehicle_id} is in the asset register already")
    asset = one(
        conn.execute(
            """INSERT INTO fin_fixed_assets (vehicle_id, cost, residual_value, useful_life_months, first_month, station_id)
               VALUES (%s, %s, %s, %s, %s, %s) RETURNING *""",
            (vehicle_id, cost, residual, life, first, station_id),
        )
    )
    audit(
        conn,
        actor=actor,
        action="finance.asset.create",
        entity="fin_fixed_assets",
        entity_id=asset["id"],
        after=to_json(asset),
    )
    return asset


def monthly_depreciation(asset: dict, month_index: int) -> Decimal:
    """Straight line: (cost - residual) / life, rounded per month; the last month takes what is left (exact)."""
    base = asset["cost"] - asset["residual_value"]
    per = profiles.money(base / asset["useful_life_months"])
    if month_index < asset["useful_life_months"] - 1:
        return per
    if month_index == asset["useful_life_months"] - 1:
        return base - per * (asset["useful_life_months"] - 1)
    return Decimal("0.00")


def run_depreciation(conn: Conn, *, upto: dt.date, actor: dict | None) -> list[dict]:
    """Post every asset's depreciation for each month from its first month to `upto`'s month, once per month.

    Months in closed periods are skipped (reported), never forced in; reruns post nothing twice.
    """
    upto = upto.replace(day=1)
    this_month = profiles.local_date(profiles.get(conn), None).replace(day=1)
    if upto > this_month:
        raise Invalid(
            f"depreciation runs up to this month ({this_month:%Y-%m}) at most", details={"field": "period"}
        )
    done = []
    for asset in conn.execute("SELECT * FROM fin_fixed_assets WHERE first_month <= %s ORDER BY id", (upto,)):
        month, i = asset["first_month"], 0
        while month <= upto and i < asset["useful_life_months"]:
            key = f"depreciation:{asset['vehicle_id']}:{month:%Y-%m}"
            if ledger.get_entry_by_key(conn, source_key=key) is None:
                closed = conn.execute(
                    "SELECT 1 FROM fin_periods WHERE period = %s AND status = 'closed'", (month,)
                ).fetchone()
                if closed:
                    done.append(
                        {"vehicle_id": asset["vehicle_id"], "period": f"{month:%Y-%m}", "skipped": "closed"}
                    )
                else:
                    e = posting.depreciation(
                        conn, asset=asset, period=month, amount=monthly_depreciation(asset, i), actor=actor
                    )
                    done.append(
                        {"vehicle_id": asset["vehicle_id"], "period": f"{month:%Y-%m}", "entry_id": e["id"]}
                    )
            month = (month + dt.timedelta(days=32)).replace(day=1)
            i += 1
    return done


def list_assets(conn: Conn) -> list[dict]:
    """The asset register with each vehicle's accumulated depreciation and book value."""
    rows = conn.execute("SELECT * FROM fin_fixed_assets ORDER BY id").fetchall()
    acc = {
        r["vehicle_id"]: -r["s"]
        for r in conn.execute(
            "SELECT vehicle_id, sum(amount) AS s FROM fin_journal_lines WHERE account_code = %s "
            "AND vehicle_id IS NOT NULL GROUP BY vehicle_id",
            (posting.ACC_DEPRECIATION,),
        )
    }
    for r in rows:
        r["accumulated_depreciation"] = acc.get(r["vehicle_id"], Decimal("0.00"))
        r["book_value"] = r["cost"] - r["accumulated_depreciation"]
    return rows


def create_manual_bill(conn: Conn, *, data: dict, actor: dict) -> dict:
    """A supplier bill entered by finance: lines [{account, net}] on postable expense or asset accounts."""
    debits = []
    for i, ln in enumerate(data["lines"]):
        acc = ledger.get_account(conn, code=str(ln.get("account", "")))
        if acc is None or not acc["postable"] or acc["type"] not in ("expense", "asset") or acc["cash"]:
            raise Invalid(f"lines[{i}].account: not a postable expense or asset account", details={"line": i})
        try:
            net = Decimal(str(ln.get("net")))
        except ArithmeticError:
            raise Invalid(f"lines[{i}].net: not an amount", details={"line": i}) from None
        if not net.is_finite() or net <= 0:
            raise Invalid(f"lines[{i}].net must be positive", details={"line": i})
        debits.append((acc["code"], net))
    return create_bill(
        conn,
        supplier=data["supplier"],
        reference=data["reference"],
        source="manual",
        debits=debits,
        vat=data.get("vat"),
        bill_date=data["bill_date"],
        due_date=data.get("due_date"),
        vehicle_id=data.get("vehicle_id"),
        actor=actor,
    )
