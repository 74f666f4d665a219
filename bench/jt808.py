"""`make bench-jt808`: the JT/T 808 gateway under 5,000 concurrent terminals, and the limits it is measured against.

Every run, on this machine, a private Mosquitto and a fresh database with N registered terminals:
  1. gateway: `fleet gateway jt808` as its own process; N terminals (one asyncio load generator in this process)
     connect, register, authenticate, then each sends a 0x0200 report every PERIOD s (random phases, so N/PERIOD
     frames/s). Latency = frame written by the terminal → its 0x8001 read back; the gateway writes the 0x8001
     only after the broker's PUBACK, so this bounds frame → MQTT publish acknowledged. An MQTT subscriber counts
     the republished samples. Gateway RSS before/after the connections gives the memory per connection.
  2. echo floor: the same generator and connections against a server that parses the same framing and answers
     every frame at once, with no broker and no database: what the machine, the kernel and asyncio cost alone.
  3. saturation: every terminal sends its next report as soon as the previous one is acknowledged, for a few
     seconds: the most reports/s the gateway republishes here.
  4. publish-only: one paho connection (the gateway's publisher, gateways.publisher) publishing QoS 1 as fast as the
     broker acknowledges: the ceiling of the MQTT side; and its PUBACK round trip at the steady rate.
Medians over the runs → bench/jt808_results.json and bench/jt808_results.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg import sql

from fleetcore.db import migrate
from fleetcore.protocol import jt808 as j
from fleetcore.settings import MqttUrl, Settings
from gateways.publisher import AckedPublisher
from tests.ingest_helpers import free_port, mosquitto, wait_port

HERE = Path(__file__).resolve().parent
ADMIN_URL = os.environ.get(
    "FLEET_BENCH_PG_ADMIN",
    os.environ.get("FLEET_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres"),
)
PREFIX = "jt808-"
PHONE_BASE = 14_700_000_000
TARGET_P99_S = 0.100
HANDSHAKES_AT_ONCE = 200  # terminals registering concurrently during the ramp (a fleet reconnecting in waves)


def log(msg: str) -> None:
    print(f"[bench-jt808 {datetime.now(UTC):%H:%M:%S}] {msg}", flush=True)


def raise_nofile(need: int) -> int:
    """Lift the soft open-file limit of this process (the load generator holds one socket per terminal)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, need)
    if want < need:
        raise SystemExit(f"open-file hard limit {hard} < {need} needed: raise it (ulimit -Hn) first")
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


def phone(i: int) -> str:
    return f"{PHONE_BASE + i:012d}"


# ------------------------------------------------------------------------------------------------ set-up


def make_database(n: int) -> str:
    name = f"fleet_bench_jt_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = ADMIN_URL.rpartition("/")[0] + "/" + name
    migrate(url, Settings(environment="test", timescale="off"))
    with psycopg.connect(url) as conn, conn.cursor().copy("COPY devices (device_id) FROM STDIN") as cp:
        for i in range(n):
            cp.write_row((PREFIX + phone(i).lstrip("0"),))
    return url


