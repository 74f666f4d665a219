"""The compiled fast path of the parser (fleetcore/protocol/_fastparse.c) against the Python parser.

For every message, process_message with the fast path must return exactly what the Python code returns: the same
types, the same float bits, the same instants in UTC. The fast path may decline a message (then the Python code
runs), but it must take the common shapes devices send, or ingest silently loses its speed.
Messages are generated (valid ones across and beyond every range, in varied JSON spellings) and then mutated
byte by byte, with fixed seeds so that a failure reproduces.
"""

from __future__ import annotations

import contextlib
import json
import random
import struct
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from fleetcore.contract import ACCEL_LIMIT_G, NUMERIC_FIELDS, READING_COLUMNS
from fleetcore.protocol import parse
from fleetcore.protocol.nmea import encode_gga, encode_rmc
from fleetcore.protocol.obd import PIDS, encode_dtcs
from fleetcore.protocol.parse import process_message
from simulators.device import iso_ts

ROOT = "fleet/v1"
NOW = datetime(2026, 12, 2, 8, 0, 0, 123456, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)

pytestmark = pytest.mark.skipif(parse._fast_parse is None, reason="checked by test_fast_path_is_built")


def test_fast_path_is_built() -> None:
    """`make setup` compiles fleetcore/protocol/_fastparse.c; without it ingest runs ~5x the CPU per message."""
    from fleetcore.protocol import _fastparse  # type: ignore[attr-defined]

    assert tuple(_fastparse.COLUMNS) == READING_COLUMNS
    assert parse._fast_parse is _fastparse.parse


# ---------------------------------------------------------------------------------------------- comparing


