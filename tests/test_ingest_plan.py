"""The pure half of the batch writer (`ingest.batch.plan_batch`) and of the acknowledgement bookkeeping
(`ingest.pipeline.acks_for`), without a database: what a batch writes, rejects, quarantines and counts, and which
packet ids are acknowledged. The SQL that applies a plan is tested against the database in test_ingest_writer.py."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta

from fleetcore.contract import READING_COLUMNS
from fleetcore.protocol.parse import Parsed, Rejection, process_message
from ingest.batch import (
    C_DUPLICATES,
    C_QUARANTINED,
    C_READINGS,
    C_RECEIVED,
    C_REJECTED,
    BatchStats,
    Message,
    device_ids,
    plan_batch,
)
from ingest.pipeline import Delivery, acks_for, pending_acks
from ingest.staging import STAGE_COLUMNS, STAGE_RECEIVED, STAGE_VEHICLE

ROOT = "test/fleet/v1"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=5)


def _msg(device: str, kind: str, body: bytes | dict, received: datetime = NOW) -> Message:
    topic = f"{ROOT}/devices/{device}/{kind}"
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Message(topic, payload, received, process_message(ROOT, topic, payload, now=received))


def _tel(device: str, seq: int, ts: datetime, received: datetime = NOW, **fields: object) -> Message:
    return _msg(device, "telemetry", {"ts": int(ts.timestamp() * 1000), "seq": seq, **fields}, received)


def _col(row: tuple, name: str) -> object:
    return row[STAGE_COLUMNS.index(name)]


def test_accepted_samples_become_staged_rows_with_their_vehicle_and_arrival() -> None:
    received = NOW - timedelta(seconds=3)
    m = _tel("dev-a", 7, T0, received, speed_kmh=42.5, fuel_pct=60)
    plan = plan_batch([m], {"dev-a": 11})
    (row,) = plan.stage_rows
    assert len(row) == len(STAGE_COLUMNS) == len(READING_COLUMNS) + 2
    assert row[: len(READING_COLUMNS)] == m.result.readings[0]  # type: ignore[union-attr]
    assert (row[STAGE_VEHICLE], row[STAGE_RECEIVED]) == (11, received)
    assert (_col(row, "ts"), _col(row, "seq"), _col(row, "speed_kmh")) == (T0, 7, 42.5)
    st = plan.stats
    assert (st.messages, st.readings_staged, st.rejected, st.quarantined) == (1, 1, 0, 0)
    assert st.outcomes == ["stored"] and st.kinds == {"telemetry": 1}
    assert plan.rejections == plan.quarantine == plan.events == [] and not plan.presence


def test_every_message_gets_exactly_one_outcome_in_order() -> None:
    messages = [
        _tel("dev-a", 1, T0),
        _msg("dev-a", "telemetry", b"{not json"),
        _tel("ghost", 1, T0),
        _msg("dev-a", "status", b"maybe"),
        _tel("dev-b", 1, T0),
    ]
    plan = plan_batch(messages, {"dev-a": 1, "dev-b": 2, "ghost": None})
    assert plan.stats.outcomes == [
        "stored",
        "rejected:bad_json",
        "quarantined",
        "rejected:bad_status",
        "stored",
    ]
    assert plan.stats.kinds == {"telemetry": 3, "rejected": 2}
    assert plan.stats.reasons == {"bad_json": 1, "bad_status": 1}
    assert [_col(r, "device_id") for r in plan.stage_rows] == ["dev-a", "dev-b"]


def test_a_rejected_message_keeps_its_raw_payload_topic_and_reason() -> None:
    bad = _msg("dev-a", "telemetry", b'{"ts": 1', NOW)
    plan = plan_batch([bad], {})
    ((received, topic, device, payload, reason, detail, elements),) = plan.rejections
    assert (received, topic, device, payload, reason) == (NOW, bad.topic, "dev-a", b'{"ts": 1', "bad_json")
    assert elements is None
    assert detail
    assert plan.stats.counters(count_received=True) == {C_REJECTED: 1, C_RECEIVED: 1}


def test_a_device_not_installed_is_quarantined_with_its_raw_message() -> None:
    m = _tel("ghost", 1, T0, speed_kmh=3)
    plan = plan_batch([m], {"ghost": None})
    assert plan.quarantine == [(NOW, m.topic, "ghost", m.payload)]
    assert plan.stage_rows == [] and plan.stats.readings_staged == 0
    assert plan.stats.counters(count_received=False) == {C_QUARANTINED: 1}


def test_a_rejected_element_is_kept_and_its_message_still_stored() -> None:
    ms = int(T0.timestamp() * 1000)
    body = [{"ts": ms, "seq": 1, "speed_kmh": 10}, {"ts": ms + 1000, "seq": 2, "speed_kmh": 999}]
    m = _msg("dev-a", "telemetry", json.dumps(body).encode())
    plan = plan_batch([m], {"dev-a": 1})
    assert len(plan.stage_rows) == 1
    assert plan.stats.outcomes == ["stored"]
    assert (plan.stats.rejected, plan.stats.elements_rejected) == (0, 1)
    ((_, topic, device, payload, reason, detail, elements),) = plan.rejections
    assert (topic, device, payload, reason) == (m.topic, "dev-a", m.payload, "out_of_range")
    assert "element 1" in detail
    assert json.loads(elements) == {
        "count": 1,
        "indices": [1],
        "by_reason": {"out_of_range": 1},
        "first": [{"index": 1, "reason": "out_of_range", "detail": detail}],
    }


def test_many_bad_elements_make_one_row_with_the_payload_once() -> None:
    """1,000 bad elements of one message stored the whole payload 1,000 times (75 MB for a 123 KB message)."""
    ms = int(T0.timestamp() * 1000)
    body = [{"ts": ms + i, "seq": i, "speed_kmh": 999 if i % 2 else 10} for i in range(2000)]
    m = _msg("dev-a", "telemetry", json.dumps(body).encode())
    plan = plan_batch([m], {"dev-a": 1})
    assert len(plan.stage_rows) == 1000 and plan.stats.elements_rejected == 1000
    ((_, _, _, payload, reason, detail, elements),) = plan.rejections
    assert payload == m.payload and reason == "out_of_range" and detail.startswith("1000 elements rejected")
    got = json.loads(elements)
    assert got["indices"] == list(range(1, 2000, 2)) and got["by_reason"] == {"out_of_range": 1000}
    assert len(got["first"]) == 20
    assert plan.stats.counters(count_received=False)["samples_rejected"] == 1000


def test_a_payload_refused_for_its_size_keeps_only_its_head() -> None:
    big = b"[" + b" " * 300_000 + b"]"
    m = _msg("dev-a", "telemetry", big)
    assert isinstance(m.result, Rejection) and m.result.reason == "too_large"
    ((_, _, _, payload, reason, _, _),) = plan_batch([m], {}).rejections
    assert reason == "too_large" and payload == big[:1024]


def test_samples_ahead_of_their_arrival_are_counted() -> None:
    ms = int(NOW.timestamp() * 1000)
    body = [{"ts": ms + 290_000, "seq": 1, "speed_kmh": 1}, {"ts": ms - 1000, "seq": 2, "speed_kmh": 2}]
    plan = plan_batch([_msg("dev-a", "telemetry", json.dumps(body).encode())], {"dev-a": 1})
    assert len(plan.stage_rows) == 2  # both stored
    assert plan.stats.counters(count_received=False)["samples_ahead_of_arrival"] == 1


def test_events_carry_their_data_as_json_and_mark_the_vehicle_seen() -> None:
    ms = int(T0.timestamp() * 1000)
    m = _msg("dev-a", "event", {"ts": ms, "seq": 9, "type": "crash", "peak_g": 6.5})
    plan = plan_batch([m], {"dev-a": 5})
    ((ts, device, vid, seq, kind, data, received),) = plan.events
    assert (ts, device, vid, seq, kind, received) == (T0, "dev-a", 5, 9, "crash", NOW)
    assert json.loads(data) == {"peak_g": 6.5}
    (p,) = plan.presence.values()
    assert (p.device_id, p.online, p.online_at, p.last_seen) == ("dev-a", None, None, NOW)
    assert plan.presence_params() == ([5], ["dev-a"], [None], [None], [NOW])


def test_the_latest_status_by_arrival_wins_and_last_seen_is_the_latest_arrival() -> None:
    later, earlier = NOW + timedelta(seconds=1), NOW - timedelta(seconds=5)
    messages = [
        _msg("dev-a", "status", b"online", NOW),
        _msg("dev-a", "status", b"offline", later),
        _msg("dev-a", "status", b"online", earlier),  # a replayed, older status loses
    ]
    plan = plan_batch(messages, {"dev-a": 3})
    assert plan.presence_params() == ([3], ["dev-a"], [False], [later], [later])


def test_vehicles_with_several_samples_go_to_the_aggregating_upsert() -> None:
    one_each = plan_batch([_tel("dev-a", 1, T0), _tel("dev-b", 1, T0)], {"dev-a": 1, "dev-b": 2})
    assert one_each.multi_sample_vehicles() is None
    several = plan_batch(
        [_tel("dev-a", 1, T0), _tel("dev-b", 1, T0), _tel("dev-a", 2, T0 + timedelta(seconds=1))],
        {"dev-a": 1, "dev-b": 2},
    )
    assert several.multi_sample_vehicles() == [1]


def test_state_rows_are_locked_in_vehicle_order_samples_and_presence_together() -> None:
    ms = int(T0.timestamp() * 1000)
    plan = plan_batch(
        [
            _tel("dev-c", 1, T0),
            _msg("dev-b", "event", {"ts": ms, "seq": 1, "type": "crash"}),
            _tel("dev-a", 1, T0),
        ],
        {"dev-a": 30, "dev-b": 20, "dev-c": 10},
    )
    assert plan.state_lock_ids() == [10, 20, 30]


def test_only_accepted_messages_have_their_device_looked_up() -> None:
    messages = [_tel("dev-a", 1, T0), _msg("dev-b", "telemetry", b"{"), _msg("dev-c", "status", b"online")]
    assert device_ids(messages) == {"dev-a", "dev-c"}


def test_planning_is_pure() -> None:
    messages = [_tel("dev-a", 1, T0, speed_kmh=1.0), _msg("dev-a", "telemetry", b"{"), _tel("ghost", 2, T0)]
    vehicles = {"dev-a": 1, "ghost": None}
    before = copy.deepcopy((messages, vehicles))
    first, second = plan_batch(messages, vehicles), plan_batch(messages, vehicles)
    assert first == second
    assert (messages, vehicles) == before


def test_counters_leave_out_zeros_and_received_only_when_asked() -> None:
    st = BatchStats(messages=3, readings_stored=2, duplicates=1)
    assert st.counters(count_received=True) == {C_READINGS: 2, C_DUPLICATES: 1, C_RECEIVED: 3}
    assert st.counters(count_received=False) == {C_READINGS: 2, C_DUPLICATES: 1}


def test_merged_stats_add_up() -> None:
    a = BatchStats(messages=1, readings_stored=1, outcomes=["stored"], state_rows=[("r1",)])
    a.kinds["telemetry"] += 1
    b = BatchStats(messages=1, rejected=1, outcomes=["rejected:write_error"])
    b.reasons["write_error"] += 1
    a.merge(b)
    assert (a.messages, a.readings_stored, a.rejected) == (2, 1, 1)
    assert a.outcomes == ["stored", "rejected:write_error"] and a.state_rows == [("r1",)]
    assert a.reasons == {"write_error": 1} and a.kinds == {"telemetry": 1}


def _delivery(mid: int, qos: int, epoch: int) -> Delivery:
    return Delivery("t", b"", NOW, Rejection(None, "bad_topic", "x"), mid, qos, epoch, 0.0)


def test_only_qos1_messages_of_the_current_connection_are_acknowledged_in_arrival_order() -> None:
    batch = [_delivery(5, 1, 2), _delivery(3, 1, 1), _delivery(9, 0, 2), _delivery(1, 1, 2)]
    # 3 came on the previous connection: the broker redelivers it on this one, possibly under another id
    assert acks_for(batch, epoch=2) == [5, 1]
    assert pending_acks(batch) == [(5, 2), (3, 1), (1, 2)]


def test_a_delivery_is_the_message_the_writer_plans() -> None:
    d = Delivery(
        f"{ROOT}/devices/dev-a/status",
        b"online",
        NOW,
        Parsed("dev-a", "status", [], [], "online"),
        1,
        1,
        1,
        0.0,
    )
    plan = plan_batch([d], {"dev-a": 4})
    assert plan.presence_params() == ([4], ["dev-a"], [True], [NOW], [NOW])
