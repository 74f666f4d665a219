"""Login under attack: throttling per username and per address (429 + Retry-After, audited, recovers), and
refusals that take the same time whether the username exists or not."""

from __future__ import annotations

import statistics
import time

import pytest
from fastapi.testclient import TestClient

from fleetapp.api import create_app
from tests import factories
from tests.waiting import wait_until

pytestmark = [pytest.mark.db]
PASSWORD = "correct-horse-9"


def _login(client: TestClient, username: str, password: str):  # noqa: ANN202
    return client.post("/api/v1/auth/token", data={"username": username, "password": password})


def test_a_username_is_locked_after_repeated_failures_and_recovers(settings, conn) -> None:
    s = settings.model_copy(
        update={"login_max_failures_user": 3, "login_lockout_s": 2, "login_max_failures_ip": 100}
    )
    u = factories.user(conn, role="finance")
    with TestClient(create_app(s)) as client:
        assert [_login(client, u["username"], "wrong-one").status_code for _ in range(2)] == [401, 401]
        locked = _login(client, u["username"], "wrong-one")
        assert locked.status_code == 429 and locked.json()["error"]["code"] == "too_many_attempts"
        assert 1 <= int(locked.headers["retry-after"]) <= 2
        # while locked, even the right password is refused (it is not even checked)
        r = _login(client, u["username"], PASSWORD)
        assert r.status_code == 429 and "retry-after" in r.headers
        # another user is not affected
        other = factories.user(conn, role="dispatcher")
        assert _login(client, other["username"], PASSWORD).status_code == 200
        # after the lockout the right password works again, and the count starts over
        wait_until(
            lambda: _login(client, u["username"], PASSWORD).status_code == 200, timeout=10, interval=0.5
        )
        assert _login(client, u["username"], "wrong-one").status_code == 401
    lockouts = conn.execute("SELECT entity_id, after FROM audit_log WHERE action = 'auth.lockout'").fetchall()
    assert len(lockouts) == 1 and lockouts[0]["entity_id"] == "user"
    assert u["username"] not in str(lockouts)  # references, not the username


def test_an_address_is_locked_across_usernames(settings, conn) -> None:
    s = settings.model_copy(
        update={"login_max_failures_user": 100, "login_max_failures_ip": 4, "login_lockout_s": 60}
    )
    u = factories.user(conn, role="finance")
    with TestClient(create_app(s)) as client:
        codes = [_login(client, f"guess-{i}", "x" * 10).status_code for i in range(4)]
        assert codes == [401, 401, 401, 429]
        assert _login(client, u["username"], PASSWORD).status_code == 429  # same address, real account


@pytest.mark.serial  # a timing comparison: run alone (make test runs serial tests after the rest)
def test_unknown_and_known_usernames_take_the_same_time_to_refuse(settings, conn) -> None:
    s = settings.model_copy(update={"login_max_failures_user": 10_000, "login_max_failures_ip": 10_000})
    u = factories.user(conn, role="finance")
    with TestClient(create_app(s)) as client:
        _login(client, u["username"], "warm-up-1")

        def timed(name: str) -> float:
            t0 = time.perf_counter()
            assert _login(client, name, "wrong-password").status_code == 401
            return time.perf_counter() - t0

        known, unknown = [], []
        for i in range(12):  # interleaved, so machine noise hits both alike
            known.append(timed(u["username"]))
            unknown.append(timed(f"nobody-{i}"))
    gap_ms = abs(statistics.median(known) - statistics.median(unknown)) * 1000
    assert gap_ms < 20, (
        f"known {statistics.median(known) * 1000:.1f} ms vs unknown {statistics.median(unknown) * 1000:.1f} ms"
    )