def same(a: object, b: object) -> bool:
    """Equal values of identical types; floats bit for bit (so -0.0 ≠ 0.0); datetimes as UTC instants."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)  # type: ignore[arg-type]
    if isinstance(a, datetime):
        return a == b and a.utcoffset() == timedelta(0) and b.utcoffset() == timedelta(0)  # type: ignore[attr-defined]
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))  # type: ignore[arg-type, call-overload]
    if is_dataclass(a):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in fields(a))
    return a == b


def check(topic: str, payload: bytes, now: datetime = NOW) -> bool:
    """Both paths agree; True when the fast path took the message."""
    fast = process_message(ROOT, topic, payload, now=now)
    slow = process_message(ROOT, topic, payload, now=now, fast=False)
    assert same(fast, slow), f"{topic} {payload!r}:\n fast {fast!r}\n python {slow!r}"
    kind = topic.rsplit("/", 1)[1]
    return parse._fast_parse is not None and parse._fast_parse(kind, "dev-1", payload, now) is not None


def topic(kind: str) -> str:
    return f"{ROOT}/devices/dev-1/{kind}"


# ---------------------------------------------------------------------------------------------- generators


def number(rng: random.Random, lo: float, hi: float, integer: bool, clean: bool = False) -> object:
    """A value near or inside [lo, hi], sometimes beyond it (never when clean), in the spellings JSON allows."""
    if clean:
        if integer or rng.random() < 0.1:
            return rng.randint(int(lo), int(hi))
        return rng.choice(
            [lo, hi, -0.0 if lo <= 0 else lo, round(rng.uniform(lo, hi), rng.choice([1, 3, 6, 17]))]
        )
    pick = rng.random()
    if pick < 0.05:
        return rng.choice([lo, hi, lo - 1, hi + 1, hi + 1e-9, -0.0, 0, 1e308 * 10, 2**53 + 1, 10**18, 10**19])
    if pick < 0.15:
        return rng.randint(int(lo) - 2, int(hi) + 2)
    if integer and pick < 0.6:
        return rng.randint(int(lo), int(hi))
    v = rng.uniform(lo - (hi - lo) * 0.02, hi + (hi - lo) * 0.02)
    return round(v, rng.choice([0, 1, 2, 3, 6, 9, 17]))


def ts_value(rng: random.Random, clean: bool = False) -> object:
    """A sample time: epoch ms, the simulator's RFC 3339, RFC 3339 with other offsets and precisions; when not
    clean, also beyond the limits and of the wrong types."""
    if clean:
        ms = NOW_MS - rng.randint(-299_000, 10**10)
        pick = rng.choice([0.0, 0.5, 0.7])
    else:
        ms = NOW_MS - rng.randint(-400_000, 10**10) if rng.random() < 0.95 else rng.randint(0, 2**45)
        pick = rng.random()
    if pick < 0.45:
        return ms
    dt = datetime.fromtimestamp(ms / 1000, UTC)
    if pick < 0.6:
        return iso_ts(ms / 1000)
    if pick < 0.65:
        return rng.choice([ms / 1, str(ms), None, True, [ms], "2026-13-01T00:00:00Z", "2026-02-29T00:00:00Z"])
    off = timedelta(minutes=rng.choice([0, 60, -60, 330, -570, 23 * 60 + 59]))
    local = dt.astimezone(timezone(off))
    digits = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 9])
    text = local.strftime("%Y-%m-%d") + rng.choice("TtT ") + local.strftime("%H:%M:%S")
    if digits:
        text += "." + f"{local.microsecond:06d}{rng.randint(0, 999):03d}"[:digits]
    if off == timedelta(0) and rng.random() < 0.5:
        return text + rng.choice("Zz")
    sign = "-" if off < timedelta(0) else "+"
    minutes = abs(int(off.total_seconds())) // 60
    return text + f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def dumps(rng: random.Random, obj: object) -> bytes:
    """JSON in one of several spellings: compact, spaced, indented, with stray whitespace."""
    style = rng.random()
    if style < 0.3:
        text = json.dumps(obj, separators=(",", ":"))
    elif style < 0.6:
        text = json.dumps(obj)
    elif style < 0.7:
        indent: int | str = rng.choice([1, 2, "\t"])  # type: ignore[assignment]  # choice of a mixed list
        text = json.dumps(obj, indent=indent)
    else:
        text = json.dumps(obj, separators=(rng.choice([",", " ,", ",\r\n"]), rng.choice([":", " : ", ":\t"])))
    if rng.random() < 0.1:
        text = rng.choice([" ", "\n", "\r\n", "\t"]) + text + rng.choice(["", " ", "\n"])
    return text.encode()


NUMERIC = {f.name: f for f in NUMERIC_FIELDS}


def upload(
    rng: random.Random, clean: Callable[[random.Random], bytes], dirty: Callable[[random.Random], bytes]
) -> bytes:
    """A buffered upload: a JSON array of samples, now and then with one bad element."""
    items = [json.loads(clean(rng)) for _ in range(rng.choice([1, 2, 3, 5, 20]))]
    if rng.random() < 0.3:
        with contextlib.suppress(ValueError):
            items.insert(rng.randrange(len(items) + 1), json.loads(dirty(rng)))
    return dumps(rng, items)


def telemetry(rng: random.Random) -> bytes:
    if rng.random() < 0.1:
        return upload(rng, clean_telemetry, telemetry)
    if rng.random() < 0.5:
        return clean_telemetry(rng)
    obj: dict[str, object] = {}
    keys = ["ts", "seq", *NUMERIC, "ignition", "accel_g", "dtc"]
    if rng.random() < 0.1:
        keys += rng.sample(["note", "fw", "x", "frames", "extra"], 2)
    rng.shuffle(keys)
    for k in keys:
        if k not in ("ts", "seq") and rng.random() < 0.3:
            continue
        if k == "ts":
            obj[k] = ts_value(rng)
        elif k == "seq":
            obj[k] = rng.choice([rng.randint(0, 10**6), 0, 2**63 - 1, 2**63, -1, 1.0, None, "7", 10**17])
        elif k in NUMERIC:
            f = NUMERIC[k]
            obj[k] = None if rng.random() < 0.05 else number(rng, f.lo, f.hi, f.integer)
        elif k == "ignition":
            obj[k] = rng.choice([True, False, True, None, 1, "true"])
        elif k == "accel_g":
            n = 3 if rng.random() < 0.9 else rng.choice([0, 2, 4])
            obj[k] = [number(rng, -ACCEL_LIMIT_G, ACCEL_LIMIT_G, False) for _ in range(n)]
            if rng.random() < 0.03:
                obj[k] = rng.choice([None, 1.0, [None, 0, 0], ["1", 0, 0]])
        elif k == "dtc":
            codes = ["P0301", "p0420", "C1234", "B0A1F", "U3FFF", "P4000", "X0100", "P030", "P03011", "b0a1f"]
            obj[k] = (
                rng.sample(codes, rng.randint(0, 3)) if rng.random() < 0.95 else rng.choice([None, "P0301"])
            )
        else:
            obj[k] = rng.choice([1, "text", None, True, 2.5, {"a": 1}, [1, 2], "é", "a\\b", "tab\there"])
    payload = dumps(rng, obj)
    if rng.random() < 0.03:  # a duplicate key: the last value wins
        payload = clean_telemetry(rng).rstrip()[:-1] + duplicate(rng)
    if rng.random() < 0.03:
        payload = dumps(rng, [obj, obj])
    return payload


def duplicate(rng: random.Random) -> bytes:
    key = rng.choice(["lat", "ts", "seq", "dtc", "ignition", "accel_g", "sats"])
    value = rng.choice(["1.25", "null", "500", '"x"', "true", "[]", "[1, 2, 3]", str(NOW_MS - 5000)])
    return f', "{key}": {value}}}'.encode()


def clean_telemetry(rng: random.Random) -> bytes:
    """A valid message as a device would write it, with any subset of the fields."""
    obj: dict[str, object] = {"ts": ts_value(rng, clean=True), "seq": rng.randint(0, 10**9)}
    for name, f in NUMERIC.items():
        if rng.random() < 0.7:
            obj[name] = None if rng.random() < 0.05 else number(rng, f.lo, f.hi, f.integer, clean=True)
    if rng.random() < 0.7:
        obj["ignition"] = rng.choice([True, False])
    if rng.random() < 0.5:
        obj["accel_g"] = [number(rng, -ACCEL_LIMIT_G, ACCEL_LIMIT_G, False, clean=True) for _ in range(3)]
    if rng.random() < 0.3:
        obj["dtc"] = rng.sample(["P0301", "p0420", "C1234", "B0A1F", "U3FFF"], rng.randint(0, 3))
    if rng.random() < 0.1:
        obj["fw"] = rng.choice(["1.2.3", 7, None, False])
    items = list(obj.items())
    rng.shuffle(items)
    return dumps(rng, dict(items))


# What devices send most: the PIDs the compiled code decodes (a column, or a formula it knows); the other PIDs
# python-OBD decodes (about 90, all into obd_extra, which only the Python code builds) now and then.
FAST_PIDS = [p for p, spec in PIDS.items() if p in parse._PID_FORMULAS]


def frame(rng: random.Random) -> str:
    if rng.random() < 0.1:
        return " ".join(encode_dtcs(rng.sample(["P0301", "C0035", "B1000", "U0100"], rng.randint(0, 3)))[:1])
    if rng.random() < 0.05:
        return rng.choice(["NO DATA", "7E8 03 41 0D 32", "43 01 01 33", "STOPPED", "41 E1 00", "43 00"])
    pid = rng.choice(list(PIDS)) if rng.random() < 0.03 else rng.choice(FAST_PIDS)
    n = PIDS[pid].nbytes
    if rng.random() < 0.05:
        n += rng.choice([-1, 1])
    data = bytes([0x41, pid, *(rng.randrange(256) for _ in range(max(n, 0)))])
    if rng.random() < 0.03:
        data = bytes([rng.choice([0x41, 0x43, 0x42, 0x7F])]) + data[1:]
    hexes = [f"{b:02X}" if rng.random() < 0.9 else f"{b:02x}" for b in data]
    sep = rng.choice([" ", " ", "", "  "])
    text = sep.join(hexes)
    if rng.random() < 0.03:
        text = rng.choice([" " + text, text + " ", text + "\t", text[:-1], "zz", ""])
    return text


def obd(rng: random.Random) -> bytes:
    if rng.random() < 0.1:
        return upload(rng, clean_obd, obd)
    frames: object = [frame(rng) for _ in range(rng.randint(1, 12))]
    if rng.random() < 0.03:
        frames = rng.choice([[], None, "41 0C 1A F8", [1, 2], [["41 0C 1A F8"]]])
    obj: dict[str, object] = {"ts": ts_value(rng), "seq": rng.randint(0, 10**6), "frames": frames}
    if rng.random() < 0.1:
        obj["lat"] = rng.choice([1.5, 500, None, "x"])
    items = list(obj.items())
    rng.shuffle(items)
    return dumps(rng, dict(items))


def clean_obd(rng: random.Random) -> bytes:
    pids = [p for p in FAST_PIDS if 2 + PIDS[p].nbytes <= 6]
    frames = []
    for _ in range(rng.randint(1, 8)):
        pid = rng.choice(pids)
        data = [0x41, pid, *(rng.randrange(256) for _ in range(PIDS[pid].nbytes))]
        frames.append(" ".join(f"{b:02X}" for b in data))
    return dumps(rng, {"ts": ts_value(rng, clean=True), "seq": rng.randint(0, 10**6), "frames": frames})


def _checksum(body: str) -> str:
    x = 0
    for ch in body:
        x ^= ord(ch)
    return f"{x:02X}"


def nmea_block(rng: random.Random) -> bytes:
    """A buffered NMEA upload: RMC (+ GGA) per fix, line after line, as units send after an outage; with the
    irregularities Python's decoder resolves (a repeated fix, a time of day seen twice, a GGA without its RMC)."""
    start = NOW - timedelta(seconds=rng.randint(60, 10**6))
    step = timedelta(seconds=rng.choice([1, 1, 5, 86400]))
    lines = []
    for k in range(rng.choice([2, 3, 10, 40])):
        dt = start + k * step
        lat, lon = rng.uniform(-60, 60), rng.uniform(-170, 170)
        pair = [encode_rmc(dt, lat, lon, rng.uniform(0, 150), rng.uniform(0, 359))]
        if rng.random() < 0.8:
            gga = encode_gga(dt, lat, lon, rng.uniform(-100, 3000), rng.uniform(0.5, 9), rng.randint(3, 20))
            # receivers mostly send GGA first; a multi-constellation one a GGA per talker
            pair.insert(0, gga) if rng.random() < 0.6 else pair.append(gga)
            if rng.random() < 0.05:
                pair.insert(1, encode_gga(dt, lat, lon, 10.0, 2.0, rng.randint(0, 30), talker="GL"))
        lines += pair
    pick = rng.random()
    if pick < 0.1:
        lines.insert(rng.randrange(len(lines)), lines[rng.randrange(len(lines))])  # a line twice
    elif pick < 0.15:
        lines.insert(rng.randrange(len(lines)), "$GPGSA,A,3,04,05,,09,12,,,24,,,,,2.5,1.3,2.1*39")
    elif pick < 0.2:
        del lines[0]
    sep = rng.choice(["\r\n", "\n"])
    return (sep.join(lines) + rng.choice(["", sep, sep + sep])).encode()


