"""docker-compose.yml is valid (Debian's docker-compose validates it without an engine) and wired as intended."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from fleetcore.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
FLEET_SERVICES = ("migrate", "api", "ingest", "monitor", "simulator")
REQUIRED_ENV = {
    "POSTGRES_PASSWORD": "compose-test-password",
    "FLEET_SECRET_KEY": "compose-test-secret-0123456789abcdef",
}


def compose(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail(
            "docker-compose is not installed: run `bash scripts/services.sh` (apt-get install docker-compose)"
        )
    # Only what the file interpolates, so the caller's own FLEET_* variables cannot leak in.
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [exe, "-f", str(ROOT / "docker-compose.yml"), *args],
        cwd=ROOT,
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def config() -> dict:
    """The resolved configuration, as docker-compose itself sees it."""
    r = compose("--profile", "simulator", "config", env=REQUIRED_ENV)
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout)


def test_config_quiet_accepts_the_file() -> None:
    r = compose("config", "-q", env=REQUIRED_ENV)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("missing", sorted(REQUIRED_ENV))
def test_secrets_are_required(missing: str) -> None:
    env = {k: v for k, v in REQUIRED_ENV.items() if k != missing}
    r = compose("config", "-q", env=env)
    assert r.returncode != 0
    assert missing in r.stderr


def test_services_present(config: dict) -> None:
    services = config["services"]
    assert {"timescaledb", "mosquitto", *FLEET_SERVICES} <= set(services)
    assert services["timescaledb"]["image"].startswith("timescale/timescaledb:latest-pg1")
    assert services["mosquitto"]["image"] == "eclipse-mosquitto:2"
    assert "simulator" in services["simulator"]["profiles"]
    assert services["simulator"]["command"][:2] == ["simulate", "--register"]
    for name in ("timescaledb", "mosquitto"):
        assert "healthcheck" in services[name], name
    assert any("tsdata" in str(v) for v in services["timescaledb"]["volumes"])


def test_ingest_is_scaled_on_a_shared_subscription(config: dict) -> None:
    ingest = config["services"]["ingest"]
    assert ingest["deploy"]["replicas"] >= 2
    assert ingest["environment"]["FLEET_INGEST_SHARE_GROUP"] == "ingest"
    # Replicas share a configuration, so each claims its own stable client id (its own persistent session).
    assert ingest["environment"]["FLEET_INGEST_CLIENT_ID"] == "fleet-ingest-{slot}"
    # the scaled workers share one database: state coalesced (docs/ingest.md)
    assert int(ingest["environment"]["FLEET_INGEST_STATE_FLUSH_MS"]) > 0
    assert ingest["command"] == ["ingest"]


def test_fleet_services_share_production_settings(config: dict) -> None:
    fields = {f"FLEET_{name.upper()}" for name in Settings.model_fields}
    for name in FLEET_SERVICES:
        env = config["services"][name]["environment"]
        assert env["FLEET_ENVIRONMENT"] == "production", name
        assert env["FLEET_DATABASE_URL"].startswith(
            "postgresql://postgres:compose-test-password@timescaledb:5432/"
        )
        assert env["FLEET_MQTT_URL"] == "mqtt://mosquitto:1883"
        assert env["FLEET_SECRET_KEY"] == REQUIRED_ENV["FLEET_SECRET_KEY"]
        unknown = {k for k in env if k.startswith("FLEET_")} - fields
        assert not unknown, f"{name} sets variables that Settings does not read: {unknown}"
        # The production settings must validate as the services will load them.
        Settings(**{k[len("FLEET_") :].lower(): v for k, v in env.items() if k in fields})
    migrate = config["services"]["migrate"]
    assert migrate["command"] == ["migrate"]
    assert migrate["depends_on"]["timescaledb"]["condition"] == "service_healthy"
    for name in ("api", "ingest", "monitor"):
        assert (
            config["services"][name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        )


def test_mosquitto_conf_queues_for_offline_sessions() -> None:
    conf = (ROOT / "deploy" / "mosquitto.conf").read_text()
    settings = dict(
        line.split(None, 1)
        for line in conf.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    assert settings["listener"].split()[0] == "1883"
    assert settings["persistence"] == "true"
    assert int(settings["max_queued_messages"]) >= 1_000_000


def test_dockerfile_installs_every_package() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert 'ENTRYPOINT ["fleet"]' in text
    assert re.search(r"^RUN (.*\\\n)*\s*(&& )?pip install \.", text, re.M)
    # the parser's compiled fast path must be built in the image (gcc is there while pip installs)
    assert "import fleetcore.protocol._fastparse" in text
    assert re.search(r"^USER (?!root)\w+", text, re.M)
    pyproject = (ROOT / "pyproject.toml").read_text()
    found = re.search(r"include = \[(.*?)\]", pyproject)
    assert found is not None
    packages = found.group(1)
    for pkg in re.findall(r'"(\w+)\*"', packages):
        assert re.search(rf"^COPY {pkg} ", text, re.M), f"Dockerfile does not copy package {pkg}"


def test_deploy_doc_lists_every_setting() -> None:
    doc = (ROOT / "docs" / "deploy.md").read_text()
    missing = [
        f"FLEET_{name.upper()}" for name in Settings.model_fields if f"`FLEET_{name.upper()}`" not in doc
    ]
    assert not missing, f"docs/deploy.md configuration table lacks {missing}"
