"""No usable default token secret: a missing, empty, published, short or low-variety secret stops the API at start.

The attack this closes: with FLEET_SECRET_KEY unset, tokens signed with the published placeholder were accepted and
minted an admin. Now there is no placeholder, and a process that signs tokens will not start without a strong one.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from fleetapp.api import create_app
from fleetapp.demo import _installation_secret
from fleetcore.errors import ConfigError
from fleetcore.settings import MIN_SECRET_BYTES, Settings, secret_problem

WEAK = {
    "empty": "",
    "blank": "   ",
    "the old placeholder": "change-me-in-production",
    "a published example": "ChangeMe",
    "short": "Zq3!x",
    "31 bytes": "abcdefghijklmnopqrstuvwxyz01234",
    "one character repeated": "x" * 40,
    "a word repeated": "password" * 5,
}


@pytest.mark.parametrize("secret", WEAK.values(), ids=WEAK.keys())
def test_weak_secrets_are_refused_in_every_environment(secret: str) -> None:
    assert secret_problem(secret) is not None
    for env in ("development", "test", "production"):
        with pytest.raises(ValidationError, match="FLEET_SECRET_KEY"):
            Settings(environment=env, secret_key=secret)


def test_a_random_32_byte_secret_is_accepted() -> None:
    import secrets

    for _ in range(50):
        s = secrets.token_urlsafe(MIN_SECRET_BYTES)
        assert secret_problem(s) is None
        assert Settings(environment="production", secret_key=s).secret_key == s
    for _ in range(200):  # hex: 16 symbols, not always all of them in 64 characters
        assert secret_problem(secrets.token_hex(MIN_SECRET_BYTES)) is None


def test_no_secret_no_api() -> None:
    with pytest.raises(ConfigError, match="FLEET_SECRET_KEY is not set"):
        create_app(Settings(environment="development", database_url="postgresql://nobody@127.0.0.1/none"))


@pytest.mark.parametrize("secret", [None, "", "change-me-in-production", "x" * 40])
def test_fleet_api_refuses_to_start(secret: str | None, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    env["FLEET_DATABASE_URL"] = "postgresql://nobody@127.0.0.1:1/none"  # never reached
    if secret is not None:
        env["FLEET_SECRET_KEY"] = secret
    r = subprocess.run(
        [sys.executable, "-m", "fleetapp.cli", "api", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert r.returncode == 2, r.stderr
    assert "FLEET_SECRET_KEY" in r.stderr and "Traceback" not in r.stderr


def test_the_demo_generates_one_secret_per_installation_and_keeps_it_private(tmp_path: Path) -> None:
    first = _installation_secret(tmp_path)
    assert secret_problem(first) is None
    assert _installation_secret(tmp_path) == first  # the same installation keeps its secret
    mode = stat.S_IMODE((tmp_path / "secret-key").stat().st_mode)
    assert mode == 0o600
    other = tmp_path / "other"
    other.mkdir()
    assert _installation_secret(other) != first  # another installation gets its own
