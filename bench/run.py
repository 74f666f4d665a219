"""`make bench`: ingest drain rate vs the broker's limit vs a naive consumer, and steady-state latency.

All four figures on the same machine, the same data and a private Mosquitto (unbounded session queues):
  1. drain: a backlog queued for ingest's persistent session, drained by `fleet ingest` to committed rows;
  2. broker limit: the same backlog drained by `mosquitto_sub` (persistent session, QoS 1) to /dev/null;
  3. naive: paho + one INSERT and COMMIT per message (on a smaller sample);
  4. steady state: N devices × 1 Hz for S seconds → publish→commit latency p50/p99 (ingest's lag histogram,
     the publisher stamps each sample with its publish time), CPU and RSS of the ingest process.
Results → bench/results.json and bench/results.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from fleetcore.contract import READING_COLUMNS
from fleetcore.db import migrate, scalar
from fleetcore.protocol.obd import encode_pid
from fleetcore.protocol.parse import process_message
from fleetcore.protocol.vin import with_check_digit
from fleetcore.settings import Settings
from tests.ingest_helpers import (
    _utf8,
    _varint,
    create_session,
    free_port,
    mosquitto,
    publish_raw,
    recent_ms,
    sample_message,
    wait_port,
)

HERE = Path(__file__).resolve().parent
ADMIN_URL = os.environ.get(
    "FLEET_BENCH_PG_ADMIN",
    os.environ.get("FLEET_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"),
)
KINDS = ("telemetry", "event", "obd", "nmea", "status")
# Device protocol mix of the benchmark traffic: mostly JSON units, some raw OBD dongles and NMEA trackers.
PROTOCOL_MIX = ("json", "json", "json", "obd", "nmea")
TARGET_BROKER_RATIO = 0.5
TARGET_NAIVE_RATIO = 20.0
TARGET_P99_S = 1.0
# FLEET_INGEST_STATE_FLUSH_MS of the extra drain that writes vehicle_state coalesced (the default upserts per batch)
COALESCED_FLUSH_MS = 500


def log(msg: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {msg}", flush=True)


# ------------------------------------------------------------------------------------------------ set-up


def make_database(devices: int) -> tuple[str, list[tuple[str, str]]]:
    """A fresh migrated database with `devices` registered vehicles; returns its URL and (device_id, protocol)."""

    name = f"fleet_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base, _, _ = ADMIN_URL.rpartition("/")
    url = f"{base}/{name}"
    migrate(url, Settings(environment="test"))
    rng = random.Random(1)
    chars = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
    devs = [(f"bench-{i:06d}", PROTOCOL_MIX[i % len(PROTOCOL_MIX)]) for i in range(devices)]
    with psycopg.connect(url, autocommit=False) as conn:
        sid = scalar(
            conn.execute(
                "INSERT INTO stations (code, name, lat, lon) VALUES ('BENCH', 'Bench', 52.5, 13.4) RETURNING id"
            )
        )
        vins = [with_check_digit("WVW" + "".join(rng.choice(chars) for _ in range(14))) for _ in devs]
        ids = [
            r[0]
            for r in conn.execute(
                """INSERT INTO vehicles (vin, plate, make, model, year, class, home_station_id)
               SELECT v, 'BX-' || n, 'Volkswagen', 'Golf', 2023, 'compact', %s
               FROM unnest(%s::text[], %s::int[]) AS u(v, n) RETURNING id""",
                (sid, vins, list(range(len(devs)))),
            ).fetchall()
        ]
        conn.execute(
            "INSERT INTO devices (device_id, protocol) SELECT * FROM unnest(%s::text[], %s::text[])",
            ([d for d, _ in devs], [p for _, p in devs]),
        )
        conn.execute(
            "INSERT INTO device_installs (device_id, vehicle_id) SELECT * FROM unnest(%s::text[], %s::bigint[])",
            ([d for d, _ in devs], ids),
        )
        conn.execute(
            "INSERT INTO vehicle_state (vehicle_id, device_id) SELECT * FROM unnest(%s::bigint[], %s::text[])",
            (ids, [d for d, _ in devs]),
        )
        conn.commit()
    return url, devs


def drop_database(url: str) -> None:
    name = url.rpartition("/")[2]
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def reset_tables(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE readings, device_events, ingest_rejections, ingest_quarantine")
        conn.execute("UPDATE ingest_counters SET value = 0")
        conn.execute("UPDATE vehicle_state SET ts = NULL, last_seen = NULL")


def backlog(root: str, devs: list[tuple[str, str]], n: int) -> list[tuple[str, bytes]]:
    """n distinct samples round-robin over the devices, 1 s apart per device, within the last day."""
    base = recent_ms(-22 * 3600)
    out: list[tuple[str, bytes]] = []
    seq = 0
    while len(out) < n:
        for d, (device_id, proto) in enumerate(devs):
            out.append(sample_message(root, device_id, proto, seq, base + seq * 1000 + d))
            if len(out) == n:
                break
        seq += 1
    return out


def topics(root: str) -> list[str]:
    return [f"{root}/devices/+/{k}" for k in KINDS]


def counter(url: str, name: str = "readings_stored") -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return scalar(conn.execute("SELECT value FROM ingest_counters WHERE name = %s", (name,)))


# ------------------------------------------------------------------------------------------------ measures


def ingest_env(
    url: str,
    broker_url: str,
    root: str,
    client_id: str,
    metrics_port: int | None = None,
    writers: int | None = None,
) -> dict[str, str]:
    env = {
        **os.environ,
        "FLEET_DATABASE_URL": url,
        "FLEET_MQTT_URL": broker_url,
        "FLEET_TOPIC_ROOT": root,
        "FLEET_INGEST_CLIENT_ID": client_id,
        "FLEET_ENVIRONMENT": "test",
    }
    if metrics_port:
        env["FLEET_INGEST_METRICS_PORT"] = str(metrics_port)
    if writers:
        env["FLEET_INGEST_WRITERS"] = str(writers)
    return env


def start_ingest(env: dict[str, str], logfile: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "fleetapp.cli", "ingest"]
    with logfile.open("ab") as f:
        return subprocess.Popen(args, env=env, stdout=f, stderr=f, cwd=HERE.parent)


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def measure_drain(
    url: str,
    broker,  # noqa: ANN001
    data: list,
    tmp: Path,
    workers: int = 1,
    writers: int | None = None,
    python_parser: bool = False,
    state_flush_ms: int = 0,
) -> dict:
    """Queue `data` for ingest's persistent session(s) while ingest is down, then time `fleet ingest` draining it.

    With workers > 1, that many `fleet ingest` processes share the stream through `$share/bench/...`; their
    sessions exist before the backlog is published, so Mosquitto spreads the backlog over them. With python_parser,
    the workers parse every message with the Python code (FLEET_INGEST_COMPILED_PARSER=false). With
    state_flush_ms > 0, vehicle_state is written coalesced (FLEET_INGEST_STATE_FLUSH_MS) instead of in each batch.
    """
    reset_tables(url)
    root = data[0][0].split("/devices/")[0]
    tag = uuid.uuid4().hex[:6]
    cids = [f"bench-ingest-{tag}-{i}" for i in range(workers)]
    # a share group of its own: sessions of an earlier drain of the same backlog (offline, not expired) would
    # otherwise be members too, and Mosquitto would queue part of this backlog for them
    share = f"bench{tag}" if workers > 1 else None
    for cid in cids:
        create_session(broker.port, cid, [f"$share/{share}/{t}" if share else t for t in topics(root)])
    publish_raw(broker.port, data)
    procs = []
    logs = [tmp / f"drain-{cid}.log" for cid in cids]
    # One polling connection for the whole run: a new connection every 50 ms would fork a PostgreSQL backend
    # 20 times a second on the 2 cores the drain itself needs.
    poll = psycopg.connect(url, autocommit=True)
    for cid, logfile in zip(cids, logs, strict=True):
        env = ingest_env(url, broker.url, root, cid, writers=writers)
        if share:
            env["FLEET_INGEST_SHARE_GROUP"] = share
        if python_parser:
            env["FLEET_INGEST_COMPILED_PARSER"] = "false"
        env["FLEET_INGEST_STATE_FLUSH_MS"] = str(state_flush_ms)
        procs.append(start_ingest(env, logfile))
    try:
        t0 = time.perf_counter()
        first = up = None
        n = len(data)
        rss_max = 0.0
        cpu_up: dict | None = None
        while True:
            # drained = every reading committed and the vehicle state of every message written (by default in
            # the batch's own transaction; coalesced, by the state thread after the batches: ingest.state)
            counts: dict[str, int] = dict(
                poll.execute(
                    "SELECT name, value FROM ingest_counters "
                    "WHERE name IN ('readings_stored', 'messages_state_applied')"
                ).fetchall()
            )
            c = counts.get("readings_stored", 0)
            if state_flush_ms > 0:
                c = min(c, counts.get("messages_state_applied", 0))
            with contextlib.suppress(OSError):
                rss_max = max(rss_max, max(proc_rss_mb(p.pid) for p in procs))
            now = time.perf_counter()
            if up is None and all(b"event=mqtt_up" in f.read_bytes() for f in logs):
                up = now  # every worker has imported its code and connected: draining starts here
                cpu_up = cpu_snapshot(procs, broker)
            if counts.get("readings_stored") and first is None:
                first = now
            if c >= n:
                cpu_end = cpu_snapshot(procs, broker)
                break
            if now - t0 > 1800:
                raise TimeoutError(f"drain stuck at {c}/{n}")
            time.sleep(0.05)
        total = time.perf_counter() - t0
    finally:
        poll.close()
        for proc in procs:
            stop(proc)
    stored = counter(url)
    connected = total - ((up or t0) - t0)
    # rate_msgs_s counts from process start (interpreter start-up and imports included, ~1 s), the
    # conservative figure the report uses; rate_from_connect_msgs_s is the worker's steady drain rate.
    return {
        "workers": workers,
        "state_flush_ms": state_flush_ms,
        "messages": n,
        "seconds_total": round(total, 3),
        "seconds_from_connect": round(connected, 3),
        "seconds_from_first_commit": round(total - ((first or t0) - t0), 3),
        "rate_msgs_s": round(n / total, 1),
        "rate_from_connect_msgs_s": round(n / connected, 1),
        "rss_mb_max_per_worker": round(rss_max, 1),
        "stored": stored,
        # from the MQTT connect to the last commit; the workers' start-up is outside this window
        "cpu_us_per_msg": cpu_budget(cpu_up, cpu_end, n, connected) if cpu_up else None,
    }


def measure_broker_limit(broker, data: list) -> dict:  # noqa: ANN001
    """The same backlog drained by mosquitto_sub (persistent session, QoS 1, acks every message) to /dev/null."""
    root = data[0][0].split("/devices/")[0]
    cid = f"bench-sub-{uuid.uuid4().hex[:6]}"
    create_session(broker.port, cid, topics(root))
    publish_raw(broker.port, data)
    args = [
        "mosquitto_sub",
        "-h",
        "127.0.0.1",
        "-p",
        str(broker.port),
        "-V",
        "mqttv5",
        "-c",
        "-i",
        cid,
        "-q",
        "1",
        "-x",
        "3600",
        "-C",
        str(len(data)),
    ]
    for t in topics(root):
        args += ["-t", t]
    t0 = time.perf_counter()
    subprocess.run(args, stdout=subprocess.DEVNULL, check=True, timeout=600)
    seconds = time.perf_counter() - t0
    return {"messages": len(data), "seconds": round(seconds, 3), "rate_msgs_s": round(len(data) / seconds, 1)}


def measure_naive(url: str, broker, data: list) -> dict:  # noqa: ANN001
    """paho (stock), parse, then one INSERT and one COMMIT per message."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    reset_tables(url)
    root = data[0][0].split("/devices/")[0]
    cid = f"bench-naive-{uuid.uuid4().hex[:6]}"
    create_session(broker.port, cid, topics(root))
    publish_raw(broker.port, data)
    conn = psycopg.connect(url, autocommit=False)
    vehicles: dict[str, int] = dict(
        conn.execute("SELECT device_id, vehicle_id FROM device_installs WHERE removed_at IS NULL").fetchall()
    )
    conn.commit()
    cols = ", ".join(READING_COLUMNS)
    stmt = f"INSERT INTO readings ({cols}, vehicle_id) VALUES ({', '.join(['%s'] * (len(READING_COLUMNS) + 1))}) ON CONFLICT DO NOTHING"
    done = threading.Event()
    seen = [0]

    def on_message(client, userdata, msg):  # noqa: ANN001
        r = process_message(root, msg.topic, msg.payload, now=datetime.now(UTC))
        for row in getattr(r, "readings", []):
            conn.execute(stmt, (*row, vehicles[row[1]]))
        conn.commit()
        seen[0] += 1
        if seen[0] >= len(data):
            done.set()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv5)
    c.on_message = on_message

    def on_connect(cl, *a) -> None:  # noqa: ANN001, ANN002
        for t in topics(root):
            cl.subscribe(t, qos=1)

    c.on_connect = on_connect
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 3600
    t0 = time.perf_counter()
    c.connect("127.0.0.1", broker.port, clean_start=False, properties=props)
    c.loop_start()
    done.wait(600)
    seconds = time.perf_counter() - t0
    c.disconnect()
    c.loop_stop()
    conn.close()
    return {
        "messages": len(data),
        "seconds": round(seconds, 3),
        "rate_msgs_s": round(len(data) / seconds, 1),
        "stored": counter_rows(url),
    }


