"""Pure parser of device messages (contract v1): topic + payload → reading rows, events, status or a rejection.

No I/O here: the writer (ingest) and the monitor both call `process_message` and decide what to do with the result.
It sits on the hot path, so the common case (one JSON telemetry object) avoids needless work.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from pynmea2 import nmea_utils

from fleetcore.contract import (
    ACCEL_LIMIT_G,
    EVENT,
    EVENT_TYPES,
    MAX_FUTURE_SKEW_S,
    MAX_PAYLOAD_BYTES,
    MAX_SAMPLES_PER_MESSAGE,
    NMEA,
    NUMERIC_FIELDS,
    OBD,
    READING_COLUMNS,
    STATUS,
    TELEMETRY,
    parse_topic,
)
from fleetcore.protocol import nmea as nmea_codec
from fleetcore.protocol import obd as obd_codec
from fleetcore.protocol.fields import (
    COLUMN_INDEX,
    DTC_INDEX,
    EPOCH,
    FUTURE_SKEW,
    IGNITION_INDEX,
    MAX_DETAIL,
    MAX_SEQ,
    MAX_TS_MS,
    MIN_TS,
    MIN_TS_MS,
    N_COLUMNS,
    NUMERIC_INDEX,
    OBD_EXTRA_INDEX,
    REASONS,
    STATUS_VALUES,
    TOPIC_CACHE_MAX_LEN,
    TOPIC_CACHE_SIZE,
    Bad,
    Event,
    Parsed,
    Rejection,
    capped,
    check_data,
    dtc_codes,
    number_value,
    reading_as_dict,
    sample_head,
    set_accel,
    show,
)
from fleetcore.protocol.obd import PIDS

__all__ = ["Event", "Parsed", "Rejection", "process_message", "reading_as_dict", "REASONS"]

# ----------------------------------------------------------------------------------------------- elements


def _telemetry(obj: Any, device_id: str, limit: datetime) -> tuple:
    ts, seq = sample_head(obj, limit)
    row: list = [None] * N_COLUMNS
    row[0] = ts
    row[1] = device_id
    row[2] = TELEMETRY
    row[3] = seq
    for key, value in obj.items():
        if value is None:  # null = not measured
            continue
        spec = NUMERIC_INDEX.get(key)
        if spec is not None:
            idx, lo, hi, integer = spec
            # inline fast path for the common case (a float in range), the full checks otherwise
            if type(value) is float and not integer and lo <= value <= hi:
                row[idx] = value
            else:
                row[idx] = number_value(key, value, lo, hi, integer)
        elif key == "ignition":
            if type(value) is not bool:
                raise Bad("bad_field", f"ignition={show(value)} is not a boolean")
            row[IGNITION_INDEX] = value
        elif key == "accel_g":
            set_accel(value, row)
        elif key == "dtc":
            row[DTC_INDEX] = dtc_codes(value)
        # anything else (ts, seq, or a field of a later contract version) is ignored
    return tuple(row)


def _obd(obj: Any, device_id: str, limit: datetime) -> tuple[tuple | None, list[obd_codec.ObdProblem]]:
    """One OBD sample → its reading (None when its frames carried no data, e.g. only NO DATA) and the refused
    frames; Bad when nothing in it could be used."""
    ts, seq = sample_head(obj, limit)
    frames = obj.get("frames")
    if frames is None:
        raise Bad("missing_field", "frames is required")
    if type(frames) is not list or not frames:
        raise Bad("bad_field", "frames must be a non-empty list of hex strings")
    res = obd_codec.decode(frames)
    if not res.used:
        if not res.problems:
            return None, []
        first = res.problems[0]
        n = len(res.problems)
        raise Bad(first.reason, first.detail if n == 1 else f"all {n} frames refused; first: {first.detail}")
    row: list = [None] * N_COLUMNS
    row[0] = ts
    row[1] = device_id
    row[2] = OBD
    row[3] = seq
    for key, value in res.fields.items():
        row[COLUMN_INDEX[key]] = value
    if res.extra:
        row[OBD_EXTRA_INDEX] = res.extra
    return tuple(row), res.problems


def _obd_elements(body: Any, device_id: str, limit: datetime) -> Parsed | Rejection:
    """OBD: one sample or an array of them; each refused frame is an element rejection, its sample still stored."""
    single = type(body) is dict
    if not single and type(body) is not list:
        return Rejection(
            device_id, "bad_shape", f"expected a JSON object or array, got {type(body).__name__}"
        )
    items = [body] if single else body
    if not items:
        return Rejection(device_id, "bad_shape", "empty array")
    good: list = []
    bad: list[Rejection] = []
    for i, element in enumerate(items):
        prefix = "" if single else f"element {i}: "
        try:
            row, problems = _obd(element, device_id, limit)
        except Bad as exc:
            if single:
                return Rejection(device_id, exc.reason, exc.detail)
            bad.append(Rejection(device_id, exc.reason, prefix + exc.detail, i))
            continue
        if row is not None:
            good.append(row)
        for p in problems:
            bad.append(Rejection(device_id, p.reason, prefix + p.detail, p.index if single else i))
    if not good and bad and not single:
        first = bad[0]
        return Rejection(device_id, first.reason, f"all {len(items)} elements rejected; {first.detail}")
    return Parsed(device_id, OBD, good, [], rejections=bad)


def _event(obj: Any, device_id: str, limit: datetime) -> Event:
    ts, seq = sample_head(obj, limit)
    etype = obj.get("type")
    if etype is None:
        raise Bad("missing_field", "type is required")
    if type(etype) is not str or etype not in EVENT_TYPES:
        raise Bad("unknown_event_type", f"type={show(etype)} is not one of {sorted(EVENT_TYPES)}")
    data = {k: v for k, v in obj.items() if k not in ("ts", "seq", "type")}
    check_data(data, "data")
    return Event(ts=ts, seq=seq, type=etype, data=data)


def _elements(
    body: Any, device_id: str, limit: datetime, fn: Callable[[Any, str, datetime], Any]
) -> tuple[list, list[Rejection]] | Rejection:
    """One object or an array of them → (accepted, element rejections), or a Rejection when nothing is good."""
    if type(body) is dict:
        try:
            return [fn(body, device_id, limit)], []
        except Bad as exc:
            return Rejection(device_id, exc.reason, exc.detail)
    if type(body) is not list:
        return Rejection(
            device_id, "bad_shape", f"expected a JSON object or array, got {type(body).__name__}"
        )
    if not body:
        return Rejection(device_id, "bad_shape", "empty array")
    good: list = []
    bad: list[Rejection] = []
    for i, element in enumerate(body):
        try:
            good.append(fn(element, device_id, limit))
        except Bad as exc:
            bad.append(Rejection(device_id, exc.reason, f"element {i}: {exc.detail}", i))
    if not good:
        first = bad[0]
        return Rejection(device_id, first.reason, f"all {len(body)} elements rejected; {first.detail}")
    return good, bad


# Fast path for the common NMEA message: one valid RMC and optionally the GGA of the same time, in either order
# (receivers mostly send GGA first), in the exact shape receivers (and our encoder) write. pynmea2 costs ~130 µs per
# such message, more than all other work on a JSON message together; this path gives the same Fix with the same
# arithmetic (pynmea2's own time and degree converters, the same week-rollover rule) in a fraction of that. Anything
# else, including every malformed or unusual sentence, goes to nmea_codec.decode, so problems are reported exactly
# as before.
_FAST_RMC = re.compile(
    r"\$(G[PN]RMC,(\d{6}(?:\.\d{1,3})?),A,(\d{4}\.\d{1,7}),([NS]),(\d{5}\.\d{1,7}),([EW]),"
    r"(\d{1,4}\.\d{1,4}),(\d{1,3}\.\d{1,4}),(\d{6}),,,[AD])\*([0-9A-F]{2})",
    re.ASCII,
)
_FAST_GGA = re.compile(
    r"\$(G[PN]GGA,(\d{6}(?:\.\d{1,3})?),\d{4}\.\d{1,7},[NS],\d{5}\.\d{1,7},[EW],([1-8]),(\d{1,2}),"
    r"(\d{1,3}\.\d{1,3}),(-?\d{1,5}\.\d{1,3}),M,[0-9A-Za-z.,-]*)\*([0-9A-F]{2})",
    re.ASCII,
)
_nmea_date = functools.lru_cache(maxsize=64)(lambda text: nmea_codec.rollover(nmea_utils.datestamp(text)))
_GGA_FIRST = ("$GPGGA,", "$GNGGA,")


# (shift, mask) pairs that fold a ≤ 128-byte big integer in halves down to one byte, keeping bytes aligned.
_XOR_FOLDS = [(k * 8, (1 << (k * 8)) - 1) for k in (64, 32, 16, 8, 4, 2, 1)]


def _xor8(text: str) -> int:
    """NMEA checksum (XOR of all characters) of ASCII text: the text as one integer, folded in halves (~2 µs)."""
    b = text.encode("ascii")
    if len(b) > 128:
        x = 0
        for c in b:
            x ^= c
        return x
    x = int.from_bytes(b, "big")
    for shift, mask in _XOR_FOLDS:
        x = (x >> shift) ^ (x & mask)
    return x


def _dm_to_sd(text: str) -> float | None:
    """pynmea2's dm_to_sd for a (d)ddmm.mmm text that the fast regex has already checked; None for minutes ≥ 60."""
    dot = text.index(".")
    minutes = float(text[dot - 2 :])
    if minutes >= 60:
        return None
    return float(text[: dot - 2]) + minutes / 60


