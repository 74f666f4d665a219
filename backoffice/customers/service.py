"""Customers: data access and the qualification rules checked when an order is confirmed."""

from __future__ import annotations

import datetime as dt
from typing import Any

from psycopg import sql

from fleetcore.audit import audit
from fleetcore.db import Conn, one, update_columns
from fleetcore.errors import Conflict, Invalid, NotFound

FIELDS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "address",
    "date_of_birth",
    "id_document_type",
    "id_document_number",
    "licence_number",
    "licence_class",
    "licence_expiry",
    "blacklisted",
    "blacklist_reason",
)
# Needed before any order of this customer can be confirmed.
REQUIRED_FOR_RENTAL = (
    "date_of_birth",
    "id_document_number",
    "licence_number",
    "licence_class",
    "licence_expiry",
)
NOT_NULL = ("first_name", "last_name", "address", "blacklisted")
MAX_PAGE = 500


def create(conn: Conn, *, data: dict[str, Any], actor: dict) -> dict:
    """Insert a customer from validated fields."""
    data = _normalise({k: v for k, v in data.items() if k in FIELDS})
    cols = list(data)
    c = one(
        conn.execute(
            sql.SQL("INSERT INTO customers ({}) VALUES ({}) RETURNING *").format(
                sql.SQL(", ").join(map(sql.Identifier, cols)),
                sql.SQL(", ").join(sql.Placeholder() * len(cols)),
            ),
            [data[c] for c in cols],
        )
    )
    audit(conn, actor=actor, action="customer.create", entity="customers", entity_id=c["id"], after=c)
    return c


def get(conn: Conn, *, customer_id: int, for_update: bool = False) -> dict | None:
    """One customer (optionally locked), or None."""
    q = "SELECT * FROM customers WHERE id = %s" + (" FOR UPDATE" if for_update else "")
    return conn.execute(q, (customer_id,)).fetchone()


def get_or_raise(conn: Conn, *, customer_id: int, for_update: bool = False) -> dict:
    """One customer; 404 otherwise."""
    c = get(conn, customer_id=customer_id, for_update=for_update)
    if c is None:
        raise NotFound(f"no customer {customer_id}")
    return c


