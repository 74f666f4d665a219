"""Cost and profit where the cars are: profitability per vehicle, station and class from the ledger's dimensions
and the telemetry's kilometres and engine hours; cost structure, trend and drivers.

The analytics domain reads these through backoffice.finance.service (`profitability`, `cost_by_category`).
Vehicle class, station code and in-fleet date are read from the vehicles and stations tables in the same query as
the figures (a cross-domain read listed in docs/finance.md).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

from backoffice.finance import ledger, profiles, statements
from backoffice.telemetry import service as telemetry
from fleetcore.db import Conn
from fleetcore.errors import Invalid

ZERO = Decimal("0.00")
REVENUE = ("4100", "4200", "4300", "4900", "4950")  # rental income net of credit notes
DAMAGE = ("4400",)
MAINTENANCE = ("5100", "5200")
FUEL = ("5300",)
DEPRECIATION = ("5400",)
GROUPINGS = ("vehicle", "station", "class")
LEAST_PROFITABLE = 5


def _bounds(conn: Conn, start: dt.date, end: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The company-local days [start, end] as UTC instants for the telemetry query."""
    tz = ZoneInfo(profiles.get(conn)["timezone"])
    lo = dt.datetime.combine(start, dt.time(), tzinfo=tz)
    hi = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tzinfo=tz)
    return lo, hi


def _figures(conn: Conn, start: dt.date, end: dt.date) -> list[dict]:
    """Ledger figures per (vehicle, station) in [start, end] with the vehicle's class and in-fleet date."""
    return conn.execute(
        """SELECT l.vehicle_id, l.station_id, v.class AS vehicle_class, v.vin, v.plate, v.created_at AS in_fleet,
                  s.code AS station,
                  coalesce(-sum(l.amount) FILTER (WHERE l.account_code = ANY(%(rev)s)), 0) AS revenue,
                  coalesce(-sum(l.amount) FILTER (WHERE l.account_code = ANY(%(dmg)s)), 0) AS damage_recoveries,
                  coalesce(sum(l.amount) FILTER (WHERE l.account_code = ANY(%(mnt)s)), 0) AS maintenance,
                  coalesce(sum(l.amount) FILTER (WHERE l.account_code = ANY(%(fuel)s)), 0) AS fuel,
                  coalesce(sum(l.amount) FILTER (WHERE l.account_code = ANY(%(dep)s)), 0) AS depreciation,
                  coalesce(sum(l.amount) FILTER (WHERE a.type = 'expense' AND NOT l.account_code = ANY(%(known)s)), 0)
                      AS other_costs
             FROM fin_journal_lines l
             JOIN fin_accounts a ON a.code = l.account_code
             LEFT JOIN vehicles v ON v.id = l.vehicle_id
             LEFT JOIN stations s ON s.id = l.station_id
            WHERE l.entry_date BETWEEN %(s)s AND %(e)s AND a.type IN ('revenue', 'expense')
              AND (l.vehicle_id IS NOT NULL OR l.station_id IS NOT NULL)
            GROUP BY l.vehicle_id, l.station_id, v.class, v.vin, v.plate, v.created_at, s.code""",
        {
            "s": start,
            "e": end,
            "rev": list(REVENUE),
            "dmg": list(DAMAGE),
            "mnt": list(MAINTENANCE),
            "fuel": list(FUEL),
            "dep": list(DEPRECIATION),
            "known": list(MAINTENANCE + FUEL + DEPRECIATION),
        },
    ).fetchall()


def _fleet(conn: Conn) -> dict[int, dict]:
    return {
        r["id"]: r
        for r in conn.execute(
            """SELECT v.id, v.vin, v.plate, v.class AS vehicle_class, v.created_at AS in_fleet, s.code AS station,
                      v.home_station_id AS station_id
                 FROM vehicles v LEFT JOIN stations s ON s.id = v.home_station_id"""
        )
    }


