"""`make bench-console`: the dispatcher console in headless Chromium with 5,000 vehicles reporting at 1 Hz.

The real path end to end: a paced publisher (one raw MQTT connection, 5,000 JSON devices driving circles around
the Berlin stations, each second's samples spread over 10 ticks), `fleet ingest` and `fleet api` as processes on
the real PostgreSQL and Mosquitto, and the console signed in as a dispatcher, polling positions once a second.
The monitor is not run: the benchmark is about positions on the page (alerts reach the page over the WebSocket,
measured by bench.monitor_latency).

Measured in the page for `--minutes` (default 10), the view switching every minute between the whole city
(clusters) and a zoom-15 close-up (single cars):
- update rate: position batches applied per second (target >= 1 Hz) and vehicles per batch;
- update latency: sample time -> applied in the page (includes ingest's commit and the poll interval);
- main thread busy: Chromium's TaskDuration over wall time (CDP Performance metrics; target < 50 %);
- frame time: requestAnimationFrame intervals and the vehicle layer's draw time;
- memory: JS heap and DOM nodes every 10 s, with the slope of a least-squares line over the run (flat = no leak).
Results: bench/console_results.md (+ .json).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime

import httpx
import psycopg
from psycopg import sql

from backoffice.auth.security import hash_password
from bench.common import ADMIN_URL, HERE, ingest_env, log, proc_rss_mb, start_ingest, stop
from fleetapp.embedded import free_port
from fleetcore.db import migrate
from fleetcore.protocol.vin import with_check_digit
from fleetcore.settings import Settings
from simulators.city import STATIONS
from tests.browser import chromium
from tests.ingest_helpers import mqtt_string, mqtt_varint

VEHICLES = 5000
RATE_HZ = 1.0
MQTT_PORT = 1883
PASSWORD = "bench-console-password-1"
SECRET = "bench-console-secret-0123456789abcdefghijkl"
SAMPLE_EVERY_S = 10.0
PHASE_S = 60.0
HEAP_BLOCK_S = 120.0  # a forced full collection and a retained-heap reading this often
TARGET_UPDATE_HZ = 1.0
TARGET_BUSY = 0.5
OUT_MD = HERE / "console_results.md"
OUT_JSON = HERE / "console_results.json"
M_PER_DEG_LAT = 111_250.0

# Injected into the page over CDP (not subject to the page's CSP): frame intervals, draw times, batch latencies.
PROBE = """() => {
  const c = window.fleetConsole;
  const p = (window.__probe = { frames: [], draws: [], batches: [], ages: [], fresh: [], index: [] });
  let last = performance.now();
  const tick = (now) => { p.frames.push(now - last); last = now; requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  const draw = c.map.draw.bind(c.map);
  c.map.draw = () => { const t0 = performance.now(); draw(); p.draws.push(performance.now() - t0); };
  const apply = c.map.applyPositions.bind(c.map);
  c.map.applyPositions = (d) => {
    const now = Date.now();
    const ages = d.ts.filter((x) => x).map((x) => now - x).sort((a, b) => a - b);
    if (ages.length) {
      p.ages.push(ages[Math.floor(ages.length / 2)], ages[Math.floor(ages.length * 0.95)]);
      p.fresh.push(ages[0]);
    }
    p.batches.push([now, d.id.length]);
    const t0 = performance.now();
    const out = apply(d);
    p.index.push(performance.now() - t0);
    return out;
  };
}"""
DRAIN = """() => { const p = window.__probe; const out = { frames: p.frames, draws: p.draws, batches: p.batches,
  ages: p.ages, fresh: p.fresh, index: p.index, polls: window.fleetConsole.stats.polls,
  pollMs: window.fleetConsole.stats.lastPollMs };
  p.frames = []; p.draws = []; p.batches = []; p.ages = []; p.fresh = []; p.index = []; return out; }"""


def make_fleet(n: int) -> str:
    """A scratch database with the city's stations and n vehicles, each with a JSON device."""
    name = f"fleet_console_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = f"{ADMIN_URL.rpartition('/')[0]}/{name}"
    migrate(url, Settings(environment="test"))
    rng = random.Random(5)
    chars = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
    with psycopg.connect(url) as conn:
        ids = [
            r[0]
            for r in conn.execute(
                "INSERT INTO stations (code, name, lat, lon) SELECT * FROM unnest(%s::text[], %s::text[], "
                "%s::float8[], %s::float8[]) RETURNING id",
                ([s.code for s in STATIONS], [s.name for s in STATIONS], [s.lat for s in STATIONS],
                 [s.lon for s in STATIONS]),
            )
        ]  # fmt: skip
        vins = [with_check_digit("WVW" + "".join(rng.choice(chars) for _ in range(14))) for _ in range(n)]
        vids = [
            r[0]
            for r in conn.execute(
                """INSERT INTO vehicles (vin, plate, make, model, year, class, home_station_id, status)
                   SELECT v, 'B-CB ' || k, 'Volkswagen', 'Golf', 2023, 'compact', s,
                          CASE WHEN k %% 5 = 0 THEN 'available' ELSE 'rented' END
                     FROM unnest(%s::text[], %s::int[], %s::bigint[]) AS u(v, k, s) RETURNING id""",
                (vins, list(range(n)), [ids[i % len(ids)] for i in range(n)]),
            )
        ]
        devs = [f"cb-{i:05d}" for i in range(n)]
        conn.execute(
            "INSERT INTO devices (device_id, protocol) SELECT d, 'json' FROM unnest(%s::text[]) d", (devs,)
        )
        conn.execute(
            "INSERT INTO device_installs (device_id, vehicle_id) SELECT * FROM unnest(%s::text[], %s::bigint[])",
            (devs, vids),
        )
        conn.execute(
            "INSERT INTO vehicle_state (vehicle_id, device_id) SELECT * FROM unnest(%s::bigint[], %s::text[])",
            (vids, devs),
        )
        conn.execute(
            "INSERT INTO staff_users (username, role, password_hash) VALUES ('bench-dispatcher', 'dispatcher', %s)",
            (hash_password(PASSWORD),),
        )
    return url


class Fleet(threading.Thread):
    """n devices driving circles (radius 0.3-3 km, 15-70 km/h) around the stations, 1 Hz each."""

    def __init__(self, root: str, n: int, seconds: float) -> None:
        super().__init__(daemon=True)
        rng = random.Random(7)
        self.root, self.n, self.seconds = root, n, seconds
        self.cars = []
        for i in range(n):
            st = STATIONS[i % len(STATIONS)]
            r = rng.uniform(300, 3000)
            v = rng.uniform(15, 70) / 3.6
            self.cars.append((st.lat, st.lon, r, v / r * rng.choice((-1, 1)), rng.uniform(0, 2 * math.pi)))
        self.sent = 0
        self.late = 0
        self.stop = threading.Event()

    def payload(self, i: int, seq: int, t: float) -> tuple[bytes, bytes]:
        lat0, lon0, r, w, a0 = self.cars[i]
        a = a0 + w * t
        dlat = r * math.sin(a) / M_PER_DEG_LAT
        dlon = r * math.cos(a) / (M_PER_DEG_LAT * math.cos(math.radians(lat0)))
        # direction of travel on the circle (compass bearing): the tangent, turning with the sign of w
        heading = (
            math.degrees(
                math.atan2(-math.sin(a), math.cos(a)) if w > 0 else math.atan2(math.sin(a), -math.cos(a))
            )
            % 360
        )
        speed = abs(w) * r * 3.6
        body = (
            f'{{"ts":{int(t * 1000)},"seq":{seq},"lat":{lat0 + dlat:.6f},"lon":{lon0 + dlon:.6f},'
            f'"speed_kmh":{speed:.1f},"heading_deg":{heading:.0f},"ignition":true,"fuel_pct":60,"battery_v":14.1,'
            f'"coolant_c":90,"rpm":1800,"odometer_km":{20000 + seq * 0.01:.2f}}}'
        )
        return f"{self.root}/devices/cb-{i:05d}/telemetry".encode(), body.encode()

    def run(self) -> None:
        ticks = 10
        per_tick = math.ceil(self.n / ticks)
        with socket.create_connection(("127.0.0.1", MQTT_PORT)) as s:
            body = (
                mqtt_string("MQTT")
                + bytes([4, 0x02])
                + (60).to_bytes(2, "big")
                + mqtt_string(f"cb-{uuid.uuid4().hex[:6]}")
            )
            s.sendall(b"\x10" + mqtt_varint(len(body)) + body)
            s.recv(4)
            t0 = time.monotonic()
            tick = 0
            while not self.stop.is_set() and time.monotonic() - t0 < self.seconds:
                seq = tick // ticks
                lo = (tick % ticks) * per_tick
                now = time.time()
                chunk = bytearray()
                for i in range(lo, min(lo + per_tick, self.n)):
                    topic, payload = self.payload(i, seq, now)
                    var = mqtt_string(topic.decode()) + ((self.sent % 65535) + 1).to_bytes(2, "big")
                    chunk += b"\x32" + mqtt_varint(len(var) + len(payload)) + var + payload
                    self.sent += 1
                s.sendall(chunk)
                s.setblocking(False)
                try:
                    while s.recv(1 << 20):
                        pass
                except BlockingIOError:
                    pass
                s.setblocking(True)
                tick += 1
                delay = t0 + tick / (ticks * RATE_HZ) - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                else:
                    self.late += 1
            s.sendall(b"\xe0\x00")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def slope_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) in value per minute."""
    if len(points) < 3:
        return float("nan")
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return 60 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else float("nan")


def run(minutes: float, vehicles: int) -> dict:
    url = make_fleet(vehicles)
    log(f"database with {vehicles} vehicles ready")
    root = f"bench-console-{uuid.uuid4().hex[:6]}/fleet/v1"
    logdir = HERE / "out"
    logdir.mkdir(exist_ok=True)
    env = ingest_env(url, f"mqtt://127.0.0.1:{MQTT_PORT}", root, f"console-bench-{uuid.uuid4().hex[:6]}")
    env.update(FLEET_SECRET_KEY=SECRET, FLEET_API_POOL_SIZE="4", FLEET_INGEST_WRITERS="1")
    ingest = start_ingest(env, logdir / "console-ingest.log")
    port = free_port()
    api = subprocess.Popen(
        [sys.executable, "-m", "fleetapp.cli", "api", "--port", str(port)], env=env, cwd=HERE.parent,
        stdout=open(logdir / "console-api.log", "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    fleet = Fleet(root, vehicles, minutes * 60 + 120)
    try:
        for _ in range(120):
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        time.sleep(3)  # ingest subscribed
        fleet.start()
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.goto(f"{base}/console/")
            page.fill("#login-user", "bench-dispatcher")
            page.fill("#login-pass", PASSWORD)
            page.click("#login-form button[type=submit]")
            page.wait_for_selector("#conn[data-state=live]", timeout=60_000)
            deadline = time.monotonic() + 60
            while (
                page.evaluate("window.fleetConsole.map.vehicles.size") < vehicles
                and time.monotonic() < deadline
            ):
                time.sleep(1)
            time.sleep(10)  # every car has reported and been drawn once
            cdp = page.context.new_cdp_session(page)
            cdp.send("Performance.enable")
            page.evaluate(PROBE)
            views = [("city", "[52.505, 13.39], 12"), ("close-up", "[52.5251, 13.3694], 15")]
            samples: list[dict] = []
            phase_data: dict[str, dict[str, list]] = {
                v[0]: {"frames": [], "draws": [], "ages": [], "batches": [], "fresh": [], "index": []}
                for v in views
            }
            retained: list[tuple[float, float]] = [(0.0, retained_heap_mb(cdp))]
            t_start = time.monotonic()
            prev = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
            prev_t = t_start
            view = None
            log(f"measuring for {minutes:g} min")
            while time.monotonic() - t_start < minutes * 60:
                el = time.monotonic() - t_start
                name, where = views[int(el // PHASE_S) % len(views)]
                if name != view:
                    page.evaluate(
                        f"() => {{ window.fleetConsole.map.map.setView({where}, {{ animate: false }}); }}"
                    )
                    view = name
                time.sleep(SAMPLE_EVERY_S)
                now = time.monotonic()
                m = {x["name"]: x["value"] for x in cdp.send("Performance.getMetrics")["metrics"]}
                d = page.evaluate(DRAIN)
                pd = phase_data[name]
                pd["frames"] += d["frames"]
                pd["draws"] += d["draws"]
                pd["ages"] += d["ages"]
                pd["batches"] += d["batches"]
                pd["fresh"] += d["fresh"]
                pd["index"] += d["index"]
                samples.append(
                    {
                        "t_s": round(now - t_start, 1), "view": name,
                        "busy": (m["TaskDuration"] - prev["TaskDuration"]) / (now - prev_t),
                        "script": (m["ScriptDuration"] - prev["ScriptDuration"]) / (now - prev_t),
                        "heap_mb": m["JSHeapUsedSize"] / 2**20, "nodes": m["Nodes"],
                        "listeners": m["JSEventListeners"], "batches": len(d["batches"]),
                        "batch_hz": len(d["batches"]) / (now - prev_t), "poll_ms": d["pollMs"],
                        "api_rss_mb": proc_rss_mb(api.pid), "published": fleet.sent,
                    }
                )  # fmt: skip
                s = samples[-1]
                log(
                    f"{s['t_s']:>6.0f}s {name:8s} updates {s['batch_hz']:.2f}/s busy {100 * s['busy']:.0f}% heap {s['heap_mb']:.1f} MB nodes {s['nodes']:.0f}"
                )
                prev, prev_t = m, now
                if int(s["t_s"] // HEAP_BLOCK_S) > int((s["t_s"] - SAMPLE_EVERY_S) // HEAP_BLOCK_S):
                    retained.append(
                        (s["t_s"], retained_heap_mb(cdp))
                    )  # counted in the next window's busy time
                    prev = {x["name"]: x["value"] for x in cdp.send("Performance.getMetrics")["metrics"]}
                    prev_t = time.monotonic()
            retained.append((round(time.monotonic() - t_start, 1), retained_heap_mb(cdp)))
    finally:
        fleet.stop.set()
        stop(api)
        stop(ingest)
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(url.rpartition("/")[2])
                )
            )
    res = summarise(samples, phase_data, minutes, vehicles, fleet)
    res["memory"]["retained_mb"] = [[t, round(mb, 2)] for t, mb in retained]
    first, last = retained[0][1], retained[-1][1]
    res["memory"]["flat"] = last <= first * 1.2 + 1.0
    return res


def retained_heap_mb(cdp) -> float:  # noqa: ANN001
    """The JS heap right after a full garbage collection: what the page really holds."""
    cdp.send("HeapProfiler.collectGarbage")
    return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}[
        "JSHeapUsedSize"
    ] / 2**20


def summarise(samples: list[dict], phases: dict, minutes: float, vehicles: int, fleet: Fleet) -> dict:
    out: dict = {"run": datetime.now(UTC).isoformat(timespec="seconds"), "minutes": minutes, "vehicles": vehicles,
                 "machine": f"{platform.machine()}, {os.cpu_count()} cores",
                 "load_avg": os.getloadavg(), "publisher_late_ticks": fleet.late, "phases": {}}  # fmt: skip
    for name, d in phases.items():
        sizes = [n for _, n in d["batches"]]
        mine = [s for s in samples if s["view"] == name]
        out["phases"][name] = {
            "update_hz": statistics.fmean(s["batch_hz"] for s in mine) if mine else float("nan"),
            "vehicles_per_update_p50": pct(sizes, 0.5),
            "latency_ms_p50": pct(d["ages"][0::2], 0.5), "latency_ms_p95": pct(d["ages"][1::2], 0.95),
            "busy_mean": statistics.fmean(s["busy"] for s in mine) if mine else float("nan"),
            "busy_max": max((s["busy"] for s in mine), default=float("nan")),
            "frame_ms_p50": pct(d["frames"], 0.5), "frame_ms_p95": pct(d["frames"], 0.95),
            "frame_ms_p99": pct(d["frames"], 0.99), "frame_ms_max": max(d["frames"], default=float("nan")),
            "draw_ms_p50": pct(d["draws"], 0.5), "draw_ms_p95": pct(d["draws"], 0.95), "draws": len(d["draws"]),
            "apply_ms_p50": pct(d["index"], 0.5), "apply_ms_p95": pct(d["index"], 0.95),
            "freshest_ms_p50": pct(d["fresh"], 0.5),
        }  # fmt: skip
    later = [s for s in samples if s["t_s"] >= 60]
    out["memory"] = {
        "heap_mb_first": samples[0]["heap_mb"], "heap_mb_last": samples[-1]["heap_mb"],
        "heap_mb_max": max(s["heap_mb"] for s in samples),
        "heap_mb_slope_per_min": slope_per_min([(s["t_s"], s["heap_mb"]) for s in later]),
        "nodes_first": samples[0]["nodes"], "nodes_last": samples[-1]["nodes"],
        "nodes_slope_per_min": slope_per_min([(s["t_s"], s["nodes"]) for s in later]),
        "listeners_first": samples[0]["listeners"], "listeners_last": samples[-1]["listeners"],
        "api_rss_mb_first": samples[0]["api_rss_mb"], "api_rss_mb_last": samples[-1]["api_rss_mb"],
    }  # fmt: skip
    out["poll_ms_p50"] = pct([s["poll_ms"] for s in samples], 0.5)
    out["update_hz_min"] = min(s["batch_hz"] for s in samples)
    minutes_hz = []
    for k in range(int(samples[-1]["t_s"] // 60)):
        window = [s for s in samples if k * 60 < s["t_s"] <= (k + 1) * 60]
        if window:
            minutes_hz.append(
                sum(s["batches"] for s in window) / (window[-1]["t_s"] - window[0]["t_s"] + SAMPLE_EVERY_S)
            )
    out["update_hz_per_minute"] = minutes_hz
    out["update_hz_mean"] = sum(s["batches"] for s in samples) / (
        samples[-1]["t_s"] - samples[0]["t_s"] + SAMPLE_EVERY_S
    )
    out["busy_mean"] = statistics.fmean(s["busy"] for s in samples)
    out["samples"] = samples
    return out


def write(res: dict) -> None:
    OUT_JSON.write_text(json.dumps(res, indent=1, default=str) + "\n")
    p, mem = res["phases"], res["memory"]
    met = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    rows = "\n".join(
        f"| {name} | {d['update_hz']:.2f} | {d['vehicles_per_update_p50']:,.0f} | {d['latency_ms_p50']:,.0f} / {d['latency_ms_p95']:,.0f} | {d['freshest_ms_p50']:,.0f} | "
        f"{100 * d['busy_mean']:.0f} % (max {100 * d['busy_max']:.0f} %) | {d['frame_ms_p50']:.1f} / {d['frame_ms_p95']:.1f} / {d['frame_ms_p99']:.1f} / {d['frame_ms_max']:.0f} | "
        f"{d['apply_ms_p50']:.1f} / {d['apply_ms_p95']:.1f} | {d['draw_ms_p50']:.2f} / {d['draw_ms_p95']:.2f} |"
        for name, d in p.items()
    )
    OUT_MD.write_text(
        f"""# Dispatcher console: {res["vehicles"]:,} vehicles at 1 Hz in headless Chromium

