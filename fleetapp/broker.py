"""`fleet broker`: keep Mosquitto's password and ACL files in step with broker_accounts, and manage accounts.

`fleet broker sync` runs beside the broker (same host or volume): it renders the password_file and acl_file from
the database, replaces them atomically when they changed, and sends the broker SIGHUP (Mosquitto re-reads both on
it). With --watch it follows LISTEN/NOTIFY, so an issued, rotated or revoked credential reaches the broker within a
second, and re-renders every WATCH_FALLBACK_S anyway in case a notification was missed.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import tempfile
import threading
from pathlib import Path

import psycopg

from backoffice.broker import service as accounts
from backoffice.broker.models import SERVICE_ROLES
from fleetcore.db import connect
from fleetcore.errors import CliError
from fleetcore.runtime import stop_on_signals
from fleetcore.settings import Settings, get_settings

log = logging.getLogger(__name__)

WATCH_FALLBACK_S = 60.0
TELTONIKA_TOPIC = Settings.model_fields["teltonika_topic"].default
CLI_ACTOR = {"username": "cli"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("broker", help="device identity at the MQTT broker: accounts and the broker's files")
    bsub = p.add_subparsers(dest="broker_command", metavar="SUBCOMMAND", required=True)
    s = bsub.add_parser("sync", help="write Mosquitto's password_file and acl_file from broker_accounts")
    s.add_argument("--passwd", type=Path, required=True, help="Mosquitto password_file to write")
    s.add_argument("--acl", type=Path, required=True, help="Mosquitto acl_file to write")
    s.add_argument(
        "--pid-file", type=Path, help="the broker's pid_file: send it SIGHUP when the files changed"
    )
    s.add_argument("--watch", action="store_true", help="keep running and follow changes (LISTEN/NOTIFY)")
    s.set_defaults(func=cmd_sync)
    a = bsub.add_parser("add-service", help="create a service account (ingest, monitor, simulator, gateway)")
    a.add_argument("username")
    a.add_argument("--role", required=True, choices=SERVICE_ROLES)
    a.set_defaults(func=cmd_add_service)
    d = bsub.add_parser(
        "issue-device", help="issue a registered device's credential (prints the secret once)"
    )
    d.add_argument("device_id")
    d.set_defaults(func=cmd_issue_device)


def _write_if_changed(path: Path, text: str) -> bool:
    """Replace `path` atomically with `text` (owner and mode kept, else those of its folder); True if it changed."""
    try:
        if path.read_text() == text:
            return False
    except FileNotFoundError:
        pass
    ref = path if path.exists() else path.parent
    st = ref.stat()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, (st.st_mode & 0o640) if path.exists() else 0o640)
        if os.geteuid() == 0:
            os.chown(tmp, st.st_uid, st.st_gid)  # the broker drops to its own user before it reads these
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def sync_once(
    conn: psycopg.Connection,
    *,
    topic_root: str,
    passwd: Path,
    acl: Path,
    pid_file: Path | None,
    teltonika_topic: str = TELTONIKA_TOPIC,
) -> bool:
    """Render and write both files; SIGHUP the broker when either changed. Returns whether anything changed."""
    changed = _write_if_changed(passwd, accounts.render_passwd(conn))
    acl_text = accounts.render_acl(conn, topic_root=topic_root, teltonika_topic=teltonika_topic)
    changed = _write_if_changed(acl, acl_text) or changed
    conn.commit()
    if changed and pid_file is not None:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, signal.SIGHUP)
        log.info("broker accounts changed: files rewritten, broker (pid %d) reloaded", pid)
    return changed


def watch(
    url: str,
    *,
    topic_root: str,
    passwd: Path,
    acl: Path,
    pid_file: Path | None,
    stop: threading.Event,
    teltonika_topic: str = TELTONIKA_TOPIC,
) -> None:
    """Sync now, then on every change notification (and every WATCH_FALLBACK_S) until `stop` is set."""
    with connect(url) as conn, psycopg.connect(url, autocommit=True) as listener:
        listener.execute(f"LISTEN {accounts.CHANNEL}")
        while True:
            sync_once(
                conn,
                topic_root=topic_root,
                passwd=passwd,
                acl=acl,
                pid_file=pid_file,
                teltonika_topic=teltonika_topic,
            )
            if stop.is_set():
                return
            # notifies() returns after the timeout with nothing; any notification means "render again".
            for _ in listener.notifies(timeout=1.0, stop_after=1):
                break


def cmd_sync(args: argparse.Namespace) -> int:
    settings = get_settings()
    url = settings.require_database_url()
    if args.pid_file is not None and not args.pid_file.exists():
        raise CliError(f"no pid file {args.pid_file}")
    if args.watch:
        watch(
            url,
            topic_root=settings.topic_root,
            passwd=args.passwd,
            acl=args.acl,
            pid_file=args.pid_file,
            stop=stop_on_signals(),
            teltonika_topic=settings.teltonika_topic,
        )
        return 0
    with connect(url) as conn:
        changed = sync_once(
            conn,
            topic_root=settings.topic_root,
            passwd=args.passwd,
            acl=args.acl,
            pid_file=args.pid_file,
            teltonika_topic=settings.teltonika_topic,
        )
    print("broker files " + ("updated" if changed else "unchanged"))
    return 0


def cmd_add_service(args: argparse.Namespace) -> int:
    with connect(get_settings().require_database_url()) as conn:
        secret, account = accounts.create_service(
            conn, username=args.username, role=args.role, actor=CLI_ACTOR
        )
    print(f"{account['username']} ({account['role']}): {secret}")
    print("shown once: put it in that service's FLEET_MQTT_URL (mqtt://USER:SECRET@host:port)")
    return 0


def cmd_issue_device(args: argparse.Namespace) -> int:
    with connect(get_settings().require_database_url()) as conn:
        secret, account = accounts.issue_device(conn, device_id=args.device_id, actor=CLI_ACTOR)
    print(f"{account['username']}: {secret}")
    return 0
