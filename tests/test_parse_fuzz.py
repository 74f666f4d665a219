"""Property tests of the parser with hypothesis: no input of any topic kind makes it raise, every result is rows or
a contract reason with a short detail, and the compiled fast path agrees with the Python code.

CI runs 100 inputs per kind (seconds). `make fuzz` runs tests/fuzz_long.py (≥ 100,000 generated and mutated
inputs per kind) and then this with FLEET_FUZZ_EXAMPLES=5000, writing what it saw (inputs, escapes, slowest
single parse) to FLEET_FUZZ_RESULTS.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetcore.contract import NUMERIC_FIELDS, topic_for
from fleetcore.protocol.nmea import encode_gga, encode_rmc
from fleetcore.protocol.obd import PIDS
from fleetcore.protocol.parse import MAX_DETAIL, REASONS, Parsed, Rejection, process_message
from tests.test_fastparse import same

ROOT = "fuzz/v1"
NOW = datetime(2026, 12, 2, 8, 0, 0, 123456, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
EXAMPLES = int(os.environ.get("FLEET_FUZZ_EXAMPLES", "100"))
RESULTS = os.environ.get("FLEET_FUZZ_RESULTS")

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=RESULTS is None,  # CI: the same inputs every run; `make fuzz`: new ones
    database=None,
)

# ---------------------------------------------------------------------------------------------- strategies

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
)
ts_values = st.one_of(
    st.integers(min_value=NOW_MS - 10**10, max_value=NOW_MS + 10**6),
    st.integers(),
    st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
    st.text(max_size=40),
    json_values,
)
field_names = st.sampled_from(
    [f.name for f in NUMERIC_FIELDS] + ["ignition", "accel_g", "dtc", "x", "frames"]
)
hex_frame = st.one_of(
    st.sampled_from(list(PIDS)).flatmap(
        lambda pid: st.binary(min_size=0, max_size=PIDS[pid].nbytes + 2).map(
            lambda b, pid=pid: bytes([0x41, pid]) + b  # type: ignore[misc]
        )
    ),
    st.binary(min_size=0, max_size=12),
).map(lambda b: " ".join(f"{x:02X}" for x in b))
elm_lines = st.one_of(
    hex_frame,
    hex_frame.map(lambda t: "7E8 " + f"{len(t.split()):02X} " + t),
    hex_frame.map(lambda t: "18 DA F1 10 " + f"{len(t.split()):02X} " + t),
    st.sampled_from(
        [
            "NO DATA",
            "SEARCHING...",
            "?",
            "STOPPED",
            "CAN ERROR",
            "014",
            "0: 49 02 01 31 44 34",
            "7F 01 12",
            "1: 47 50 30 30 52 35 35",
            "7E8 10 14 49 02 01 31 44 34",
            "7E8 21 47 50 30 30 52 35 35",
            "43 01 01 33",
            "43 00",
            "48 6B 10 43 01 33 00 00 00 00 FF",
        ]
    ),  # fmt: skip
    st.text(max_size=40),
)


@st.composite
def sample(draw: st.DrawFn, kind: str) -> dict:
    obj: dict = {}
    if draw(st.booleans()):
        obj["ts"] = draw(ts_values)
    if draw(st.booleans()):
        obj["seq"] = draw(st.one_of(st.integers(min_value=-1, max_value=2**64), json_values))
    if kind == "obd":
        obj["frames"] = draw(st.one_of(st.lists(elm_lines, max_size=12), json_values))
    elif kind == "event":
        obj["type"] = draw(st.one_of(st.sampled_from(["crash", "sos", "door_open", "CRASH"]), json_values))
    for name in draw(st.lists(field_names, max_size=6)):
        obj[name] = draw(json_values)
    return obj


def json_payloads(kind: str) -> st.SearchStrategy[bytes]:
    structured = st.one_of(sample(kind), st.lists(sample(kind), max_size=6), json_values).map(
        lambda v: json.dumps(v, allow_nan=True).encode()
    )
    deep = st.integers(min_value=1, max_value=3000).map(
        lambda n: (
            '{"ts": ' + "[" * n + "]" * n + ', "seq": 1, "frames": ["41 0D 32"], "type": "sos"}'
        ).encode()
    )
    return st.one_of(structured, mutated(structured), deep, st.binary(max_size=200))


def mutated(base: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    @st.composite
    def go(draw: st.DrawFn) -> bytes:
        b = bytearray(draw(base))
        for _ in range(draw(st.integers(min_value=1, max_value=4))):
            if not b:
                break
            i = draw(st.integers(min_value=0, max_value=len(b) - 1))
            op = draw(st.integers(min_value=0, max_value=2))
            if op == 0:
                del b[i]
            elif op == 1:
                b[i:i] = draw(st.binary(min_size=1, max_size=3))
            else:
                b[i] = draw(st.sampled_from(b'0123456789.-+eE,:*$[]{}"\\\x00\xff \r\n'))
        return bytes(b)

    return go()


@st.composite
def nmea_text(draw: st.DrawFn) -> bytes:
    lines = []
    for _ in range(draw(st.integers(min_value=0, max_value=6))):
        dt = NOW - timedelta(seconds=draw(st.integers(min_value=-1000, max_value=10**9)))
        lat = draw(st.floats(min_value=-90, max_value=90))
        lon = draw(st.floats(min_value=-180, max_value=180))
        talker = draw(st.sampled_from(["GP", "GN", "GL", "GA", "GB"]))
        pick = draw(st.integers(min_value=0, max_value=3))
        if pick in (0, 1):
            lines.append(
                encode_rmc(dt, lat, lon, draw(st.floats(0, 500)), draw(st.floats(0, 360)), talker=talker)
            )
        if pick in (0, 2):
            lines.append(encode_gga(dt, lat, lon, 10.0, 1.0, draw(st.integers(0, 99)), talker=talker))
        if pick == 3:
            lines.append(draw(st.text(max_size=80)))
    text = draw(st.sampled_from(["\r\n", "\n"])).join(lines)
    return text.encode("utf-8", "surrogatepass")


def payloads(kind: str) -> st.SearchStrategy[bytes]:
    if kind == "nmea":
        return st.one_of(nmea_text(), mutated(nmea_text()), st.binary(max_size=200))
    if kind == "status":
        return st.one_of(st.sampled_from([b"online", b"offline", b" online\r\n"]), st.binary(max_size=40))
    return json_payloads(kind)


# ---------------------------------------------------------------------------------------------- the property

STATS: dict[str, dict[str, float]] = {}
SLOWEST: dict[str, bytes] = {}


def parse_checked(kind: str, payload: bytes) -> None:
    topic = topic_for(ROOT, "dev-1", kind)
    stats = STATS.setdefault(kind, {"inputs": 0, "escapes": 0, "slowest_ms": 0.0})
    stats["inputs"] += 1
    start = time.process_time()  # CPU time: other work on the machine does not count
    try:
        fast = process_message(ROOT, topic, payload, now=NOW)
    except BaseException:
        stats["escapes"] += 1
        raise
    elapsed_ms = (time.process_time() - start) * 1000
    if elapsed_ms > stats["slowest_ms"]:
        stats["slowest_ms"] = elapsed_ms
        SLOWEST[kind] = payload
    slow = process_message(ROOT, topic, payload, now=NOW, fast=False)
    assert same(fast, slow), (payload, fast, slow)
    assert isinstance(fast, Parsed | Rejection)
    rejections = [fast] if isinstance(fast, Rejection) else fast.rejections
    for r in rejections:
        assert r.reason in REASONS and len(r.detail) <= MAX_DETAIL, r


@pytest.mark.parametrize("kind", ["telemetry", "obd", "event", "nmea", "status"])
def test_no_input_makes_the_parser_raise(kind: str) -> None:
    @FUZZ
    @given(payloads(kind))
    def run(payload: bytes) -> None:
        parse_checked(kind, payload)

    run()
    if RESULTS:
        _record(kind)


def _record(kind: str) -> None:
    path = Path(RESULTS or "")
    data = json.loads(path.read_text()) if path.exists() else {}
    s = STATS[kind]
    data[kind] = {
        "inputs": int(s["inputs"]),
        "escapes": int(s["escapes"]),
        "slowest_ms": round(s["slowest_ms"], 3),
        "slowest_input_head": SLOWEST[kind][:120].decode("utf-8", "replace"),
        "slowest_input_bytes": len(SLOWEST[kind]),
    }
    data["_run"] = datetime.now(UTC).isoformat(timespec="seconds")
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def test_deep_nesting_is_a_rejection_in_both_tiers() -> None:
    """`{"ts": [[[[…]]]], "seq": 1}` ~1,000 deep raised RecursionError out of the parser (logged as parse_error)."""
    for n in (1000, 5000, 100_000):
        payload = ('{"ts": ' + "[" * n + "]" * n + ', "seq": 1}').encode()
        for kind in ("telemetry", "obd", "event"):
            for fast in (True, False):
                r = process_message(ROOT, topic_for(ROOT, "d", kind), payload, now=NOW, fast=fast)
                assert isinstance(r, Rejection) and r.reason in ("bad_field", "bad_json"), r
    event = (
        f'{{"ts": {NOW_MS - 1000}, "seq": 1, "type": "sos", "x": ' + "[" * 900 + "]" * 900 + "}"
    ).encode()
    r = process_message(ROOT, topic_for(ROOT, "d", "event"), event, now=NOW)
    assert isinstance(r, Rejection) and r.reason == "bad_field" and "nests deeper" in r.detail
