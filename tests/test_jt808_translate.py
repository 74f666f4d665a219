"""JT/T 808 reports → contract samples and events (gateways.jt808.location), checked with ingest's own parser."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from fleetcore.protocol import jt808 as j
from fleetcore.protocol.parse import Parsed, process_message
from gateways.common import event_seq
from gateways.jt808.location import ALARM_EVENTS, to_contract
from gateways.jt808.terminals import device_id_for
from tests.jt808_helpers import location

ROOT = "fleet/v1"
NOW = datetime.now(UTC).replace(microsecond=0)
NOW_MS = int(time.time() * 1000)
DEV = "jt808-13912345678"


def translate(reports: list[j.Location], bits: int = 0):  # noqa: ANN201
    return to_contract(DEV, reports, bits, now_ms=NOW_MS, max_age_days=30)


def parsed(tr) -> list[Parsed]:  # noqa: ANN001
    out = []
    for topic, payload in tr.messages(ROOT):
        p = process_message(ROOT, topic, payload, now=datetime.fromtimestamp(NOW_MS / 1000, UTC))
        assert isinstance(p, Parsed) and not p.rejections, (payload, p)
        out.append(p)
    return out


@pytest.mark.parametrize(
    ("bit", "etype", "alarm"),
    [(0, "sos", "emergency"), (1, "overspeed", "overspeed"), (2, "fatigue", "fatigue_driving"),
     (8, "power_cut", "main_power_cut"), (29, "crash", "collision"), (30, "crash", "rollover")],
)  # fmt: skip
def test_each_mapped_alarm_bit_is_a_contract_event(bit: int, etype: str, alarm: str) -> None:
    t = NOW - timedelta(seconds=3)
    tr, bits = translate([location(t, alarm=1 << bit)])
    (ev,) = tr.events
    ts = int(t.timestamp() * 1000)
    assert (ev["type"], ev["alarm"], ev["ts"], ev["seq"]) == (etype, alarm, ts, event_seq(ts, bit))
    assert ev["lat"] == 52.520008 and ev["speed_kmh"] == 48.5 and bits == 1 << bit
    assert [e.type for p in parsed(tr) for e in p.events] == [etype]


def test_unmapped_alarm_bits_raise_nothing_but_are_remembered() -> None:
    tr, bits = translate([location(NOW, alarm=1 << 5 | 1 << 20)])  # antenna cut, area in/out
    assert tr.events == [] and bits == 1 << 5 | 1 << 20
    assert set(ALARM_EVENTS) == {0, 1, 2, 8, 29, 30}


def test_rising_edges_only_across_a_batch_and_from_the_saved_state() -> None:
    c, s = 1 << 29, 1 << 0
    reports = [location(NOW - timedelta(seconds=10 - i), alarm=a) for i, a in enumerate([c, c, c | s, 0, c])]
    tr, bits = translate(reports, bits=c)  # the collision was already reported before
    assert [(e["type"], e["ts"]) for e in tr.events] == [
        ("sos", int((NOW - timedelta(seconds=8)).timestamp() * 1000)),
        ("crash", int((NOW - timedelta(seconds=6)).timestamp() * 1000)),
    ]
    assert bits == c and len(tr.samples) == 5


def test_collision_and_rollover_together_are_two_distinct_events() -> None:
    tr, _ = translate([location(NOW, alarm=1 << 29 | 1 << 30)])
    assert sorted(e["alarm"] for e in tr.events) == ["collision", "rollover"]
    (_, events) = parsed(tr)
    assert len({(e.seq, e.ts) for e in events.events}) == 2


def test_without_a_fix_there_is_no_position_but_the_tachograph_speed() -> None:
    loc = location(NOW, status=j.STATUS_ACC, lat=0.0, lon=0.0)
    loc.items[j.ITEM_TACHO_SPEED] = (425).to_bytes(2, "big")
    tr, _ = translate([loc])
    (s,) = tr.samples
    assert "lat" not in s and s["speed_kmh"] == 42.5 and s["ignition"] is True
    parsed(tr)


def test_values_outside_the_contract_are_dropped_not_the_sample() -> None:
    tr, _ = translate([location(NOW, alt_m=-2000, speed=450.0, heading_deg=400)])
    (s,) = tr.samples
    assert "alt_m" not in s and "speed_kmh" not in s and "heading_deg" not in s and "lat" in s
    parsed(tr)


def test_clock_problems() -> None:
    unset = location(NOW)
    unset.time, unset.raw_time = None, bytes(6)
    future = location(NOW + timedelta(hours=1), alarm=1)
    tr, bits = translate([unset, future, location(datetime(2004, 1, 1, tzinfo=UTC))])
    assert [r.reason for r in tr.rejected] == ["clock_unset", "clock_future", "clock_unset"]
    assert tr.samples == [] and tr.events == [] and bits == 0  # an undatable alarm waits for a datable report


def test_translation_is_deterministic() -> None:
    reports = [location(NOW - timedelta(seconds=1), alarm=1)]
    assert translate(reports)[0].messages(ROOT) == to_contract(
        DEV, reports, 0, now_ms=NOW_MS + 50_000, max_age_days=30
    )[0].messages(ROOT)


def test_device_ids_from_phone_numbers() -> None:
    assert device_id_for("jt808-", "013912345678") == device_id_for("jt808-", "00000000013912345678")
    assert device_id_for("", "000000000000") == "0"
