"""`make score` (python -m bench.monitor_score): run the simulator's labelled fault scenarios and long normal driving through the same
detector pipeline the live process uses (monitor.detectors.FleetMonitor, in memory, simulated clock) and score
every detector: precision, recall, detection delay, false alarms per 1,000 vehicle-hours.

Matching: detections of one (device, kind) less than EPISODE_GAP_S apart form one alert episode (the live
store keeps one active alert per vehicle and kind, so that is what a dispatcher sees). A truth record of a
device and kind is found when a detection of it - the one that opened the episode or a repeat the detector
raised again after re-arming, which the store shows as a new occurrence with its own evidence - has its sample
time between `start - EARLY_S` and `end + LATE_S`; each detection finds at most one truth. (Matching whole
episodes by their first detection counted a second and third speeding stretch on the same trip as missed,
although the detector re-armed and flagged each of them.) Episodes with no matched detection are false alarms;
truth records with no detection are misses. Truth records marked `observable: false` (the device cannot show
the fault) are neither: a detection near one is not a false alarm, no detection is not a miss; they are
counted apart. Truth records with kind None (e.g. potholes) are negative examples: any crash near them is a
false alarm.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from monitor.detectors import Clear, Detection, FleetMonitor, VehicleInfo
from monitor.models import AUTO_RESOLVE, KINDS
from simulators.runner import ScenarioLike, fleet_registry, simulate_messages

log = logging.getLogger(__name__)

EPISODE_GAP_S = 600.0
EARLY_S = 5.0
LATE_S = 300.0  # sustained detectors need their window after the fault's start; generous but bounded
TICK_S = 1.0
TARGETS = {"crash_recall": 1.0, "crash_precision": 0.95, "false_alarms_per_1000_vh": 1.0, "ws_p99_s": 1.0}


@dataclass
class Episode:
    device_id: str
    kind: str
    first_ts: datetime  # sample time of the first detection
    detected_at: datetime  # simulated clock when the monitor raised it
    last_ts: datetime
    severity: str
    count: int = 1
    matched: bool = False
    hits: list[list] = field(default_factory=list)  # [sample ts, raised at, used] per detection


@dataclass
class RunResult:
    name: str
    vehicles: int
    sim_seconds: float
    messages: int
    wall_s: float
    episodes: list[Episode] = field(default_factory=list)
    truth: list[dict] = field(default_factory=list)


def _ts(v: str | float | datetime | None) -> datetime | None:
    if v is None or isinstance(v, datetime):
        return v
    if isinstance(v, int | float):
        return datetime.fromtimestamp(v, UTC)
    return datetime.fromisoformat(v.replace("Z", "+00:00"))


def replay(
    name: str,
    messages: Iterable[tuple[str, bytes, float]],
    vehicles: dict[str, VehicleInfo],
    *,
    root: str,
    truth: list[dict] | None = None,
    end_t: float | None = None,
) -> RunResult:
    """Feed (topic, payload, publish time) through the detectors on a simulated clock; collect alert episodes."""
    fm = FleetMonitor(root, vehicles.get)
    open_eps: dict[tuple[str, str], Episode] = {}
    episodes: list[Episode] = []
    n = 0
    t_first = t_last = None
    next_tick = None
    started = time.perf_counter()

    def absorb(outputs: list, now: datetime) -> None:
        for info, o in outputs:
            if not isinstance(o, Detection | Clear):
                continue  # state changes (online, stations) are not alerts
            key = (info.device_id, o.kind)
            if isinstance(o, Detection):
                ep = open_eps.get(key)
                if ep is not None and (o.ts - ep.last_ts).total_seconds() < EPISODE_GAP_S:
                    ep.count += 1
                    ep.last_ts = max(ep.last_ts, o.ts)
                    ep.hits.append([o.ts, now, False])
                    continue
                ep = Episode(info.device_id, o.kind, o.ts, now, o.ts, o.severity, hits=[[o.ts, now, False]])
                open_eps[key] = ep
                episodes.append(ep)
            elif isinstance(o, Clear) and o.kind in AUTO_RESOLVE:
                open_eps.pop(key, None)

    for topic, payload, t in messages:
        n += 1
        if t_first is None:
            t_first, next_tick = t, t + TICK_S
        while next_tick is not None and t >= next_tick:
            now = datetime.fromtimestamp(next_tick, UTC)
            absorb(fm.tick(now), now)
            next_tick += TICK_S
        t_last = t
        now = datetime.fromtimestamp(t, UTC)
        absorb(fm.handle(topic, payload, now), now)
    if end_t is not None and next_tick is not None:
        while next_tick <= end_t:
            now = datetime.fromtimestamp(next_tick, UTC)
            absorb(fm.tick(now), now)
            next_tick += TICK_S
    sim = ((end_t or t_last or 0) - (t_first or 0)) if t_first is not None else 0.0
    return RunResult(name, len(vehicles), sim, n, time.perf_counter() - started, episodes, list(truth or []))


def match(result: RunResult) -> dict:
    """Per-kind TP/FP/FN and delays for one run."""
    per: dict[str, dict] = defaultdict(lambda: {"tp": 0, "fp": 0, "fn": 0, "delays": [], "unobservable": 0})
    hits_by = defaultdict(list)
    for ep in result.episodes:
        ep.matched = False
        if not ep.hits:  # an Episode built by hand: its first detection
            ep.hits = [[ep.first_ts, ep.detected_at, False]]
        for h in ep.hits:
            h[2] = False
            hits_by[(ep.device_id, ep.kind)].append((h, ep))
    for tr in sorted(result.truth, key=lambda t: t["start"]):
        kind = tr.get("kind")
        if kind is None:
            continue
        start = _ts(tr["start"])
        assert start is not None  # every truth record has a start (simulators Truth.as_dict)
        end = _ts(tr.get("end")) or start
        lo, hi = start.timestamp() - EARLY_S, max(end, start).timestamp() + LATE_S
        cands = [
            (h, e) for h, e in hits_by[(tr["device_id"], kind)] if not h[2] and lo <= h[0].timestamp() <= hi
        ]
        observable = (tr.get("details") or {}).get("observable", True) is not False
        if cands:
            h, ep = min(cands, key=lambda c: c[0])
            h[2] = ep.matched = True
            if not observable:
                per[kind]["unobservable"] += 1
                continue
            per[kind]["tp"] += 1
            per[kind]["delays"].append(max(0.0, (h[1] - start).total_seconds()))
        elif not observable:
            per[kind]["unobservable"] += 1
        else:
            per[kind]["fn"] += 1
            log.info("missed %s on %s at %s", kind, tr["device_id"], tr["start"])
    false_alarms = []
    for ep in result.episodes:
        if not ep.matched:
            per[ep.kind]["fp"] += 1
            false_alarms.append(
                {
                    "device_id": ep.device_id,
                    "kind": ep.kind,
                    "ts": ep.first_ts.isoformat(),
                    "severity": ep.severity,
                }
            )
    return {"per_kind": dict(per), "false_alarms": false_alarms}


def summarise(fault_runs: list[RunResult], normal: RunResult | None) -> dict:
    """The scoring table: per detector precision, recall, delay; false-alarm rate on normal driving."""
    total: dict[str, dict] = defaultdict(lambda: {"tp": 0, "fp": 0, "fn": 0, "delays": [], "unobservable": 0})
    fault_fas = []
    for run in fault_runs:
        m = match(run)
        fault_fas += m["false_alarms"]
        for k, v in m["per_kind"].items():
            for f in ("tp", "fp", "fn", "unobservable"):
                total[k][f] += v[f]
            total[k]["delays"] += v["delays"]
    normal_out = None
    if normal is not None:
        m = match(normal)
        vh = normal.vehicles * normal.sim_seconds / 3600
        fas = m["false_alarms"]
        by_kind: dict[str, int] = defaultdict(int)
        for fa in fas:
            by_kind[fa["kind"]] += 1
        normal_out = {
            "vehicles": normal.vehicles,
            "hours": round(normal.sim_seconds / 3600, 2),
            "vehicle_hours": round(vh, 1),
            "messages": normal.messages,
            "wall_s": round(normal.wall_s, 1),
            "false_alarms": len(fas),
            "false_alarms_by_kind": dict(by_kind),
            "false_alarms_per_1000_vh": round(len(fas) / vh * 1000, 3) if vh else None,
            "examples": fas[:20],
        }
    rows = []
    for kind in KINDS:
        v = total.get(kind)
        if v is None:
            continue
        tp, fp, fn = v["tp"], v["fp"], v["fn"]
        d = sorted(v["delays"])
        rows.append({
            "kind": kind, "tp": tp, "fp": fp, "fn": fn,
            "precision": round(tp / (tp + fp), 3) if tp + fp else None,
            "recall": round(tp / (tp + fn), 3) if tp + fn else None,
            "delay_median_s": round(statistics.median(d), 1) if d else None,
            "delay_max_s": round(d[-1], 1) if d else None,
            "unobservable": v["unobservable"],
        })  # fmt: skip
    crash = next((r for r in rows if r["kind"] == "crash"), {})
    fa_rate = normal_out["false_alarms_per_1000_vh"] if normal_out else None
    return {
        "runs": [
            {
                "name": r.name,
                "vehicles": r.vehicles,
                "hours": round(r.sim_seconds / 3600, 2),
                "messages": r.messages,
                "wall_s": round(r.wall_s, 1),
                "truth": sum(1 for t in r.truth if t.get("kind")),
            }
            for r in fault_runs
        ],  # fmt: skip
        "detectors": rows,
        "fault_run_false_alarms": fault_fas[:50],
        "normal": normal_out,
        "targets": {
            "crash_recall": {
                "target": 1.0,
                "measured": crash.get("recall"),
                "met": crash.get("recall") == 1.0,
            },
            "crash_precision": {
                "target": 0.95,
                "measured": crash.get("precision"),
                "met": (crash.get("precision") or 0) >= 0.95,
            },
            "false_alarms_per_1000_vh": {
                "target": 1.0,
                "measured": fa_rate,
                "met": fa_rate is not None and fa_rate <= 1.0,
            },
        },
    }


def to_markdown(summary: dict) -> str:
    """The results as the README/docs table."""
    lines = ["| detector | TP | FP | FN | precision | recall | median delay (s) | max delay (s) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    fmt = lambda v: "–" if v is None else (f"{v:.3f}" if isinstance(v, float) and v <= 1 else str(v))  # noqa: E731
    for r in summary["detectors"]:
        lines.append(
            f"| {r['kind']} | {r['tp']} | {r['fp']} | {r['fn']} | {fmt(r['precision'])} | {fmt(r['recall'])} | "
            f"{'–' if r['delay_median_s'] is None else r['delay_median_s']} | "
            f"{'–' if r['delay_max_s'] is None else r['delay_max_s']} |"
        )
    out = ["## Detector scores", "", *lines, ""]
    unobs = {r["kind"]: r["unobservable"] for r in summary["detectors"] if r.get("unobservable")}
    out += [
        "Labels the device cannot show (`observable: false`, excluded from TP/FN; a detection near one is no "
        f"false alarm): {', '.join(f'{k} {n}' for k, n in unobs.items()) if unobs else 'none'}.",
        "",
    ]
    n = summary.get("normal")
    if n:
        out += [
            "## Normal driving",
            "",
            f"{n['vehicles']} vehicles × {n['hours']} h = {n['vehicle_hours']} vehicle-hours, {n['messages']:,} "
            f"messages replayed in {n['wall_s']} s: **{n['false_alarms']} false alarms = "
            f"{n['false_alarms_per_1000_vh']} per 1,000 vehicle-hours** {dict(n['false_alarms_by_kind']) or ''}",
            "",
        ]
    out += ["## Targets", "", "| target | goal | measured | met |", "|---|---:|---:|:---:|"]
    for name, t in summary["targets"].items():
        out.append(f"| {name} | {t['target']} | {t['measured']} | {'yes' if t['met'] else 'NO'} |")
    out += ["", "Runs: " + "; ".join(f"{r['name']} ({r['vehicles']} vehicles, {r['hours']} h, {r['truth']} labelled "
                                       f"faults, {r['messages']:,} msgs, {r['wall_s']} s)" for r in summary["runs"])]  # fmt: skip
    return "\n".join(out) + "\n"


def write(summary: dict, out: Path) -> tuple[Path, Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    js, md = out.with_suffix(".json"), out.with_suffix(".md")
    js.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    md.write_text(to_markdown(summary))
    return js, md


ROOT = "score/fleet/v1"
FAULTS_FILE = Path(__file__).resolve().parent.parent / "simulators" / "scenarios" / "faults.json"


def simulate(
    name: str, *, vehicles: int, seconds: float, seed: int, scenario: ScenarioLike = None
) -> RunResult:
    """One in-memory simulator run scored through the detectors (rate 1 Hz, the devices' default)."""
    registry = fleet_registry(vehicles, scenario)
    infos = {
        r["device_id"]: VehicleInfo(r["index"] + 1, r["device_id"], r["class"], r["status"], r["vin"])
        for r in registry
    }
    truth: list = []
    msgs = simulate_messages(vehicles, 1.0, seed, seconds, scenario, ROOT, truth=truth)
    result = replay(name, msgs, infos, root=ROOT)
    result.truth = [t.as_dict() for t in truth]
    result.sim_seconds = seconds
    return result


def main(*, vehicles: int = 50, hours: float = 4.0, seed: int = 7, out: Path = Path("bench/monitor_score"),
         fault_seeds: int = 3) -> int:  # fmt: skip
    """Score: the labelled fault scenario with several seeds, plus normal driving; writes .md and .json."""
    doc = json.loads(FAULTS_FILE.read_text())
    runs = []
    for k in range(fault_seeds):
        r = simulate(f"faults seed {seed + k}", vehicles=doc.get("vehicles", 40), seconds=doc.get("duration_s", 7200),
                     seed=seed + k, scenario=doc)  # fmt: skip
        log.info("%s: %d messages in %.1f s", r.name, r.messages, r.wall_s)
        runs.append(r)
    normal = simulate("normal driving", vehicles=vehicles, seconds=hours * 3600, seed=seed + 100)
    summary = summarise(runs, normal)
    js, md = write(summary, out)
    print(md.read_text())
    print(f"written {js} and {md}")
    return 0


def cli(argv: list[str] | None = None) -> int:
    """`python -m bench.monitor_score [--vehicles N --hours H --seed S --out PATH]`."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m bench.monitor_score", description=__doc__.split("\n")[0])
    ap.add_argument("--vehicles", type=int, default=50, help="vehicles in the normal-driving run")
    ap.add_argument("--hours", type=float, default=4.0, help="simulated hours of normal driving")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument(
        "--out", type=Path, default=Path("bench/monitor_score"), help="output path without suffix"
    )
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return main(vehicles=args.vehicles, hours=args.hours, seed=args.seed, out=args.out)


if __name__ == "__main__":
    raise SystemExit(cli())
