"""Teltonika codec JSON → contract: the pure translation, checked against ingest's own parser.

Payloads are built from Teltonika's public AVL ID tables ("FMB AVL ID" / "Teltonika Data Sending Parameters ID",
wiki.teltonika-gps.com, firmware FMB.Ver.03.18+): 239 Ignition 0/1, 240 Movement, 66 External Voltage mV,
16 Total Odometer m, 182 GNSS HDOP x0.1, OBD 30 Number of DTC / 31 Engine Load % / 32 Coolant °C / 36 Engine RPM /
48 Fuel Level %, LV-CAN 89 Fuel Level % / 87 Total Mileage m / 115 Engine Temperature x0.1, 247 Crash Detection,
253 Green Driving Type (1 acceleration, 2 braking, 3 cornering) with 254 Green Driving Value (g x 100),
246 Towing, 252 Unplug, 255 Over Speeding; and Teltonika's codec JSON document {"state":{"reported":{...}}} with
ts (epoch ms), latlng "lat,lon", alt, ang, sat, sp, evt (numbers sometimes as strings).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from fleetcore.protocol.parse import Parsed, process_message
from gateways.common import EVENT_SEQ_FACTOR, clock_problem, event_seq
from gateways.teltonika import MappingError, imei_from_topic, load_mapping, parse_mapping, translate

ROOT = "fleet/v1"
IMEI = "356307042441013"
NOW_MS = int(time.time() * 1000)
MAPPING = load_mapping()


def doc(**reported) -> bytes:
    return json.dumps({"state": {"reported": reported}}).encode()


def record(ts: int = NOW_MS - 2000, **io: Any) -> dict:
    """A record as an FMB130 sends it with a fix: position keys as strings, IO elements as numbers."""
    base = {"ts": ts, "pr": 0, "latlng": "54.682212,25.287910", "alt": "122", "ang": "271", "sat": "11",
            "sp": "48", "evt": 0, "239": 1, "240": 1, "80": 0, "21": 5, "200": 0, "69": 1, "181": 9, "182": 7,
            "66": 12850, "24": 48, "205": 3121, "206": 25, "67": 4087, "68": 0, "241": 24602, "16": 123456}  # fmt: skip
    base.update({str(k): v for k, v in io.items()})
    return base


def tr(payload: bytes, now_ms: int = NOW_MS, device: str = IMEI, mapping=MAPPING):  # noqa: ANN001, ANN201
    return translate(device, payload, mapping, now_ms=now_ms, max_age_days=30)


def ingest_sees(t) -> list[Parsed]:  # noqa: ANN001
    """What ingest's parser makes of the republished messages (every one must be accepted, nothing rejected)."""
    out = []
    for topic, payload in t.messages(ROOT):
        p = process_message(ROOT, topic, payload, now=datetime.fromtimestamp(NOW_MS / 1000, UTC))
        assert isinstance(p, Parsed), (topic, payload, p)
        assert not p.rejections, p.rejections
        out.append(p)
    return out


def test_a_periodic_record_becomes_one_sample_with_every_mapped_field() -> None:
    ts = NOW_MS - 2000
    t = tr(doc(**record(ts, **{"30": 0})))
    assert not t.rejected and not t.events
    assert t.samples == [
        {"ts": ts, "seq": ts, "sats": 11, "lat": 54.682212, "lon": 25.28791, "speed_kmh": 48.0,
         "heading_deg": 271.0, "alt_m": 122.0, "ignition": True, "battery_v": 12.85, "odometer_km": 123.456,
         "hdop": 0.7, "dtc": []}
    ]  # fmt: skip
    (p,) = ingest_sees(t)
    assert p.kind == "telemetry" and len(p.readings) == 1


def test_obd_and_lvcan_elements() -> None:
    t = tr(
        doc(**record(**{"36": 1850, "31": 35, "32": 89, "41": 18, "48": 64, "30": 2, "281": "P0301,p0133"}))  # type: ignore[arg-type]
    )
    s = t.samples[0]
    assert (s["rpm"], s["engine_load_pct"], s["coolant_c"], s["throttle_pct"], s["fuel_pct"]) == (
        1850,
        35,
        89,
        18,
        64,
    )
    assert s["dtc"] == ["P0301", "P0133"]  # the codes (281) win over the bare count (30)
    # LV-CAN200: fuel %, mileage in m, engine temperature in 0.1 °C; OBD's own AVL IDs come first when both exist
    rec = record(**{"89": 40, "115": 905})
    del rec["16"]
    rec["87"] = 98765432
    s = tr(doc(**rec)).samples[0]
    assert (s["fuel_pct"], s["coolant_c"], s["odometer_km"]) == (40, 90.5, 98765.432)
    ingest_sees(tr(doc(**rec)))