def _nmea_fast(text: str) -> tuple[list[nmea_codec.Fix], list] | None:
    """(fixes, []) for a message in the common shape, None when it needs the full decoder."""
    lines = text.splitlines()
    if not 1 <= len(lines) <= 2:
        return None
    first = lines[0].strip()
    if first.startswith(_GGA_FIRST):
        if len(lines) != 2:
            return None
        gga_line, rmc_line = first, lines[1].strip()
    else:
        rmc_line, gga_line = first, (lines[1].strip() if len(lines) == 2 else "")
    m = _FAST_RMC.fullmatch(rmc_line)
    if m is None or _xor8(m[1]) != int(m[10], 16):
        return None
    try:
        ts = datetime.combine(_nmea_date(m[9]), nmea_utils.timestamp(m[2])).astimezone(UTC)
    except ValueError:
        return None
    lat = _dm_to_sd(m[3])
    lon = _dm_to_sd(m[5])
    if lat is None or lon is None:
        return None
    fix = nmea_codec.Fix(
        ts=ts,
        lat=-lat if m[4] == "S" else lat,
        lon=-lon if m[6] == "W" else lon,
        speed_kmh=float(m[7]) * nmea_codec.KNOT_KMH,
        heading_deg=float(m[8]),
        sentence=0 if rmc_line is first else 1,
    )
    if gga_line:
        g = _FAST_GGA.fullmatch(gga_line)
        if g is None or g[2] != m[2] or _xor8(g[1]) != int(g[7], 16):
            return None
        fix.sats, fix.hdop, fix.alt_m = int(g[4]), float(g[5]), float(g[6])
    return [fix], []


