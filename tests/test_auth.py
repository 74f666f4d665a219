"""Authentication, token expiry and revocation, staff administration (HR) rules, audit log, `fleet users add`."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import jwt
import pytest
from fastapi.testclient import TestClient

from backoffice.auth.security import ALGORITHM, create_access_token
from fleetapp.api import create_app
from fleetcore.db import connect, one
from tests import factories

PASSWORD = "correct-horse-9"


@pytest.fixture
def api(settings, db_url):
    with connect(db_url, autocommit=True) as conn:
        users = {role: factories.user(conn, role=role) for role in ("admin", "hr", "dispatcher", "finance")}
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            yield client, conn, users, settings


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def login(client: TestClient, username: str, password: str = PASSWORD):
    return client.post("/api/v1/auth/token", data={"username": username, "password": password})


def token_for(settings, username: str, role: str = "admin", **claims) -> str:
    """A token signed with the app's secret, with any claims overridden."""
    now = dt.datetime.now(dt.UTC)
    payload = {
        "iss": settings.token_issuer,
        "aud": settings.token_audience,
        "sub": username,
        "role": role,
        "iat": now,
        "exp": now + dt.timedelta(minutes=5),
        **claims,
    }
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, settings.secret_key, algorithm=ALGORITHM)


# ---- tokens ---------------------------------------------------------------------------------------------