def test_dtc_count_without_codes_leaves_dtc_unknown() -> None:
    assert "dtc" not in tr(doc(**record(**{"30": 3}))).samples[0]
    assert tr(doc(**record(**{"30": 0}))).samples[0]["dtc"] == []


def test_no_fix_gives_a_sample_without_position() -> None:
    t = tr(doc(**record(latlng="0.000000,0.000000", sat="0", sp="0")))
    s = t.samples[0]
    assert "lat" not in s and "speed_kmh" not in s and s["sats"] == 0 and s["ignition"] is True
    ingest_sees(t)


@pytest.mark.parametrize(
    ("io", "etype", "extra"),
    [
        ({"evt": 247, "247": 1}, "crash", {}),
        ({"evt": 253, "253": 1, "254": 42}, "harsh_accel", {"peak_g": 0.42}),
        ({"evt": 253, "253": 2, "254": 57}, "harsh_brake", {"peak_g": 0.57}),
        ({"evt": 253, "253": 3, "254": 61}, "harsh_turn", {"peak_g": 0.61}),
        ({"evt": 246, "246": 1}, "tow", {}),
        ({"evt": 252, "252": 1}, "power_cut", {}),
        ({"evt": 236, "236": 1}, "sos", {}),
        ({"evt": 255, "255": 132}, "overspeed", {"speed_kmh": 132}),
        ({"evt": 239, "239": 0}, "ignition_off", {}),
        ({"evt": 239, "239": 1}, "ignition_on", {}),
    ],
)
def test_event_elements_become_contract_events(io: dict, etype: str, extra: dict) -> None:
    ts = NOW_MS - 1000
    t = tr(doc(**record(ts, **io)))
    (ev,) = t.events
    avl = int(next(k for k in io if k != "evt"))
    assert ev["type"] == etype and ev["ts"] == ts and ev["seq"] == event_seq(ts, avl)
    assert ev["avl"] == avl and ev["source"] == "teltonika" and ev["lat"] == 54.682212
    for k, v in extra.items():
        assert ev[k] == v
    parsed = ingest_sees(t)
    assert [e.type for p in parsed for e in p.events] == [etype]


def test_ignition_is_an_event_only_in_the_record_it_triggered() -> None:
    assert tr(doc(**record(evt=0))).events == []  # 239 is in every record; periodic records raise nothing
    assert tr(doc(**record(**{"247": 0}))).events == []  # crash element 0 = no crash


def test_two_events_in_one_record_have_distinct_keys() -> None:
    ts = NOW_MS - 1000
    t = tr(doc(**record(ts, **{"247": 1, "253": 2, "254": 80})))
    assert sorted(e["type"] for e in t.events) == ["crash", "harsh_brake"]
    assert len({(e["seq"], e["ts"]) for e in t.events}) == 2
    (_, events) = ingest_sees(t)
    assert len(events.events) == 2


def test_translation_is_deterministic_so_redelivery_is_a_duplicate() -> None:
    payload = doc(**record(**{"247": 1}))
    first, again = tr(payload), tr(payload, now_ms=NOW_MS + 60_000)
    assert first.messages(ROOT) == again.messages(ROOT)


@pytest.mark.parametrize(
    ("ts", "reason"),
    [
        (0, "clock_unset"),  # 1970: never had a fix
        (1_072_915_200_000, "clock_unset"),  # 2004-01-01, the FMB's clock before its first GNSS fix
        (NOW_MS - 31 * 86_400_000, "clock_unset"),  # older than the 30-day window
        (NOW_MS + 301_000, "clock_future"),
        (NOW_MS + 86_400_000 * 365 * 20, "clock_future"),
    ],
    ids=["1970", "2004", "31-days-old", "301-s-ahead", "20-years-ahead"],  # stable ids: xdist compares them
)
def test_invalid_device_clocks_are_not_republished(ts: int, reason: str) -> None:
    t = tr(doc(**record(ts, **{"247": 1})))
    assert t.samples == [] and t.events == [] and t.messages(ROOT) == []
    assert [r.reason for r in t.rejected] == [reason]