_ONE_MS = timedelta(milliseconds=1)
_NMEA_FIELDS = tuple(
    (name, *NUMERIC_INDEX[name])
    for name in ("lat", "lon", "speed_kmh", "heading_deg", "alt_m", "hdop", "sats")
)


def _nmea(text: str, device_id: str, limit: datetime) -> Parsed | Rejection:
    if not text.strip():
        return Rejection(device_id, "bad_nmea", "empty payload")
    fast = _nmea_fast(text)
    fixes, problems = fast if fast is not None else nmea_codec.decode(text)
    rejections = [Rejection(device_id, p.reason, p.detail, p.line) for p in problems]
    readings = []
    for fix in fixes:
        try:
            if fix.ts > limit:
                raise Bad(
                    "future_timestamp", f"{fix.ts.isoformat()} is more than {MAX_FUTURE_SKEW_S} s ahead"
                )
            if fix.ts < MIN_TS:
                raise Bad("out_of_range", f"{fix.ts.isoformat()} is before {MIN_TS.date()}")
            row: list = [None] * N_COLUMNS
            row[0] = fix.ts
            row[1] = device_id
            row[2] = NMEA
            row[3] = (fix.ts - EPOCH) // _ONE_MS
            for name, idx, lo, hi, integer in _NMEA_FIELDS:
                value = getattr(fix, name)
                if value is not None:
                    # inline fast path for the common case (a float in range), the full checks otherwise
                    if type(value) is float and not integer and lo <= value <= hi:
                        row[idx] = value
                    else:
                        row[idx] = number_value(name, value, lo, hi, integer)
            readings.append(tuple(row))
        except Bad as exc:
            rejections.append(
                Rejection(device_id, exc.reason, f"line {fix.sentence} RMC: {exc.detail}", fix.sentence)
            )
    if not readings and rejections:
        first = rejections[0]
        detail = (
            first.detail if len(rejections) == 1 else f"{len(rejections)} problems; first: {first.detail}"
        )
        return Rejection(device_id, first.reason, detail)
    return Parsed(device_id, NMEA, readings, [], rejections=rejections)


