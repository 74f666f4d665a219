"""HR: who may change whom among staff users (the policy), and the one owner of departments.

Staff user records are written by backoffice.auth.service, the owner of staff_users; this module checks the
policy first and then calls it.
"""

from __future__ import annotations

from backoffice.auth import service as auth
from fleetcore.audit import audit
from fleetcore.db import Conn, one
from fleetcore.errors import Conflict, Forbidden, Invalid, NotFound

# Roles whose accounts only an admin creates: HR onboards staff into the operating roles, but may not create its
# own peers or administrators (privilege escalation), nor touch credentials or roles of existing accounts.
PRIVILEGED_ROLES = ("admin", "hr")


def _guard_admin_target(actor: dict, target: dict | None, new_role: str | None = None) -> None:
    """Only an admin may create, change or reset an admin, or hand out the admin role (no privilege escalation)."""
    touches_admin = (target is not None and target["role"] == "admin") or new_role == "admin"
    if touches_admin and actor["role"] != "admin":
        raise Forbidden("only an admin may manage admin accounts or grant the admin role")


def _admin_only(actor: dict, what: str) -> None:
    """Credentials and roles of existing accounts are the administrator's: HR manages employee records only."""
    if actor["role"] != "admin":
        raise Forbidden(f"only an admin may {what}")


def _check_department(conn: Conn, code: str) -> None:
    if get_department(conn, code=code) is None:
        raise Invalid(f"unknown department {code!r}")


def create(
    conn: Conn,
    *,
    actor: dict,
    username: str,
    password: str,
    role: str,
    full_name: str = "",
    department: str | None = None,
    email: str | None = None,
) -> dict:
    """Create a staff user (default department from the role); admin and hr accounts only by an admin."""
    _guard_admin_target(actor, None, role)
    if role in PRIVILEGED_ROLES:
        _admin_only(actor, f"create {role} accounts")
    if department is not None:
        _check_department(conn, department)
    return auth.create(
        conn,
        username=username,
        role=role,
        password=password,
        full_name=full_name,
        department=department,
        email=email,
        actor=actor,
    )


def update(conn: Conn, *, actor: dict, username: str, changes: dict) -> dict:
    """Change name, department or email."""
    before = auth.get_or_raise(conn, username=username)
    _guard_admin_target(actor, before)
    if changes.get("department") is not None:
        _check_department(conn, changes["department"])
    return auth.update(conn, username=username, changes=changes, actor=actor)


def change_role(conn: Conn, *, actor: dict, username: str, role: str) -> dict:
    """Give a user another role (admin only); nobody changes their own role, and the last active admin stays admin."""
    _admin_only(actor, "grant roles")
    before = auth.get_or_raise(conn, username=username)
    _guard_admin_target(actor, before, role)
    if before["id"] == actor["id"]:
        raise Forbidden("you may not change your own role")
    if role == before["role"]:
        raise Conflict(f"user {username!r} already has role {role!r}")
    if before["role"] == "admin" and auth.count_other_active_admins(conn, user_id=before["id"]) == 0:
        raise Conflict("the last active admin cannot lose the admin role")
    return auth.change_role(conn, username=username, role=role, actor=actor)


def set_active(conn: Conn, *, actor: dict, username: str, active: bool) -> dict:
    """Deactivate (tokens stop working at once) or reactivate a user."""
    before = auth.get_or_raise(conn, username=username)
    _guard_admin_target(actor, before)
    if before["active"] == active:
        raise Conflict(f"user {username!r} is already {'active' if active else 'inactive'}")
    if not active:
        if before["id"] == actor["id"]:
            raise Forbidden("you may not deactivate yourself")
        if before["role"] == "admin" and auth.count_other_active_admins(conn, user_id=before["id"]) == 0:
            raise Conflict("the last active admin cannot be deactivated")
    return auth.set_active(conn, username=username, active=active, actor=actor)


def reset_password(conn: Conn, *, actor: dict, username: str, password: str) -> dict:
    """Set a new password; tokens issued before now stop working."""
    _admin_only(actor, "reset another person's password")
    target = auth.get_or_raise(conn, username=username)
    _guard_admin_target(actor, target)
    return auth.reset_password(conn, username=username, password=password, actor=actor)


# ---- departments ---------------------------------------------------------------------------------------------


def list_departments(conn: Conn) -> list[dict]:
    """Departments with their number of active staff."""
    active = auth.count_active_by_department(conn)
    rows = conn.execute(
        "SELECT code, name, created_at, supervisor_user_id FROM departments ORDER BY code"
    ).fetchall()
    return [{**d, "active_staff": active.get(d["code"], 0)} for d in rows]


def get_department(conn: Conn, *, code: str) -> dict | None:
    """One department, or None."""
    return conn.execute("SELECT * FROM departments WHERE code = %s", (code,)).fetchone()


def get_department_or_raise(conn: Conn, *, code: str) -> dict:
    """One department; NotFound otherwise."""
    d = get_department(conn, code=code)
    if d is None:
        raise NotFound(f"no department {code!r}")
    return d


def create_department(conn: Conn, *, code: str, name: str, actor: dict) -> dict:
    """Add a department; 409 if the code exists."""
    if get_department(conn, code=code):
        raise Conflict(f"department {code!r} already exists")
    d = one(conn.execute("INSERT INTO departments (code, name) VALUES (%s, %s) RETURNING *", (code, name)))
    audit(conn, actor=actor, action="department.create", entity="departments", entity_id=d["code"], after=d)
    return d


def rename_department(conn: Conn, *, code: str, name: str, actor: dict) -> dict:
    """Change a department's display name."""
    before = get_department_or_raise(conn, code=code)
    after = one(conn.execute("UPDATE departments SET name = %s WHERE code = %s RETURNING *", (name, code)))
    audit(
        conn,
        actor=actor,
        action="department.update",
        entity="departments",
        entity_id=code,
        before=before,
        after=after,
    )
    return after


def get_department_or_invalid(conn: Conn, *, code: str) -> dict:
    """A department named in a request; Invalid (naming the field) otherwise."""
    d = get_department(conn, code=code)
    if d is None:
        raise Invalid(f"department: unknown department {code!r}", details={"field": "department"})
    return d


def set_supervisor(conn: Conn, *, code: str, username: str | None, actor: dict) -> dict:
    """Name the department's supervisor (the escalation target of its overdue cases), or clear it."""
    before = get_department_or_raise(conn, code=code)
    user_id = None
    if username is not None:
        u = auth.get(conn, username=username)
        if u is None or not u["active"]:
            raise Invalid(f"supervisor: no active staff user {username!r}", details={"field": "supervisor"})
        user_id = u["id"]
    after = one(
        conn.execute(
            "UPDATE departments SET supervisor_user_id = %s WHERE code = %s RETURNING *", (user_id, code)
        )
    )
    audit(
        conn,
        actor=actor,
        action="department.supervisor",
        entity="departments",
        entity_id=code,
        before={"supervisor_user_id": before["supervisor_user_id"]},
        after={"supervisor_user_id": user_id},
    )
    return after
