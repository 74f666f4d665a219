"""Pure pricing: quotes, return charges and cancellation fees from a class's rate row (no I/O)."""

from __future__ import annotations

import datetime as dt
import math
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from backoffice.finance.models import VAT_RATE, money

# Weekend days are judged on the branch's local calendar; all stations are in Germany.
BUSINESS_TZ = ZoneInfo("Europe/Berlin")
DAY = dt.timedelta(hours=24)
WEEKEND = (5, 6)  # Saturday, Sunday
# Cancellation policy (documented in docs/backoffice-orders.md).
FREE_CANCELLATION_HOURS = 48
LATE_CANCELLATION_SHARE = Decimal("0.5")  # of the first day's price
NO_SHOW_DAYS = 1
# Fuel level senders are accurate to a few % of the tank; differences within this are not charged.
FUEL_TOLERANCE_PCT = 2.0
# Odometer resolution of OBD-II PID A6 is 0.1 km; distances are billed to that resolution.
KM_RESOLUTION = Decimal("0.1")


def line(code: str, description: str, quantity: Decimal | int, unit_price: Decimal) -> dict:
    """One priced line item; amounts as Decimal."""
    q = Decimal(str(quantity))
    return {
        "code": code,
        "description": description,
        "quantity": q,
        "unit_price": money(unit_price),
        "amount": money(q * unit_price),
    }


def rental_days(pickup_at: dt.datetime, return_at: dt.datetime) -> list[dict]:
    """Each started 24-hour block from pickup: its start and whether it starts on a local weekend day."""
    if return_at <= pickup_at:
        raise ValueError("return must be after pickup")
    n = max(1, math.ceil((return_at - pickup_at) / DAY))
    days = []
    for i in range(n):
        start = pickup_at + i * DAY
        days.append({"start": start, "weekend": start.astimezone(BUSINESS_TZ).weekday() in WEEKEND})
    return days


def totals(lines: list[dict], vat_rate: Decimal = VAT_RATE) -> dict:
    """Net, VAT and gross of line items (VAT on the net total, rounded once)."""
    net = money(sum((ln["amount"] for ln in lines), Decimal(0)))
    vat = money(net * vat_rate)
    return {"net": net, "vat_rate": vat_rate, "vat": vat, "gross": net + vat}


def quote(rate: dict, *, pickup_at: dt.datetime, return_at: dt.datetime, one_way: bool) -> dict:
    """The price quote for a booking: day lines (weekday/weekend), one-way fee, km allowance, totals."""
    days = rental_days(pickup_at, return_at)
    weekend = sum(1 for d in days if d["weekend"])
    weekday = len(days) - weekend
    lines = []
    if weekday:
        lines.append(
            line(
                "rental_weekday",
                f"{weekday} weekday day(s) at {money(rate['daily_rate'])}",
                weekday,
                rate["daily_rate"],
            )
        )
    if weekend:
        lines.append(
            line(
                "rental_weekend",
                f"{weekend} weekend day(s) at {money(rate['weekend_daily_rate'])}",
                weekend,
                rate["weekend_daily_rate"],
            )
        )
    if one_way:
        lines.append(line("one_way", "one-way fee (return to a different station)", 1, rate["one_way_fee"]))
    first_day_price = money(rate["weekend_daily_rate"] if days[0]["weekend"] else rate["daily_rate"])
    return {
        "currency": rate.get("currency", "EUR"),
        "vehicle_class": rate["vehicle_class"],
        "days": len(days),
        "weekend_days": weekend,
        "included_km": len(days) * int(rate["included_km_per_day"]),
        "first_day_price": first_day_price,
        "rate": {
            k: rate[k]
            for k in (
                "daily_rate",
                "weekend_daily_rate",
                "included_km_per_day",
                "extra_km_price",
                "fuel_price_per_pct",
                "late_fee_per_hour",
                "late_grace_minutes",
                "one_way_fee",
            )
        },
        "lines": lines,
        **totals(lines),
    }