# ----------------------------------------------------------------------------------------------- entry point


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON (RFC 8259 has no NaN/Infinity)")


# Built once: json.loads with any keyword argument constructs a new decoder per call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
# orjson decodes the common message ~3x faster than the stdlib; wherever the two could differ it is not trusted:
# any error is re-raised by the stdlib decoder (same messages as before), and integers beyond 64 bits (which
# orjson turns into floats) cannot occur in text without a run of 19 digits, which goes to the stdlib. The run
# is found by mapping every digit to "0" (bytes.translate, ~1 µs; a regex took ~10 µs per message).
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
_LONG_RUN = b"0" * 19


def _loads(text: str, raw: bytes | None = None) -> Any:
    """JSON text → object. `raw`: the same text as UTF-8 bytes when the caller has them (saves an encode)."""
    if raw is None:
        raw = text.encode(
            "utf-8", "surrogatepass"
        )  # a lone surrogate gives bytes orjson refuses: stdlib decides
    if _LONG_RUN not in raw.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return _DECODER.decode(text)


# The compiled fast path (fleetcore/protocol/_fastparse.c), given this module's ranges and limits so that they are stated once.
# How each PID's value is computed is stated in fleetcore.protocol.obd (lambdas C cannot call) and restated here by name;
# tests/test_fastparse.py checks every PID against fleetcore.protocol.obd. A PID missing here is decoded by Python only.
_PID_FORMULAS = {
    0x04: "pct",
    0x05: "minus40",
    0x0C: "div4",
    0x0D: "ident",
    0x11: "pct",
    0x1F: "ident",  # obd_extra["run_time_s"]
    0x2F: "pct",
    0x42: "div1000",
    0x46: "minus40",  # obd_extra["ambient_air_temp_c"]
    0xA6: "div10",
}


def _load_fast_parse() -> Callable[[str, str, bytes, datetime], list[tuple] | None] | None:
    try:
        from fleetcore.protocol import _fastparse  # type: ignore[attr-defined]
    except ImportError:  # not built (no C compiler where it was installed): the Python code does everything
        return None
    if tuple(_fastparse.COLUMNS) != READING_COLUMNS:
        return None  # built from a source that does not match this contract
    formulas = _fastparse.FORMULAS
    _fastparse.configure(
        [(f.name, f.lo, f.hi, f.integer) for f in NUMERIC_FIELDS],
        ACCEL_LIMIT_G,
        MIN_TS_MS,
        MAX_TS_MS,
        MAX_SEQ,
        MAX_FUTURE_SKEW_S,
        nmea_codec.KNOT_KMH,
        [
            # a PID without a column goes to obd_extra under its key; the compiled code builds that dict for the
            # PIDs with a formula here, the Python code for all others
            (p.pid, p.nbytes, p.field, formulas[_PID_FORMULAS.get(p.pid, "python")], p.key)
            for p in PIDS.values()
        ],
        (datetime.combine(nmea_codec.GPS_ROLLOVER_FLOOR, datetime.min.time(), UTC) - EPOCH).days,
        nmea_codec.GPS_ROLLOVER.days,
    )
    return _fastparse.parse  # type: ignore[no-any-return]


_fast_parse = _load_fast_parse()


def compiled_fast_path() -> bool:
    """Whether the compiled fast path is built and matches this contract (else the Python code parses all)."""
    return _fast_parse is not None


# Topics repeat (a few per device), so memoising the pure topic check saves its regex on the hot path.
_topic_cached = functools.lru_cache(maxsize=TOPIC_CACHE_SIZE)(parse_topic)


def _topic(root: str, topic: str) -> tuple[str, str] | None:
    # Long topics (necessarily invalid: device ids have ≤ 64 chars) are not cached, to bound the cache's memory.
    if len(topic) <= TOPIC_CACHE_MAX_LEN:
        return _topic_cached(root, topic)
    return parse_topic(root, topic)


