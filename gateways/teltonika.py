"""Teltonika FMB/FMC codec JSON over MQTT → contract samples and events (pure: no I/O).

A tracker publishes `{"state": {"reported": {"ts": <epoch ms>, "latlng": "lat,lon", "alt": m, "ang": deg,
"sat": n, "sp": km/h, "evt": <AVL ID that triggered the record, 0 = periodic>, "<AVL ID>": value, ...}}}`
(Teltonika's "Codec JSON", the AWS IoT shadow document; numbers sometimes arrive as strings). The position keys
are fixed; the numbered AVL IO elements are translated by a mapping (teltonika_avl.json, or the file named by
FLEET_TELTONIKA_MAPPING_FILE) so that a fleet with LV-CAN or OBD adapters can be served without code changes.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from fleetcore.contract import DEVICE_ID_RE, DTC_RE, EVENT_TYPES, NUMERIC_BY_NAME
from gateways.common import Rejected, Translation, clock_problem, event_seq, telemetry_seq

DEFAULT_MAPPING = "teltonika_avl.json"
# Teltonika reports "0.000000,0.000000" and 0 satellites when the receiver has no fix.
NO_FIX = (0.0, 0.0)
_DTC_TOKEN = re.compile(r"[PCBU][0-3][0-9A-F]{3}")
FIELD_KINDS = ("number", "bool", "dtc_text", "dtc_count")


class MappingError(ValueError):
    """The mapping file is not usable (the process refuses to start)."""


@dataclass(frozen=True, slots=True)
class FieldRule:
    avl: str
    field: str
    kind: str = "number"
    scale: float = 1.0
    divide: float = 1.0


@dataclass(frozen=True, slots=True)
class EventRule:
    avl: str
    type: str | None = None  # fires on any non-zero value
    types: dict[str, str] = field(default_factory=dict)  # value → type (only these values fire)
    trigger: str = "any"  # "evt": only in the record the element itself triggered (evt == avl)
    peak_g: tuple[str, float] | None = None  # (AVL ID, scale) of the peak acceleration
    value_as: str | None = None  # put the value into the event's data under this name


@dataclass(frozen=True, slots=True)
class Mapping:
    fields: tuple[FieldRule, ...]
    events: tuple[EventRule, ...]


def load_mapping(path: str | Path | None = None) -> Mapping:
    """The AVL mapping from `path`, or the built-in one; MappingError says what is wrong."""
    try:
        if path is None:
            text = (resources.files("gateways") / DEFAULT_MAPPING).read_text()
        else:
            text = Path(path).read_text()
        doc = json.loads(text)
    except (OSError, ValueError) as exc:
        raise MappingError(f"cannot read Teltonika mapping {path or DEFAULT_MAPPING}: {exc}") from exc
    return parse_mapping(doc)


def parse_mapping(doc: Any) -> Mapping:
    """Validate a mapping document against the contract (fields and event types must exist)."""
    if not isinstance(doc, dict) or not isinstance(doc.get("fields", []), list):
        raise MappingError("a mapping is an object with lists `fields` and `events`")
    fields = []
    for i, f in enumerate(doc.get("fields", [])):
        try:
            rule = FieldRule(
                avl=str(int(f["avl"])),
                field=str(f["field"]),
                kind=str(f.get("kind", "number")),
                scale=float(f.get("scale", 1.0)),
                divide=float(f.get("divide", 1.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MappingError(f"fields[{i}]: needs integer `avl` and `field` ({exc})") from exc
        if rule.kind not in FIELD_KINDS:
            raise MappingError(f"fields[{i}]: kind {rule.kind!r} is not one of {FIELD_KINDS}")
        known = rule.field in NUMERIC_BY_NAME or (rule.field, rule.kind) in (
            ("ignition", "bool"),
            ("dtc", "dtc_text"),
            ("dtc", "dtc_count"),
        )
        if not known or rule.divide == 0:
            raise MappingError(f"fields[{i}]: {rule.field!r} ({rule.kind}) is not a contract field")
        fields.append(rule)
    events = []
    for i, e in enumerate(doc.get("events", [])):
        try:
            peak = e.get("peak_g")
            rule_e = EventRule(
                avl=str(int(e["avl"])),
                type=e.get("type"),
                types={str(k): str(v) for k, v in (e.get("types") or {}).items()},
                trigger=str(e.get("trigger", "any")),
                peak_g=(str(int(peak["avl"])), float(peak.get("scale", 1.0))) if peak else None,
                value_as=e.get("value_as"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise MappingError(f"events[{i}]: needs integer `avl` and `type` or `types` ({exc})") from exc
        named = [rule_e.type] if rule_e.type else list(rule_e.types.values())
        if not named or any(t not in EVENT_TYPES for t in named):
            raise MappingError(f"events[{i}]: event types {named} must be contract event types")
        if rule_e.trigger not in ("any", "evt"):
            raise MappingError(f"events[{i}]: trigger must be `any` or `evt`")
        events.append(rule_e)
    return Mapping(tuple(fields), tuple(events))


def imei_from_topic(pattern: str, topic: str) -> str | None:
    """The level of `topic` at the first `+` of `pattern` when the topic matches the pattern, else None."""
    p_levels, t_levels = pattern.split("/"), topic.split("/")
    if len(p_levels) != len(t_levels):
        return None
    imei = None
    for p, t in zip(p_levels, t_levels, strict=True):
        if p == "+":
            if imei is None:
                imei = t
        elif p != t:
            return None
    return imei


def _num(v: Any) -> float | None:
    """A finite number from a JSON number or a numeric string (Teltonika sends both); None otherwise."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        x = float(v)
    elif isinstance(v, str):
        try:
            x = float(v.strip())
        except ValueError:
            return None
    else:
        return None
    return x if math.isfinite(x) else None