def with_discount(quoted: dict, *, code: str, percent: Decimal | None, amount: Decimal | None) -> dict:
    """The quote with a discount line (percent of the rental days, or a fixed amount, never more than the days)."""
    days = [ln for ln in quoted["lines"] if ln["code"] in ("rental_weekday", "rental_weekend")]
    base = sum((Decimal(str(ln["amount"])) for ln in days), Decimal(0))
    value = money(base * Decimal(str(percent)) / 100) if percent is not None else money(Decimal(str(amount)))
    value = min(value, base)
    lines = [ln for ln in quoted["lines"] if ln["code"] != "discount"]
    lines.append(line("discount", f"discount code {code}", 1, -value))
    discount = {"code": code, "percent": percent, "amount": amount}
    return {**quoted, "lines": lines, "discount": discount, **totals(lines)}


def late_hours(planned_return: dt.datetime, actual_return: dt.datetime, grace_minutes: int) -> int:
    """Started hours late, counted from the planned return once the grace period is exceeded."""
    late = actual_return - planned_return
    if late <= dt.timedelta(minutes=grace_minutes):
        return 0
    return math.ceil(late / dt.timedelta(hours=1))


def return_charges(
    quoted: dict,
    *,
    pickup_odometer_km: float,
    return_odometer_km: float,
    pickup_fuel_pct: float,
    return_fuel_pct: float,
    planned_return: dt.datetime,
    actual_return: dt.datetime,
    one_way: bool,
) -> dict:
    """Final charges at return: booked days, one-way fee, extra km, missing fuel, late return, with totals."""
    rate = {k: Decimal(str(v)) for k, v in quoted["rate"].items()}  # the quote may come back from JSON
    # The quote may come back from JSON (strings): rebuild the booked-day lines from their parts.
    lines = [
        line(ln["code"], ln["description"], Decimal(str(ln["quantity"])), Decimal(str(ln["unit_price"])))
        for ln in quoted["lines"]
        if ln["code"] in ("rental_weekday", "rental_weekend", "discount")
    ]
    if one_way:
        lines.append(line("one_way", "one-way fee (returned to a different station)", 1, rate["one_way_fee"]))
    driven = (Decimal(str(return_odometer_km)) - Decimal(str(pickup_odometer_km))).quantize(KM_RESOLUTION)
    extra_km = max(Decimal(0), driven - int(quoted["included_km"]))
    if extra_km > 0:
        lines.append(
            line(
                "extra_km",
                f"{extra_km} km beyond the {quoted['included_km']} km included",
                extra_km,
                rate["extra_km_price"],
            )
        )
    missing = Decimal(str(pickup_fuel_pct)) - Decimal(str(return_fuel_pct))
    fuel_pct = (
        missing.quantize(Decimal(1), rounding=ROUND_HALF_UP)
        if missing > Decimal(str(FUEL_TOLERANCE_PCT))
        else 0
    )
    if fuel_pct:
        lines.append(
            line(
                "fuel",
                f"refuel {fuel_pct} % of tank (picked up at {pickup_fuel_pct:.0f} %, "
                f"returned at {return_fuel_pct:.0f} %)",
                fuel_pct,
                rate["fuel_price_per_pct"],
            )
        )
    hours = late_hours(planned_return, actual_return, int(rate["late_grace_minutes"]))
    if hours:
        # Never more than a day's rate per started late day (the usual cap in rental terms).
        fee = min(hours * rate["late_fee_per_hour"], math.ceil(hours / 24) * rate["daily_rate"])
        lines.append(line("late_return", f"late return: {hours} h after the agreed time", 1, fee))
    return {
        "distance_km": driven,
        "extra_km": extra_km,
        "fuel_missing_pct": fuel_pct,
        "late_hours": hours,
        "lines": lines,
        **totals(lines),
    }


def cancellation_fee(quoted: dict, *, pickup_at: dt.datetime, now: dt.datetime, no_show: bool) -> Decimal:
    """Free more than 48 h before pickup, half the first day within 48 h, one day for a no-show."""
    first_day = Decimal(str(quoted["first_day_price"]))
    if no_show:
        return money(first_day * NO_SHOW_DAYS)
    if pickup_at - now > dt.timedelta(hours=FREE_CANCELLATION_HOURS):
        return money(0)
    return money(first_day * LATE_CANCELLATION_SHARE)
