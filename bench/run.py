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

from bench.common import (
    COALESCED_FLUSH_MS,
    HERE,
    TARGET_BROKER_RATIO,
    TARGET_NAIVE_RATIO,
    PacedPublisher,
    backlog,
    counter,
    counter_rows,
    cpu_budget,
    cpu_snapshot,
    drop_database,
    ingest_env,
    log,
    make_database,
    proc_cpu_s,
    proc_rss_mb,
    quantile,
    reset_tables,
    scrape,
    start_ingest,
    stop,
    topics,
)
from bench.report import rounded, write_report
from fleetcore.contract import READING_COLUMNS
from fleetcore.db import scalar
from fleetcore.protocol.parse import process_message
from fleetcore.settings import Settings
from tests.ingest_helpers import (
    create_session,
    free_port,
    mosquitto,
    publish_raw,
    recent_ms,
    sample_message,
    wait_port,
)

TARGET_P99_S = 1.0


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
        "latency_p50_s": rounded(quantile(0.5, before, after)),
        "latency_p99_s": rounded(quantile(0.99, before, after)),
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