def _in_range(name: str, x: float) -> bool:
    spec = NUMERIC_BY_NAME[name]
    return spec.lo <= x <= spec.hi


def _records(payload: bytes) -> tuple[list[dict], Rejected | None]:
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        return [], Rejected("bad_json", str(exc)[:200])
    docs = doc if isinstance(doc, list) else [doc]
    records = []
    for d in docs:
        rep = d.get("state", {}).get("reported") if isinstance(d, dict) else None
        if not isinstance(rep, dict):
            return [], Rejected("bad_shape", 'expected {"state": {"reported": {...}}} (or an array of them)')
        records.append(rep)
    if not records:
        return [], Rejected("bad_shape", "empty array")
    return records, None


def translate(
    device_id: str, payload: bytes, mapping: Mapping, *, now_ms: int, max_age_days: int
) -> Translation:
    """One MQTT message of a tracker → its samples and events, and what was refused (with reasons)."""
    out = Translation(device_id)
    if not DEVICE_ID_RE.match(device_id):
        out.rejected.append(Rejected("bad_device_id", f"{device_id!r} is not a contract device id"))
        return out
    records, problem = _records(payload)
    if problem is not None:
        out.rejected.append(problem)
        return out
    for rec in records:
        _record(rec, mapping, out, now_ms=now_ms, max_age_days=max_age_days)
    return out


def _record(rec: dict, mapping: Mapping, out: Translation, *, now_ms: int, max_age_days: int) -> None:
    ts = rec.get("ts")
    if isinstance(ts, str) and ts.isdigit():
        ts = int(ts)
    if not isinstance(ts, int) or isinstance(ts, bool):
        out.rejected.append(Rejected("missing_ts", f"ts={ts!r} is not epoch milliseconds"))
        return
    if (why := clock_problem(ts, now_ms, max_age_days)) is not None:
        out.rejected.append(Rejected(why, f"record time {ts} ms is not a plausible sample time", ts))
        return
    sample: dict[str, Any] = {"ts": ts, "seq": telemetry_seq(ts)}
    where: dict[str, Any] = {}
    _position(rec, sample, where, out, ts)
    for rule in mapping.fields:
        if rule.field in sample or rule.avl not in rec:
            continue
        _field(rule, rec[rule.avl], sample, out, ts)
    out.samples.append(sample)
    evt = _num(rec.get("evt"))
    trigger = str(int(evt)) if evt is not None else None
    for e in mapping.events:
        if e.avl not in rec or (e.trigger == "evt" and trigger != e.avl):
            continue
        value = _num(rec[e.avl])
        if value is None:
            continue
        etype = e.types.get(str(int(value))) if e.types else (e.type if value != 0 else None)
        if etype is None:
            continue
        v: float | int = int(value) if value.is_integer() else value
        data: dict[str, Any] = {"source": "teltonika", "avl": int(e.avl), "value": v, **where}
        if e.peak_g is not None and (g := _num(rec.get(e.peak_g[0]))) is not None:
            data["peak_g"] = round(g * e.peak_g[1], 3)
        if e.value_as:
            data[e.value_as] = v
        out.events.append({"ts": ts, "seq": event_seq(ts, int(e.avl)), "type": etype, **data})


def _position(rec: dict, sample: dict, where: dict, out: Translation, ts: int) -> None:
    sats = _num(rec.get("sat"))
    if sats is not None and sats == int(sats) and 0 <= sats <= 64:
        sample["sats"] = int(sats)
    latlng = rec.get("latlng")
    if not isinstance(latlng, str):
        return
    try:
        lat, lon = (float(x) for x in latlng.split(","))
    except ValueError:
        out.rejected.append(Rejected("bad_field", f"latlng={latlng!r}", ts))
        return
    if (lat, lon) == NO_FIX or not (-90 <= lat <= 90 and -180 <= lon <= 180) or sample.get("sats") == 0:
        return  # no fix: a sample without a position (ingest keeps the last known one)
    sample["lat"], sample["lon"] = lat, lon
    where.update(lat=lat, lon=lon)
    for key, name in (("sp", "speed_kmh"), ("ang", "heading_deg"), ("alt", "alt_m")):
        x = _num(rec.get(key))
        if x is not None and _in_range(name, x):
            sample[name] = x
    if "speed_kmh" in sample:
        where["speed_kmh"] = sample["speed_kmh"]


def _field(rule: FieldRule, raw: Any, sample: dict, out: Translation, ts: int) -> None:
    if rule.kind == "dtc_text":
        if isinstance(raw, str):
            sample["dtc"] = [c for c in _DTC_TOKEN.findall(raw.upper()) if DTC_RE.match(c)]
        return
    x = _num(raw)
    if x is None:
        out.rejected.append(Rejected("field_skipped", f"AVL {rule.avl}={raw!r} is not a number", ts))
        return
    if rule.kind == "bool":
        sample[rule.field] = x != 0
    elif rule.kind == "dtc_count":
        if x == 0:
            sample["dtc"] = []  # no active code; a non-zero count without the codes leaves dtc unknown
    else:
        value = round(x * rule.scale / rule.divide, 6)
        if _in_range(rule.field, value):
            sample[rule.field] = value
        else:
            # one implausible IO value does not cost the position and the rest of the sample
            out.rejected.append(
                Rejected("field_skipped", f"AVL {rule.avl}: {rule.field}={value} out of range", ts)
            )
