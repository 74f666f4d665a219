"""The long fuzz run behind `make fuzz`: ≥ 100,000 inputs per topic kind through the parser, both tiers.

Inputs: the device-shaped generators of tests/test_fastparse.py (valid and beyond-range messages, buffered uploads,
NMEA blocks in both orders and several talkers), byte-mutated copies of them, random JSON trees, deep nesting and
random bytes. Each input is parsed by the compiled and the Python tier; the run counts inputs, escapes (an
exception out of process_message), disagreements between the tiers and contract violations (a reason outside
REASONS, a detail over MAX_DETAIL), and the slowest single parse (process CPU time, so that other work on the
machine does not count). Results go to a JSON file (default bench/fuzz_results.json).

    python -m tests.fuzz_long [--inputs 100000] [--seed S] [--out bench/fuzz_results.json]
"""

from __future__ import annotations

import argparse
import json
import random
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleetcore.contract import topic_for
from fleetcore.protocol.parse import MAX_DETAIL, REASONS, Parsed, Rejection, process_message
from tests import test_fastparse as gen

ROOT = gen.ROOT
NOW = gen.NOW


def random_json(rng: random.Random, depth: int = 0) -> object:
    pick = rng.random()
    if depth > 4 or pick < 0.5:
        return rng.choice(
            [
                None,
                True,
                False,
                rng.randint(-(2**70), 2**70),
                rng.uniform(-1e9, 1e9),
                "x" * rng.randint(0, 20),
                "é\u2028",
                "\\",
                rng.random(),
                1e308,
                -0.0,
                gen.NOW_MS,
            ]  # fmt: skip
        )
    if pick < 0.75:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    keys = ["ts", "seq", "type", "frames", "lat", "dtc", "accel_g", "ignition", "k"]
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randint(0, 6))}


def event(rng: random.Random) -> bytes:
    obj = {
        "ts": gen.ts_value(rng),
        "seq": rng.randint(0, 10**6),
        "type": rng.choice(["crash", "sos", "tow", "x"]),
    }
    for _ in range(rng.randint(0, 4)):
        obj[rng.choice(["peak_g", "door", "data", "n"])] = random_json(rng)
    return gen.dumps(rng, obj if rng.random() < 0.9 else [obj, obj])


def status(rng: random.Random) -> bytes:
    return rng.choice(
        [b"online", b"offline", b"online\r\n", b"ONLINE", b"", bytes(rng.randrange(256) for _ in range(8))]
    )


GENERATORS = {**gen.KINDS, "event": event, "status": status}


def one_input(rng: random.Random, kind: str) -> bytes:
    pick = rng.random()
    if pick < 0.45:
        return GENERATORS[kind](rng)
    if pick < 0.85:
        return gen.mutate(rng, GENERATORS[kind](rng))
    if pick < 0.93:
        return json.dumps(random_json(rng)).encode()
    if pick < 0.96:
        n = rng.choice([10, 999, 1000, 1024, 1025, 3000, 50_000])
        return ('{"ts": ' + "[" * n + "]" * n + ', "seq": 1, "type": "sos", "frames": ["41 0D 32"]}').encode()
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))


def run(inputs: int, seed: str) -> dict:
    out: dict = {"_run": datetime.now(UTC).isoformat(timespec="seconds"), "_seed": seed}
    for kind in sorted(GENERATORS):
        rng = random.Random(f"{seed}-{kind}")
        topic = topic_for(ROOT, "dev-1", kind)
        stats: dict[str, Any] = {"inputs": 0, "escapes": 0, "tier_disagreements": 0, "contract_violations": 0}
        slowest, slowest_input = 0.0, b""
        examples: list[str] = []
        for _ in range(inputs):
            payload = one_input(rng, kind)
            stats["inputs"] += 1
            try:
                t0 = time.process_time()
                fast = process_message(ROOT, topic, payload, now=NOW)
                elapsed = time.process_time() - t0
                slow = process_message(ROOT, topic, payload, now=NOW, fast=False)
            except BaseException:
                stats["escapes"] += 1
                if len(examples) < 5:
                    examples.append(f"{payload[:200]!r}: {traceback.format_exc(limit=3)}")
                continue
            if elapsed > slowest:
                slowest, slowest_input = elapsed, payload
            if not gen.same(fast, slow):
                stats["tier_disagreements"] += 1
                if len(examples) < 5:
                    examples.append(f"tiers differ on {payload[:200]!r}")
            rejections = (
                [fast]
                if isinstance(fast, Rejection)
                else fast.rejections
                if isinstance(fast, Parsed)
                else None
            )
            if rejections is None or any(
                r.reason not in REASONS or len(r.detail) > MAX_DETAIL for r in rejections
            ):
                stats["contract_violations"] += 1
        stats["slowest_parse_ms"] = round(slowest * 1000, 3)
        stats["slowest_input_bytes"] = len(slowest_input)
        stats["slowest_input_head"] = slowest_input[:100].decode("utf-8", "replace")
        stats["examples"] = examples
        out[kind] = stats
        print(kind, {k: v for k, v in stats.items() if k != "examples"}, flush=True)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--inputs", type=int, default=100_000)
    p.add_argument("--seed", default=str(int(time.time())))
    p.add_argument("--out", default="bench/fuzz_results.json")
    args = p.parse_args()
    result = run(args.inputs, args.seed)
    Path(args.out).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    bad = sum(
        result[k]["escapes"] + result[k]["tier_disagreements"] + result[k]["contract_violations"]
        for k in GENERATORS
    )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