def profitability(conn: Conn, *, by: str, start: dt.date, end: dt.date) -> dict:
    """Revenue, damage recoveries, maintenance, fuel, depreciation and margin per vehicle, station or class over
    [start, end]; with km and engine hours from telemetry: cost per km, margin per vehicle-day, and the least
    profitable vehicles first (input to procurement and disposal decisions)."""
    if by not in GROUPINGS:
        raise Invalid(f"by must be one of {', '.join(GROUPINGS)}", details={"field": "by"})
    statements.check_range(start, end)
    lo, hi = _bounds(conn, start, end)
    usage = telemetry.usage(conn, start=lo, end=hi)
    fleet = _fleet(conn)
    profile = profiles.get(conn)
    days_in_range = (end - start).days + 1
    groups: dict[object, dict] = {}

    def group_of(vehicle_id: int | None, station: str | None, vclass: str | None) -> tuple[object, dict]:
        key: object = {"vehicle": vehicle_id, "station": station, "class": vclass}[by]
        g = groups.get(key)
        if g is None:
            g = groups[key] = {
                "key": key,
                "revenue": ZERO,
                "damage_recoveries": ZERO,
                "maintenance": ZERO,
                "fuel": ZERO,
                "depreciation": ZERO,
                "other_costs": ZERO,
                "km": Decimal("0.0"),
                "engine_hours": Decimal("0.0"),
                "vehicle_days": 0,
                "vehicles": set(),
            }
        return key, g

    for f in _figures(conn, start, end):
        v = fleet.get(f["vehicle_id"]) if f["vehicle_id"] else None
        station = f["station"] if by == "station" else (v["station"] if v else f["station"])
        _, g = group_of(f["vehicle_id"], station, v["vehicle_class"] if v else None)
        for k in ("revenue", "damage_recoveries", "maintenance", "fuel", "depreciation", "other_costs"):
            g[k] += f[k]
    # Every vehicle in the fleet during the range counts its days and its telemetry, booked figures or not.
    for vid, v in fleet.items():
        in_fleet = profiles.local_date(profile, v["in_fleet"])
        days = (end - max(start, in_fleet)).days + 1
        if days <= 0:
            continue
        _, g = group_of(vid, v["station"], v["vehicle_class"])
        g["vehicle_days"] += min(days, days_in_range)
        g["vehicles"].add(vid)
        u = usage.get(vid)
        if u:
            g["km"] += u["km"]
            g["engine_hours"] += u["engine_hours"]
    rows = []
    for g in groups.values():
        costs = g["maintenance"] + g["fuel"] + g["depreciation"] + g["other_costs"]
        margin = g["revenue"] + g["damage_recoveries"] - costs
        row = {k: v for k, v in g.items() if k != "vehicles"}
        row["vehicles"] = len(g["vehicles"])
        row["costs"] = costs
        row["margin"] = margin
        row["cost_per_km"] = profiles.money(costs / g["km"], 4) if g["km"] else None
        row["revenue_per_km"] = profiles.money(g["revenue"] / g["km"], 4) if g["km"] else None
        row["margin_per_vehicle_day"] = (
            profiles.money(margin / g["vehicle_days"]) if g["vehicle_days"] else None
        )
        if by == "vehicle" and g["key"] in fleet:
            v = fleet[g["key"]]
            row.update(vin=v["vin"], plate=v["plate"], vehicle_class=v["vehicle_class"], station=v["station"])
        rows.append(row)
    rows.sort(key=lambda r: (r["margin"], str(r["key"])))
    for i, r in enumerate(rows, 1):
        r["rank"] = i  # 1 = least profitable
    total = {
        k: sum((r[k] for r in rows), ZERO)
        for k in (
            "revenue",
            "damage_recoveries",
            "maintenance",
            "fuel",
            "depreciation",
            "other_costs",
            "costs",
            "margin",
        )
    }
    return {
        "by": by,
        "from": start,
        "to": end,
        "currency": profile["currency"],
        "rows": rows,
        "totals": total,
        "least_profitable": [r["key"] for r in rows[:LEAST_PROFITABLE] if r["key"] is not None],
    }