def nmea(rng: random.Random) -> bytes:
    if rng.random() < 0.15:
        return nmea_block(rng)
    dt = NOW - timedelta(seconds=rng.randint(-400, 10**8), microseconds=rng.randint(0, 999) * 1000)
    if rng.random() < 0.03:
        dt = rng.choice([datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(1980, 1, 5, tzinfo=UTC)])
    lat = rng.uniform(-89.9, 89.9)
    lon = rng.uniform(-179.9, 179.9)
    rmc = encode_rmc(
        dt, lat, lon, rng.uniform(0, 420), rng.uniform(0, 359.9), talker=rng.choice(["GP", "GN"])
    )
    gga = encode_gga(dt, lat, lon, rng.uniform(-600, 9500), rng.uniform(0, 120), rng.randint(0, 70))
    # the encoders write centiseconds; vary the fraction as receivers do
    hms = rmc.split(",")[1]
    frac = rng.choice(["", ".0", ".5", ".25", ".29", ".123", ".999", ".07", hms[6:]])
    if frac != hms[6:]:
        new = hms[:6] + frac
        rmc = _recheck(rmc.replace(hms, new, 1))
        gga = _recheck(gga.replace(hms, new, 1)) if rng.random() < 0.95 else gga
    text = rmc
    pick = rng.random()
    if pick < 0.35:
        text += rng.choice(["\r\n", "\n"]) + gga + rng.choice(["", "\r\n", "\n"])
    elif pick < 0.7:  # the order most receivers send
        text = gga + rng.choice(["\r\n", "\n"]) + rmc + rng.choice(["", "\r\n", "\n"])
    elif pick < 0.8:
        text += rng.choice(["", "\r\n", "\n", "\r\n\r\n", " "])
    else:
        text = rng.choice([gga, rmc + "\r\n" + gga + "\r\n" + rmc, " " + rmc, rmc.lower(), rmc[:-2] + "00"])
    if rng.random() < 0.05:
        body = text[1 : text.index("*")]
        text = "$" + body.replace(",A,", ",V,", 1) + "*" + _checksum(body.replace(",A,", ",V,", 1))
    return text.encode()


