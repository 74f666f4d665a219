"""`fleet backup` / `fleet restore`: a round trip reproduces every table's rows, and a bad backup is refused."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path

import psycopg
import pytest

from fleetapp.backup import MANIFEST_NAME, backup, restore, table_facts
from fleetcore.db import Conn, connect, one
from fleetcore.errors import CliError
from tests import factories
from tests.conftest import ADMIN_URL, db_url_for

pytestmark = [pytest.mark.db, pytest.mark.timescale]


def _create_db() -> tuple[str, str]:
    name = f"fleet_r_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    return name, db_url_for(name)


def _drop_db(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(
            psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psycopg.sql.Identifier(name))
        )


def _some_data(conn: Conn) -> None:
    v = factories.vehicle(conn)
    factories.user(conn, role="finance")
    t0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    for i in range(300):  # spread over two days: more than one hypertable chunk
        conn.execute(
            """INSERT INTO readings (ts, device_id, vehicle_id, kind, seq, lat, lon, speed_kmh, dtc)
               VALUES (%s, %s, %s, 'telemetry', %s, %s, 13.4, %s, %s)""",
            (
                t0 + dt.timedelta(minutes=10 * i),
                v["device_id"],
                v["id"],
                i,
                52.5 + i / 1e4,
                i % 90,
                ["P0128"] if i % 50 == 0 else None,
            ),
        )


def test_backup_drop_restore_reproduces_every_table(db_url: str, tmp_path: Path) -> None:
    with connect(db_url, autocommit=True) as conn:
        _some_data(conn)
        before = table_facts(conn)
    manifest = backup(db_url, tmp_path / "b")
    assert manifest["tables"] == before and manifest["timescaledb"] is True
    assert manifest["tables"]["public.readings"]["rows"] == 300

    # drop the database, recreate it empty under the same name, restore, compare
    name = db_url.rsplit("/", 1)[1]
    _drop_db(name)
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(name)))
    report = restore(tmp_path / "b", db_url)
    assert report["differences"] == {}
    with connect(db_url, autocommit=True) as conn:
        assert table_facts(conn) == before
        # the restored readings table is still a hypertable with its chunks
        n = one(
            conn.execute(
                "SELECT count(*) AS n FROM timescaledb_information.chunks WHERE hypertable_name = 'readings'"
            )
        )["n"]
        assert n >= 2


def test_a_corrupt_dump_or_a_non_empty_target_is_refused(db_url: str, tmp_path: Path) -> None:
    with connect(db_url, autocommit=True) as conn:
        _some_data(conn)
    backup(db_url, tmp_path / "b")
    with pytest.raises(CliError, match="not empty"):
        restore(tmp_path / "b", db_url)
    dump = tmp_path / "b" / json.loads((tmp_path / "b" / MANIFEST_NAME).read_text())["dump"]["file"]
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    name, url = _create_db()
    try:
        with pytest.raises(CliError, match="SHA-256"):
            restore(tmp_path / "b", url)
    finally:
        _drop_db(name)
    with pytest.raises(CliError, match="not empty"):
        backup(db_url, tmp_path / "b")