`make bench-console` (bench/console.py), run {res["run"]} for {res["minutes"]:g} minutes on this machine
({res["machine"]}, load average at the end {", ".join(f"{x:.1f}" for x in res["load_avg"])}; Chromium {subprocess.run(["/usr/bin/chromium", "--version"], capture_output=True, text=True).stdout.strip()},
headless, software rendering, 1600×900). Real path: paced MQTT publisher → `fleet ingest` → PostgreSQL →
`fleet api` (`GET /api/v1/console/positions` once a second) → the page. The view switched every minute between
the whole city (zoom 12, clusters) and a close-up (zoom 15, single cars).

| target | result |
|---|---|
| page applies updates at ≥ 1 Hz (the source's rate) | {res["update_hz_mean"]:.3f} Hz over the run (each minute {min(res["update_hz_per_minute"], default=float("nan")):.3f}–{max(res["update_hz_per_minute"], default=float("nan")):.3f}, ±1 update of window alignment; slowest 10 s {res["update_hz_min"]:.2f}): **{met(res["update_hz_mean"] >= TARGET_UPDATE_HZ * 0.99)}** |
| main thread busy < 50 % | mean {100 * res["busy_mean"]:.0f} %: **{met(res["busy_mean"] < TARGET_BUSY)}** |
| memory flat over the run | JS heap after a forced full collection, every 2 minutes: {" → ".join(f"{mb:.1f}" for _, mb in mem["retained_mb"])} MB (between collections the sawtooth reaches {mem["heap_mb_max"]:.1f} MB); DOM nodes {mem["nodes_first"]:.0f} → {mem["nodes_last"]:.0f}; event listeners {mem["listeners_first"]:.0f} → {mem["listeners_last"]:.0f}: **{met(mem["flat"])}** |

| view | updates/s | vehicles per update (p50) | update latency p50 / p95 (ms) | freshest sample (p50, ms) | main thread busy | frame interval p50 / p95 / p99 / max (ms) | apply + re-cluster p50 / p95 (ms) | vehicle layer draw p50 / p95 (ms) |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
{rows}

- Update latency: sample time (stamped by the publisher) → the delta applied in the page, median and 95th
  percentile over the vehicles of each update; it holds ingest's commit of the sample into `vehicle_state`, the wait
  for the next poll (up to 1 s) and the request. "Freshest sample" is the youngest sample of each update: what the
  page cannot do better than, i.e. how far ingest is behind on this machine.
- Apply + re-cluster: applying one delta of 5,000 vehicles to the page's objects and rebuilding the cluster index.
- Main thread busy: Chromium's `TaskDuration` (all main-thread tasks: script, style, layout, paint) per wall
  second, from the DevTools Performance metrics.
- Frame interval: between `requestAnimationFrame` callbacks (16.7 ms = 60 fps); the layer's draw time is our canvas
  redraw alone. A positions poll answered in {res["poll_ms_p50"]:.0f} ms (median, browser side) for 5,000 changed vehicles.
- API process RSS {mem["api_rss_mb_first"]:.0f} → {mem["api_rss_mb_last"]:.0f} MB. Publisher late ticks: {res["publisher_late_ticks"]}.
- Raw numbers per 10-s window: bench/console_results.json.
"""
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--vehicles", type=int, default=VEHICLES)
    ap.add_argument("--report-only", action="store_true", help="rewrite the report from console_results.json")
    args = ap.parse_args()
    res = json.loads(OUT_JSON.read_text()) if args.report_only else run(args.minutes, args.vehicles)
    write(res)
    log(f"wrote {OUT_MD}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