def list_(
    conn: Conn,
    *,
    q: str | None = None,
    blacklisted: bool | None = None,
    licence_number: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> dict:
    """A page of customers (name/email/phone search, blacklist and licence filters) with the total count."""
    params = {
        "q": f"%{q.lower()}%" if q else None,
        "b": blacklisted,
        "lic": licence_number,
        "limit": min(limit, MAX_PAGE),
        "offset": offset,
    }
    where = """(%(q)s::text IS NULL OR lower(first_name || ' ' || last_name) LIKE %(q)s
                  OR lower(coalesce(email, '')) LIKE %(q)s OR coalesce(phone, '') LIKE %(q)s)
               AND (%(b)s::boolean IS NULL OR blacklisted = %(b)s)
               AND (%(lic)s::text IS NULL OR licence_number = %(lic)s)"""
    total = one(conn.execute(f"SELECT count(*) AS n FROM customers WHERE {where}", params))["n"]
    items = conn.execute(
        f"SELECT * FROM customers WHERE {where} ORDER BY id LIMIT %(limit)s OFFSET %(offset)s", params
    ).fetchall()
    return {"items": items, "total": total, "limit": params["limit"], "offset": offset}


def update(conn: Conn, *, customer_id: int, changes: dict[str, Any], actor: dict) -> dict:
    """Apply changes (audited when something changed); un-blacklisting clears the reason."""
    before = get_or_raise(conn, customer_id=customer_id, for_update=True)
    changes = _normalise({k: v for k, v in changes.items() if k in FIELDS})
    nulled = [k for k in NOT_NULL if k in changes and changes[k] is None]
    if nulled:
        raise Invalid(f"{', '.join(nulled)} cannot be null", details={"fields": nulled})
    if changes.get("blacklisted") is False:
        changes["blacklist_reason"] = None
    merged = {**before, **changes}
    if merged["blacklisted"] and not (merged.get("blacklist_reason") or "").strip():
        raise Invalid(
            "blacklist_reason is required when blacklisted is true", details={"field": "blacklist_reason"}
        )
    if not changes:
        return before
    after = update_columns(conn, table="customers", key="id", key_value=customer_id, values=changes)
    audit(
        conn,
        actor=actor,
        action="customer.update",
        entity="customers",
        entity_id=customer_id,
        before=before,
        after=after,
    )
    return after


def delete(conn: Conn, *, customer_id: int, actor: dict) -> dict:
    """Delete a customer without orders (409 otherwise: orders and invoices must keep their customer)."""
    before = get_or_raise(conn, customer_id=customer_id, for_update=True)
    # A count of the orders table (owned by backoffice.orders, which depends on this domain) for the message;
    # the foreign key from orders enforces the rule as well.
    n = one(conn.execute("SELECT count(*) AS n FROM orders WHERE customer_id = %s", (customer_id,)))["n"]
    if n:
        raise Conflict(f"customer {customer_id} has {n} order(s) and cannot be deleted; blacklist instead")
    conn.execute("DELETE FROM customers WHERE id = %s", (customer_id,))
    audit(
        conn, actor=actor, action="customer.delete", entity="customers", entity_id=customer_id, before=before
    )
    return before


def _normalise(data: dict[str, Any]) -> dict[str, Any]:
    out = dict(data)
    if out.get("email"):
        out["email"] = out["email"].strip().lower()
    for k in ("licence_number", "id_document_number", "licence_class"):
        if out.get(k):
            out[k] = out[k].strip().upper()
    return out


# ---- qualification --------------------------------------------------------------------------------------


def age_on(born: dt.date, day: dt.date) -> int:
    """Completed years of age on `day`."""
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def qualification_rule(conn: Conn, *, vehicle_class: str) -> dict:
    """Minimum age and licence category for a vehicle class."""
    r = conn.execute(
        "SELECT * FROM qualification_rules WHERE vehicle_class = %s", (vehicle_class,)
    ).fetchone()
    if r is None:
        raise Invalid(f"no qualification rule for vehicle class {vehicle_class!r}")
    return r


def failed_rules(customer: dict, rule: dict, *, pickup_day: dt.date, return_day: dt.date) -> list[dict]:
    """Every qualification rule the customer fails for this class and period (pure; empty means qualified)."""
    failed: list[dict] = []
    missing = [f for f in REQUIRED_FOR_RENTAL if not customer.get(f)]
    if missing:
        failed.append(
            {
                "rule": "profile_complete",
                "message": f"customer profile lacks {', '.join(missing)}",
                "missing": missing,
            }
        )
    if customer.get("blacklisted"):
        failed.append(
            {
                "rule": "not_blacklisted",
                "message": "customer is blacklisted",
                "reason": customer.get("blacklist_reason"),
            }
        )
    born = customer.get("date_of_birth")
    if born:
        age = age_on(born, pickup_day)
        if age < rule["min_age"]:
            failed.append(
                {
                    "rule": "min_age",
                    "message": f"class {rule['vehicle_class']} requires age "
                    f"{rule['min_age']}, customer is {age} at pickup",
                    "min_age": rule["min_age"],
                    "age": age,
                }
            )
    expiry = customer.get("licence_expiry")
    if expiry and expiry < return_day:
        failed.append(
            {
                "rule": "licence_valid",
                "message": f"driving licence expires {expiry.isoformat()}, "
                f"before the end of the rental on {return_day.isoformat()}",
                "licence_expiry": expiry.isoformat(),
            }
        )
    classes = {c.strip() for c in (customer.get("licence_class") or "").split(",") if c.strip()}
    if classes and rule["required_licence_class"] not in classes:
        failed.append(
            {
                "rule": "licence_class",
                "message": f"class {rule['vehicle_class']} requires licence "
                f"category {rule['required_licence_class']}, customer holds {', '.join(sorted(classes))}",
                "required": rule["required_licence_class"],
            }
        )
    return failed


def check_qualified(
    conn: Conn, *, customer: dict, vehicle_class: str, pickup_day: dt.date, return_day: dt.date
) -> None:
    """Raise 422 naming the first failed rule (all failures in details) unless the customer qualifies."""
    rule = qualification_rule(conn, vehicle_class=vehicle_class)
    failed = failed_rules(customer, rule, pickup_day=pickup_day, return_day=return_day)
    if failed:
        raise Invalid(
            f"customer not qualified: {failed[0]['rule']}: {failed[0]['message']}",
            details={"rule": failed[0]["rule"], "failed_rules": failed},
        )
