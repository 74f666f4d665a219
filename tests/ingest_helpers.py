"""Process fixtures for ingest fault tests and the benchmark: a private Mosquitto and a private PostgreSQL.

The shared broker keeps Debian's default `max_queued_messages 1000`, which drops a persistent session's backlog,
and the shared PostgreSQL must never be restarted, so tests that queue or restart use their own servers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fleetapp.embedded import free_port
from fleetcore.settings import Settings
from tests.waiting import wait_until

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def wait_port(port: int, timeout: float = 15.0) -> None:
    """Block until something accepts connections on 127.0.0.1:port."""

    def accepts() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
        return False

    wait_until(accepts, timeout=timeout, interval=0.05, message=f"nothing listening on port {port}")


class Mosquitto:
    """A private Mosquitto with unbounded per-session queues, optionally persistent across restarts."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        persistence: bool = False,
        authenticated: bool = False,
        tls: tuple[Path, Path, Path] | None = None,
    ) -> None:
        self.workdir = workdir
        # With `authenticated`, no anonymous access: accounts and rights come from passwd_file and acl_file
        # (written by `fleet broker sync`, which must run before start()).
        self.passwd_file = workdir / "passwd"
        self.acl_file = workdir / "acl"
        if os.geteuid() == 0:
            # Started as root, Mosquitto drops to the `mosquitto` user, which must be able to write here
            # (log, persistence file).
            with contextlib.suppress(LookupError, OSError):
                shutil.chown(workdir, "mosquitto")
        self.port = port or free_port()
        self.conf = workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            # (CA certificate, server certificate, server key): this listener speaks MQTT over TLS only.
            *([f"cafile {tls[0]}", f"certfile {tls[1]}", f"keyfile {tls[2]}"] if tls else []),
            *(
                ["allow_anonymous false", f"password_file {self.passwd_file}", f"acl_file {self.acl_file}"]
                if authenticated
                else ["allow_anonymous true"]
            ),
            # A persistent session's backlog must never be dropped (Debian's default is 1000). Not 0 ("no limit"):
            # with 0, Mosquitto 2.0 skips the Receive Maximum check for live messages (db__ready_for_flight).
            "max_queued_messages 100000000",
            "max_queued_bytes 0",
            # MQTT 5 clients announce their own Receive Maximum; this is the default for older clients.
            "max_inflight_messages 1000",
            "log_type error",
            "log_type warning",
            f"log_dest file {workdir / 'mosquitto.log'}",
        ]
        if persistence:
            lines += ["persistence true", f"persistence_location {workdir}/", "autosave_interval 3600"]
        self.conf.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def reload(self) -> None:
        """SIGHUP: Mosquitto re-reads its password and ACL files."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)


@contextlib.contextmanager
def mosquitto(persistence: bool = False) -> Iterator[Mosquitto]:
    """A running private Mosquitto, stopped and removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="fleet-mosq-"))
    m = Mosquitto(d, persistence=persistence)
    m.start()
    try:
        yield m
    finally:
        m.stop()
        shutil.rmtree(d, ignore_errors=True)


class PrivatePostgres:
    """A throw-away PostgreSQL 15 cluster (with TimescaleDB preloaded) that a test may stop and start."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.data = workdir / "data"
        self.log = workdir / "pg.log"

    def _as_postgres(self, *cmd: str) -> subprocess.CompletedProcess:
        # initdb and postgres refuse to run as root.
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        return subprocess.run([*prefix, *cmd], check=True, capture_output=True, text=True)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres", "postgres")
        self._as_postgres(
            str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )

    def start(self) -> None:
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.workdir} "
            "-c shared_preload_libraries=timescaledb -c fsync=off -c timescaledb.telemetry_level=off"
        )
        self._as_postgres(
            str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", opts, "-w", "start"
        )

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A running private PostgreSQL cluster, removed afterwards."""
    d = Path(tempfile.mkdtemp(prefix="fleet-pg-"))
    pg = PrivatePostgres(d)
    pg.init()
    pg.start()
    try:
        yield pg
    finally:
        with contextlib.suppress(Exception):
            pg.stop("immediate")
        shutil.rmtree(d, ignore_errors=True)


