"""Employees: the one owner of employees (and attendance, in leave.py). Linked one-to-one to a staff user.

Personal fields (pay, identity number) are encrypted at rest (fleetcore.crypto, each value bound to its table,
column and row) and shown only to hr and admin: `present` is the single place that decides what a viewer sees, so
the rule is tested once for every route. The identity number also has a blind index for exact lookup.
"""

from __future__ import annotations

import json
from decimal import Decimal

from backoffice.auth import service as auth
from fleetcore.audit import audit
from fleetcore.crypto import FieldCipher, normalise_identifier
from fleetcore.db import Conn, one
from fleetcore.errors import Conflict, Invalid, NotFound

PERSONAL_ROLES = ("hr", "admin")  # who sees pay and identity numbers


def salary_context(employee_id: int) -> str:
    return f"employees.salary_enc:{employee_id}"


def national_id_context(employee_id: int) -> str:
    return f"employees.national_id_enc:{employee_id}"


def national_id_index(national_id: str, *, cipher: FieldCipher) -> str | None:
    # The field's name goes into the HMAC too, so equal values of different fields do not share an index.
    return cipher.blind_index("employees.national_id:" + normalise_identifier(national_id))


# The username is a read of staff_users (backoffice.auth), joined so a page of employees is one query.
_SELECT = "SELECT e.*, u.username, u.role FROM employees e JOIN staff_users u ON u.id = e.user_id"


def sees_personal(viewer: dict) -> bool:
    return viewer.get("role") in PERSONAL_ROLES


def present(row: dict, *, viewer: dict, cipher: FieldCipher) -> dict:
    """The employee as `viewer` may see it: pay and identity number decrypted for hr/admin, None for anyone else."""
    out = {k: v for k, v in row.items() if not k.endswith("_enc") and not k.endswith("_bidx")}
    out["salary"] = out["national_id"] = None
    if sees_personal(viewer):
        out["salary"] = pay(row, cipher=cipher)
        out["national_id"] = cipher.decrypt(row["national_id_enc"], context=national_id_context(row["id"]))
    return out


def pay(row: dict, *, cipher: FieldCipher) -> dict:
    """{"base": Decimal, "allowance": Decimal} of an employee row (monthly)."""
    raw = json.loads(cipher.decrypt(row["salary_enc"], context=salary_context(row["id"])) or "{}")
    return {k: Decimal(v) for k, v in raw.items()}


def encrypt_pay(employee_id: int, base: Decimal, allowance: Decimal, *, cipher: FieldCipher) -> str:
    cents = Decimal("0.01")
    value = {"base": str(Decimal(base).quantize(cents)), "allowance": str(Decimal(allowance).quantize(cents))}
    return cipher.encrypt(json.dumps(value), context=salary_context(employee_id)) or ""


def get(conn: Conn, *, employee_id: int) -> dict | None:
    return conn.execute(_SELECT + " WHERE e.id = %s", (employee_id,)).fetchone()


def get_or_raise(conn: Conn, *, employee_id: int) -> dict:
    e = get(conn, employee_id=employee_id)
    if e is None:
        raise NotFound(f"no employee {employee_id}")
    return e


def get_by_user(conn: Conn, *, user_id: int) -> dict | None:
    return conn.execute(_SELECT + " WHERE e.user_id = %s", (user_id,)).fetchone()


def list_(
    conn: Conn, *, department: str | None = None, status: str | None = None, limit: int = 200, offset: int = 0
) -> list[dict]:
    return conn.execute(
        _SELECT
        + """ WHERE (%(d)s::text IS NULL OR e.department = %(d)s) AND (%(s)s::text IS NULL OR e.status = %(s)s)
            ORDER BY e.employee_no LIMIT %(l)s OFFSET %(o)s""",
        {"d": department, "s": status, "l": limit, "o": offset},
    ).fetchall()


def find_by_national_id(conn: Conn, *, national_id: str, cipher: FieldCipher) -> dict | None:
    """The employee with this identity number, found through its blind index (no row is decrypted)."""
    return conn.execute(
        _SELECT + " WHERE e.national_id_bidx = %s", (national_id_index(national_id, cipher=cipher),)
    ).fetchone()


def _check_manager(conn: Conn, manager_id: int | None) -> None:
    if manager_id is not None and get(conn, employee_id=manager_id) is None:
        raise Invalid(f"manager_id: no employee {manager_id}", details={"field": "manager_id"})


