"""Staff users: the one owner of staff_users (accounts, passwords, roles, activation, token versions).

Every write here records itself in the audit log. Who may change whom (admin accounts, one's own role, the last
admin) is HR's policy (backoffice.hr.service), which calls these functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from backoffice.auth.models import MIN_PASSWORD_LENGTH, ROLE_DEPARTMENT, ROLES
from backoffice.auth.security import create_access_token, decode_access_token, hash_password, verify_password
from fleetcore.audit import audit
from fleetcore.db import Conn, like_contains, one
from fleetcore.errors import Conflict, Invalid, NotFound
from fleetcore.settings import Settings

# What the API shows of a user: never the password hash or token version.
USER_COLUMNS = "id, username, full_name, department, role, email, active, created_at, updated_at"


# ---- reading ------------------------------------------------------------------------------------------------


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


def count_other_active_admins(conn: Conn, *, user_id: int) -> int:
    """Active admins other than this user."""
    return one(
        conn.execute(
            "SELECT count(*) AS n FROM staff_users WHERE role = 'admin' AND active AND id <> %s", (user_id,)
        )
    )["n"]


def count_active_by_department(conn: Conn) -> dict[str, int]:
    """Active staff per department code (departments without any are missing)."""
    rows = conn.execute(
        "SELECT department, count(*) AS n FROM staff_users WHERE active GROUP BY department"
    ).fetchall()
    return {r["department"]: r["n"] for r in rows}


# Verified against when the username is unknown, so an unknown and a known username take the same time to refuse
# (no user enumeration by timing).
_DUMMY_HASH = hash_password("not-a-password-of-anyone-0123456789")


def authenticate(conn: Conn, *, username: str, password: str) -> dict | None:
    """The active user with this username and password (with its token_version), or None; constant-time refusal."""
    u = conn.execute("SELECT * FROM staff_users WHERE username = %s", (username.lower(),)).fetchone()
    ok = verify_password(password, u["password_hash"] if u is not None else _DUMMY_HASH)
    if u is None or not u["active"] or not ok:
        return None
    return u


# ---- login throttling ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ThrottlePolicy:
    """Failures allowed per username and per source address within `window_s`, and the lockout that follows."""

    max_user_failures: int
    max_ip_failures: int
    window_s: int
    lockout_s: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ThrottlePolicy:
        return cls(
            max_user_failures=settings.login_max_failures_user,
            max_ip_failures=settings.login_max_failures_ip,
            window_s=settings.login_window_s,
            lockout_s=settings.login_lockout_s,
        )


def _throttle_keys(username: str, address: str | None) -> list[str]:
    keys = [f"user:{username.lower()[:100]}"]
    if address:
        keys.append(f"ip:{address}")
    return keys


def locked_for(conn: Conn, *, username: str, address: str | None) -> int | None:
    """Seconds until this username or address may try again, or None when neither is locked."""
    row = conn.execute(
        """SELECT ceil(extract(epoch FROM max(locked_until) - now()))::int AS s
             FROM login_throttle WHERE key = ANY(%s) AND locked_until > now()""",
        (_throttle_keys(username, address),),
    ).fetchone()
    return row["s"] if row and row["s"] else None


def record_failure(conn: Conn, *, username: str, address: str | None, policy: ThrottlePolicy) -> int | None:
    """Count a failed login for the username and the address; lock whichever passed its limit (audited).

    Returns the lockout in seconds when this failure locked something, else None.
    """
    locked = None
    for key in _throttle_keys(username, address):
        limit = policy.max_user_failures if key.startswith("user:") else policy.max_ip_failures
        row = one(
            conn.execute(
                """INSERT INTO login_throttle AS t (key, failures, window_start) VALUES (%(k)s, 1, now())
                   ON CONFLICT (key) DO UPDATE SET
                       failures = CASE WHEN t.window_start < now() - make_interval(secs => %(w)s)
                                       THEN 1 ELSE t.failures + 1 END,
                       window_start = CASE WHEN t.window_start < now() - make_interval(secs => %(w)s)
                                           THEN now() ELSE t.window_start END
                   RETURNING failures""",
                {"k": key, "w": policy.window_s},
            )
        )
        if row["failures"] >= limit:
            conn.execute(
                """UPDATE login_throttle SET locked_until = now() + make_interval(secs => %s), failures = 0,
                          window_start = now() WHERE key = %s""",
                (policy.lockout_s, key),
            )
            audit(
                conn,
                actor={"username": "system"},
                action="auth.lockout",
                entity="login_throttle",
                entity_id=key.split(":", 1)[0],  # which kind of key, not the username or address itself
                after={"failures": row["failures"], "lockout_s": policy.lockout_s},
            )
            locked = policy.lockout_s
    return locked


def record_success(conn: Conn, *, username: str) -> None:
    conn.execute("DELETE FROM login_throttle WHERE key = %s", (f"user:{username.lower()[:100]}",))


@dataclass(frozen=True)
class TokenSigning:
    """How this installation signs and checks access tokens (secret, issuer, audience, lifetime)."""

    secret: str
    issuer: str
    audience: str
    minutes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenSigning:
        return cls(
            secret=settings.require_secret_key(),
            issuer=settings.token_issuer,
            audience=settings.token_audience,
            minutes=settings.access_token_minutes,
        )

    def issue(self, user: dict) -> str:
        return create_access_token(
            subject=user["username"],
            role=user["role"],
            secret=self.secret,
            minutes=self.minutes,
            version=user["token_version"],
            issuer=self.issuer,
            audience=self.audience,
        )

    def claims(self, token: str) -> dict | None:
        return decode_access_token(token, secret=self.secret, issuer=self.issuer, audience=self.audience)


def user_for_token(conn: Conn, token: str, *, signing: TokenSigning) -> dict | None:
    """The active staff user a bearer token stands for, or None (invalid, expired or revoked token).

    Runs on the caller's connection (a request holds one pooled connection, never two).
    """
    claims = signing.claims(token)
    if claims is None:
        return None
    user = conn.execute(
        """SELECT id, username, full_name, department, role, active, token_version
             FROM staff_users WHERE username = %s""",
        (claims["sub"],),
    ).fetchone()
    if user is None or not user["active"]:
        return None
    # A password reset or deactivation bumps token_version and so revokes every older token (migration 0203).
    if claims.get("ver", 0) != user.pop("token_version"):
        return None
    return user


# ---- writes -------------------------------------------------------------------------------------------------


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"password must be at least {MIN_PASSWORD_LENGTH} characters")


def create(
    conn: Conn,
    *,
    username: str,
    role: str,
    password: str,
    actor: dict | None,
    full_name: str = "",
    department: str | None = None,
    email: str | None = None,
) -> dict:
    """Create a staff user (department defaults from the role); `actor` None (test data) leaves no audit record."""
    if role not in ROLES:
        raise Invalid(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    _check_password(password)
    department = department or ROLE_DEPARTMENT[role]
    if get(conn, username=username):
        raise Conflict(f"user {username!r} already exists")
    try:
        with conn.transaction():
            created = one(
                conn.execute(
                    f"""INSERT INTO staff_users (username, full_name, department, role, password_hash, email)
                        VALUES (%s, %s, %s, %s, %s, %s) RETURNING {USER_COLUMNS}""",
                    (username.lower(), full_name, department, role, hash_password(password), email),
                )
            )
    except psycopg.errors.ForeignKeyViolation:
        # Departments are a table since migration 0202 (owned by HR); the foreign key names an unknown one.
        raise Invalid(f"unknown department {department!r}") from None
    if actor is not None:
        audit(
            conn,
            actor=actor,
            action="user.create",
            entity="staff_users",
            entity_id=created["username"],
            after=created,
        )
    return created


def update(conn: Conn, *, username: str, changes: dict[str, Any], actor: dict) -> dict:
    """Change name, department or email."""
    before = get_or_raise(conn, username=username)
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
    after = get_or_raise(conn, username=username)
    audit(
        conn,
        actor=actor,
        action="user.update",
        entity="staff_users",
        entity_id=username,
        before=before,
        after=after,
    )
    return after


def change_role(conn: Conn, *, username: str, role: str, actor: dict) -> dict:
    """Give the user another role (applies at once: the role is read on every request)."""
    before = get_or_raise(conn, username=username)
    conn.execute("UPDATE staff_users SET role = %s, updated_at = now() WHERE id = %s", (role, before["id"]))
    after = get_or_raise(conn, username=username)
    audit(
        conn,
        actor=actor,
        action="user.role",
        entity="staff_users",
        entity_id=username,
        before={"role": before["role"]},
        after={"role": after["role"]},
    )
    return after


def set_active(conn: Conn, *, username: str, active: bool, actor: dict) -> dict:
    """Deactivate (bumps token_version: existing tokens stop working at once) or reactivate a user."""
    before = get_or_raise(conn, username=username)
    conn.execute(
        """UPDATE staff_users SET active = %s, updated_at = now(),
                  tokens_valid_after = CASE WHEN %s THEN tokens_valid_after ELSE now() END,
                  token_version = token_version + CASE WHEN %s THEN 0 ELSE 1 END
            WHERE id = %s""",
        (active, active, active, before["id"]),
    )
    after = get_or_raise(conn, username=username)
    audit(
        conn,
        actor=actor,
        action="user.activate" if active else "user.deactivate",
        entity="staff_users",
        entity_id=username,
        before={"active": not active},
        after={"active": active},
    )
    return after


def _set_password(conn: Conn, user_id: int, password: str) -> None:
    """Store a new password hash and bump token_version, so tokens issued before now stop working."""
    conn.execute(
        """UPDATE staff_users SET password_hash = %s, tokens_valid_after = now(), token_version = token_version + 1,
                  updated_at = now() WHERE id = %s""",
        (hash_password(password), user_id),
    )


def reset_password(conn: Conn, *, username: str, password: str, actor: dict) -> dict:
    """Set a user's new password (HR); the user's tokens stop working. The password is never audited."""
    target = get_or_raise(conn, username=username)
    _check_password(password)
    _set_password(conn, target["id"], password)
    audit(conn, actor=actor, action="user.password_reset", entity="staff_users", entity_id=username)
    return target


def change_password(conn: Conn, *, user: dict, current_password: str, new_password: str) -> None:
    """A user changes their own password (the current one must match); their other tokens stop working."""
    row = one(conn.execute("SELECT password_hash FROM staff_users WHERE id = %s", (user["id"],)))
    if not verify_password(current_password, row["password_hash"]):
        raise Invalid("current password is wrong")
    _check_password(new_password)
    _set_password(conn, user["id"], new_password)
    audit(conn, actor=user, action="user.password_change", entity="staff_users", entity_id=user["username"])