def drop_database(url: str) -> None:
    name = url.rpartition("/")[2]
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def proc_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def proc_cpu_s(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def start_gateway(db_url: str, broker_url: str, root: str, port: int, logfile: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "FLEET_DATABASE_URL": db_url,
        "FLEET_MQTT_URL": broker_url,
        "FLEET_TOPIC_ROOT": root,
        "FLEET_JT808_CLIENT_ID": f"bench-gw-{uuid.uuid4().hex[:6]}",
        "FLEET_JT808_DEVICE_PREFIX": PREFIX,
        "FLEET_JT808_IDLE_TIMEOUT_S": "600",
    }
    cmd = [
        sys.executable,
        "-m",
        "fleetapp.cli",
        "gateway",
        "jt808",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=logfile.open("w"), stderr=subprocess.STDOUT)
    wait_port(port, timeout=60)
    return proc


def stop_proc(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ------------------------------------------------------------------------------------------------ echo floor

ECHO_SERVER = r"""
import asyncio, sys
from fleetcore.protocol import jt808 as j

async def handle(reader, writer):
    s, serial = j.FrameSplitter(), 0
    while data := await reader.read(4096):
        for raw in s.feed(data):
            h = j.decode_frame(raw).header
            serial += 1
            if h.msg_id == j.REGISTER:
                out = j.encode_frame(j.REGISTER_RESPONSE, j.encode_register_response(h.serial, 0, "echo"), h.phone, serial)
            else:
                out = j.encode_frame(j.PLATFORM_RESPONSE, j.encode_platform_response(h.serial, h.msg_id, 0), h.phone, serial)
            writer.write(out)
    writer.close()

async def main(port):
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    async with server:
        await server.serve_forever()

import resource
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
asyncio.run(main(int(sys.argv[1])))
"""


# ------------------------------------------------------------------------------------------------ load generator


class Load:
    """N terminals on one event loop: handshake, then periodic (or closed-loop) reports with their latencies."""

    def __init__(self, port: int, n: int, period_s: float) -> None:
        self.port, self.n, self.period = port, n, period_s
        self.ready = 0
        self.failed: list[str] = []
        self.latencies: list[float] = []
        self.window: tuple[float, float] = (0.0, 0.0)
        self.saturate_until = 0.0
        self.saturated = 0
        self.acked = 0  # every report acknowledged with 0x8001 OK, window or not
        self.stop = False

    async def _response(self, reader: asyncio.StreamReader, s: j.FrameSplitter, inbox: list) -> j.Message:
        while not inbox:
            data = await reader.read(4096)
            if not data:
                raise ConnectionError("closed by the server")
            inbox += [j.decode_frame(r) for r in s.feed(data)]
        return inbox.pop(0)

    async def terminal(self, i: int, gate: asyncio.Semaphore, start: asyncio.Event) -> None:
        ph = phone(i)
        serial = 0
        s, inbox = j.FrameSplitter(), list[j.Message]()

        def frame(msg_id: int, body: bytes) -> bytes:
            nonlocal serial
            serial += 1
            return j.encode_frame(msg_id, body, ph, serial)

        try:
            async with gate:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                reg = j.Registration(0, 0, "BENCH", "LOAD", f"{i:07d}", 1, f"B{i}")
                writer.write(frame(j.REGISTER, j.encode_register(reg)))
                _, result, code = j.decode_register_response((await self._response(reader, s, inbox)).body)
                if result != j.REG_OK:
                    raise ConnectionError(f"registration refused ({result})")
                writer.write(frame(j.AUTHENTICATE, j.encode_auth(code)))
                if j.decode_general_response((await self._response(reader, s, inbox)).body)[2] != j.OK:
                    raise ConnectionError("authentication refused")
            self.ready += 1
            await start.wait()
            rng = random.Random(i)
            await asyncio.sleep(rng.uniform(0, self.period))
            next_at = time.monotonic()
            lat0, lon0 = 31.0 + rng.random(), 121.0 + rng.random()
            while not self.stop:
                now = time.monotonic()
                saturating = now < self.saturate_until
                loc = j.Location(
                    alarm=0, status=j.STATUS_ACC | j.STATUS_FIX, lat=lat0, lon=lon0, alt_m=12,
                    speed_kmh=round(rng.uniform(0, 90), 1), heading_deg=rng.randrange(360),
                    time=datetime.now(UTC).replace(microsecond=0),
                    items={j.ITEM_MILEAGE: (100_000 + serial).to_bytes(4, "big"), j.ITEM_SATS: b"\x0a"},
                )  # fmt: skip
                t0 = time.perf_counter()
                writer.write(frame(j.LOCATION, j.encode_location(loc)))
                msg = await self._response(reader, s, inbox)
                dt = time.perf_counter() - t0
                assert j.decode_general_response(msg.body)[2] == j.OK
                self.acked += 1
                if saturating:
                    self.saturated += 1
                    continue
                if self.window[0] <= now < self.window[1]:
                    self.latencies.append(dt)
                next_at += self.period
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            writer.close()
        except Exception as exc:  # counted and reported; the run fails if any terminal failed
            self.failed.append(f"{ph}: {exc!r}")


async def drive(port: int, n: int, period: float, window: float, saturate: float, server_pid: int) -> dict:
    """Connect n terminals, measure one steady window (and optionally a saturation burst); returns the figures."""
    load = Load(port, n, period)
    gate, start = asyncio.Semaphore(HANDSHAKES_AT_ONCE), asyncio.Event()
    rss0 = proc_rss_kb(server_pid)
    t0 = time.monotonic()
    tasks = [asyncio.create_task(load.terminal(i, gate, start)) for i in range(n)]
    while load.ready + len(load.failed) < n:
        await asyncio.sleep(0.2)
        if time.monotonic() - t0 > 600:
            raise RuntimeError(f"only {load.ready} of {n} terminals connected in 600 s")
    ramp_s = time.monotonic() - t0
    rss1 = proc_rss_kb(server_pid)
    log(f"{load.ready} terminals authenticated in {ramp_s:.1f} s ({len(load.failed)} failed)")
    start.set()
    # one full period to let every terminal's phase start, then the window
    await asyncio.sleep(period)
    cpu0, gen0, w0 = proc_cpu_s(server_pid), time.process_time(), time.monotonic()
    load.window = (w0, w0 + window)
    await asyncio.sleep(window)
    cpu1, gen1, w1 = proc_cpu_s(server_pid), time.process_time(), time.monotonic()
    rss2 = proc_rss_kb(server_pid)
    sat_rate = None
    if saturate > 0:
        await asyncio.sleep(period)  # let the window's stragglers finish on schedule
        load.saturated = 0
        load.saturate_until = time.monotonic() + saturate
        await asyncio.sleep(saturate)
        sat_rate = load.saturated / saturate
    load.stop = True
    await asyncio.sleep(0.5)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    lat = sorted(load.latencies)
    q = statistics.quantiles(lat, n=1000) if len(lat) > 10 else [float("nan")] * 999
    return {
        "terminals": load.ready,
        "failed": len(load.failed),
        "failures": load.failed[:5],
        "ramp_s": round(ramp_s, 1),
        "reports": len(lat),
        "rate_per_s": round(len(lat) / (w1 - w0), 1),
        "p50_ms": round(q[499] * 1000, 2),
        "p99_ms": round(q[989] * 1000, 2),
        "p999_ms": round(q[998] * 1000, 2),
        "max_ms": round(lat[-1] * 1000, 2) if lat else None,
        "server_cpu_pct": round(100 * (cpu1 - cpu0) / (w1 - w0), 1),
        "generator_cpu_pct": round(100 * (gen1 - gen0) / (w1 - w0), 1),
        "server_rss_mb_before": round(rss0 / 1024, 1),
        "server_rss_mb_connected": round(rss1 / 1024, 1),
        "server_rss_mb_after": round(rss2 / 1024, 1),
        "rss_kb_per_connection": round((rss1 - rss0) / max(load.ready, 1), 1),
        "saturation_reports_per_s": round(sat_rate, 1) if sat_rate is not None else None,
        "acked_total": load.acked,
    }


# ------------------------------------------------------------------------------------------------ publish-only


def publish_only(broker_url: str, rate: float, seconds: float, burst: int) -> dict:
    """The gateway's publisher alone: max QoS 1 rate (acknowledged) and PUBACK latency at the steady rate."""
    pub = AckedPublisher.connect(MqttUrl(broker_url), f"bench-pub-{uuid.uuid4().hex[:6]}")
    pub.start()
    root = f"bench-{uuid.uuid4().hex[:6]}"
    payload = (
        b'{"ts":1795688130000,"seq":1795688130000,"ignition":true,"lat":31.5,"lon":121.5,"speed_kmh":48.5}'
    )
    try:
        t0 = time.perf_counter()
        sent = 0
        while sent < burst:
            msgs = [(f"{root}/devices/d{(sent + k) % 5000}/telemetry", payload) for k in range(1000)]
            assert pub.publish_all(msgs, 30)
            sent += len(msgs)
        max_rate = sent / (time.perf_counter() - t0)
        lats: list[float] = []
        interval = 1 / rate
        next_at = time.perf_counter()
        end = next_at + seconds
        while next_at < end:
            time.sleep(max(0.0, next_at - time.perf_counter()))
            t = time.perf_counter()
            assert pub.publish_all([(f"{root}/devices/d1/telemetry", payload)], 10)
            lats.append(time.perf_counter() - t)
            next_at += interval
    finally:
        pub.stop()
    q = statistics.quantiles(sorted(lats), n=100)
    return {"max_rate_per_s": round(max_rate), "puback_p50_ms": round(q[49] * 1000, 2),
            "puback_p99_ms": round(q[98] * 1000, 2), "sequential_publishes": len(lats)}  # fmt: skip


class Counter:
    """Counts the republished samples at the broker: `mosquitto_sub` in its own process (a paho subscriber in the
    load generator's process competed with it for the GIL and stretched the very latencies being measured)."""

    def __init__(self, broker_url: str, root: str, out: Path) -> None:
        url = MqttUrl(broker_url)
        self.out = out
        self.proc = subprocess.Popen(
            [
                "mosquitto_sub",
                "-h",
                url.host,
                "-p",
                str(url.port),
                "-q",
                "0",
                "-t",
                f"{root}/devices/+/telemetry",
            ],
            stdout=out.open("wb"),
            stderr=subprocess.DEVNULL,
        )
        time.sleep(0.5)

    def stop(self) -> int:
        """Stop and return how many messages arrived (one JSON document per line)."""
        time.sleep(1.0)
        self.proc.terminate()
        self.proc.wait(10)
        return self.out.read_bytes().count(b"\n")


# ------------------------------------------------------------------------------------------------ runs


def one_run(k: int, args: argparse.Namespace, db_url: str, broker_url: str, work: Path) -> dict:
    root = f"bench-{uuid.uuid4().hex[:8]}/fleet/v1"
    port = free_port()
    gw = start_gateway(db_url, broker_url, root, port, work / f"gateway-{k}.log")
    counter = Counter(broker_url, root, work / f"seen-{k}.txt")
    try:
        time.sleep(2.0)  # interpreter and broker connection settled: the "before" RSS
        res = asyncio.run(drive(port, args.terminals, args.period, args.window, args.saturate, gw.pid))
    finally:
        seen = counter.stop()
        stop_proc(gw)
    res["republished_seen"] = seen
    log(f"gateway run {k}: {res}")
    port = free_port()
    echo = subprocess.Popen([sys.executable, "-c", ECHO_SERVER, str(port)], stderr=subprocess.DEVNULL)
    try:
        wait_port(port)
        time.sleep(1.0)
        floor = asyncio.run(drive(port, args.terminals, args.period, args.window, args.saturate, echo.pid))
    finally:
        stop_proc(echo)
    log(f"echo run {k}: {floor}")
    return {"gateway": res, "echo": floor}


def med(runs: list[dict], side: str, key: str) -> float | None:
    vals = [r[side][key] for r in runs if r[side].get(key) is not None]
    return round(statistics.median(vals), 2) if vals else None


def write_report(res: dict) -> None:
    (HERE / "jt808_results.json").write_text(json.dumps(res, indent=2) + "\n")
    m, p = res["medians"], res["publish_only"]
    ok = m["gateway"]["p99_ms"] is not None and m["gateway"]["p99_ms"] < TARGET_P99_S * 1000
    g, e = m["gateway"], m["echo"]
    lines = [
        "# JT/T 808 gateway benchmark",
        "",
        f"Run {res['started']} on `{res['host']}` ({res['cpus']} CPUs, Python {res['python']}), private Mosquitto, "
        f"PostgreSQL on 127.0.0.1. {res['terminals']:,} concurrent terminals (one asyncio load generator process, "
        f"open-file limit raised to {res['nofile']:,}), each reporting a 0x0200 every {res['period_s']:g} s; "
        f"latency window {res['window_s']:g} s per run; medians of {len(res['runs'])} runs. Latency = frame written "
        "by the terminal → 0x8001 read back, which the gateway sends only after the broker's PUBACK. The machine is "
        f"shared: load average {res['loadavg_start'][0]} at the start, {res['loadavg_end'][0]} at the end (1 min).",
        "",
        "| measure | gateway (`fleet gateway jt808`) | echo floor (same framing, answers at once) |",
        "|---|---|---|",
        f"| terminals connected and authenticated | {g['terminals']:,.0f} | {e['terminals']:,.0f} |",
        f"| ramp: connect + register + authenticate all | {g['ramp_s']} s | {e['ramp_s']} s |",
        f"| reports/s in the window | {g['rate_per_s']:,} | {e['rate_per_s']:,} |",
        f"| latency p50 / p99 / p99.9 | {g['p50_ms']} / **{g['p99_ms']}** / {g['p999_ms']} ms "
        f"(target p99 < {TARGET_P99_S * 1000:.0f} ms: {'met' if ok else 'NOT met'}) | "
        f"{e['p50_ms']} / {e['p99_ms']} / {e['p999_ms']} ms |",
        f"| server CPU (% of one core) in the window | {g['server_cpu_pct']} % | {e['server_cpu_pct']} % |",
        f"| load generator CPU (% of one core) | {g['generator_cpu_pct']} % | {e['generator_cpu_pct']} % |",
        f"| server RSS idle → {res['terminals']:,} connected | {g['server_rss_mb_before']} → "
        f"{g['server_rss_mb_connected']} MB | {e['server_rss_mb_before']} → {e['server_rss_mb_connected']} MB |",
        f"| **memory per connection** | **{g['rss_kb_per_connection']} KB** | {e['rss_kb_per_connection']} KB |",
        f"| saturation: reports/s when every terminal sends on acknowledgement | "
        f"**{g['saturation_reports_per_s']:,}** | {e['saturation_reports_per_s']:,} |",
        "",
        f"Publish-only (the gateway's publisher alone, one connection, QoS 1): **{p['max_rate_per_s']:,} msg/s** "
        f"acknowledged; PUBACK round trip at {res['period_s'] and res['terminals'] / res['period_s']:,.0f} msg/s one at "
        f"a time p50 {p['puback_p50_ms']} ms / p99 {p['puback_p99_ms']} ms.",
        "",
        "Per run (gateway p99 ms, echo p99 ms, gateway saturation reports/s, failed terminals, samples an MQTT "
        "subscriber saw / reports the gateway acknowledged): "
        + "; ".join(
            f"{r['gateway']['p99_ms']}, {r['echo']['p99_ms']}, {r['gateway']['saturation_reports_per_s']}, "
            f"{r['gateway']['failed']}, {r['gateway']['republished_seen']:,}/{r['gateway']['acked_total']:,}"
            for r in res["runs"]
        )
        + ".",
        "",
        "Raw runs: `bench/jt808_results.json`. Reproduce: `make bench-jt808` (about "
        f"{len(res['runs'])} × {(res['window_s'] + 2 * res['period_s'] + res['saturate_s']) * 2 / 60:.0f} min).",
    ]
    (HERE / "jt808_results.md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--terminals", type=int, default=5000)
    ap.add_argument("--period", type=float, default=10.0, help="seconds between a terminal's reports")
    ap.add_argument("--window", type=float, default=60.0, help="seconds of latency measurement per run")
    ap.add_argument("--saturate", type=float, default=10.0, help="seconds of closed-loop saturation per run")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    nofile = raise_nofile(args.terminals + 1000)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load_start = [round(x, 2) for x in os.getloadavg()]
    log(f"{args.terminals} terminals, period {args.period} s, {args.runs} runs; open-file limit {nofile}")
    db_url = make_database(args.terminals)
    work = Path(tempfile.mkdtemp(prefix="bench-jt808-"))
    runs = []
    try:
        with mosquitto() as broker:
            pub = publish_only(broker.url, args.terminals / args.period, 10.0, 50_000)
            log(f"publish-only: {pub}")
            for k in range(args.runs):
                runs.append(one_run(k, args, db_url, broker.url, work))
    finally:
        drop_database(db_url)
    keys = [k for k, v in runs[0]["gateway"].items() if isinstance(v, int | float)]
    res = {
        "started": started,
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "terminals": args.terminals,
        "period_s": args.period,
        "window_s": args.window,
        "saturate_s": args.saturate,
        "nofile": nofile,
        "loadavg_start": load_start,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "publish_only": pub,
        "medians": {side: {k: med(runs, side, k) for k in keys} for side in ("gateway", "echo")},
        "runs": runs,
        "logs": str(work),
    }
    write_report(res)
    log(f"medians: {res['medians']}")
    log("wrote bench/jt808_results.md and bench/jt808_results.json")


if __name__ == "__main__":
    main()