def _recheck(sentence: str) -> str:
    body = sentence[1 : sentence.index("*")]
    return f"${body}*{_checksum(body)}"


KINDS = {"telemetry": telemetry, "obd": obd, "nmea": nmea}
NOISE = [
    b"\x00",
    b"\\",
    b'"',
    b"\xc3\xa9",
    b"\xff",
    b"-",
    b"e",
    b"0",
    b".",
    b",",
    b"{",
    b"}",
    b"[",
    b"]",
    b" ",
]


def mutate(rng: random.Random, payload: bytes) -> bytes:
    b = bytearray(payload)
    for _ in range(rng.randint(1, 3)):
        if not b:
            break
        i = rng.randrange(len(b))
        op = rng.random()
        if op < 0.3:
            del b[i]
        elif op < 0.6:
            b[i:i] = rng.choice(NOISE)
        elif op < 0.85:
            b[i] = rng.choice(b'0123456789.-+eE,:*$ABCDEFGHNSWPabcdef \r\n\t"')
        else:
            del b[i:]
    return bytes(b)


# ---------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_generated_messages_agree(kind: str) -> None:
    rng = random.Random(f"fastparse-{kind}")
    taken = 0
    n = 4000
    for _ in range(n):
        taken += check(topic(kind), KINDS[kind](rng))
    # the generator is meant to hit both sides: most messages valid and taken, many declined
    assert 0.2 * n < taken < 0.95 * n, taken


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_mutated_messages_agree(kind: str) -> None:
    rng = random.Random(f"fastparse-mutated-{kind}")
    for _ in range(4000):
        check(topic(kind), mutate(rng, KINDS[kind](rng)))


