"""`make bench`'s report: bench/results.json and bench/results.md from the measured figures."""

from __future__ import annotations

import json
import statistics

from bench.common import HERE, PROTOCOL_MIX, TARGET_BROKER_RATIO, TARGET_NAIVE_RATIO


def rounded(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


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