# --------------------------------------------------------------------------------------------- publishing


def mqtt_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_string(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return len(b).to_bytes(2, "big") + b


# Outstanding (un-PUBACKed) publishes the raw publisher allows: far below the 65,535 packet ids.
RAW_WINDOW = 5000


def publish_raw(
    port: int,
    messages: list[tuple[str, bytes]],
    *,
    client_id: str = "",
    host: str = "127.0.0.1",
    retain: bool = False,
) -> float:
    """Publish QoS 1 messages as fast as the broker takes them (a minimal MQTT 3.1.1 client); returns seconds.

    paho publishes ~4,000 QoS 1 msg/s here; fault tests and the benchmark need 10-100× that to build backlogs.
    Returns once every message is PUBACKed, i.e. owned by the broker.
    """
    import uuid

    cid = client_id or f"rawpub-{uuid.uuid4().hex[:8]}"
    t0 = time.perf_counter()
    with socket.create_connection((host, port)) as s:
        body = mqtt_string("MQTT") + bytes([4, 0x02]) + (60).to_bytes(2, "big") + mqtt_string(cid)
        s.sendall(b"\x10" + mqtt_varint(len(body)) + body)
        connack = _recv_exact(s, 4)
        if connack[0] != 0x20 or connack[3] != 0:
            raise ConnectionError(f"CONNACK refused: {connack!r}")
        header = 0x32 | (0x01 if retain else 0)
        acked = 0
        sent = 0
        buf = bytearray()
        pending = b""
        total = len(messages)
        while acked < total:
            chunk = bytearray()
            while sent < total and sent - acked < RAW_WINDOW and len(chunk) < 256 * 1024:
                topic, payload = messages[sent]
                mid = sent % 65535 + 1
                var = mqtt_string(topic) + mid.to_bytes(2, "big")
                chunk += bytes([header]) + mqtt_varint(len(var) + len(payload)) + var + payload
                sent += 1
            if chunk:
                s.sendall(chunk)
            data = s.recv(1 << 20)
            if not data:
                raise ConnectionError("broker closed the connection")
            buf = bytearray(pending) + data
            n_full = len(buf) // 4
            for i in range(n_full):
                if buf[i * 4] != 0x40:
                    raise ConnectionError(f"unexpected packet {buf[i * 4]:#x} while waiting for PUBACK")
            acked += n_full
            pending = bytes(buf[n_full * 4 :])
        s.sendall(b"\xe0\x00")
    return time.perf_counter() - t0


def _recv_exact(s: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        part = s.recv(n - len(data))
        if not part:
            raise ConnectionError("connection closed")
        data += part
    return data


def create_session(port: int, client_id: str, topics: list[str], expiry_s: int = 3600) -> None:
    """Register a persistent MQTT 5 session with QoS 1 subscriptions, then disconnect (the broker queues for it)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    subacks: dict[int, list] = {}  # packet id → reason codes, filled by paho's network thread
    c.on_subscribe = lambda client, userdata, mid, reason_codes, properties: subacks.__setitem__(
        mid, reason_codes
    )
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = expiry_s
    c.connect("127.0.0.1", port, clean_start=True, properties=props)
    c.loop_start()
    try:
        wait_until(c.is_connected, timeout=10, interval=0.02, message=f"no CONNACK from port {port}")
        infos = [c.subscribe(t, qos=1) for t in topics]
        assert all(rc == 0 for rc, _ in infos)
        # a subscription is active once the broker has processed it, which its SUBACK says
        wait_until(
            lambda: all(mid in subacks for _, mid in infos), timeout=10, interval=0.02, message="no SUBACK"
        )
        assert not [rc for codes in subacks.values() for rc in codes if rc.is_failure], subacks
    finally:
        c.disconnect()
        c.loop_stop()


# --------------------------------------------------------------------------------------------- test traffic


def telemetry_json(seq: int, ts_ms: int, i: int = 0) -> bytes:
    """A valid JSON telemetry sample whose values vary with i."""
    import json

    return json.dumps(
        {
            "ts": ts_ms,
            "seq": seq,
            "lat": 52.5 + (i % 1000) * 1e-4,
            "lon": 13.4 + (i % 700) * 1e-4,
            "speed_kmh": float(i % 120),
            "heading_deg": float(i % 360),
            "odometer_km": 10000.0 + i * 0.01,
            "fuel_pct": 50.0,
            "battery_v": 14.1,
            "ignition": True,
            "rpm": 800 + i % 3000,
            "coolant_c": 88,
        },
        separators=(",", ":"),
    ).encode()


def obd_payload(seq: int, ts_ms: int, i: int = 0, extra_frames: list[str] | None = None) -> bytes:
    """A valid raw-OBD message: rpm, speed, coolant, fuel level, module voltage."""
    import json

    from fleetcore.protocol.obd import encode_pid

    frames = [
        encode_pid(0x0C, 800 + i % 3000),
        encode_pid(0x0D, i % 120),
        encode_pid(0x05, 85),
        encode_pid(0x2F, 40.0),
        encode_pid(0x42, 14.0),
    ]
    return json.dumps({"ts": ts_ms, "seq": seq, "frames": frames + (extra_frames or [])}).encode()


def nmea_payload(ts_ms: int, i: int = 0) -> bytes:
    """A valid RMC + GGA pair for the given time."""
    from datetime import UTC, datetime

    from fleetcore.protocol.nmea import encode_gga, encode_rmc

    ts = datetime.fromtimestamp(ts_ms / 1000, UTC)
    lat, lon = 48.13 + (i % 500) * 1e-4, 11.58 + (i % 300) * 1e-4
    return (
        encode_rmc(ts, lat, lon, float(i % 100), 90.0) + "\r\n" + encode_gga(ts, lat, lon, 520.0, 0.9, 9)
    ).encode()


def sample_message(root: str, device_id: str, protocol: str, seq: int, ts_ms: int) -> tuple[str, bytes]:
    """One valid sample in the device's protocol: (topic, payload)."""
    if protocol == "obd":
        return f"{root}/devices/{device_id}/obd", obd_payload(seq, ts_ms, seq)
    if protocol == "nmea":
        return f"{root}/devices/{device_id}/nmea", nmea_payload(ts_ms, seq)
    return f"{root}/devices/{device_id}/telemetry", telemetry_json(seq, ts_ms, seq)


def recent_ms(offset_s: float = 0.0) -> int:
    """Epoch milliseconds of now + offset, rounded to a whole second (NMEA carries centiseconds)."""
    return int(time.time() + offset_s) * 1000


# --------------------------------------------------------------------------------------------- running ingest


@contextlib.contextmanager
def ingest_worker(settings) -> Iterator:  # noqa: ANN001
    """Run one ingest worker in a thread; stop it (flush, ack, disconnect) on exit."""
    import threading

    from ingest.consumer import Consumer

    stop = threading.Event()
    consumer = Consumer(settings, stop)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            consumer.run()
        except BaseException as exc:  # surfaced to the test below
            errors.append(exc)

    t = threading.Thread(target=target, name="ingest-test", daemon=True)
    t.start()
    try:
        wait_until(
            lambda: consumer.subscribed.is_set() or errors,
            timeout=15,
            interval=0.02,
            message="ingest worker did not subscribe within 15 s",
        )
        yield consumer
    finally:
        stop.set()
        t.join(30)
        if errors:
            raise errors[0]


def count(url: str, query: str, *args: object) -> int:
    """One integer from a query."""
    import psycopg

    from fleetcore.db import scalar

    with psycopg.connect(url, autocommit=True) as c:
        return scalar(c.execute(query, args or None))


def ingest_settings(url: str, broker: Mosquitto, root: str, **kw: Any) -> Settings:
    """Settings for an ingest worker on `url` and the private `broker`, with a unique client id."""
    kw.setdefault("ingest_client_id", f"ingest-{uuid.uuid4().hex[:8]}")
    return Settings(environment="test", database_url=url, mqtt_url=broker.url, topic_root=root, **kw)