def test_nmea_in_the_order_receivers_send_takes_the_fast_path() -> None:
    """GGA before RMC is what most receivers send (96 % of real pairs); the compiled code took only RMC first."""
    rng = random.Random("gga-first")
    for _ in range(500):
        dt = NOW - timedelta(seconds=rng.randint(1, 10**6))
        lat, lon = rng.uniform(-80, 80), rng.uniform(-170, 170)
        rmc = encode_rmc(
            dt, lat, lon, rng.uniform(0, 150), rng.uniform(0, 359), talker=rng.choice(["GP", "GN"])
        )
        gga = encode_gga(dt, lat, lon, rng.uniform(0, 900), rng.uniform(0.5, 5), rng.randint(4, 30))
        for text in (f"{gga}\r\n{rmc}\r\n", f"{rmc}\r\n{gga}\r\n", rmc):
            assert check(topic("nmea"), text.encode()), text


def test_nmea_week_rollover_and_minutes_agree() -> None:
    for body in (
        "GPRMC,101112,A,4807.038,N,01131.000,E,022.4,084.4,130307,,,A",  # 2007: rolled forward 1024 weeks
        "GPRMC,101112,A,4807.038,N,01131.000,E,022.4,084.4,130521,,,A",  # 2021: after the floor
        "GPRMC,101112,A,4860.038,N,01131.000,E,022.4,084.4,130521,,,A",  # 60 minutes: refused by Python
        "GPRMC,101112,A,4807.038,N,01199.000,E,022.4,084.4,130521,,,A",
    ):
        text = f"${body}*{_checksum(body)}"
        assert check(topic("nmea"), text.encode()) == ("4860" not in body and "01199" not in body)