def create(conn: Conn, *, data: dict, actor: dict, cipher: FieldCipher) -> dict:
    """An employee record for an existing staff user (a hire makes both; see recruitment.hire)."""
    user = auth.get(conn, username=data["username"])
    if user is None:
        raise Invalid(f"username: no staff user {data['username']!r}", details={"field": "username"})
    if get_by_user(conn, user_id=user["id"]) is not None:
        raise Conflict(f"staff user {data['username']!r} already has an employee record")
    _check_manager(conn, data.get("manager_id"))
    national = data.get("national_id")
    bidx = national_id_index(national, cipher=cipher) if national else None
    if (
        bidx is not None
        and conn.execute("SELECT 1 FROM employees WHERE national_id_bidx = %s", (bidx,)).fetchone()
    ):
        raise Conflict("an employee with this identity number already exists")
    # The id first: every encrypted value is bound to its row.
    new_id = one(conn.execute("SELECT nextval(pg_get_serial_sequence('employees', 'id')) AS id"))["id"]
    row = one(
        conn.execute(
            """INSERT INTO employees (id, user_id, employee_no, full_name, department, position, manager_id,
                                      hire_date, contract_type, contract_end, annual_leave_days, payroll_profile,
                                      salary_enc, national_id_enc, national_id_bidx)
               VALUES (%s, %s, 'E' || nextval('employee_no_seq'), %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
               RETURNING id""",
            (
                new_id,
                user["id"],
                data.get("full_name") or user["full_name"] or user["username"],
                data.get("department") or user["department"],
                data["position"],
                data.get("manager_id"),
                data["hire_date"],
                data["contract_type"],
                data.get("contract_end"),
                data.get("annual_leave_days", 10),
                data.get("payroll_profile", "cn"),
                encrypt_pay(
                    new_id, Decimal(data["base_salary"]), Decimal(data.get("allowance", 0)), cipher=cipher
                ),
                cipher.encrypt(national, context=national_id_context(new_id)),
                bidx,
            ),
        )
    )
    e = get_or_raise(conn, employee_id=row["id"])
    # Personal values never go into the audit log: only that they were set.
    audit(conn, actor=actor, action="employee.create", entity="employees", entity_id=e["id"],
          after={"user_id": e["user_id"], "department": e["department"], "position": e["position"],
                 "salary": "set", "national_id": "set" if national else None})  # fmt: skip
    return e


def update(conn: Conn, *, employee_id: int, changes: dict, actor: dict) -> dict:
    """Department, position, manager, contract, status, leave entitlement."""
    before = get_or_raise(conn, employee_id=employee_id)
    fields = (
        "department",
        "position",
        "manager_id",
        "contract_type",
        "contract_end",
        "status",
        "annual_leave_days",
    )
    changes = {k: v for k, v in changes.items() if k in fields and v is not None}
    if "manager_id" in changes:
        if changes["manager_id"] == employee_id:
            raise Invalid("manager_id: an employee is not their own manager")
        _check_manager(conn, changes["manager_id"])
    if changes:
        sets = ", ".join(f"{k} = %({k})s" for k in changes)
        conn.execute(
            f"UPDATE employees SET {sets}, updated_at = now() WHERE id = %(id)s",
            {**changes, "id": employee_id},
        )
    after = get_or_raise(conn, employee_id=employee_id)
    audit(conn, actor=actor, action="employee.update", entity="employees", entity_id=employee_id,
          before={k: before[k] for k in changes}, after={k: after[k] for k in changes})  # fmt: skip
    return after


def set_pay(
    conn: Conn,
    *,
    employee_id: int,
    base: Decimal,
    allowance: Decimal | None,
    actor: dict,
    cipher: FieldCipher,
) -> dict:
    """New monthly pay (a review's approved pay change or promotion, or HR's correction)."""
    before = get_or_raise(conn, employee_id=employee_id)
    if base <= 0:
        raise Invalid("base pay must be positive")
    current = pay(before, cipher=cipher)
    conn.execute(
        "UPDATE employees SET salary_enc = %s, updated_at = now() WHERE id = %s",
        (
            encrypt_pay(
                employee_id, base, current["allowance"] if allowance is None else allowance, cipher=cipher
            ),
            employee_id,
        ),
    )
    audit(conn, actor=actor, action="employee.pay", entity="employees", entity_id=employee_id,
          after={"salary": "changed"})  # fmt: skip
    return get_or_raise(conn, employee_id=employee_id)


def rotate_keys(conn: Conn, *, cipher: FieldCipher, actor: dict | None) -> int:
    """Re-encrypt personal values written under an older key with the current one and recompute the blind index
    (after FLEET_BLIND_INDEX_KEY changed); returns the rows changed."""
    n = 0
    rows = conn.execute(
        "SELECT id, salary_enc, national_id_enc, national_id_bidx FROM employees FOR UPDATE"
    ).fetchall()
    for row in rows:
        national = cipher.decrypt(row["national_id_enc"], context=national_id_context(row["id"]))
        bidx = national_id_index(national, cipher=cipher) if national else None
        stale = cipher.needs_rotation(row["salary_enc"]) or cipher.needs_rotation(row["national_id_enc"])
        if not stale and bidx == row["national_id_bidx"]:
            continue
        salary = cipher.decrypt(row["salary_enc"], context=salary_context(row["id"]))
        conn.execute(
            "UPDATE employees SET salary_enc = %s, national_id_enc = %s, national_id_bidx = %s WHERE id = %s",
            (
                cipher.encrypt(salary, context=salary_context(row["id"])),
                cipher.encrypt(national, context=national_id_context(row["id"])),
                bidx,
                row["id"],
            ),
        )
        n += 1
    audit(
        conn,
        actor=actor,
        action="employee.rotate_keys",
        entity="employees",
        after={"rows": n, "key": cipher.current},
    )
    return n
