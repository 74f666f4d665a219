"""Database access: connections, pools and the migration runner."""

from __future__ import annotations

import logging
import re
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from fleetcore.settings import Settings

log = logging.getLogger(__name__)

# Connections made here return dict rows (dict_row); typed loosely so services need no casts.
Conn = psycopg.Connection[Any]

MIGRATION_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any constant shared by every process that migrates; serialises concurrent `fleet migrate`.
MIGRATION_LOCK_ID = 7_246_001


def one(cur: psycopg.Cursor[Any]) -> dict:
    """The row of a query that always returns exactly one (aggregate, RETURNING, now())."""
    row = cur.fetchone()
    if row is None:
        raise RuntimeError("query returned no row")
    return row


def scalar(cur: psycopg.Cursor[Any]) -> Any:
    """The first column of a one-row query, whether the connection returns dict or tuple rows."""
    row = cur.fetchone()
    if row is None:
        raise RuntimeError("query returned no row")
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


def like_contains(text: str | None) -> str | None:
    """An ILIKE pattern matching `text` anywhere, with LIKE wildcards in it taken literally."""
    if text is None:
        return None
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def connect(url: str, *, autocommit: bool = False) -> Conn:
    """Open one connection whose rows are dicts."""
    return psycopg.connect(url, autocommit=autocommit, row_factory=dict_row)


def make_pool(url: str, *, min_size: int = 1, max_size: int = 10, name: str = "fleet") -> ConnectionPool:
    """A connection pool whose connections return rows as dicts."""
    return ConnectionPool(
        url,
        min_size=min_size,
        max_size=max_size,
        name=name,
        kwargs={"row_factory": dict_row},
        open=True,
    )


def migrations_dir() -> Path:
    return Path(str(resources.files("fleetcore") / "migrations"))


def list_migrations() -> list[tuple[int, str, Path]]:
    """Numbered migrations, in order."""
    found = []
    for path in sorted(migrations_dir().glob("*.sql")):
        m = MIGRATION_RE.match(path.name)
        if not m:
            raise RuntimeError(f"badly named migration file: {path.name}")
        found.append((int(m.group(1)), m.group(2), path))
    versions = [v for v, _, _ in found]
    if len(versions) != len(set(versions)):
        raise RuntimeError("two migration files share a number")
    return found


def timescale_available(conn: Conn) -> bool:
    n = scalar(conn.execute("SELECT count(*) AS n FROM pg_available_extensions WHERE name = 'timescaledb'"))
    if not n:
        return False
    # The extension also needs to be preloaded by the server to be created.
    s = scalar(conn.execute("SELECT current_setting('shared_preload_libraries') AS s"))
    return "timescaledb" in s


def uses_timescale(conn: Conn) -> bool:
    """True when this database has the timescaledb extension created."""
    return bool(scalar(conn.execute("SELECT count(*) AS n FROM pg_extension WHERE extname = 'timescaledb'")))


def migrate(url: str, settings: Settings) -> list[str]:
    """Apply pending numbered migrations, then the re-runnable TimescaleDB step. Returns what was applied."""
    applied: list[str] = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_ID,))
        try:
            want_ts = settings.timescale
            have_ts = timescale_available(conn)
            if want_ts == "on" and not have_ts:
                raise RuntimeError("FLEET_TIMESCALE=on but the server has no preloaded timescaledb extension")
            if (want_ts == "on" or (want_ts == "auto" and have_ts)) and not uses_timescale(conn):
                conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
                applied.append("extension timescaledb")
            conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version integer PRIMARY KEY,
                       name text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
            for version, name, path in list_migrations():
                if version in done:
                    continue
                with conn.transaction():
                    conn.execute(path.read_text())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name)
                    )
                applied.append(path.name)
                log.info("applied migration %s", path.name)
            if uses_timescale(conn):
                conn.execute(
                    "SELECT set_config('fleet.chunk_interval', %s, false)",
                    (settings.readings_chunk_interval,),
                )
                for path in sorted((migrations_dir() / "timescale").glob("*.sql")):
                    with conn.transaction():
                        conn.execute(path.read_text())
                applied.append("timescale step")
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_ID,))
    return applied


def update_columns(conn: Conn, *, table: str, key: str, key_value: object, values: dict[str, object]) -> dict:
    """UPDATE one row's columns (identifiers quoted by psycopg.sql) and its updated_at; returns the new row."""
    query = sql.SQL("UPDATE {} SET {}, updated_at = now() WHERE {} = %s RETURNING *").format(
        sql.Identifier(table),
        sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in values),
        sql.Identifier(key),
    )
    return one(conn.execute(query, (*values.values(), key_value)))
