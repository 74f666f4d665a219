"""Broker accounts: the one owner of `broker_accounts` (per-device and per-service MQTT credentials).

A device connects with username = its device id and the secret issued here; the broker lets it publish only under
`{root}/devices/<its id>/#` and subscribe to nothing (render_acl). Secrets are 32 random bytes, shown once, and kept
as PBKDF2-HMAC-SHA512 with a printable salt, so Mosquitto's password file ($7$, render_passwd) and EMQX's PostgreSQL
authenticator can both check them straight from this table. Every change is audited (never the secret) and
announced on NOTIFY channel CHANNEL, which `fleet broker sync --watch` follows to rewrite the broker's files.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string

from psycopg import sql

from backoffice.broker.models import PBKDF2_ITERATIONS, SALT_CHARS, SECRET_BYTES, SERVICE_ROLES
from backoffice.devices import service as devices
from fleetcore.audit import audit
from fleetcore.contract import DEVICE_ID_RE
from fleetcore.db import Conn, one
from fleetcore.errors import Conflict, Invalid, NotFound

CHANNEL = "fleet_broker_accounts"
_SALT_ALPHABET = string.ascii_letters + string.digits
_COLUMNS = "username, kind, role, device_id, active, created_at, created_by, rotated_at, revoked_at"


def _hash(secret: str, salt: str, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha512", secret.encode(), salt.encode(), iterations)


def _new_secret() -> tuple[str, str, bytes]:
    """(secret, salt, hash) for a fresh credential."""
    secret = secrets.token_urlsafe(SECRET_BYTES)
    salt = "".join(secrets.choice(_SALT_ALPHABET) for _ in range(SALT_CHARS))
    return secret, salt, _hash(secret, salt, PBKDF2_ITERATIONS)


def _changed(conn: Conn, username: str, event: str) -> None:
    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, f"{event}:{username}"))


def get(conn: Conn, *, username: str) -> dict | None:
    return conn.execute(
        sql.SQL("SELECT {} FROM broker_accounts WHERE username = %s").format(sql.SQL(_COLUMNS)), (username,)
    ).fetchone()


def get_or_raise(conn: Conn, *, username: str, kind: str | None = None) -> dict:
    """The account; NotFound also when it is not of `kind` (a device route never reaches a service account)."""
    row = get(conn, username=username)
    if row is None or (kind is not None and row["kind"] != kind):
        raise NotFound(f"no {kind or 'broker'} account {username!r}")
    return row


def list_(conn: Conn, *, kind: str | None = None, active: bool | None = None) -> list[dict]:
    return conn.execute(
        sql.SQL(
            """SELECT {} FROM broker_accounts
                WHERE (%(k)s::text IS NULL OR kind = %(k)s) AND (%(a)s::boolean IS NULL OR active = %(a)s)
                ORDER BY kind, username"""
        ).format(sql.SQL(_COLUMNS)),
        {"k": kind, "a": active},
    ).fetchall()


def issue_device(conn: Conn, *, device_id: str, actor: dict) -> tuple[str, dict]:
    """A first credential for a registered device (or a new one after revocation); returns (secret, account)."""
    if devices.get(conn, device_id=device_id) is None:
        raise NotFound(f"device {device_id!r} is not registered")
    existing = get(conn, username=device_id)
    if existing is not None and existing["kind"] != "device":
        raise Conflict(f"{device_id!r} is the username of a service account")
    if existing is not None and existing["active"]:
        raise Conflict(
            f"device {device_id!r} already has an active credential; rotate or revoke it",
            details={"rotate": f"/api/v1/fleet/devices/{device_id}/credentials/rotate"},
        )
    secret, salt, digest = _new_secret()
    row = one(
        conn.execute(
            sql.SQL(
                """INSERT INTO broker_accounts (username, kind, role, device_id, salt, iterations, hash, created_by)
                   VALUES (%(u)s, 'device', 'device', %(u)s, %(s)s, %(i)s, %(h)s, %(by)s)
                   ON CONFLICT (username) DO UPDATE SET salt = EXCLUDED.salt, iterations = EXCLUDED.iterations,
                       hash = EXCLUDED.hash, active = true, rotated_at = now(), revoked_at = NULL
                   RETURNING {}"""
            ).format(sql.SQL(_COLUMNS)),
            {"u": device_id, "s": salt, "i": PBKDF2_ITERATIONS, "h": digest, "by": actor["username"]},
        )
    )
    audit(conn, actor=actor, action="broker_account.issue", entity="broker_accounts", entity_id=device_id)
    _changed(conn, device_id, "issued")
    return secret, row


def create_service(conn: Conn, *, username: str, role: str, actor: dict) -> tuple[str, dict]:
    """A service account (ingest, monitor, simulator); returns (secret, account)."""
    if role not in SERVICE_ROLES:
        raise Invalid(f"unknown service role {role!r} (one of {', '.join(SERVICE_ROLES)})")
    if not DEVICE_ID_RE.match(username):
        raise Invalid("a username is 1-64 letters, digits, '-' or '_'")
    if get(conn, username=username) is not None:
        raise Conflict(f"broker account {username!r} already exists; rotate or revoke it")
    secret, salt, digest = _new_secret()
    row = one(
        conn.execute(
            sql.SQL(
                """INSERT INTO broker_accounts (username, kind, role, salt, iterations, hash, created_by)
                   VALUES (%s, 'service', %s, %s, %s, %s, %s) RETURNING {}"""
            ).format(sql.SQL(_COLUMNS)),
            (username, role, salt, PBKDF2_ITERATIONS, digest, actor["username"]),
        )
    )
    audit(
        conn,
        actor=actor,
        action="broker_account.create",
        entity="broker_accounts",
        entity_id=username,
        after={"role": role},
    )
    _changed(conn, username, "created")
    return secret, row


def rotate(conn: Conn, *, username: str, kind: str, actor: dict) -> tuple[str, dict]:
    """A new secret for an active account; the old one stops working at the broker's next reload."""
    before = get_or_raise(conn, username=username, kind=kind)
    if not before["active"]:
        raise Conflict(f"broker account {username!r} is revoked; issue a new credential instead")
    secret, salt, digest = _new_secret()
    row = one(
        conn.execute(
            sql.SQL(
                """UPDATE broker_accounts SET salt = %s, iterations = %s, hash = %s, rotated_at = now()
                    WHERE username = %s RETURNING {}"""
            ).format(sql.SQL(_COLUMNS)),
            (salt, PBKDF2_ITERATIONS, digest, username),
        )
    )
    audit(conn, actor=actor, action="broker_account.rotate", entity="broker_accounts", entity_id=username)
    _changed(conn, username, "rotated")
    return secret, row