def counter_rows(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return scalar(conn.execute("SELECT count(*) FROM readings"))


def _nmea_sentence(body: str) -> str:
    cs = 0
    for ch in body:
        cs ^= ord(ch)
    return f"${body}*{cs:02X}"


class FastPayloads:
    """Per-device payload templates with the time filled in per sample: the steady-state publisher shares the
    machine with ingest, so it must cost little (pynmea2 encoding alone would take ~0.3 ms per NMEA sample)."""

    def __init__(self, root: str, devs: list[tuple[str, str]]) -> None:
        self.items = []
        frames = json.dumps(
            [
                encode_pid(0x0C, 1800),
                encode_pid(0x0D, 50),
                encode_pid(0x05, 88),
                encode_pid(0x2F, 40.0),
                encode_pid(0x42, 14.1),
            ]
        )
        for device_id, proto in devs:
            kind = {"json": "telemetry", "obd": "obd", "nmea": "nmea"}[proto]
            self.items.append((f"{root}/devices/{device_id}/{kind}".encode(), proto, frames))

    def payload(self, i: int, seq: int, ts_ms: int) -> tuple[bytes, bytes]:
        topic, proto, frames = self.items[i]
        if proto == "json":
            return topic, (
                f'{{"ts":{ts_ms},"seq":{seq},"lat":52.52,"lon":13.405,"speed_kmh":42.5,"heading_deg":90.0,'
                f'"odometer_km":{10000 + seq * 0.01:.2f},"fuel_pct":50.0,"battery_v":14.1,"ignition":true,'
                f'"rpm":1800,"coolant_c":88}}'
            ).encode()
        if proto == "obd":
            return topic, f'{{"ts":{ts_ms},"seq":{seq},"frames":{frames}}}'.encode()
        t = datetime.fromtimestamp(ts_ms / 1000, UTC)
        hms = f"{t:%H%M%S}.{t.microsecond // 10000:02d}"
        rmc = _nmea_sentence(f"GPRMC,{hms},A,4807.80000,N,01134.80000,E,5.400,90.00,{t:%d%m%y},,,A")
        gga = _nmea_sentence(f"GPGGA,{hms},4807.80000,N,01134.80000,E,1,09,0.90,520.0,M,,M,,")
        return topic, f"{rmc}\r\n{gga}".encode()


class PacedPublisher(threading.Thread):
    """N devices × 1 Hz over one raw MQTT connection, each sample stamped with its publish time."""

    def __init__(self, port: int, root: str, devs: list[tuple[str, str]], seconds: float) -> None:
        super().__init__(daemon=True)
        self.port, self.root, self.devs, self.seconds = port, root, devs, seconds
        self.sent = 0
        self.late_ticks = 0
        self.fast = FastPayloads(root, devs)

    def run(self) -> None:
        ticks_per_s = 10  # spread each second's samples over 10 ticks, as real devices are not synchronised
        per_tick = max(1, len(self.devs) // ticks_per_s)
        with socket.create_connection(("127.0.0.1", self.port)) as s:
            body = (
                _utf8("MQTT")
                + bytes([4, 0x02])
                + (60).to_bytes(2, "big")
                + _utf8(f"pace-{uuid.uuid4().hex[:6]}")
            )
            s.sendall(b"\x10" + _varint(len(body)) + body)
            s.recv(4)
            s.setblocking(False)
            t_start = time.monotonic()
            tick = 0
            seq = 0
            while time.monotonic() - t_start < self.seconds:
                chunk = bytearray()
                lo = (tick % ticks_per_s) * per_tick
                # whole 10 ms steps: NMEA time has centiseconds, and the NMEA dedupe key is the time
                now_ms = int(time.time() * 100) * 10
                for i in range(lo, min(lo + per_tick, len(self.devs))):
                    topic, payload = self.fast.payload(i, seq, now_ms)
                    var = _utf8(topic) + ((self.sent % 65535) + 1).to_bytes(2, "big")
                    chunk += b"\x32" + _varint(len(var) + len(payload)) + var + payload
                    self.sent += 1
                s.setblocking(True)
                s.sendall(chunk)
                s.setblocking(False)
                try:
                    while s.recv(1 << 20):
                        pass
                except BlockingIOError:
                    pass
                tick += 1
                if tick % ticks_per_s == 0:
                    seq += 1
                delay = t_start + tick / ticks_per_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    self.late_ticks += 1
            s.setblocking(True)
            time.sleep(0.5)
            s.sendall(b"\xe0\x00")


def scrape(port: int) -> dict[float, float]:
    """The lag histogram buckets (cumulative) from the worker's /metrics."""
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    buckets: dict[float, float] = {}
    for fam in text_string_to_metric_families(text):
        if fam.name == "fleet_ingest_lag_seconds":
            for s in fam.samples:
                if s.name.endswith("_bucket"):
                    buckets[float(s.labels["le"])] = s.value
    return buckets


def quantile(q: float, before: dict[float, float], after: dict[float, float]) -> float | None:
    """histogram_quantile over the difference of two scrapes (linear within a bucket, as Prometheus does)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1]
    if total <= 0:
        return None
    rank = q * total
    prev_b, prev_c = 0.0, 0.0
    for b, c in zip(bounds, counts, strict=True):
        if c >= rank:
            if b == float("inf"):
                return prev_b
            return prev_b + (b - prev_b) * ((rank - prev_c) / max(c - prev_c, 1e-9))
        prev_b, prev_c = b, c
    return None


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pg_cpu_s() -> float | None:
    """CPU seconds of every PostgreSQL server process on this machine, finished backends included (the
    postmaster's children times hold them once it has reaped them); None when /proc does not show them."""
    total, found = 0.0, False
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        if comm != "postgres":
            continue
        f = stat.rsplit(")", 1)[1].split()
        total += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])  # utime stime cutime cstime
        found = True
    return total / os.sysconf("SC_CLK_TCK") if found else None


def cpu_snapshot(workers: list[subprocess.Popen], broker) -> dict[str, float | None]:  # noqa: ANN001
    """CPU seconds so far of the ingest workers, the PostgreSQL server and the broker."""
    return {
        "workers": sum(proc_cpu_s(p.pid) for p in workers),
        "postgres": pg_cpu_s(),
        "broker": proc_cpu_s(broker.proc.pid) if getattr(broker, "proc", None) else None,
    }


def cpu_budget(before: dict, after: dict, messages: int, seconds: float) -> dict:
    """µs of CPU per message by component between two snapshots, and how busy that kept the machine."""
    out: dict[str, float | None] = {}
    for k in before:
        a, b = before[k], after[k]
        out[k] = None if a is None or b is None else round((b - a) / messages * 1e6, 1)
    parts = [v for v in out.values() if v is not None]
    out["total"] = round(sum(parts), 1) if len(parts) == len(before) else None
    if out["total"] is not None:
        out["machine_busy_pct"] = round(
            out["total"] * messages / 1e6 / (seconds * (os.cpu_count() or 1)) * 100, 1
        )
    return out


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure_steady(  # noqa: ANN001
    url: str, broker, devs: list, seconds: float, tmp: Path, workers: int = 1, writers: int | None = None
) -> dict:
    """N devices × 1 Hz into `workers` ingest processes (a shared subscription when > 1)."""
    reset_tables(url)
    root = f"bench-steady-{uuid.uuid4().hex[:6]}/fleet/v1"
    tag = uuid.uuid4().hex[:6]
    procs, ports, logs = [], [], []
    for i in range(workers):
        port = free_port()
        env = ingest_env(url, broker.url, root, f"bench-steady-{tag}-{i}", port, writers=writers)
        if workers > 1:
            env["FLEET_INGEST_SHARE_GROUP"] = "bench"
        logfile = tmp / f"steady-{tag}-{i}.log"
        procs.append(start_ingest(env, logfile))
        ports.append(port)
        logs.append(logfile)
    try:
        for port, logfile in zip(ports, logs, strict=True):
            wait_port(port, 30)
            deadline = time.monotonic() + 20
            while b"event=subscribed" not in logfile.read_bytes() and time.monotonic() < deadline:
                time.sleep(0.1)
        time.sleep(0.5)
        warmup = min(5.0, seconds / 4)
        pub = PacedPublisher(broker.port, root, devs, seconds + warmup)
        pub.start()
        time.sleep(warmup)
        before = _sum_buckets([scrape(p) for p in ports])
        cpu0, t0 = sum(proc_cpu_s(p.pid) for p in procs), time.monotonic()
        rss = []
        while pub.is_alive():
            rss.append(sum(proc_rss_mb(p.pid) for p in procs))
            time.sleep(1.0)
        cpu1, t1 = sum(proc_cpu_s(p.pid) for p in procs), time.monotonic()
        time.sleep(1.5)  # the last batch commits
        after = _sum_buckets([scrape(p) for p in ports])
        sent = pub.sent
        stored = counter(url)
    finally:
        for proc in procs:
            stop(proc)
    return {
        "workers": workers,
        "devices": len(devs),
        "rate_hz": 1,
        "seconds": round(t1 - t0, 1),
        "published": sent,
        "stored": stored,
        "late_publisher_ticks": pub.late_ticks,
        "latency_p50_s": _round(quantile(0.5, before, after)),
        "latency_p99_s": _round(quantile(0.99, before, after)),
        "cpu_pct_of_one_core": round(100 * (cpu1 - cpu0) / (t1 - t0), 1),
        "rss_mb_max": round(max(rss), 1) if rss else None,
        "rss_mb_mean": round(statistics.mean(rss), 1) if rss else None,
    }


def _sum_buckets(scrapes: list[dict]) -> dict:
    out: dict = {}
    for sc in scrapes:
        for k, v in sc.items():
            out[k] = out.get(k, 0.0) + v
    return out


def measure_parse_cost(devs: list[tuple[str, str]], n: int = 2000, fast: bool = True) -> dict[str, float]:
    """CPU µs per message of the pure parser, by device protocol (process CPU time, so load-insensitive)."""

    out = {}
    root = "bench/fleet/v1"
    now = datetime.now(UTC)
    for proto in ("json", "obd", "nmea"):
        dev = next(d for d, p in devs if p == proto)
        msgs = [sample_message(root, dev, proto, i, recent_ms(-3600) + i * 1000) for i in range(n)]
        t0 = time.process_time()
        for topic, payload in msgs:
            process_message(root, topic, payload, now=now, fast=fast)
        out[proto] = round((time.process_time() - t0) / n * 1e6, 1)
    return out


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


# ------------------------------------------------------------------------------------------------ report


def write_report(res: dict) -> None:
    (HERE / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    d, b, n, s = res["drain"], res["broker_limit"], res["naive"], res["steady"]
    dm, sm = res.get("drain_multi"), res.get("steady_multi")
    # the memory bound: the largest RSS of the one-worker drains (files from before it was recorded have none)
    mil = max(res["runs"]["drain"], key=lambda x: x.get("rss_mb_max_per_worker", 0), default=None)
    if mil is not None and "rss_mb_max_per_worker" not in mil:
        mil = None
    r = res["ratios"]
    ing = res["params"]["ingest"]

    def verdict(value: float | None, target: float) -> str:
        return "n/a" if value is None else f"**{value}** ({'met' if value >= target else 'missed'})"

    def writers(n: int | None) -> str:
        return "" if n is None else f" × {n} writer{'s' if n != 1 else ''}"

    one = f"1 worker{writers(ing.get('writers'))}"
    two = f"{dm['workers']} workers{writers(ing.get('multi_writers'))}, shared subscription" if dm else None
    limit_runs = ", ".join(f"{x['rate_msgs_s']:,.0f}" for x in res["runs"]["broker_limit"])
    row = lambda label, one, multi: f"| {label} | {one} |" + (f" {multi} |" if dm else "")  # noqa: E731
    lines = [
        "# Ingest benchmark",
        "",
        f"Run {res['date']} on `{res['machine']['hostname']}` ({res['machine']['nproc']} CPUs, {res['machine']['python']}), "
        f"private Mosquitto, PostgreSQL {res['machine']['postgres']}{' + TimescaleDB' if res['machine']['timescale'] else ''}. "
        f"Backlog {res['params']['backlog']:,} messages from {res['params']['devices']:,} devices "
        f"(protocol mix {'/'.join(PROTOCOL_MIX)}); medians of {res['params']['repeat']} run(s); each run measures "
        "the broker limit and the drains on the same backlog, and a ratio is the median of the per-run ratios. "
        f"Ingest settings: batch {ing['batch_size']:,} messages / {ing['batch_ms']} ms, "
        f"max in flight {ing['max_inflight']:,}. {res['params']['note']}",
        "",
        f"| measure | {one} |" + (f" {two} |" if dm else ""),
        "|---|---|" + ("---|" if dm else ""),
        row(
            "1. drain rate: backlog → committed rows, counted from process start",
            f"**{d['rate_msgs_s']:,.0f} msg/s**",
            f"**{dm['rate_msgs_s']:,.0f} msg/s**" if dm else "",
        ),
        row(
            "1. drain rate counted from the MQTT connect (interpreter start-up excluded)",
            f"{d['rate_from_connect_msgs_s']:,.0f} msg/s",
            f"{dm['rate_from_connect_msgs_s']:,.0f} msg/s" if dm else "",
        ),
        row(
            f"ratio ingest / broker limit (target ≥ {TARGET_BROKER_RATIO})",
            verdict(r["ingest_over_broker"], TARGET_BROKER_RATIO),
            verdict(r.get("multi_over_broker"), TARGET_BROKER_RATIO),
        ),
        row(
            f"ratio ingest / naive (target ≥ {TARGET_NAIVE_RATIO:.0f})",
            verdict(r["ingest_over_naive"], TARGET_NAIVE_RATIO),
            verdict(r.get("multi_over_naive"), TARGET_NAIVE_RATIO),
        ),
        row(
            f"4. steady {s['devices']:,} devices × 1 Hz, {s['seconds']} s: publish→commit p50 / p99 (target p99 < 1 s)",
            f"{_ms(s['latency_p50_s'])} / **{_ms(s['latency_p99_s'])}**",
            f"{_ms(sm['latency_p50_s'])} / **{_ms(sm['latency_p99_s'])}**" if sm else "",
        ),
        row(
            "4. ingest CPU (% of one core, summed) / RSS (max, summed)",
            f"{s['cpu_pct_of_one_core']} % / {s['rss_mb_max']} MB",
            f"{sm['cpu_pct_of_one_core']} % / {sm['rss_mb_max']} MB" if sm else "",
        ),
        "",
        f"2. Broker limit (`mosquitto_sub`, QoS 1, persistent session → /dev/null): **{b['rate_msgs_s']:,.0f} msg/s** "
        f"(runs: {limit_runs}).",
        "",
        f"3. Naive consumer (stock paho, one INSERT + COMMIT per message, {n['messages']:,} messages): "
        f"**{n['rate_msgs_s']:,.0f} msg/s**.",
        "",
        *(
            [
                f"Memory bound: a backlog of {mil['messages']:,} messages drained by one worker "
                f"({mil['stored']:,} stored); the worker's RSS peaked at "
                f"**{mil['rss_mb_max_per_worker']} MB** (it holds at most {ing['max_inflight']:,} messages, "
                "`FLEET_INGEST_MAX_INFLIGHT`, plus the batches being written, one per writer).",
                "",
            ]
            if mil
            else []
        ),
        *_budget_lines(res, b["rate_msgs_s"]),
        *_python_parser_lines(res),
        *_coalesced_lines(res),
        f"Steady state: published {s['published']:,}, stored {s['stored']:,} (includes warm-up). "
        "Latency is commit time minus the sample time the publisher stamped at publish (ingest's lag histogram, "
        "interpolated within buckets).",
        "",
        "Parser CPU per message (µs), compiled fast path / Python code: "
        + ", ".join(
            f"{k} {v} / {res.get('parse_cpu_us_python', {}).get(k, 'n/a')}"
            for k, v in res["parse_cpu_us"].items()
        )
        + " (process CPU time of `process_message` on 2,000 messages of each protocol).",
        "",
        "Raw runs: see `bench/results.json`.",
    ]
    (HERE / "results.md").write_text("\n".join(lines) + "\n")


def _budget(runs: list[dict] | None) -> dict | None:
    """Median over runs of each component of the drains' CPU budget."""
    budgets = [r["cpu_us_per_msg"] for r in runs or [] if r.get("cpu_us_per_msg")]
    if not budgets:
        return None
    out = {}
    for k in budgets[0]:
        vals = [b[k] for b in budgets if b.get(k) is not None]
        out[k] = round(statistics.median(vals), 1) if vals else None
    return out


def _budget_lines(res: dict, broker_limit: float) -> list[str]:
    """The CPU budget table: where each drained message's CPU goes, and the ceiling that puts on the drain rate."""
    one, multi = _budget(res["runs"]["drain"]), _budget(res["runs"].get("drain_multi"))
    if one is None:
        return []
    cores = res["machine"]["nproc"]
    cols = [one] + ([multi] if multi else [])
    head = "| µs of CPU per message | 1 worker |" + (
        f" {res['drain_multi']['workers']} workers |" if multi else ""
    )

    def row(label: str, key: str, fmt: str = "{}") -> str:
        return f"| {label} |" + "".join(
            f" {'n/a' if c.get(key) is None else fmt.format(c[key])} |" for c in cols
        )

    ceiling = f"| CPU ceiling: {cores} cores × 10⁶ ÷ total |" + "".join(
        f" {cores * 1e6 / c['total']:,.0f} msg/s |" if c.get("total") else " n/a |" for c in cols
    )
    half = broker_limit / 2
    return [
        "Where the CPU goes in the drains (from the MQTT connect to the last commit, medians of the runs; "
        "PostgreSQL is every server process, WAL writer and checkpointer included; read from /proc):",
        "",
        head,
        "|---|---|" + ("---|" if multi else ""),
        row("ingest workers (Python: MQTT read, parse, COPY)", "workers"),
        row("PostgreSQL", "postgres"),
        row("Mosquitto (delivery and acks)", "broker"),
        row("**total**", "total", "**{}**"),
        row(f"machine busy (% of {cores} cores)", "machine_busy_pct", "{} %"),
        ceiling,
        "",
        f"Half the broker limit ({half:,.0f} msg/s) on {cores} cores leaves at most "
        f"**{cores * 1e6 / half:.1f} µs** of CPU per message for the three together.",
        "",
    ]


def _python_parser_lines(res: dict) -> list[str]:
    """The one-worker drain again with the Python parser: what the compiled fast path gains."""
    runs = res["runs"].get("drain_python_parser")
    if not runs:
        return []
    budget = _budget(runs) or {}
    one = _budget(res["runs"]["drain"]) or {}
    rate = statistics.median(d["rate_msgs_s"] for d in runs)
    return [
        "Compiled parser vs Python parser: the one-worker drain again on the same backlog with "
        f"`FLEET_INGEST_COMPILED_PARSER=false`: **{rate:,.0f} msg/s** ({res['ratios']['python_parser_over_broker']} "
        f"of the broker limit); the compiled fast path drains **{res['ratios']['compiled_over_python_parser']}×** as "
        f"fast (median of the per-run ratios). Worker CPU per message: {one.get('workers')} µs compiled, "
        f"{budget.get('workers')} µs Python.",
        "",
    ]


def _coalesced_lines(res: dict) -> list[str]:
    """The multi-worker drain again with vehicle_state coalesced over batches (FLEET_INGEST_STATE_FLUSH_MS > 0)."""
    runs = res["runs"].get("drain_multi_coalesced_state")
    if not runs:
        return []
    c = _budget(runs) or {}
    p = _budget(res["runs"].get("drain_multi")) or {}
    rate = statistics.median(d["rate_msgs_s"] for d in runs)
    return [
        f"vehicle_state per batch (default) vs coalesced: the {runs[0]['workers']}-worker drain again with "
        f"`FLEET_INGEST_STATE_FLUSH_MS={runs[0]['state_flush_ms']}`: **{rate:,.0f} msg/s** "
        f"({res['ratios']['multi_coalesced_over_broker']} of the broker limit, against "
        f"{res['ratios']['multi_over_broker']} per batch). CPU µs per message, coalesced / per batch: "
        f"PostgreSQL {c.get('postgres')} / {p.get('postgres')}, workers {c.get('workers')} / {p.get('workers')}.",
        "",
    ]


def _ms(v: float | None) -> str:
    return "n/a" if v is None else f"{v * 1000:.0f} ms"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--backlog",
        type=int,
        default=1_000_000,
        help="messages in the drain backlog (≥ 200,000 for the record; the default 1,000,000 also shows the "
        "memory bound and makes the worker's ~0.6 s of start-up a small part of the drain time)",
    )
    ap.add_argument(
        "--devices", type=int, default=5000, help="registered devices (also the steady-state fleet)"
    )
    ap.add_argument("--naive", type=int, default=5000, help="messages for the naive baseline")
    ap.add_argument("--steady-s", type=float, default=60.0, help="steady-state duration")
    ap.add_argument(
        "--repeat", type=int, default=3, help="repeat drain and broker-limit runs; medians reported"
    )
    ap.add_argument(
        "--workers", type=int, default=2, help="also drain with this many workers on a shared subscription"
    )
    ap.add_argument(
        "--multi-writers",
        type=int,
        default=1,
        help="FLEET_INGEST_WRITERS of each worker in the multi-worker runs (one worker runs with the default); "
        "with as many workers as cores, more connections per worker only add lock contention",
    )
    ap.add_argument("--note", default="", help="free text for the report (e.g. 'reduced run, noisy machine')")
    ap.add_argument("--report-only", action="store_true", help="rewrite results.md from results.json")
    args = ap.parse_args(argv)
    if args.report_only:
        write_report(json.loads((HERE / "results.json").read_text()))
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    log(f"database with {args.devices} devices")
    url, devs = make_database(args.devices)
    parse_cost = measure_parse_cost(devs)
    parse_cost_python = measure_parse_cost(devs, fast=False)
    log(f"parser CPU µs/message by protocol: compiled {parse_cost}, Python {parse_cost_python}")
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            pg_version = scalar(conn.execute("SHOW server_version"))
            timescale = bool(
                scalar(conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"))
            )
        with mosquitto() as broker:
            drains, limits, multi, pyparse, coalesced = [], [], [], [], []
            for i in range(args.repeat):
                root = f"bench-{uuid.uuid4().hex[:6]}/fleet/v1"
                data = backlog(root, devs, args.backlog)
                log(f"run {i + 1}: broker limit on {len(data):,} messages")
                limits.append(measure_broker_limit(broker, data))
                log(f"  {limits[-1]}")
                log(f"run {i + 1}: ingest drain")
                drains.append(measure_drain(url, broker, data, tmp))
                log(f"  {drains[-1]}")
                log(
                    f"run {i + 1}: the same drain with the Python parser (FLEET_INGEST_COMPILED_PARSER=false)"
                )
                pyparse.append(measure_drain(url, broker, data, tmp, python_parser=True))
                log(f"  {pyparse[-1]}")
                if args.workers > 1:
                    log(f"run {i + 1}: ingest drain with {args.workers} workers (shared subscription)")
                    multi.append(
                        measure_drain(
                            url, broker, data, tmp, workers=args.workers, writers=args.multi_writers
                        )
                    )
                    log(f"  {multi[-1]}")
                    log(
                        f"run {i + 1}: {args.workers} workers, vehicle_state coalesced ({COALESCED_FLUSH_MS} ms)"
                    )
                    coalesced.append(
                        measure_drain(
                            url,
                            broker,
                            data,
                            tmp,
                            workers=args.workers,
                            writers=args.multi_writers,
                            state_flush_ms=COALESCED_FLUSH_MS,
                        )
                    )
                    log(f"  {coalesced[-1]}")

            naive_data = backlog(f"bench-naive-{uuid.uuid4().hex[:6]}/fleet/v1", devs, args.naive)
            log(f"naive baseline on {len(naive_data):,} messages")
            naive = measure_naive(url, broker, naive_data)
            log(f"  {naive}")
            log(f"steady state: {len(devs)} devices × 1 Hz for {args.steady_s:.0f} s")
            steady = measure_steady(url, broker, devs, args.steady_s, tmp)
            log(f"  {steady}")
            steady_multi = None
            if args.workers > 1:
                log(f"steady state with {args.workers} workers (shared subscription)")
                steady_multi = measure_steady(
                    url, broker, devs, args.steady_s, tmp, workers=args.workers, writers=args.multi_writers
                )
                log(f"  {steady_multi}")
    finally:
        drop_database(url)

    def med(runs: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in runs)

    drain = {
        **drains[0],
        "rate_msgs_s": med(drains, "rate_msgs_s"),
        "rate_from_connect_msgs_s": med(drains, "rate_from_connect_msgs_s"),
    }
    limit = {**limits[0], "rate_msgs_s": med(limits, "rate_msgs_s")}

    def per_run_ratio(runs: list[dict]) -> float:
        """Median over repetitions of (drain rate / broker limit of the same repetition): noise cancels."""
        return round(
            statistics.median(d["rate_msgs_s"] / b["rate_msgs_s"] for d, b in zip(runs, limits, strict=True)),
            3,
        )

    res = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "nproc": os.cpu_count(),
            "hostname": platform.node(),
            "python": platform.python_version(),
            "postgres": pg_version,
            "timescale": timescale,
            "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "params": {
            "backlog": args.backlog,
            "devices": args.devices,
            "naive": args.naive,
            "steady_s": args.steady_s,
            "repeat": args.repeat,
            "note": args.note,
            "ingest": {
                "batch_size": Settings().ingest_batch_size,
                "batch_ms": Settings().ingest_batch_ms,
                "max_inflight": Settings().ingest_max_inflight,
                "writers": Settings().ingest_writers,
                "multi_writers": args.multi_writers,
            },
        },
        "drain": drain,
        "broker_limit": limit,
        "naive": naive,
        "steady": steady,
        "steady_multi": steady_multi,
        "parse_cpu_us": parse_cost,
        "parse_cpu_us_python": parse_cost_python,
        "drain_multi": (
            {
                **multi[0],
                "rate_msgs_s": med(multi, "rate_msgs_s"),
                "rate_from_connect_msgs_s": med(multi, "rate_from_connect_msgs_s"),
            }
            if multi
            else None
        ),
        "runs": {
            "drain": drains,
            "broker_limit": limits,
            "drain_multi": multi,
            "drain_python_parser": pyparse,
            "drain_multi_coalesced_state": coalesced,
        },
        "ratios": {
            "ingest_over_broker": per_run_ratio(drains),
            "ingest_over_naive": round(drain["rate_msgs_s"] / naive["rate_msgs_s"], 1),
            "multi_over_broker": per_run_ratio(multi) if multi else None,
            "multi_over_naive": round(med(multi, "rate_msgs_s") / naive["rate_msgs_s"], 1) if multi else None,
            "python_parser_over_broker": per_run_ratio(pyparse),
            "multi_coalesced_over_broker": per_run_ratio(coalesced) if coalesced else None,
            # per run: compiled-parser drain / Python-parser drain of the same backlog
            "compiled_over_python_parser": round(
                statistics.median(
                    a["rate_msgs_s"] / b["rate_msgs_s"] for a, b in zip(drains, pyparse, strict=True)
                ),
                2,
            ),
        },
        "targets": {
            "ingest_over_broker": TARGET_BROKER_RATIO,
            "ingest_over_naive": TARGET_NAIVE_RATIO,
            "latency_p99_s": TARGET_P99_S,
        },
    }
    write_report(res)
    log(f"wrote {HERE / 'results.md'}")
    print((HERE / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
