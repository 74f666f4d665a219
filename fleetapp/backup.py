"""`fleet backup` and `fleet restore`: a whole database as pg_dump's custom format, with a manifest that proves it.

A backup is a folder: `fleet.dump` (pg_dump -Fc) and `manifest.json` (when, from which schema version, the dump's
SHA-256, and each table's row count and content checksum). `fleet restore` checks the dump against its SHA-256,
restores it into an empty database (TimescaleDB's pre/post-restore steps included when the dump has hypertables),
and then recomputes every table's count and checksum and compares them with the manifest: a restore that does not
reproduce the data is reported as failed. Point-in-time recovery for production is WAL archiving (docs/deploy.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from fleetcore.db import connect, scalar, uses_timescale
from fleetcore.errors import CliError
from fleetcore.settings import get_settings

DUMP_NAME = "fleet.dump"
MANIFEST_NAME = "manifest.json"
FORMAT_VERSION = 1
CHUNK = 1 << 20


def register(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("backup", help="dump the database (pg_dump custom format) with a verifiable manifest")
    b.add_argument("--out", type=Path, required=True, help="folder to create for the backup")
    b.add_argument(
        "--counts-only",
        action="store_true",
        help="record row counts but no content checksums (faster on a large readings history)",
    )
    b.set_defaults(func=cmd_backup)
    r = sub.add_parser("restore", help="restore a `fleet backup` into an empty database and verify it")
    r.add_argument("--from", dest="src", type=Path, required=True, help="the backup folder")
    r.add_argument("--into", help="libpq URL of the empty target database (default FLEET_DATABASE_URL)")
    r.set_defaults(func=cmd_restore)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def _user_tables(conn: psycopg.Connection) -> list[tuple[str, str]]:
    """(schema, table) of every application table: public's, including hypertables (their chunks are inside)."""
    rows = conn.execute(
        """SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE c.relkind IN ('r', 'p') AND n.nspname = 'public' AND NOT c.relispartition
            ORDER BY 1, 2"""
    ).fetchall()
    return [(r["nspname"], r["relname"]) if isinstance(r, dict) else (r[0], r[1]) for r in rows]


def table_facts(conn: psycopg.Connection, *, checksums: bool = True) -> dict[str, dict[str, Any]]:
    """Each table's row count and (optionally) an order-independent checksum of its rows' text."""
    facts: dict[str, dict[str, Any]] = {}
    for schema, table in _user_tables(conn):
        ident = sql.Identifier(schema, table)
        n = scalar(conn.execute(sql.SQL("SELECT count(*) FROM {}").format(ident)))
        entry: dict[str, Any] = {"rows": int(n)}
        if checksums:
            entry["md5"] = scalar(
                conn.execute(
                    sql.SQL(
                        "SELECT coalesce(md5(string_agg(md5(t::text), '' ORDER BY md5(t::text))), '') FROM {} t"
                    ).format(ident)
                )
            )
        facts[f"{schema}.{table}"] = entry
    return facts


def backup(url: str, out: Path, *, checksums: bool = True) -> dict[str, Any]:
    """Write `out`/fleet.dump and `out`/manifest.json; returns the manifest."""
    if out.exists() and any(out.iterdir()):
        raise CliError(f"{out} exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    dump = out / DUMP_NAME
    # One snapshot for the facts and the dump: the facts are read in a REPEATABLE READ transaction whose snapshot
    # pg_dump then uses (--snapshot), so both describe exactly the same data even while the platform writes.
    with connect(url) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        snapshot = scalar(conn.execute("SELECT pg_export_snapshot()"))
        facts = table_facts(conn, checksums=checksums)
        timescale = uses_timescale(conn)
        migration = scalar(conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations"))
        server = scalar(conn.execute("SHOW server_version"))
        r = subprocess.run(
            ["pg_dump", "--format=custom", f"--snapshot={snapshot}", f"--file={dump}", f"--dbname={url}"],
            capture_output=True,
            text=True,
        )
        conn.rollback()
    if r.returncode != 0:
        raise CliError(f"pg_dump failed: {r.stderr.strip()}")
    manifest = {
        "format": FORMAT_VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "server_version": server,
        "schema_migration": migration,
        "timescaledb": timescale,
        "dump": {"file": DUMP_NAME, "bytes": dump.stat().st_size, "sha256": _file_sha256(dump)},
        "checksums": checksums,
        "tables": facts,
    }
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def restore(src: Path, url: str) -> dict[str, Any]:
    """Restore `src` into the empty database at `url` and verify it against the manifest; returns a report."""
    try:
        manifest = json.loads((src / MANIFEST_NAME).read_text())
    except (OSError, ValueError) as exc:
        raise CliError(f"{src}: no readable {MANIFEST_NAME} ({exc})") from None
    dump = src / manifest["dump"]["file"]
    if _file_sha256(dump) != manifest["dump"]["sha256"]:
        raise CliError(f"{dump}: SHA-256 does not match the manifest (corrupt or altered)")
    with connect(url, autocommit=True) as conn:
        if _user_tables(conn):
            raise CliError("the target database is not empty; restore into a new database")
        if manifest["timescaledb"]:
            conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            conn.execute("SELECT timescaledb_pre_restore()")
        r = subprocess.run(
            ["pg_restore", "--exit-on-error", "--no-owner", f"--dbname={url}", str(dump)],
            capture_output=True,
            text=True,
        )
        if manifest["timescaledb"]:
            conn.execute("SELECT timescaledb_post_restore()")
        if r.returncode != 0:
            raise CliError(f"pg_restore failed: {r.stderr.strip()}")
        facts = table_facts(conn, checksums=manifest["checksums"])
    expected = manifest["tables"]
    differences = {
        t: {"backup": expected.get(t), "restored": facts.get(t)}
        for t in sorted(set(expected) | set(facts))
        if expected.get(t) != facts.get(t)
    }
    return {"tables": len(facts), "rows": sum(f["rows"] for f in facts.values()), "differences": differences}


def cmd_backup(args: argparse.Namespace) -> int:
    if shutil.which("pg_dump") is None:
        raise CliError("pg_dump is not installed (Debian: postgresql-client)")
    m = backup(get_settings().require_database_url(), args.out, checksums=not args.counts_only)
    rows = sum(t["rows"] for t in m["tables"].values())
    print(f"backup in {args.out}: {len(m['tables'])} tables, {rows:,} rows, {m['dump']['bytes']:,} bytes")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    url = args.into or get_settings().require_database_url()
    report = restore(args.src, url)
    if report["differences"]:
        print(json.dumps(report["differences"], indent=1, default=str))
        print(f"restore FAILED verification: {len(report['differences'])} table(s) differ from the backup")
        return 1
    print(f"restored and verified {report['tables']} tables, {report['rows']:,} rows")
    return 0