def test_password_flow_issues_expiring_bearer_token(api):
    client, _, users, settings = api
    r = login(client, users["dispatcher"]["username"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == settings.access_token_minutes * 60
    claims = jwt.decode(
        body["access_token"], settings.secret_key, algorithms=[ALGORITHM], audience=settings.token_audience
    )
    assert claims["sub"] == users["dispatcher"]["username"]
    assert claims["iss"] == settings.token_issuer and claims["aud"] == settings.token_audience
    assert claims["exp"] - claims["iat"] == settings.access_token_minutes * 60
    me = client.get("/api/v1/auth/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200 and me.json()["role"] == "dispatcher"
    assert "password_hash" not in me.json()
    # usernames are case-insensitive at login
    assert login(client, users["dispatcher"]["username"].upper()).status_code == 200


@pytest.mark.parametrize(
    "form",
    [
        {"username": "nobody-here", "password": PASSWORD},
        {"username": "USER", "password": "wrong-password"},
    ],
)
def test_bad_credentials_are_401(api, form):
    client, _, users, _ = api
    form = {**form, "username": users["hr"]["username"] if form["username"] == "USER" else form["username"]}
    r = client.post("/api/v1/auth/token", data=form)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized" and r.headers["www-authenticate"] == "Bearer"


def test_token_route_needs_form_fields(api):
    client, *_ = api
    r = client.post("/api/v1/auth/token", data={"username": "x"})
    assert r.status_code == 422 and "password" in r.json()["error"]["message"]


def test_expired_forged_and_malformed_tokens_are_401(api):
    client, _, users, settings = api
    name = users["admin"]["username"]
    now = dt.datetime.now(dt.UTC)
    expired = token_for(settings, name, iat=now - dt.timedelta(minutes=61), exp=now - dt.timedelta(minutes=1))
    still_valid = token_for(settings, name, exp=now + dt.timedelta(minutes=1))
    cases = {
        "expired one minute ago": expired,
        "wrong secret": jwt.encode(
            {"sub": name, "exp": now + dt.timedelta(minutes=5)}, "x" * 40, algorithm=ALGORITHM
        ),
        "no exp claim": token_for(settings, name, exp=None),
        "no sub claim": token_for(settings, name, sub=None),
        "no audience": token_for(settings, name, aud=None),
        "another audience": token_for(settings, name, aud="some-other-service"),
        "no issuer": token_for(settings, name, iss=None),
        "another issuer": token_for(settings, name, iss="someone-else"),
        "unknown user": token_for(settings, "ghost-user"),
        "alg none": jwt.encode({"sub": name, "exp": now + dt.timedelta(minutes=5)}, None, algorithm="none"),
        "tampered": still_valid[:-4] + ("AAAA" if not still_valid.endswith("AAAA") else "BBBB"),
        "not a jwt": "hello",
    }
    for what, token in cases.items():
        r = client.get("/api/v1/audit", headers=bearer(token))
        assert r.status_code == 401, what
        assert r.json()["error"]["code"] == "unauthorized", what
    assert client.get("/api/v1/audit", headers=bearer(still_valid)).status_code == 200
    r = client.get("/api/v1/audit", headers={"Authorization": f"Basic {still_valid}"})
    assert r.status_code == 401


def test_deactivated_user_loses_access_at_once(api):
    client, _, users, settings = api
    hr = bearer(token_for(settings, users["hr"]["username"], role="hr"))
    d_token = login(client, users["dispatcher"]["username"]).json()["access_token"]
    name = users["dispatcher"]["username"]
    assert client.post(f"/api/v1/users/{name}/deactivate", headers=hr).status_code == 200
    assert client.get("/api/v1/auth/me", headers=bearer(d_token)).status_code == 401
    assert login(client, name).status_code == 401
    assert client.post(f"/api/v1/users/{name}/deactivate", headers=hr).status_code == 409
    assert client.post(f"/api/v1/users/{name}/activate", headers=hr).status_code == 200
    # reactivation does not resurrect tokens issued before the deactivation
    assert client.get("/api/v1/auth/me", headers=bearer(d_token)).status_code == 401
    assert login(client, name).status_code == 200


def test_password_reset_revokes_older_tokens_and_is_audited_without_secret(api):
    client, conn, users, settings = api
    name = users["dispatcher"]["username"]
    ten_s_ago = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=10)
    old = token_for(settings, name, role="dispatcher", iat=ten_s_ago)
    assert client.get("/api/v1/auth/me", headers=bearer(old)).status_code == 200
    admin = bearer(token_for(settings, users["admin"]["username"], role="admin"))
    r = client.post(f"/api/v1/users/{name}/password", headers=admin, json={"password": "short"})
    assert r.status_code == 422
    r = client.post(f"/api/v1/users/{name}/password", headers=admin, json={"password": "new-battery-staple"})
    assert r.status_code == 204
    assert client.get("/api/v1/auth/me", headers=bearer(old)).status_code == 401
    assert login(client, name).status_code == 401
    new = login(client, name, "new-battery-staple")
    assert new.status_code == 200
    assert client.get("/api/v1/auth/me", headers=bearer(new.json()["access_token"])).status_code == 200
    row = conn.execute("SELECT * FROM audit_log WHERE action = 'user.password_reset'").fetchone()
    assert row["entity_id"] == name and row["actor"] == users["admin"]["username"]
    assert row["before"] is None and row["after"] is None


def test_own_password_change(api):
    client, _, users, settings = api
    name = users["dispatcher"]["username"]
    h = bearer(
        token_for(settings, name, role="dispatcher", iat=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5))
    )
    r = client.post(
        "/api/v1/auth/password", headers=h, json={"current_password": "nope", "new_password": "x" * 12}
    )
    assert r.status_code == 422 and "current password" in r.json()["error"]["message"]
    r = client.post(
        "/api/v1/auth/password", headers=h, json={"current_password": PASSWORD, "new_password": "y" * 12}
    )
    assert r.status_code == 204
    assert client.get("/api/v1/auth/me", headers=h).status_code == 401
    assert login(client, name, "y" * 12).status_code == 200


# ---- staff administration -------------------------------------------------------------------------------


def test_hr_manages_users_but_not_admins(api):
    client, conn, users, settings = api
    hr = bearer(token_for(settings, users["hr"]["username"], role="hr"))
    admin = bearer(token_for(settings, users["admin"]["username"], role="admin"))
    body = {"username": "tech.anna", "password": PASSWORD, "role": "technician", "full_name": "Anna T"}
    r = client.post("/api/v1/users", headers=hr, json=body)
    assert r.status_code == 201 and r.json()["department"] == "technology"
    assert "password_hash" not in r.json()
    assert client.post("/api/v1/users", headers=hr, json=body).status_code == 409
    bad = [
        ({**body, "username": "x y"}, "username"),
        ({**body, "username": "tech.bob", "role": "pilot"}, "role"),
        ({**body, "username": "tech.bob", "password": "short"}, "password"),
        ({**body, "username": "tech.bob", "department": "marketing"}, "unknown department"),
    ]
    for payload, text in bad:
        r = client.post("/api/v1/users", headers=hr, json=payload)
        assert r.status_code == 422 and text in r.json()["error"]["message"], r.text
    # no privilege escalation through HR
    r = client.post("/api/v1/users", headers=hr, json={**body, "username": "root2", "role": "admin"})
    assert r.status_code == 403
    r = client.post("/api/v1/users/tech.anna/role", headers=hr, json={"role": "admin"})
    assert r.status_code == 403
    adm = users["admin"]["username"]
    assert (
        client.post(f"/api/v1/users/{adm}/password", headers=hr, json={"password": "z" * 10}).status_code
        == 403
    )
    assert client.post(f"/api/v1/users/{adm}/deactivate", headers=hr).status_code == 403
    assert client.patch(f"/api/v1/users/{adm}", headers=hr, json={"full_name": "x"}).status_code == 403
    # HR cannot take over an account: no password resets, no role grants, no hr or admin accounts (admin only)
    fin = users["finance"]["username"]
    r = client.post(f"/api/v1/users/{fin}/password", headers=hr, json={"password": "taken-over-123"})
    assert r.status_code == 403
    assert login(client, fin, "taken-over-123").status_code == 401 and login(client, fin).status_code == 200
    assert client.post("/api/v1/users/tech.anna/role", headers=hr, json={"role": "hr"}).status_code == 403
    r = client.post("/api/v1/users", headers=hr, json={**body, "username": "hr2", "role": "hr"})
    assert r.status_code == 403
    # role change (by an admin) applies to existing tokens immediately (the role is read from the database)
    anna = bearer(token_for(settings, "tech.anna", role="technician"))
    assert client.get("/api/v1/fleet/procurements", headers=anna).status_code == 403
    r = client.post("/api/v1/users/tech.anna/role", headers=admin, json={"role": "finance"})
    assert r.status_code == 200 and r.json()["role"] == "finance"
    assert client.get("/api/v1/fleet/procurements", headers=anna).status_code == 200
    assert (
        client.post("/api/v1/users/tech.anna/role", headers=admin, json={"role": "finance"}).status_code
        == 409
    )
    # update and list with filters
    r = client.patch(
        "/api/v1/users/tech.anna", headers=hr, json={"department": "finance", "email": "anna@example.com"}
    )
    assert r.status_code == 200 and r.json()["email"] == "anna@example.com"
    assert (
        client.patch("/api/v1/users/tech.anna", headers=hr, json={"email": "not-an-email"}).status_code == 422
    )
    listed = client.get("/api/v1/users", headers=hr, params={"role": "finance", "q": "anna"}).json()
    assert [u["username"] for u in listed] == ["tech.anna"]
    assert client.get("/api/v1/users", headers=hr, params={"role": "pilot"}).status_code == 422
    assert len(client.get("/api/v1/users", headers=admin, params={"limit": 2}).json()) == 2
    assert client.get("/api/v1/users/nobody-x", headers=hr).status_code == 404
    actions = [r["action"] for r in conn.execute("SELECT action FROM audit_log ORDER BY id").fetchall()]
    assert actions == ["user.create", "user.role", "user.update"]
    role_audit = conn.execute("SELECT * FROM audit_log WHERE action = 'user.role'").fetchone()
    assert role_audit["before"] == {"role": "technician"} and role_audit["after"] == {"role": "finance"}


def test_admin_safety_rules(api):
    client, conn, users, settings = api
    adm = users["admin"]["username"]
    admin = bearer(token_for(settings, adm))
    assert client.post(f"/api/v1/users/{adm}/deactivate", headers=admin).status_code == 403  # yourself
    assert client.post(f"/api/v1/users/{adm}/role", headers=admin, json={"role": "hr"}).status_code == 403
    second = factories.user(conn, role="admin")
    second_h = bearer(token_for(settings, second["username"]))
    # with two admins one may go; then the last one stays
    assert client.post(f"/api/v1/users/{adm}/deactivate", headers=second_h).status_code == 200
    r = client.post(f"/api/v1/users/{second['username']}/role", headers=second_h, json={"role": "hr"})
    assert r.status_code == 403  # own role
    r = client.post(f"/api/v1/users/{adm}/activate", headers=second_h)
    assert r.status_code == 200
    r = client.post(
        f"/api/v1/users/{second['username']}/role",
        headers=bearer(token_for(settings, adm, ver=1)),  # reactivated: version bumped
        json={"role": "hr"},
    )
    assert r.status_code == 200
    r = client.post(f"/api/v1/users/{adm}/role", headers=second_h, json={"role": "hr"})
    assert r.status_code == 403  # second is hr now and may not touch an admin


def test_departments(api):
    client, _, users, settings = api
    hr = bearer(token_for(settings, users["hr"]["username"], role="hr"))
    disp = bearer(token_for(settings, users["dispatcher"]["username"], role="dispatcher"))
    r = client.post("/api/v1/departments", headers=hr, json={"code": "fleet_ops", "name": "Fleet operations"})
    assert r.status_code == 201
    assert (
        client.post("/api/v1/departments", headers=hr, json={"code": "fleet_ops", "name": "x"}).status_code
        == 409
    )
    assert (
        client.post("/api/v1/departments", headers=hr, json={"code": "Bad Code", "name": "x"}).status_code
        == 422
    )
    assert (
        client.post("/api/v1/departments", headers=disp, json={"code": "x1", "name": "x"}).status_code == 403
    )
    r = client.patch(
        f"/api/v1/users/{users['dispatcher']['username']}", headers=hr, json={"department": "fleet_ops"}
    )
    assert r.status_code == 200
    deps = {d["code"]: d for d in client.get("/api/v1/departments", headers=disp).json()}
    assert deps["fleet_ops"]["active_staff"] == 1 and "administration" in deps
    r = client.patch("/api/v1/departments/fleet_ops", headers=hr, json={"name": "Fleet ops"})
    assert r.status_code == 200 and r.json()["name"] == "Fleet ops"
    assert client.patch("/api/v1/departments/none_such", headers=hr, json={"name": "x"}).status_code == 404


# ---- audit log -----------------------------------------------------------------------------------------------


def test_audit_log_filters_and_access(api):
    client, conn, users, settings = api
    admin = bearer(token_for(settings, users["admin"]["username"]))
    hr = bearer(token_for(settings, users["hr"]["username"], role="hr"))
    client.post(
        "/api/v1/fleet/stations", headers=admin, json={"code": "AUD1", "name": "A", "lat": 1, "lon": 1}
    )
    client.patch("/api/v1/fleet/stations/AUD1", headers=admin, json={"name": "B"})
    client.post(
        "/api/v1/users", headers=hr, json={"username": "aud.user", "password": PASSWORD, "role": "finance"}
    )
    conn.execute("UPDATE audit_log SET at = '2026-01-01T00:00:00Z' WHERE action = 'station.create'")

    def q(**params):
        r = client.get("/api/v1/audit", headers=admin, params=params)
        assert r.status_code == 200, r.text
        return [a["action"] for a in r.json()]

    assert q() == ["user.create", "station.update", "station.create"]
    assert q(actor=users["hr"]["username"]) == ["user.create"]
    assert q(action="station.") == ["station.update", "station.create"]
    assert q(action="station*") == ["station.update", "station.create"]
    assert q(action="station.update") == ["station.update"]
    assert q(entity="stations", entity_id="AUD1") == ["station.update", "station.create"]
    assert q(**{"from": "2026-02-01T00:00:00Z"}) == ["user.create", "station.update"]
    assert q(**{"to": "2026-02-01T00:00:00Z"}) == ["station.create"]
    assert q(limit=1, offset=1) == ["station.update"]
    upd = client.get("/api/v1/audit", headers=admin, params={"action": "station.update"}).json()[0]
    assert (
        upd["before"]["name"] == "A"
        and upd["after"]["name"] == "B"
        and upd["actor_id"] == users["admin"]["id"]
    )
    assert (
        client.get("/api/v1/audit", headers=admin, params={"from": "2026-02-01"}).status_code == 422
    )  # no offset
    r = client.get(
        "/api/v1/audit", headers=admin, params={"from": "2026-03-01T00:00:00Z", "to": "2026-02-01T00:00:00Z"}
    )
    assert r.status_code == 422
    assert client.get("/api/v1/audit", headers=hr).status_code == 403


def test_failed_write_leaves_no_audit_record(api):
    """The audit record is written in the write's transaction: a rejected write leaves neither."""
    client, conn, users, settings = api
    admin = bearer(token_for(settings, users["admin"]["username"]))
    st = factories.station(conn)
    factories.vehicle(conn, station_code=st["code"])
    assert client.delete(f"/api/v1/fleet/stations/{st['code']}", headers=admin).status_code == 409
    assert one(conn.execute("SELECT count(*) AS n FROM audit_log"))["n"] == 0


# ---- fleet users add (CLI) -------------------------------------------------------------------------------------


def fleet_cli(db_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "FLEET_DATABASE_URL": db_url, "FLEET_ENVIRONMENT": "test"}
    return subprocess.run(
        [str(Path(sys.executable).parent / "fleet"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_cli_users_add(db_url, settings):
    r = fleet_cli(
        db_url,
        "users",
        "add",
        "--username",
        "boot.admin",
        "--role",
        "admin",
        "--password-stdin",
        stdin="bootstrap-pass-1\n",
    )
    assert r.returncode == 0, r.stderr
    assert "boot.admin" in r.stdout
    failures = [
        (
            ("--username", "boot.admin", "--role", "admin", "--password-stdin"),
            "bootstrap-pass-1\n",
            "already exists",
        ),
        (("--username", "x.short", "--role", "hr", "--password-stdin"), "short\n", "at least 8"),
        (("--username", "x.role", "--role", "pilot", "--password-stdin"), "long-enough-1\n", "unknown role"),
        (("--username", "x.nostdin", "--role", "hr"), "", "--password-stdin"),
    ]
    for args, stdin, text in failures:
        r = fleet_cli(db_url, "users", "add", *args, stdin=stdin)
        assert r.returncode != 0 and text in r.stderr, (args, r.stderr)
    with connect(db_url) as conn:
        names = [u["username"] for u in conn.execute("SELECT username FROM staff_users").fetchall()]
        audit = conn.execute("SELECT actor, action FROM audit_log").fetchall()
    assert names == ["boot.admin"]
    assert audit == [{"actor": "cli", "action": "user.create"}]
    with TestClient(create_app(settings)) as client:
        r = login(client, "boot.admin", "bootstrap-pass-1")
        assert r.status_code == 200
        assert client.get("/api/v1/audit", headers=bearer(r.json()["access_token"])).status_code == 200


def test_token_minutes_setting_controls_expiry(settings):
    t = create_access_token(subject="a", role="admin", secret=settings.secret_key, minutes=1)
    claims = jwt.decode(t, settings.secret_key, algorithms=[ALGORITHM], audience=settings.token_audience)
    assert claims["exp"] - claims["iat"] == 60
