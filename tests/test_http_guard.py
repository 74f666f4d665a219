"""Every API answer: security headers, a body size limit, CORS only for listed origins, no credential in logs."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from fleetapp.api import create_app
from fleetapp.embedded import free_port
from fleetapp.http_guard import redact
from tests.waiting import wait_until

pytestmark = [pytest.mark.db]


@pytest.fixture
def guarded(settings) -> Iterator[TestClient]:
    s = settings.model_copy(
        update={"api_cors_origins": "https://ops.example.com", "api_max_body_bytes": 4096}
    )
    with TestClient(create_app(s)) as client:
        yield client


def test_security_headers_on_answers_and_errors(guarded: TestClient) -> None:
    for r in (guarded.get("/healthz"), guarded.get("/api/v1/vehicles"), guarded.get("/nowhere")):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert "strict-transport-security" not in r.headers  # plain HTTP: HSTS would be ignored anyway
    https = TestClient(guarded.app, base_url="https://testserver")
    assert https.get("/healthz").headers["strict-transport-security"].startswith("max-age=31536000")


def test_bodies_over_the_limit_are_refused_before_they_are_read(guarded: TestClient) -> None:
    r = guarded.post(
        "/api/v1/auth/token",
        content=b"x" * 5000,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
        for _ in range(10):
            yield b"y" * 1000

    r = guarded.post(
        "/api/v1/auth/token", content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert r.status_code == 413
    small = guarded.post("/api/v1/auth/token", data={"username": "nobody", "password": "wrong-password"})
    assert small.status_code == 401


def test_cors_only_for_listed_origins(guarded: TestClient) -> None:
    pre = {"Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"}
    ok = guarded.options("/api/v1/vehicles", headers={"Origin": "https://ops.example.com", **pre})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://ops.example.com"
    bad = guarded.options("/api/v1/vehicles", headers={"Origin": "https://evil.example", **pre})
    assert "access-control-allow-origin" not in bad.headers
    r = guarded.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_redaction() -> None:
    assert (
        redact("GET /api/v1/stream?token=eyJ.abc.def HTTP/1.1")
        == "GET /api/v1/stream?token=[redacted] HTTP/1.1"
    )
    assert redact("/x?a=1&access_token=s3&b=2") == "/x?a=1&access_token=[redacted]&b=2"
    assert redact("/x?notatoken=1") == "/x?notatoken=1"


def test_the_access_log_of_a_real_api_process_holds_no_token(settings, tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "FLEET_DATABASE_URL": settings.database_url, "FLEET_SECRET_KEY": settings.secret_key}
    log = tmp_path / "api.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fleetapp.cli", "api", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=out,
        )
    try:
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=30, message=lambda: log.read_text())
        secret_token = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXRva2Vu.c2lnbmF0dXJl"
        httpx.get(f"{base}/api/v1/alerts?token={secret_token}&status=open")
        httpx.get(f"{base}/api/v1/vehicles?access_token={secret_token}")
        wait_until(
            lambda: log.read_text().count("/api/v1/") >= 2, timeout=10, message=lambda: log.read_text()
        )
    finally:
        proc.terminate()
        proc.wait(15)
    text = log.read_text()
    assert secret_token not in text
    assert "token=[redacted]" in text
