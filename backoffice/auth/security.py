"""Password hashing (Argon2id via pwdlib) and signed, expiring access tokens (JWT HS256)."""

from __future__ import annotations

import datetime as dt

import jwt
from pwdlib import PasswordHash

_hasher = PasswordHash.recommended()  # Argon2id with the library's (OWASP-aligned) defaults
ALGORITHM = "HS256"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str) -> bool:
    try:
        return _hasher.verify(password, password_hash)
    except Exception:  # malformed hash in the database: treat as a failed login
        return False


DEFAULT_ISSUER = "fleet-platform"
DEFAULT_AUDIENCE = "fleet-api"


def create_access_token(
    *,
    subject: str,
    role: str,
    secret: str,
    minutes: int,
    version: int = 0,
    issuer: str = DEFAULT_ISSUER,
    audience: str = DEFAULT_AUDIENCE,
) -> str:
    """A signed token; `version` is the user's token_version (bumped to revoke all older tokens)."""
    now = dt.datetime.now(dt.UTC)
    payload = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "role": role,
        "ver": version,
        "iat": now,
        "exp": now + dt.timedelta(minutes=minutes),
    }
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def decode_access_token(
    token: str, *, secret: str, issuer: str = DEFAULT_ISSUER, audience: str = DEFAULT_AUDIENCE
) -> dict | None:
    """The token's claims, or None when it is invalid, expired, or meant for another issuer or audience."""
    try:
        return jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            issuer=issuer,
            audience=audience,
            options={"require": ["exp", "sub", "iss", "aud"]},
        )
    except jwt.PyJWTError:
        return None
