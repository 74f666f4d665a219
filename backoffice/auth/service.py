"""Staff users: the one owner of staff_users (accounts, passwords, roles, tokens)."""

from __future__ import annotations

from dataclasses import dataclass

from backoffice.auth.security import create_access_token, decode_access_token, hash_password, verify_password
from fleetcore.db import Conn, one
from fleetcore.errors import Conflict, Invalid, NotFound
from fleetcore.settings import Settings

ROLES = ("admin", "dispatcher", "customer_service", "finance", "hr", "technician")
DEPARTMENTS = ("operations", "customer_service", "technology", "finance", "administration")
ROLE_DEPARTMENT = {
    "admin": "administration",
    "dispatcher": "operations",
    "customer_service": "customer_service",
    "finance": "finance",
    "hr": "administration",
    "technician": "technology",
}
MIN_PASSWORD_LENGTH = 8  # NIST SP 800-63B minimum for user-chosen secrets


def create(
    conn: Conn,
    *,
    username: str,
    role: str,
    password: str,
    full_name: str = "",
    department: str | None = None,
) -> dict:
    if role not in ROLES:
        raise Invalid(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Invalid(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    department = department or ROLE_DEPARTMENT[role]
    # Departments are a table since migration 0202 (HR may add them).
    if not conn.execute("SELECT 1 FROM departments WHERE code = %s", (department,)).fetchone():
        raise Invalid(f"unknown department {department!r}")
    if get(conn, username=username):
        raise Conflict(f"user {username!r} already exists")
    return one(
        conn.execute(
            """INSERT INTO staff_users (username, full_name, department, role, password_hash)
           VALUES (%s, %s, %s, %s, %s)
           RETURNING id, username, full_name, department, role, active, created_at""",
            (username.lower(), full_name, department, role, hash_password(password)),
        )
    )


def get(conn: Conn, *, username: str) -> dict | None:
    return conn.execute("SELECT * FROM staff_users WHERE username = %s", (username.lower(),)).fetchone()


def get_or_raise(conn: Conn, *, username: str) -> dict:
    u = get(conn, username=username)
    if u is None:
        raise NotFound(f"no user {username!r}")
    return u


def authenticate(conn: Conn, *, username: str, password: str) -> dict | None:
    u = get(conn, username=username)
    if u is None or not u["active"] or not verify_password(password, u["password_hash"]):
        return None
    return u


def list_(conn: Conn) -> list[dict]:
    return conn.execute(
        "SELECT id, username, full_name, department, role, active, created_at FROM staff_users ORDER BY id"
    ).fetchall()


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
