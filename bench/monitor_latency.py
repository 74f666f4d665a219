"""Latency measurement: a device event published → the alert on a dispatcher's WebSocket, under load.

Runs the real pieces as separate processes: `fleet monitor` and `fleet api` against a scratch database on the
PostgreSQL server and the Mosquitto broker, while this process publishes N vehicles × R Hz of normal telemetry
(QoS 1) and, spread over the run, crash events on distinct vehicles; a WebSocket client records when each
crash alert arrives. Usage:

    python -m bench.monitor_latency --vehicles 1000 --rate 1 --seconds 60 --out bench/monitor_latency.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from backoffice.auth import service as users
from backoffice.auth.security import create_access_token
from fleetcore.contract import topic_for
from fleetcore.db import connect, migrate, one
from fleetcore.mqtt import MqttConnection
from fleetcore.protocol.vin import with_check_digit
from fleetcore.settings import MqttUrl, Settings

ADMIN_URL = os.environ.get("FLEET_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
SECRET = "bench-secret-key-0123456789-0123456789-abcdef"
VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _vin(rng: random.Random) -> str:
    return with_check_digit("WVW" + "".join(rng.choice(VIN_CHARS) for _ in range(14)))


def setup_db(url: str, n: int) -> tuple[dict[str, str], str]:
    """Migrate, register n rented vehicles with devices and a dispatcher; returns device→vin and a username."""
    migrate(url, Settings(environment="test"))
    rng = random.Random(1)
    devices = {}
    with connect(url) as conn:
        st = one(
            conn.execute(
                "INSERT INTO stations (code, name, lat, lon) VALUES ('BENCH', 'Bench', 52.52, 13.405) RETURNING id"
            )
        )["id"]
        for i in range(n):
            vin, dev = _vin(rng), f"bench-{i:05d}"
            vid = one(
                conn.execute(
                    """INSERT INTO vehicles (vin, plate, make, model, year, class, home_station_id, status)
                   VALUES (%s, %s, 'VW', 'Golf', 2023, 'compact', %s, 'rented') RETURNING id""",
                    (vin, f"B-BE{i:05d}", st),
                )
            )["id"]
            conn.execute("INSERT INTO devices (device_id, protocol) VALUES (%s, 'json')", (dev,))
            conn.execute("INSERT INTO device_installs (device_id, vehicle_id) VALUES (%s, %s)", (dev, vid))
            conn.execute("INSERT INTO vehicle_state (vehicle_id, device_id) VALUES (%s, %s)", (vid, dev))
            devices[dev] = vin
        users.create(
            conn, username="bench-dispatcher", role="dispatcher", password="bench-password-123", actor=None
        )
        conn.commit()
    return devices, "bench-dispatcher"


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listening on {port}")


def publisher(mqtt_url: str, root: str, devices: list[str], rate: float, seconds: float, crashes: int,
              sent: dict[str, float], stats: dict, stop: threading.Event) -> None:  # fmt: skip
    """Publish normal telemetry at `rate` Hz per device, and `crashes` crash events on distinct devices."""
    conn = MqttConnection(MqttUrl(mqtt_url), f"bench-pub-{uuid.uuid4().hex[:8]}", max_inflight=65535)
    conn.start()
    client = conn.client
    rng = random.Random(2)
    crash_devs = rng.sample(devices, crashes)
    crash_at = sorted(rng.uniform(5.0, seconds - 3.0) for _ in range(crashes))
    seq = dict.fromkeys(devices, 0)
    t0 = time.monotonic()
    period = 1.0 / rate
    n = 0
    ci = 0
    tick = 0
    while not stop.is_set():
        tick_start = t0 + tick * period
        if tick_start - t0 >= seconds:
            break
        for i, dev in enumerate(devices):
            # Spread each tick's messages evenly over the period (devices are not synchronised).
            due = tick_start + period * i / len(devices)
            delay = due - time.monotonic()
            if delay > 0.002:
                time.sleep(delay)
            while ci < len(crash_at) and time.monotonic() - t0 >= crash_at[ci]:
                cdev = crash_devs[ci]
                body = {"ts": datetime.now(UTC).isoformat(), "seq": 1, "type": "crash", "peak_g": 3.5}
                sent[cdev] = time.time()
                client.publish(topic_for(root, cdev, "event"), json.dumps(body), qos=1)
                ci += 1
            seq[dev] += 1
            body = {"ts": datetime.now(UTC).isoformat(), "seq": seq[dev], "lat": 52.52 + i * 1e-4, "lon": 13.4,
                    "speed_kmh": 42.0, "rpm": 1900, "coolant_c": 90, "battery_v": 14.1, "fuel_pct": 60,
                    "ignition": True, "accel_g": [0.02, 0.01, 1.0]}  # fmt: skip
            client.publish(topic_for(root, dev, "telemetry"), json.dumps(body), qos=1)
            n += 1
        tick += 1
    stats["published"] = n
    stats["elapsed_s"] = time.monotonic() - t0
    stats["lag_end_s"] = time.monotonic() - (t0 + tick * period)
    time.sleep(1.0)
    conn.stop()


def _publisher_proc(mqtt_url: str, root: str, devices: list[str], rate: float, seconds: float, crashes: int,
                    results) -> None:  # noqa: ANN001  # fmt: skip
    sent: dict[str, float] = {}
    stats: dict = {}
    publisher(mqtt_url, root, devices, rate, seconds, crashes, sent, stats, threading.Event())
    results.put((sent, stats))


async def listen(
    api_port: int, token: str, received: dict[str, float], vins: set[str], done: asyncio.Event
) -> None:
    import websockets

    # Authenticated by the first message, as a browser does (a token in the URL is refused: it lands in logs).
    async with websockets.connect(f"ws://127.0.0.1:{api_port}/api/v1/stream", max_queue=None) as ws:
        await ws.send(json.dumps({"type": "auth", "token": token}))
        hello = json.loads(await ws.recv())
        assert hello["type"] == "hello", hello
        done.set()
        async for raw in ws:
            msg = json.loads(raw)
            if (
                msg.get("type") == "alert"
                and msg.get("event") == "opened"
                and msg["alert"]["kind"] == "crash"
            ):
                vin = msg["alert"]["vin"]
                if vin in vins and vin not in received:
                    received[vin] = time.time()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vehicles", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--crashes", type=int, default=200)
    ap.add_argument("--mqtt", default=os.environ.get("FLEET_MQTT_URL", "mqtt://127.0.0.1:1883"))
    ap.add_argument("--out", type=Path, default=Path("bench/monitor_latency.json"))
    args = ap.parse_args(argv)

    db = f"fleet_bench_{uuid.uuid4().hex[:8]}"
    base = ADMIN_URL.rpartition("/")[0]
    url = f"{base}/{db}"
    root = f"bench-{uuid.uuid4().hex[:8]}/fleet/v1"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(db)))
    procs: list[subprocess.Popen] = []
    try:
        devices, username = setup_db(url, args.vehicles)
        env = {**os.environ, "FLEET_DATABASE_URL": url, "FLEET_MQTT_URL": args.mqtt, "FLEET_TOPIC_ROOT": root,
               "FLEET_SECRET_KEY": SECRET, "FLEET_MONITOR_CLIENT_ID": f"bench-mon-{uuid.uuid4().hex[:6]}",
               "FLEET_MONITOR_SESSION_EXPIRY_S": "60",
               "FLEET_ENVIRONMENT": "test"}  # fmt: skip
        fleet = str(Path(sys.executable).with_name("fleet"))
        port = _free_port()
        mon_log = Path(tempfile.gettempdir(), f"{db}.monitor.log").open("w")  # noqa: SIM115
        procs.append(subprocess.Popen([fleet, "monitor"], env=env, stderr=mon_log))
        procs.append(subprocess.Popen([fleet, "api", "--host", "127.0.0.1", "--port", str(port)], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))  # fmt: skip
        wait_port(port)
        time.sleep(3.0)  # the monitor subscribes
        token = create_access_token(subject=username, role="dispatcher", secret=SECRET, minutes=60)
        sent: dict[str, float] = {}
        received: dict[str, float] = {}
        stats: dict = {}
        crashes = min(args.crashes, len(devices))
        vin_of = devices

        async def run() -> None:
            done = asyncio.Event()
            vins = set(devices.values())
            task = asyncio.create_task(listen(port, token, received, vins, done))
            await asyncio.wait_for(done.wait(), 15)
            # The publisher is a process of its own so that its GIL does not delay the WebSocket receiver.
            results: mp.Queue = mp.Queue()
            proc = mp.Process(target=_publisher_proc, args=(args.mqtt, root, list(devices), args.rate, args.seconds,
                                                             crashes, results))  # fmt: skip
            proc.start()
            while proc.is_alive():
                await asyncio.sleep(0.2)
            got_sent, got_stats = results.get(timeout=10)
            sent.update(got_sent)
            stats.update(got_stats)
            deadline = time.monotonic() + 10
            while len(received) < len(sent) and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            task.cancel()

        asyncio.run(run())
        lat = sorted(received[vin_of[d]] - t for d, t in sent.items() if vin_of[d] in received)
        missing = len(sent) - len(lat)

        def pct(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))], 4) if lat else None

        p99 = pct(99)
        result = {
            "vehicles": args.vehicles, "rate_hz": args.rate, "seconds": args.seconds,
            "telemetry_published": stats.get("published"), "publish_elapsed_s": round(stats.get("elapsed_s", 0), 2),
            "achieved_msgs_per_s": round(stats.get("published", 0) / max(stats.get("elapsed_s", 1), 1e-9), 1),
            "crash_events": len(sent), "alerts_received": len(lat), "missing": missing,
            "latency_s": {"p50": pct(50), "p90": pct(90), "p99": p99, "max": lat[-1] if lat else None,
                          "mean": round(statistics.mean(lat), 4) if lat else None},
            "target_p99_s": 1.0, "met": p99 is not None and missing == 0 and p99 < 1.0,
            "cpu_count": os.cpu_count(), "load_avg": os.getloadavg(),
        }  # fmt: skip
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
        return 0 if result["met"] else 1
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                psycopg.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psycopg.sql.Identifier(db))
            )


if __name__ == "__main__":
    sys.exit(main())