_JSON_KINDS = {TELEMETRY: _telemetry, EVENT: _event}


def process_message(
    root: str,
    topic: str,
    payload: bytes,
    *,
    now: datetime,
    fast: bool = True,
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
    max_samples: int = MAX_SAMPLES_PER_MESSAGE,
) -> Parsed | Rejection:
    """Pure: no I/O. A whole-message problem returns a Rejection; element problems go to Parsed.rejections.

    Never raises: every input becomes rows or a contract reason (tests/test_parse_fuzz.py; `make fuzz`). Work and
    memory per message are bounded by `max_payload_bytes` (a larger payload is `too_large`, not parsed) and
    `max_samples` (a message with more samples is `too_many_samples`); every detail is at most MAX_DETAIL
    characters.

    A common, valid sample message (or a device's buffered upload of such samples) is parsed by the compiled fast
    path (fleetcore/protocol/_fastparse.c) when it is built; it returns exactly the rows the Python code below returns for such
    a message, and None for anything else, which the Python code then handles. `fast=False` skips it (tests
    compare the two).
    """
    parts = _topic(root, topic)
    if parts is None:
        return Rejection(None, "bad_topic", f"topic {topic[:200]!r} is not {root}/devices/<device_id>/<kind>")
    device_id, kind = parts
    size = len(payload)
    if size > max_payload_bytes:
        return Rejection(
            device_id, "too_large", f"payload of {size} bytes is over the limit of {max_payload_bytes}"
        )
    if fast and _fast_parse is not None:
        rows = _fast_parse(kind, device_id, payload, now)
        if rows is not None and len(rows) <= max_samples:
            return Parsed(device_id, kind, rows, [])
    try:
        result = _process(device_id, kind, payload, now, max_samples)
    except RecursionError:  # a guard: the JSON decoders and checks are bounded, see tests/test_parse_fuzz.py
        return Rejection(device_id, "bad_json", "payload nests too deeply")
    if isinstance(result, Rejection):
        if len(result.detail) > MAX_DETAIL:
            return Rejection(result.device_id, result.reason, capped(result.detail), result.index)
    elif result.rejections:
        result.rejections = [
            r if len(r.detail) <= MAX_DETAIL else Rejection(r.device_id, r.reason, capped(r.detail), r.index)
            for r in result.rejections
        ]
    return result


def _process(
    device_id: str, kind: str, payload: bytes, now: datetime, max_samples: int
) -> Parsed | Rejection:
    try:
        text = str(payload, "utf-8")  # bytes, bytearray or memoryview, without a copy
    except UnicodeDecodeError as exc:
        return Rejection(device_id, "bad_encoding", f"payload is not UTF-8: {exc.reason} at byte {exc.start}")
    if kind == STATUS:
        status = text.strip()
        if status not in STATUS_VALUES:
            return Rejection(device_id, "bad_status", f"status payload {show(text)} is not online/offline")
        return Parsed(device_id, STATUS, [], [], status=status)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    limit = now + FUTURE_SKEW
    if kind == NMEA:
        parsed = _nmea(text, device_id, limit)
        if type(parsed) is Parsed and len(parsed.readings) > max_samples:
            return _too_many(device_id, len(parsed.readings), max_samples)
        return parsed
    try:
        body = _loads(text, payload if type(payload) is bytes else None)
    except ValueError as exc:  # JSONDecodeError, NaN/Infinity (_reject_constant), int over 4300 digits
        return Rejection(device_id, "bad_json", f"payload is not JSON: {exc}")
    except RecursionError:
        return Rejection(device_id, "bad_json", "payload nests too deeply")
    if type(body) is list and len(body) > max_samples:
        return _too_many(device_id, len(body), max_samples)
    if kind == OBD:
        return _obd_elements(body, device_id, limit)
    result = _elements(body, device_id, limit, _JSON_KINDS[kind])
    if isinstance(result, Rejection):
        return result
    good, bad = result
    if kind == EVENT:
        return Parsed(device_id, kind, [], good, rejections=bad)
    return Parsed(device_id, kind, good, [], rejections=bad)


def _too_many(device_id: str, n: int, max_samples: int) -> Rejection:
    return Rejection(
        device_id, "too_many_samples", f"{n} samples in one message, over the limit of {max_samples}"
    )