def _months(start: dt.date, end: dt.date) -> list[dt.date]:
    out, m = [], start.replace(day=1)
    while m <= end:
        out.append(m)
        m = (m + dt.timedelta(days=32)).replace(day=1)
    return out


def cost_by_category(conn: Conn, *, start: dt.date, end: dt.date, top: int = 10) -> dict:
    """Cost structure (expense accounts, share of the total, change against the previous period), its monthly
    trend, and the top cost drivers (vehicles and departments carrying the most cost)."""
    statements.check_range(start, end)
    accs = {a["code"]: a for a in ledger.list_accounts(conn, include_inactive=True)}
    ps, pe = statements.previous_range(start, end)

    def by_account(a: dt.date, b: dt.date) -> dict[str, Decimal]:
        return {
            r["account_code"]: r["s"]
            for r in conn.execute(
                """SELECT account_code, sum(amount) AS s FROM fin_journal_lines
                    WHERE entry_date BETWEEN %s AND %s
                      AND account_code IN (SELECT code FROM fin_accounts WHERE type = 'expense')
                    GROUP BY account_code""",
                (a, b),
            )
        }

    cur, prev = by_account(start, end), by_account(ps, pe)
    total = sum(cur.values(), ZERO)
    categories = [
        {
            "account": code,
            "name": accs[code]["name"],
            "name_zh": accs[code]["name_zh"],
            "amount": cur.get(code, ZERO),
            "share_pct": profiles.money(cur.get(code, ZERO) * 100 / total) if total else None,
            "previous": prev.get(code, ZERO),
            "change": cur.get(code, ZERO) - prev.get(code, ZERO),
        }
        for code in sorted(set(cur) | set(prev))
    ]
    categories.sort(key=lambda c: -c["amount"])
    trend_rows = conn.execute(
        """SELECT date_trunc('month', entry_date::timestamp)::date AS month, account_code, sum(amount) AS s
             FROM fin_journal_lines WHERE entry_date BETWEEN %s AND %s
              AND account_code IN (SELECT code FROM fin_accounts WHERE type = 'expense')
            GROUP BY 1, 2 ORDER BY 1, 2""",
        (start, end),
    ).fetchall()
    trend = [
        {
            "month": f"{m:%Y-%m}",
            "by_account": {r["account_code"]: r["s"] for r in trend_rows if r["month"] == m},
            "total": sum((r["s"] for r in trend_rows if r["month"] == m), ZERO),
        }
        for m in _months(start, end)
    ]
    drivers = conn.execute(
        """SELECT 'vehicle' AS dimension, l.vehicle_id::text AS key, v.plate AS label, sum(l.amount) AS amount
             FROM fin_journal_lines l JOIN fin_accounts a ON a.code = l.account_code
             LEFT JOIN vehicles v ON v.id = l.vehicle_id
            WHERE l.entry_date BETWEEN %(s)s AND %(e)s AND a.type = 'expense' AND l.vehicle_id IS NOT NULL
            GROUP BY l.vehicle_id, v.plate
           UNION ALL
           SELECT 'department', l.department, l.department, sum(l.amount)
             FROM fin_journal_lines l JOIN fin_accounts a ON a.code = l.account_code
            WHERE l.entry_date BETWEEN %(s)s AND %(e)s AND a.type = 'expense' AND l.department IS NOT NULL
            GROUP BY l.department
            ORDER BY amount DESC LIMIT %(n)s""",
        {"s": start, "e": end, "n": top},
    ).fetchall()
    return {
        "from": start,
        "to": end,
        "previous_period": {"from": ps, "to": pe},
        "currency": profiles.get(conn)["currency"],
        "total": total,
        "previous_total": sum(prev.values(), ZERO),
        "categories": categories,
        "trend": trend,
        "top_drivers": drivers,
    }