def test_clock_window_edges() -> None:
    assert clock_problem(NOW_MS + 300_000, NOW_MS, 30) is None
    assert clock_problem(NOW_MS - 30 * 86_400_000, NOW_MS, 30) is None


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"not json", "bad_json"),
        (b'{"state":{}}', "bad_shape"),
        (b"[]", "bad_shape"),
        (json.dumps({"state": {"reported": {"latlng": "1,2"}}}).encode(), "missing_ts"),
        (json.dumps({"state": {"reported": {"ts": 1.5e12}}}).encode(), "missing_ts"),
    ],
)
def test_malformed_documents(payload: bytes, reason: str) -> None:
    t = tr(payload)
    assert [r.reason for r in t.rejected] == [reason] and not t.samples


def test_an_out_of_range_element_costs_only_its_field() -> None:
    t = tr(doc(**record(**{"32": 900, "48": "n/a"})))  # type: ignore[arg-type]  # coolant 900 °C, a text fuel level
    assert "coolant_c" not in t.samples[0] and "fuel_pct" not in t.samples[0] and "lat" in t.samples[0]
    assert [r.reason for r in t.rejected] == ["field_skipped", "field_skipped"]
    ingest_sees(t)


def test_an_array_of_records_becomes_one_buffered_upload() -> None:
    recs = [{"state": {"reported": record(NOW_MS - 3000 + i * 1000)}} for i in range(3)]
    t = tr(json.dumps(recs).encode())
    (p,) = ingest_sees(t)
    assert len(p.readings) == 3


def test_imei_comes_from_the_topic_level_of_the_first_plus() -> None:
    assert imei_from_topic("teltonika/+/data", f"teltonika/{IMEI}/data") == IMEI
    assert imei_from_topic("fleet/+/tel/+", f"fleet/{IMEI}/tel/x") == IMEI
    assert imei_from_topic("teltonika/+/data", f"teltonika/{IMEI}/cmd") is None
    assert imei_from_topic("teltonika/+/data", "teltonika/a/b/data") is None
    assert [r.reason for r in tr(doc(**record()), device="bad id").rejected] == ["bad_device_id"]


def test_a_custom_mapping_file(tmp_path) -> None:  # noqa: ANN001
    f = tmp_path / "m.json"
    f.write_text(json.dumps({"fields": [{"avl": 9, "field": "fuel_pct", "scale": 0.01}],
                             "events": [{"avl": 1, "type": "door_open"}]}))  # fmt: skip
    m = load_mapping(f)
    t = tr(doc(ts=NOW_MS, **{"9": 5000, "1": 1, "66": 12000}), mapping=m)
    assert t.samples[0]["fuel_pct"] == 50 and "battery_v" not in t.samples[0]
    assert [e["type"] for e in t.events] == ["door_open"]


@pytest.mark.parametrize(
    "bad",
    [
        {"fields": [{"avl": 66, "field": "voltage"}]},
        {"fields": [{"avl": 66, "field": "ignition", "kind": "number"}]},
        {"fields": [{"field": "rpm"}]},
        {"events": [{"avl": 247, "type": "CRASH"}]},
        {"events": [{"avl": 253, "types": {"1": "harsh"}}]},
        {"events": [{"avl": 239, "type": "ignition_on", "trigger": "sometimes"}]},
        [],
    ],
)
def test_a_mapping_naming_what_the_contract_lacks_is_refused(bad) -> None:  # noqa: ANN001
    with pytest.raises(MappingError):
        parse_mapping(bad)


def test_event_seq_keeps_the_code_in_its_last_digits() -> None:
    assert event_seq(1_795_688_130_250, 253) % EVENT_SEQ_FACTOR == 253
    assert event_seq(1_795_688_130_250, 253) // EVENT_SEQ_FACTOR == 1_795_688_130_250
    with pytest.raises(ValueError):
        event_seq(1, EVENT_SEQ_FACTOR)
