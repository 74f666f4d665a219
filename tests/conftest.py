"""Shared fixtures: real PostgreSQL (TimescaleDB and plain), real Mosquitto, one database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

from fleetcore.db import Conn, connect, migrate
from fleetcore.settings import Settings

ADMIN_URL = os.environ.get("FLEET_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
MQTT_URL = os.environ.get("FLEET_TEST_MQTT", "mqtt://127.0.0.1:1883")
# Template names are unique per pytest process, so concurrent runs never drop each other's templates.
WORKER = f"{os.environ.get('PYTEST_XDIST_WORKER', 'gw')}_{os.getpid()}"
ENGINES = ("timescale", "plain")


def db_url_for(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


def _admin() -> psycopg.Connection:
    return psycopg.connect(ADMIN_URL, autocommit=True)


def _drop(conn: Conn, name: str) -> None:
    conn.execute(
        psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psycopg.sql.Identifier(name))
    )


@pytest.fixture(scope="session")
def templates() -> Iterator[dict[str, str]]:
    """A migrated template database per engine, made once per test session (and per xdist worker)."""
    names = {}
    with _admin() as admin:
        for engine in ENGINES:
            name = f"fleet_tpl_{engine}_{WORKER}"
            admin.execute(
                psycopg.sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(
                    psycopg.sql.Identifier(name)
                )
            ) if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() else None
            _drop(admin, name)
            admin.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
            settings = Settings(environment="test", timescale="on" if engine == "timescale" else "off")
            migrate(db_url_for(name), settings)
            # No connections to a template (TimescaleDB's scheduler would otherwise hold one and block copying).
            admin.execute(
                psycopg.sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(
                    psycopg.sql.Identifier(name)
                )
            )
            _terminate(admin, name)
            names[engine] = name
    yield names
    with _admin() as admin:
        for name in names.values():
            _drop(admin, name)


def _terminate(admin: psycopg.Connection, name: str) -> None:
    admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
        (name,),
    )


def _new_db(templates: dict[str, str], engine: str) -> Iterator[str]:
    name = f"fleet_t_{uuid.uuid4().hex[:12]}"
    with _admin() as admin:
        admin.execute(
            psycopg.sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                psycopg.sql.Identifier(name), psycopg.sql.Identifier(templates[engine])
            )
        )
    try:
        yield db_url_for(name)
    finally:
        with _admin() as admin:
            _drop(admin, name)


@pytest.fixture
def db_url(templates: dict[str, str]) -> Iterator[str]:
    """A fresh, migrated TimescaleDB database for this test."""
    yield from _new_db(templates, "timescale")


@pytest.fixture(params=ENGINES)
def any_db_url(request: pytest.FixtureRequest, templates: dict[str, str]) -> Iterator[str]:
    """The test runs once on TimescaleDB and once on plain PostgreSQL."""
    yield from _new_db(templates, request.param)


@pytest.fixture
def conn(db_url: str) -> Iterator[Conn]:
    with connect(db_url, autocommit=True) as c:
        yield c


@pytest.fixture
def topic_root() -> str:
    """A topic root of this test's own, so parallel tests never see each other's messages."""
    return f"test-{uuid.uuid4().hex[:10]}/fleet/v1"


@pytest.fixture
def settings(db_url: str, topic_root: str) -> Settings:
    return Settings(
        environment="test",
        database_url=db_url,
        mqtt_url=MQTT_URL,
        topic_root=topic_root,
        secret_key="test-secret-key-with-enough-length-0123456789",
        ingest_client_id=f"ingest-{uuid.uuid4().hex[:8]}",
        monitor_client_id=f"monitor-{uuid.uuid4().hex[:8]}",
        # the monitor's persistent session outlives the test on the shared broker: let it go soon after
        monitor_session_expiry_s=300,
    )


@pytest.fixture
def staff(settings: Settings, conn: Conn) -> Iterator[tuple[TestClient, dict, dict]]:
    """The app's TestClient with customer-service and dispatcher headers (order tests)."""
    from tests.test_orders_helpers import api, token

    with api(settings) as client:
        yield client, token(client, conn, "customer_service"), token(client, conn, "dispatcher")
