"""The parser's vocabulary: rejection reasons, the result types (Parsed, Rejection, Event), time and size bounds,
and the checks every sample field goes through (numbers, timestamps, sequence numbers, DTCs, event data). Pure
functions, no I/O; fleetcore.protocol.parse builds on them."""

from __future__ import annotations

import math
import re
import reprlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fleetcore.contract import (
    ACCEL_LIMIT_G,
    DTC_RE,
    MAX_FUTURE_SKEW_S,
    NUMERIC_FIELDS,
    READING_COLUMNS,
)

REASONS = (
    "bad_topic",
    "too_large",
    "too_many_samples",
    "bad_encoding",
    "bad_json",
    "bad_shape",
    "missing_field",
    "bad_field",
    "out_of_range",
    "future_timestamp",
    "bad_checksum",
    "bad_nmea",
    "conflicting_fix",
    "unknown_pid",  # no longer produced: an undecoded PID is kept raw in obd_extra (docs/device-guide.md §6)
    "bad_obd_frame",
    "obd_adapter_error",
    "unknown_event_type",
    "bad_status",
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# GPS time starts 1980-01-06 (IS-GPS-200); a sample stamped earlier comes from an unset clock, not from a vehicle.
MIN_TS = datetime(1980, 1, 6, tzinfo=UTC)
MIN_TS_MS = (MIN_TS - EPOCH) // timedelta(milliseconds=1)
MAX_TS_MS = (datetime(9999, 12, 31, tzinfo=UTC) - EPOCH) // timedelta(milliseconds=1)
# Up to 2100, datetime.fromtimestamp(ms / 1000) is exact to the microsecond (a double's error there is < 0.5 µs;
# checked against EPOCH + timedelta on 10^6 random values) and half the cost; later times take the exact path.
FAST_TS_MAX_MS = (datetime(2100, 1, 1, tzinfo=UTC) - EPOCH) // timedelta(milliseconds=1)
MAX_SEQ = 2**63 - 1  # readings.seq is a PostgreSQL bigint
FUTURE_SKEW = timedelta(seconds=MAX_FUTURE_SKEW_S)
# RFC 3339 date-time (section 5.6); the offset is mandatory. RFC 3339 allows a space instead of "T" (5.6 note).
RFC3339_RE = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")
STATUS_VALUES = ("online", "offline")
TOPIC_CACHE_SIZE = 65536  # ≈ 13,000 devices × 5 topic kinds
TOPIC_CACHE_MAX_LEN = 256
MAX_SHOWN = 80  # characters of an offending value quoted in a rejection detail
MAX_DETAIL = 300  # characters of any rejection detail (a 1 MB bad sentence gave a 1 MB detail)
MAX_EVENT_DEPTH = 32  # nesting of an event's extra fields (stored as jsonb)


@dataclass(slots=True, frozen=True)
class Event:
    """A device-reported event."""

    ts: datetime  # aware, UTC
    seq: int
    type: str  # one of fleetcore.contract.EVENT_TYPES
    data: dict  # every field of the event object except ts/seq/type


@dataclass(slots=True, frozen=True)
class Rejection:
    """Why a message (or one element of it) was not accepted."""

    device_id: str | None
    reason: str  # one of REASONS
    detail: str  # names the field / element index / sentence
    # element-level rejections: the index of the failing element (array), line (NMEA) or frame (one OBD object)
    index: int | None = None


@dataclass(slots=True)
class Parsed:
    """An accepted message: reading rows in READING_COLUMNS order, events, status, element-level rejections."""

    device_id: str
    kind: str
    readings: list[tuple]
    events: list[Event]
    status: str | None = None
    rejections: list[Rejection] = field(default_factory=list)


class Bad(Exception):
    """Internal: one sample/element is invalid."""

    __slots__ = ("reason", "detail")

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail


# Containers are shown a few levels and items deep: a plain repr() of a value nested ~1,000 deep raised
# RecursionError out of the parser, and one of a huge list costs its whole size.
_REPR = reprlib.Repr()
_REPR.maxlevel = 3
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = 6
_REPR.maxstring = _REPR.maxother = MAX_SHOWN


def show(value: Any) -> str:
    """A value for an error detail, cut short: details are stored and shown, payloads may be huge."""
    t = type(value)
    if t is str:
        text = repr(value[: MAX_SHOWN + 2])
    elif t is int or t is float or t is bool or value is None:
        text = repr(value)
    else:
        text = _REPR.repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def capped(detail: str) -> str:
    return detail if len(detail) <= MAX_DETAIL else detail[: MAX_DETAIL - 3] + "..."


def reading_as_dict(row: tuple) -> dict:
    """A reading row as {column: value}."""
    return dict(zip(READING_COLUMNS, row, strict=True))


COLUMN_INDEX = {name: i for i, name in enumerate(READING_COLUMNS)}
N_COLUMNS = len(READING_COLUMNS)
# name → (column index, lo, hi, integer)
NUMERIC_INDEX = {f.name: (COLUMN_INDEX[f.name], f.lo, f.hi, f.integer) for f in NUMERIC_FIELDS}
IGNITION_INDEX = COLUMN_INDEX["ignition"]
ACCEL_X_INDEX = COLUMN_INDEX["accel_x"]
DTC_INDEX = COLUMN_INDEX["dtc"]
OBD_EXTRA_INDEX = COLUMN_INDEX["obd_extra"]


# ----------------------------------------------------------------------------------------------- values


def number_value(name: str, value: Any, lo: float, hi: float, integer: bool) -> float | int:
    t = type(value)
    if t is float:
        if lo <= value <= hi:
            if integer:
                if not value.is_integer():
                    raise Bad("bad_field", f"{name}={show(value)} is not an integer")
                return int(value)
            return value
        if not math.isfinite(value):
            raise Bad("bad_field", f"{name}={show(value)} is not a finite number")
        raise Bad("out_of_range", f"{name}={show(value)} is outside [{lo}, {hi}]")
    if t is int:  # type() so that bool (an int subclass) is refused
        if lo <= value <= hi:
            return value if integer else float(value)
        raise Bad("out_of_range", f"{name}={show(value)} is outside [{lo}, {hi}]")
    raise Bad("bad_field", f"{name}={show(value)} is not a number")


def timestamp_value(value: Any, limit: datetime) -> datetime:
    t = type(value)
    if t is str:
        if not RFC3339_RE.fullmatch(value):
            raise Bad("bad_field", f"ts={show(value)} is not RFC 3339 with an offset")
        try:
            ts = datetime.fromisoformat(value.upper())
        except ValueError:
            raise Bad("bad_field", f"ts={show(value)} is not a valid date-time") from None
        if ts.tzinfo is not UTC:
            try:
                ts = ts.astimezone(UTC)
            except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00
                raise Bad("out_of_range", f"ts={show(value)} is outside the representable range") from None
    elif t is int:
        if not MIN_TS_MS <= value <= MAX_TS_MS:
            raise Bad("out_of_range", f"ts={show(value)} epoch ms is before {MIN_TS.date()} or absurd")
        if value <= FAST_TS_MAX_MS:
            ts = datetime.fromtimestamp(value / 1000, UTC)
        else:
            ts = EPOCH + timedelta(milliseconds=value)
    elif value is None:
        raise Bad("missing_field", "ts is required")
    else:
        raise Bad("bad_field", f"ts={show(value)} must be an RFC 3339 string or integer epoch milliseconds")
    if ts > limit:
        raise Bad("future_timestamp", f"ts={show(value)} is more than {MAX_FUTURE_SKEW_S} s in the future")
    if ts < MIN_TS:
        raise Bad("out_of_range", f"ts={show(value)} is before {MIN_TS.date()}")
    return ts


def seq_value(value: Any) -> int:
    if type(value) is int:
        if 0 <= value <= MAX_SEQ:
            return value
        raise Bad("out_of_range", f"seq={show(value)} is outside [0, {MAX_SEQ}]")
    if value is None:
        raise Bad("missing_field", "seq is required")
    raise Bad("bad_field", f"seq={show(value)} is not an integer")


def sample_head(obj: Any, limit: datetime) -> tuple[datetime, int]:
    if type(obj) is not dict:
        raise Bad("bad_shape", f"expected a JSON object, got {type(obj).__name__}")
    return timestamp_value(obj.get("ts"), limit), seq_value(obj.get("seq"))


def set_accel(value: Any, row: list) -> None:
    if type(value) is not list or len(value) != 3:
        raise Bad("bad_field", f"accel_g={show(value)} must be a list of 3 numbers")
    for i, v in enumerate(value):
        row[ACCEL_X_INDEX + i] = number_value("accel_g", v, -ACCEL_LIMIT_G, ACCEL_LIMIT_G, False)


def dtc_codes(value: Any) -> list[str]:
    if type(value) is not list:
        raise Bad("bad_field", f"dtc={show(value)} must be a list of codes")
    codes = []
    for code in value:
        if type(code) is not str or not DTC_RE.fullmatch(code.upper()):
            raise Bad("bad_field", f"dtc code {show(code)} is not like P0301")
        codes.append(code.upper())
    return codes


def check_data(value: Any, path: str, depth: int = 0) -> None:
    """Event data goes to jsonb, which refuses NaN/Infinity (1e999 parses to inf), NUL and unpaired surrogates;
    nesting is bounded (MAX_EVENT_DEPTH) so that checking, storing and showing it stay cheap."""
    t = type(value)
    if t is float:
        if not math.isfinite(value):
            raise Bad("bad_field", f"{path[:100]}={show(value)} is not a finite number")
    elif t is str:
        check_text(value, path)
    elif t is dict or t is list:
        if depth >= MAX_EVENT_DEPTH:
            raise Bad("bad_field", f"{path[:100]} nests deeper than {MAX_EVENT_DEPTH} levels")
        if t is dict:
            for k, v in value.items():
                check_text(k, f"{path} key")
                check_data(v, f"{path}.{k[:40]}", depth + 1)
        else:
            for i, v in enumerate(value):
                check_data(v, f"{path}[{i}]", depth + 1)


def check_text(text: str, path: str) -> None:
    if "\x00" in text:
        raise Bad("bad_field", f"{path[:100]} contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise Bad("bad_field", f"{path[:100]} contains an unpaired UTF-16 surrogate") from None