def revoke(conn: Conn, *, username: str, kind: str, actor: dict) -> dict:
    """The account can no longer connect (from the broker's next reload); revoking twice is a conflict."""
    before = get_or_raise(conn, username=username, kind=kind)
    if not before["active"]:
        raise Conflict(f"broker account {username!r} is already revoked")
    row = one(
        conn.execute(
            sql.SQL(
                "UPDATE broker_accounts SET active = false, revoked_at = now() WHERE username = %s RETURNING {}"
            ).format(sql.SQL(_COLUMNS)),
            (username,),
        )
    )
    audit(conn, actor=actor, action="broker_account.revoke", entity="broker_accounts", entity_id=username)
    _changed(conn, username, "revoked")
    return row


def verify(conn: Conn, *, username: str, secret: str) -> bool:
    """Whether `secret` is the active credential of `username` (what the broker checks, in Python)."""
    row = conn.execute(
        "SELECT salt, iterations, hash FROM broker_accounts WHERE username = %s AND active", (username,)
    ).fetchone()
    if row is None:
        return False
    return hmac.compare_digest(_hash(secret, row["salt"], row["iterations"]), bytes(row["hash"]))


def render_passwd(conn: Conn) -> str:
    """Mosquitto's password_file: `username:$7$iterations$base64(salt)$base64(hash)` for every active account."""
    rows = conn.execute(
        "SELECT username, salt, iterations, hash FROM broker_accounts WHERE active ORDER BY username"
    ).fetchall()
    lines = [
        f"{r['username']}:$7${r['iterations']}${base64.b64encode(r['salt'].encode()).decode()}"
        f"${base64.b64encode(bytes(r['hash'])).decode()}"
        for r in rows
    ]
    return "".join(line + "\n" for line in lines)


def render_acl(conn: Conn, *, topic_root: str, teltonika_topic: str = "teltonika/+/data") -> str:
    """Mosquitto's acl_file: devices publish only under their own id; each service account gets its role's rights.

    Everything not granted is denied, so a device can neither publish as another device nor subscribe at all.
    A Teltonika tracker (username = its IMEI) may also publish on its own level of the Teltonika topic, which only
    the gateway role reads; the gateway writes every device's contract topics.
    """
    devices = f"{topic_root}/devices"
    rights = {
        "ingest": [f"topic read {devices}/#"],
        "monitor": [f"topic read {devices}/#"],
        "simulator": [f"topic write {devices}/#"],
        "gateway": [f"topic write {devices}/#", f"topic read {teltonika_topic}"],
    }
    own_teltonika = "/".join("%u" if level == "+" else level for level in teltonika_topic.split("/"))
    out = [
        "# Written by `fleet broker sync` from broker_accounts; edits here are overwritten.",
        "# Devices (username = device id): publish under their own topics only, subscribe to nothing.",
        f"pattern write {devices}/%u/#",
        f"pattern write {own_teltonika}",
    ]
    services = conn.execute(
        "SELECT username, role FROM broker_accounts WHERE kind = 'service' AND active ORDER BY username"
    ).fetchall()
    for s in services:
        out += ["", f"user {s['username']}", *rights[s["role"]]]
    return "\n".join(out) + "\n"
