"""Staff user administration and departments (data access and the rules on who may change whom)."""

from __future__ import annotations

from backoffice.auth import service as auth
from backoffice.auth.security import hash_password
from backoffice.fleet.service import like_contains
from fleetcore.db import Conn, one
from fleetcore.errors import Conflict, Forbidden, Invalid, NotFound

USER_COLUMNS = "id, username, full_name, department, role, email, active, created_at, updated_at"


def get(conn: Conn, *, username: str) -> dict | None:
    """A staff user without the password hash, or None."""
    return conn.execute(
        f"SELECT {USER_COLUMNS} FROM staff_users WHERE username = %s", (username.lower(),)
    ).fetchone()


def get_or_raise(conn: Conn, *, username: str) -> dict:
    """A staff user; NotFound otherwise."""
    u = get(conn, username=username)
    if u is None:
        raise NotFound(f"no user {username!r}")
    return u


def list_(
    conn: Conn,
    *,
    role: str | None = None,
    department: str | None = None,
    active: bool | None = None,
    q: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict]:
    """Staff users by username; `q` matches username, name or email."""
    return conn.execute(
        f"""SELECT {USER_COLUMNS} FROM staff_users
            WHERE (%(role)s::text IS NULL OR role = %(role)s)
              AND (%(dep)s::text IS NULL OR department = %(dep)s)
              AND (%(act)s::boolean IS NULL OR active = %(act)s)
              AND (%(q)s::text IS NULL OR username ILIKE %(q)s
                   OR full_name ILIKE %(q)s OR email ILIKE %(q)s)
            ORDER BY username LIMIT %(l)s OFFSET %(o)s""",
        {"role": role, "dep": department, "act": active, "q": like_contains(q), "l": limit, "o": offset},
    ).fetchall()


def _check_department(conn: Conn, code: str) -> None:
    if not conn.execute("SELECT 1 FROM departments WHERE code = %s", (code,)).fetchone():
        raise Invalid(f"unknown department {code!r}")


def _guard_admin_target(actor: dict, target: dict | None, new_role: str | None = None) -> None:
    """Only an admin may create, change or reset an admin, or hand out the admin role (no privilege escalation)."""
    touches_admin = (target is not None and target["role"] == "admin") or new_role == "admin"
    if touches_admin and actor["role"] != "admin":
        raise Forbidden("only an admin may manage admin accounts or grant the admin role")


def _other_active_admins(conn: Conn, user_id: int) -> int:
    return one(
        conn.execute(
            "SELECT count(*) AS n FROM staff_users WHERE role = 'admin' AND active AND id <> %s", (user_id,)
        )
    )["n"]


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
    """Create a staff user (default department from the role)."""
    _guard_admin_target(actor, None, role)
    if department is not None:
        _check_department(conn, department)
    created = auth.create(
        conn, username=username, role=role, password=password, full_name=full_name, department=department
    )
    if email is not None:
        conn.execute("UPDATE staff_users SET email = %s WHERE id = %s", (email, created["id"]))
    return get_or_raise(conn, username=created["username"])


def update(conn: Conn, *, actor: dict, username: str, changes: dict) -> tuple[dict, dict]:
    """Change name, department or email; (before, after)."""
    before = get_or_raise(conn, username=username)
    _guard_admin_target(actor, before)
    if changes.get("department") is not None:
        _check_department(conn, changes["department"])
    conn.execute(
        """UPDATE staff_users SET full_name = coalesce(%(full_name)s, full_name),
                  department = coalesce(%(department)s, department), email = coalesce(%(email)s, email),
                  updated_at = now()
            WHERE id = %(id)s""",
        {
            "full_name": changes.get("full_name"),
            "department": changes.get("department"),
            "email": changes.get("email"),
            "id": before["id"],
        },
    )
    return before, get_or_raise(conn, username=username)


def change_role(conn: Conn, *, actor: dict, username: str, role: str) -> tuple[dict, dict]:
    """Give a user another role; nobody changes their own role, and the last active admin stays admin."""
    before = get_or_raise(conn, username=username)
    _guard_admin_target(actor, before, role)
    if before["id"] == actor["id"]:
        raise Forbidden("you may not change your own role")
    if role == before["role"]:
        raise Conflict(f"user {username!r} already has role {role!r}")
    if before["role"] == "admin" and _other_active_admins(conn, before["id"]) == 0:
        raise Conflict("the last active admin cannot lose the admin role")
    conn.execute("UPDATE staff_users SET role = %s, updated_at = now() WHERE id = %s", (role, before["id"]))
    return before, get_or_raise(conn, username=username)


def set_active(conn: Conn, *, actor: dict, username: str, active: bool) -> tuple[dict, dict]:
    """Deactivate (tokens stop working at once) or reactivate a user."""
    before = get_or_raise(conn, username=username)
    _guard_admin_target(actor, before)
    if before["active"] == active:
        raise Conflict(f"user {username!r} is already {'active' if active else 'inactive'}")
    if not active:
        if before["id"] == actor["id"]:
            raise Forbidden("you may not deactivate yourself")
        if before["role"] == "admin" and _other_active_admins(conn, before["id"]) == 0:
            raise Conflict("the last active admin cannot be deactivated")
    conn.execute(
        """UPDATE staff_users SET active = %s, updated_at = now(),
                  tokens_valid_after = CASE WHEN %s THEN tokens_valid_after ELSE now() END,
                  token_version = token_version + CASE WHEN %s THEN 0 ELSE 1 END
            WHERE id = %s""",
        (active, active, active, before["id"]),
    )
    return before, get_or_raise(conn, username=username)


def reset_password(conn: Conn, *, actor: dict, username: str, password: str) -> dict:
    """Set a new password; tokens issued before now stop working."""
    target = get_or_raise(conn, username=username)
    _guard_admin_target(actor, target)
    if len(password) < auth.MIN_PASSWORD_LENGTH:
        raise Invalid(f"password must be at least {auth.MIN_PASSWORD_LENGTH} characters")
    conn.execute(
        """UPDATE staff_users SET password_hash = %s, tokens_valid_after = now(), token_version = token_version + 1,
                  updated_at = now() WHERE id = %s""",
        (hash_password(password), target["id"]),
    )
    return target


# ---- departments ---------------------------------------------------------------------------------------------


def list_departments(conn: Conn) -> list[dict]:
    """Departments with their number of active staff."""
    return conn.execute(
        """SELECT d.code, d.name, d.created_at,
                  (SELECT count(*) FROM staff_users u WHERE u.department = d.code AND u.active) AS active_staff
             FROM departments d ORDER BY d.code"""
    ).fetchall()


def get_department_or_raise(conn: Conn, *, code: str) -> dict:
    """One department; NotFound otherwise."""
    d = conn.execute("SELECT * FROM departments WHERE code = %s", (code,)).fetchone()
    if d is None:
        raise NotFound(f"no department {code!r}")
    return d


def create_department(conn: Conn, *, code: str, name: str) -> dict:
    """Add a department; 409 if the code exists."""
    if conn.execute("SELECT 1 FROM departments WHERE code = %s", (code,)).fetchone():
        raise Conflict(f"department {code!r} already exists")
    return one(conn.execute("INSERT INTO departments (code, name) VALUES (%s, %s) RETURNING *", (code, name)))


def rename_department(conn: Conn, *, code: str, name: str) -> tuple[dict, dict]:
    """Change a department's display name; (before, after)."""
    before = get_department_or_raise(conn, code=code)
    after = one(conn.execute("UPDATE departments SET name = %s WHERE code = %s RETURNING *", (name, code)))
    return before, after
