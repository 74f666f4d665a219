"""What the benchmarks share: scratch databases with a registered fleet, ingest processes, a paced publisher,
and CPU / memory readings of processes."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from fleetcore.db import migrate, scalar
from fleetcore.protocol.obd import encode_pid
from fleetcore.protocol.vin import with_check_digit
from fleetcore.settings import Settings
from tests.ingest_helpers import mqtt_string, mqtt_varint, recent_ms, sample_message

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


# FLEET_INGEST_STATE_FLUSH_MS of the extra drain that writes vehicle_state coalesced (the default upserts per batch)
COALESCED_FLUSH_MS = 500


def log(msg: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {msg}", flush=True)


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
                mqtt_string("MQTT")
                + bytes([4, 0x02])
                + (60).to_bytes(2, "big")
                + mqtt_string(f"pace-{uuid.uuid4().hex[:6]}")
            )
            s.sendall(b"\x10" + mqtt_varint(len(body)) + body)
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
                    var = mqtt_string(topic) + ((self.sent % 65535) + 1).to_bytes(2, "big")
                    chunk += b"\x32" + mqtt_varint(len(var) + len(payload)) + var + payload
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