def test_timestamps_agree_to_the_microsecond() -> None:
    """Epoch milliseconds and RFC 3339 over the whole accepted range, near the future limit, and beyond."""
    rng = random.Random("fastparse-ts")
    limit_ms = NOW_MS + 300_000
    for ms in [315964800000, 315964799999, limit_ms, limit_ms + 1, limit_ms - 1, 951782400000, 4102444800000]:
        check(topic("telemetry"), json.dumps({"ts": ms, "seq": 1}).encode())
    for _ in range(3000):
        ms = rng.randint(315964800000, limit_ms + 1000)
        check(topic("telemetry"), json.dumps({"ts": ms, "seq": 1}).encode())
        check(topic("telemetry"), json.dumps({"ts": iso_ts(ms / 1000), "seq": 1}).encode())


def test_now_other_than_aware_utc_is_left_to_python() -> None:
    payload = json.dumps({"ts": NOW_MS - 1000, "seq": 1, "lat": 1.0}).encode()
    for now in (NOW.replace(tzinfo=None), NOW.astimezone(timezone(timedelta(hours=2)))):
        assert parse._fast_parse is not None
        assert parse._fast_parse("telemetry", "dev-1", payload, now) is None
        check(topic("telemetry"), payload, now=now)


def test_other_kinds_and_payload_types() -> None:
    payload = json.dumps({"ts": NOW_MS - 1000, "seq": 1, "lat": 1.0}).encode()
    assert parse._fast_parse is not None
    for kind in ("event", "status", "bogus"):
        assert parse._fast_parse(kind, "dev-1", payload, NOW) is None
    # the consumer may hand over bytearray or memoryview
    for buf in (bytearray(payload), memoryview(payload)):
        assert same(
            parse._fast_parse("telemetry", "dev-1", buf, NOW),  # type: ignore[arg-type]  # what the consumer may pass
            parse._fast_parse("telemetry", "dev-1", payload, NOW),
        )
    assert parse._fast_parse("telemetry", "dev-1", "not bytes", NOW) is None  # type: ignore[arg-type]  # on purpose


def test_every_pid_decodes_as_ingest_obd_does() -> None:
    """All 256 values of every byte position of every PID (so a formula changed in fleetcore.protocol.obd is caught);
    the compiled code takes the PIDs it has a formula for and leaves the others to Python (compared all the same)."""
    for pid, spec in PIDS.items():
        for v in range(256):
            for pos in range(spec.nbytes):
                data = [0x41, pid] + [0x5A] * spec.nbytes
                data[2 + pos] = v
                frame_text = " ".join(f"{b:02X}" for b in data)
                payload = json.dumps({"ts": NOW_MS - 1000, "seq": 1, "frames": [frame_text]}).encode()
                taken = check(topic("obd"), payload)
                assert taken == (pid in parse._PID_FORMULAS), f"PID {pid:02X}: fast path took it: {taken}"


def test_device_shapes_take_the_fast_path() -> None:
    """What the simulator's devices publish live (both timestamp styles) is parsed by the compiled code."""
    from simulators.runner import simulate_messages

    taken: dict[str, int] = {}
    total: dict[str, int] = {}
    now = datetime.now(UTC)
    for t, p, _ in simulate_messages(20, 1.0, 3, 60.0, root=ROOT, start=now - timedelta(seconds=120)):
        kind = t.rsplit("/", 1)[1]
        if kind not in KINDS:
            continue
        total[kind] = total.get(kind, 0) + 1
        taken[kind] = taken.get(kind, 0) + check(t, p, now=now)
    assert set(total) == set(KINDS), total
    assert taken == total, (taken, total)


