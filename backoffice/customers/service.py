"""Customers: the one owner of `customers` and `qualification_rules`; data access and the qualification rules
checked when an order is confirmed.

Personal identifiers (ID document, licence and phone numbers) are encrypted at rest (fleetcore.crypto, bound to
their table, column and row) with blind indexes for exact lookup; this service encrypts on write and decrypts on
read, so callers see plaintext. Staff without a need see the identity numbers masked (`visible_to`). The audit log
records which fields changed, never their values.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from psycopg import sql

from fleetcore.audit import audit, redact
from fleetcore.crypto import cipher, normalise_identifier, normalise_phone
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
# Encrypted at rest, each with its blind index column and the normalisation its lookups use.
PROTECTED: dict[str, tuple[str, Callable[[str], str]]] = {
    "id_document_number": ("id_document_bidx", normalise_identifier),
    "licence_number": ("licence_bidx", normalise_identifier),
    "phone": ("phone_bidx", normalise_phone),
}
# Who sees identity document and licence numbers in full: those who check them at the counter or hand out data.
SEES_IDENTITY = ("customer_service", "admin")
MASKED = ("id_document_number", "licence_number")


def _context(field: str, customer_id: int) -> str:
    return f"customers.{field}:{customer_id}"


def _protect(customer_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """The stored form of the protected fields present in `data` (ciphertext and blind index)."""
    c = cipher()
    out = dict(data)
    for field, (bidx, norm) in PROTECTED.items():
        if field in data:
            value = data[field]
            out[field] = c.encrypt(value, context=_context(field, customer_id))
            out[bidx] = c.blind_index(norm(value)) if value else None
    return out


def _reveal(row: dict | None) -> dict | None:
    """A stored row with its protected fields decrypted and the blind indexes left out."""
    if row is None:
        return None
    c = cipher()
    out = {k: v for k, v in row.items() if not k.endswith("_bidx")}
    for field in PROTECTED:
        if field in out:
            out[field] = c.decrypt(out[field], context=_context(field, row["id"]))
    return out


def lookup_index(field: str, value: str) -> str | None:
    """The blind index a lookup of `field` = `value` compares with."""
    _, norm = PROTECTED[field]
    return cipher().blind_index(norm(value))


def visible_to(customer: dict, role: str) -> dict:
    """The customer as `role` may see it: identity document and licence numbers masked for staff without a need."""
    if role in SEES_IDENTITY:
        return customer
    out = dict(customer)
    for field in MASKED:
        if out.get(field):
            out[field] = "•" * max(len(out[field]) - 3, 3) + out[field][-3:]
    return out


def create(conn: Conn, *, data: dict[str, Any], actor: dict) -> dict:
    """Insert a customer from validated fields."""
    data = _normalise({k: v for k, v in data.items() if k in FIELDS})
    # The row id first: the ciphertexts are bound to it.
    new_id = one(conn.execute("SELECT nextval(pg_get_serial_sequence('customers', 'id')) AS id"))["id"]
    stored = {"id": new_id, **_protect(new_id, data)}
    cols = list(stored)
    c = one(
        conn.execute(
            sql.SQL("INSERT INTO customers ({}) VALUES ({}) RETURNING *").format(
                sql.SQL(", ").join(map(sql.Identifier, cols)),
                sql.SQL(", ").join(sql.Placeholder() * len(cols)),
            ),
            [stored[c] for c in cols],
        )
    )
    audit(
        conn,
        actor=actor,
        action="customer.create",
        entity="customers",
        entity_id=c["id"],
        after={"fields": sorted(k for k, v in data.items() if v is not None)},
    )
    return _reveal(c)  # type: ignore[return-value]


def get(conn: Conn, *, customer_id: int, for_update: bool = False) -> dict | None:
    """One customer (optionally locked), or None."""
    q = "SELECT * FROM customers WHERE id = %s" + (" FOR UPDATE" if for_update else "")
    return _reveal(conn.execute(q, (customer_id,)).fetchone())


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
    """A page of customers with the total count: `q` matches name or e-mail (contains) or a phone number (exact,
    through its blind index: phone numbers are encrypted); blacklist and licence number (exact) filters."""
    params = {
        "q": f"%{q.lower()}%" if q else None,
        "phone": lookup_index("phone", q) if q and normalise_phone(q).lstrip("+") else None,
        "b": blacklisted,
        "lic": lookup_index("licence_number", licence_number) if licence_number else None,
        "limit": min(limit, MAX_PAGE),
        "offset": offset,
    }
    where = """(%(q)s::text IS NULL OR lower(first_name || ' ' || last_name) LIKE %(q)s
                  OR lower(coalesce(email, '')) LIKE %(q)s OR phone_bidx = %(phone)s)
               AND (%(b)s::boolean IS NULL OR blacklisted = %(b)s)
               AND (%(lic)s::text IS NULL OR licence_bidx = %(lic)s)"""
    total = one(conn.execute(f"SELECT count(*) AS n FROM customers WHERE {where}", params))["n"]
    items = conn.execute(
        f"SELECT * FROM customers WHERE {where} ORDER BY id LIMIT %(limit)s OFFSET %(offset)s", params
    ).fetchall()
    return {"items": [_reveal(r) for r in items], "total": total, "limit": params["limit"], "offset": offset}


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
    changed = sorted(k for k, v in changes.items() if before.get(k) != v)
    if not changed:
        return before
    after = update_columns(
        conn,
        table="customers",
        key="id",
        key_value=customer_id,
        values=_protect(customer_id, {k: changes[k] for k in changed}),
    )
    audit(
        conn,
        actor=actor,
        action="customer.update",
        entity="customers",
        entity_id=customer_id,
        after={"fields": changed},
    )
    return _reveal(after)  # type: ignore[return-value]


def delete(conn: Conn, *, customer_id: int, actor: dict) -> dict:
    """Delete a customer without orders (409 otherwise: orders and invoices must keep their customer)."""
    before = get_or_raise(conn, customer_id=customer_id, for_update=True)
    # A count of the orders table (owned by backoffice.orders, which depends on this domain) for the message;
    # the foreign key from orders enforces the rule as well.
    n = one(conn.execute("SELECT count(*) AS n FROM orders WHERE customer_id = %s", (customer_id,)))["n"]
    if n:
        raise Conflict(f"customer {customer_id} has {n} order(s) and cannot be deleted; blacklist instead")
    conn.execute("DELETE FROM customers WHERE id = %s", (customer_id,))
    audit(conn, actor=actor, action="customer.delete", entity="customers", entity_id=customer_id)
    # Whatever personal values older audit entries of this customer held go with the customer.
    redact(conn, entity="customers", entity_id=customer_id)
    return before


# What erasure leaves of a person: the record (orders and invoices keep pointing at it), no personal data.
ERASED = {
    "first_name": "Erased",
    "last_name": "Customer",
    "email": None,
    "phone": None,
    "address": "",
    "date_of_birth": None,
    "id_document_type": None,
    "id_document_number": None,
    "licence_number": None,
    "licence_class": None,
    "licence_expiry": None,
    "blacklist_reason": "erased",
}


def erase(conn: Conn, *, customer_id: int, actor: dict) -> dict:
    """Anonymise the person (GDPR art. 17, PIPL art. 47): personal fields cleared, blind indexes dropped, personal
    values in older audit entries redacted; the customer row stays, so orders, invoices and payments, which the
    law requires to be kept, still add up. Erasing twice is a conflict."""
    before = get_or_raise(conn, customer_id=customer_id, for_update=True)
    if before.get("erased_at"):
        raise Conflict(f"customer {customer_id} was already erased")
    values = {**ERASED, "blacklisted": before["blacklisted"]}
    if not before["blacklisted"]:
        values["blacklist_reason"] = None
    values = _protect(customer_id, values)
    update_columns(
        conn,
        table="customers",
        key="id",
        key_value=customer_id,
        values={**values, "erased_at": dt.datetime.now(dt.UTC)},
    )
    redact(conn, entity="customers", entity_id=customer_id)
    audit(conn, actor=actor, action="customer.erase", entity="customers", entity_id=customer_id)
    return get_or_raise(conn, customer_id=customer_id)


def rotate_keys(conn: Conn, *, batch: int = 500) -> int:
    """Re-encrypt every protected value not under the current data key, and recompute the blind indexes (after a
    new FLEET_DATA_KEYS or FLEET_BLIND_INDEX_KEY); returns how many customers were rewritten."""
    c = cipher()
    done = 0
    last = 0
    while True:
        rows = conn.execute(
            "SELECT * FROM customers WHERE id > %s ORDER BY id LIMIT %s FOR UPDATE", (last, batch)
        ).fetchall()
        if not rows:
            return done
        for row in rows:
            last = row["id"]
            plain = _reveal(row)
            assert plain is not None
            values = _protect(row["id"], {f: plain[f] for f in PROTECTED})
            stale = any(c.needs_rotation(row[f]) for f in PROTECTED) or any(
                row[PROTECTED[f][0]] != values[PROTECTED[f][0]] for f in PROTECTED
            )
            if stale:
                update_columns(conn, table="customers", key="id", key_value=row["id"], values=values)
                done += 1


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
