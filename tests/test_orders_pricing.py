"""Pure pricing: day counting with weekend rates, one-way fee, km allowance, fuel, late fees, cancellation."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from backoffice.orders import pricing
from fleetcore.jsonable import to_json

BERLIN = ZoneInfo("Europe/Berlin")
RATE = {
    "vehicle_class": "compact",
    "currency": "EUR",
    "daily_rate": Decimal("49.00"),
    "weekend_daily_rate": Decimal("39.00"),
    "included_km_per_day": 200,
    "extra_km_price": Decimal("0.29"),
    "fuel_price_per_pct": Decimal("1.30"),
    "late_fee_per_hour": Decimal("12.00"),
    "late_grace_minutes": 59,
    "one_way_fee": Decimal("49.00"),
}
# 2027-06-04 is a Friday.
FRI = dt.datetime(2027, 6, 4, 10, 0, tzinfo=BERLIN)


def test_weekday_and_weekend_days():
    q = pricing.quote(RATE, pickup_at=FRI, return_at=FRI + dt.timedelta(days=4), one_way=False)
    # Fri, Sat, Sun, Mon blocks starting 10:00: 2 weekday + 2 weekend days
    assert q["days"] == 4 and q["weekend_days"] == 2
    assert {ln["code"]: ln["amount"] for ln in q["lines"]} == {
        "rental_weekday": Decimal("98.00"),
        "rental_weekend": Decimal("78.00"),
    }
    assert q["net"] == Decimal("176.00") and q["vat"] == Decimal("33.44") and q["gross"] == Decimal("209.44")
    assert q["included_km"] == 800
    assert q["first_day_price"] == Decimal("49.00")


def test_started_day_counts_and_minimum_one_day():
    assert (
        pricing.quote(RATE, pickup_at=FRI, return_at=FRI + dt.timedelta(hours=3), one_way=False)["days"] == 1
    )
    assert (
        pricing.quote(RATE, pickup_at=FRI, return_at=FRI + dt.timedelta(hours=24, minutes=1), one_way=False)[
            "days"
        ]
        == 2
    )


def test_weekend_is_judged_in_local_time():
    # Friday 23:30 UTC is Saturday 01:30 in Berlin (summer time): a weekend day.
    late_fri_utc = dt.datetime(2027, 6, 4, 23, 30, tzinfo=dt.UTC)
    q = pricing.quote(
        RATE, pickup_at=late_fri_utc, return_at=late_fri_utc + dt.timedelta(hours=5), one_way=False
    )
    assert q["weekend_days"] == 1 and q["first_day_price"] == Decimal("39.00")


def test_one_way_fee_line():
    q = pricing.quote(RATE, pickup_at=FRI, return_at=FRI + dt.timedelta(days=1), one_way=True)
    assert [ln["code"] for ln in q["lines"]] == ["rental_weekday", "one_way"]
    assert q["net"] == Decimal("98.00")


def _charges(q, **kw):
    args = dict(
        pickup_odometer_km=10000.0,
        return_odometer_km=10300.0,
        pickup_fuel_pct=80.0,
        return_fuel_pct=80.0,
        planned_return=FRI + dt.timedelta(days=2),
        actual_return=FRI + dt.timedelta(days=2),
        one_way=False,
    )
    args.update(kw)
    # The quote is stored as JSON: charges must work from the JSON form.
    return pricing.return_charges(to_json(q), **args)


def test_return_within_allowance_costs_the_booked_days_only():
    q = pricing.quote(RATE, pickup_at=FRI, return_at=FRI + dt.timedelta(days=2), one_way=False)
    c = _charges(q, return_odometer_km=10400.0, return_fuel_pct=79.0)  # exactly 400 km, 1 % within tolerance
    assert [ln["code"] for ln in c["lines"]] == ["rental_weekday", "rental_weekend"]
    assert c["net"] == q["net"] and c["distance_km"] == Decimal("400.0")


def test_extra_km_fuel_late_and_unplanned_one_way():
    q = pricing.quote(RATE, pickup_at=FRI, return_at=FRI + dt.timedelta(days=2), one_way=False)
    c = _charges(
        q,
        return_odometer_km=10523.44,
        return_fuel_pct=55.4,
        actual_return=FRI + dt.timedelta(days=2, hours=2, minutes=10),
        one_way=True,
    )
    by = {ln["code"]: ln for ln in c["lines"]}
    assert by["extra_km"]["quantity"] == Decimal("123.4") and by["extra_km"]["amount"] == Decimal("35.79")
    assert by["fuel"]["quantity"] == Decimal("25") and by["fuel"]["amount"] == Decimal(
        "32.50"
    )  # 24.6 % → 25 %
    assert c["late_hours"] == 3 and by["late_return"]["amount"] == Decimal("36.00")
    assert by["one_way"]["amount"] == Decimal("49.00")
    assert c["net"] == Decimal("88.00") + Decimal("35.79") + Decimal("32.50") + Decimal("36.00") + Decimal(
        "49.00"
    )
    assert c["gross"] == c["net"] + pricing.money(c["net"] * Decimal("0.19"))


def test_late_within_grace_is_free_and_late_fee_is_capped_at_daily_rate():
    q = pricing.quote(RATE, pickup_at=FRI, return_at=FRI + dt.timedelta(days=2), one_way=False)
    assert _charges(q, actual_return=FRI + dt.timedelta(days=2, minutes=59))["late_hours"] == 0
    c = _charges(q, actual_return=FRI + dt.timedelta(days=2, hours=10))
    late = next(ln for ln in c["lines"] if ln["code"] == "late_return")
    assert late["amount"] == Decimal("49.00")  # 10 h × 12 = 120 capped at one day's rate


def test_cancellation_fee_rules():
    q = to_json(pricing.quote(RATE, pickup_at=FRI, return_at=FRI + dt.timedelta(days=3), one_way=False))
    fee = pricing.cancellation_fee
    assert fee(q, pickup_at=FRI, now=FRI - dt.timedelta(hours=48, minutes=1), no_show=False) == Decimal(
        "0.00"
    )
    assert fee(q, pickup_at=FRI, now=FRI - dt.timedelta(hours=47), no_show=False) == Decimal("24.50")
    assert fee(q, pickup_at=FRI, now=FRI + dt.timedelta(hours=3), no_show=True) == Decimal("49.00")