def test_switch_turns_the_fast_path_off_in_the_worker() -> None:
    """FLEET_INGEST_COMPILED_PARSER=false: the worker parses with the Python code (and says so at start)."""
    import threading

    from fleetcore.settings import Settings
    from ingest.consumer import Consumer

    base: dict[str, Any] = {
        "database_url": "postgresql://nobody@127.0.0.1:1/none",
        "mqtt_url": "mqtt://127.0.0.1:1",
        "environment": "test",
    }
    on = Consumer(Settings(**base), threading.Event())
    off = Consumer(Settings(**base, ingest_compiled_parser=False), threading.Event())
    assert on._compiled_parser() and not off._compiled_parser()
    payload = json.dumps({"ts": NOW_MS - 1000, "seq": 1, "lat": "x"}).encode()  # declined by the fast path
    good = json.dumps({"ts": NOW_MS - 1000, "seq": 1, "lat": 1.5}).encode()
    for p in (payload, good):
        assert same(
            on.parse(ROOT, topic("telemetry"), p, now=NOW), off.parse(ROOT, topic("telemetry"), p, now=NOW)
        )


_ASAN_SCRIPT = """
import importlib.machinery, importlib.util, random, sys
loader = importlib.machinery.ExtensionFileLoader("fleetcore.protocol._fastparse", sys.argv[1])
spec = importlib.util.spec_from_loader("fleetcore.protocol._fastparse", loader)
module = importlib.util.module_from_spec(spec)
loader.exec_module(module)
sys.modules["fleetcore.protocol._fastparse"] = module
from fleetcore.protocol import parse
assert parse._fast_parse is module.parse, "the sanitized build is not the one in use"
import tests.test_fastparse as t
rng = random.Random("asan")
for _ in range(int(sys.argv[2])):
    kind = rng.choice(sorted(t.KINDS))
    payload = t.KINDS[kind](rng)
    if rng.random() < 0.7:
        payload = t.mutate(rng, payload)
    if rng.random() < 0.05 and len(payload) < 600:  # every prefix: a scanner reading past the end shows here
        for k in range(len(payload)):
            t.check(t.topic(kind), payload[:k])
    t.check(t.topic(kind), payload)
print("clean")
"""


@pytest.mark.slow
def test_fast_path_is_memory_safe_under_address_sanitizer(tmp_path) -> None:  # noqa: ANN001
    """Device payloads are untrusted input to C code: the module built with AddressSanitizer and UBSan parses
    generated, mutated and truncated messages (agreeing with Python) without one invalid access. Python's own
    allocator is switched off (PYTHONMALLOC=malloc) so that a read past a payload's bytes is seen."""
    import os
    import shutil
    import subprocess
    import sys
    import sysconfig
    from pathlib import Path

    cc = shutil.which("gcc")
    if cc is None:
        pytest.skip("no gcc")
    runtimes = [
        subprocess.run([cc, f"-print-file-name={lib}"], capture_output=True, text=True).stdout.strip()
        for lib in ("libasan.so", "libubsan.so")
    ]
    if not all(os.path.isabs(r) for r in runtimes):
        pytest.skip("gcc has no sanitizer runtimes")
    root = Path(__file__).resolve().parent.parent
    so = tmp_path / "fastparse_asan.so"
    subprocess.run(
        [cc, "-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=undefined"]
        + ["-fno-omit-frame-pointer", "-ffp-contract=off", "-shared", "-fPIC"]
        + [
            f"-I{sysconfig.get_paths()['include']}",
            str(root / "fleetcore" / "protocol" / "_fastparse.c"),
            "-o",
            str(so),
        ],
        check=True,
    )
    env = {
        **os.environ,
        "PYTHONMALLOC": "malloc",
        "ASAN_OPTIONS": "detect_leaks=0",
        "LD_PRELOAD": " ".join(runtimes),
        "PYTHONPATH": str(root),
    }
    run = subprocess.run(
        [sys.executable, "-c", _ASAN_SCRIPT, str(so), "8000"],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0 and "clean" in run.stdout, run.stderr[-4000:]
