"""What one batch of parsed messages becomes, decided without I/O: `plan_batch` turns the messages (and the
device → vehicle lookup done beforehand) into the rows to write, the rejections and quarantine rows, the presence
updates and the per-message counters and outcomes. `ingest.writer` applies a plan in one transaction.

Pure like `fleetcore.protocol.parse`, so every decision here has fast unit tests without a database (tests/test_ingest_plan.py).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from fleetcore.contract import HEAD_ONLY_REASONS, REJECTED_HEAD_BYTES
from fleetcore.protocol.parse import MAX_DETAIL, Parsed, Rejection
from ingest.vehicle_state import STATE_AHEAD_TOLERANCE_S

# Counter names in ingest_counters (rows are upserted, so names added later need no migration).
C_RECEIVED = "messages_received"
C_REJECTED = "messages_rejected"
C_ELEMENTS_REJECTED = "samples_rejected"
C_QUARANTINED = "messages_quarantined"
C_READINGS = "readings_stored"
C_EVENTS = "events_stored"
C_DUPLICATES = "duplicates_skipped"
C_REPLAYED = "quarantine_replayed"
# Messages whose batch's samples a coalesced state flush applied (ingest.state); with the state deferred, a
# message is acknowledged after this count includes it.
C_STATE_APPLIED = "messages_state_applied"

# Samples stored but kept out of vehicle_state: stamped ahead of their own arrival (ingest.vehicle_state).
C_AHEAD_OF_ARRIVAL = "samples_ahead_of_arrival"
# Element rejections of one message listed with their detail in its row's `elements` (all are counted, and all
# indices listed).
ELEMENT_DETAILS_KEPT = 20
STATE_AHEAD = timedelta(seconds=STATE_AHEAD_TOLERANCE_S)

# Outcomes recorded per message (replay writes them to ingest_quarantine.replay_result).
STORED = "stored"
QUARANTINED = "quarantined"
REJECTED_PREFIX = "rejected:"


@dataclass(slots=True)
class Message:
    """One MQTT message as received: raw topic and payload, arrival time, and what the pure parser made of it."""

    topic: str
    payload: bytes
    received_at: datetime
    result: Parsed | Rejection


@dataclass
class BatchStats:
    """What one committed batch did."""

    messages: int = 0
    readings_staged: int = 0
    readings_stored: int = 0
    events_stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    elements_rejected: int = 0
    quarantined: int = 0
    # stored samples stamped ahead of their own arrival: kept out of vehicle_state (ingest.vehicle_state)
    ahead_of_arrival: int = 0
    reasons: Counter = field(default_factory=Counter)
    kinds: Counter = field(default_factory=Counter)
    # Per message: stored | rejected:<reason> | quarantined (replay records it).
    outcomes: list[str] = field(default_factory=list)
    # With the state deferred (BatchWriter(defer_state=True)): the staged reading rows, for ingest.state.
    state_rows: list[tuple] = field(default_factory=list)

    def counters(self, count_received: bool) -> dict[str, int]:
        """The ingest_counters increments of this batch (zeros left out)."""
        c = {
            C_REJECTED: self.rejected,
            C_ELEMENTS_REJECTED: self.elements_rejected,
            C_QUARANTINED: self.quarantined,
            C_READINGS: self.readings_stored,
            C_EVENTS: self.events_stored,
            C_DUPLICATES: self.duplicates,
            C_AHEAD_OF_ARRIVAL: self.ahead_of_arrival,
        }
        if count_received:
            c[C_RECEIVED] = self.messages
        return {k: v for k, v in c.items() if v}

    def merge(self, one: BatchStats) -> None:
        """Add another batch's stats to these (a refused batch written message by message)."""
        for f in (
            "messages",
            "readings_staged",
            "readings_stored",
            "events_stored",
            "duplicates",
            "rejected",
            "elements_rejected",
            "quarantined",
            "ahead_of_arrival",
        ):
            setattr(self, f, getattr(self, f) + getattr(one, f))
        self.reasons.update(one.reasons)
        self.kinds.update(one.kinds)
        self.outcomes.extend(one.outcomes)
        self.state_rows.extend(one.state_rows)


class Presence:
    """A vehicle's presence in one batch: the device that reported, the latest status (by arrival) and arrival."""

    __slots__ = ("device_id", "online", "online_at", "last_seen")

    def __init__(self, device_id: str, last_seen: datetime) -> None:
        self.device_id = device_id
        self.online: bool | None = None
        self.online_at: datetime | None = None
        self.last_seen = last_seen


@dataclass(slots=True)
class BatchPlan:
    """Everything one batch writes, in the column order of the COPY/INSERT statements in `ingest.staging`."""

    stats: BatchStats
    # READING_COLUMNS + vehicle_id + received_at (ingest.staging.STAGE_COLUMNS)
    stage_rows: list[tuple]
    # ts, device_id, vehicle_id, seq, type, data (JSON text), received_at
    events: list[tuple]
    # received_at, topic, device_id, payload, reason, detail, elements (JSON text or None): one row per message,
    # whole-message rejections and the element rejections of an accepted message alike, the payload once
    rejections: list[tuple]
    # received_at, topic, device_id, payload: messages of devices not installed in a vehicle
    quarantine: list[tuple]
    presence: dict[int, Presence]
    samples_per_vehicle: dict[int, int]

    def multi_sample_vehicles(self) -> list[int] | None:
        """Vehicles with several samples in the batch (the state upsert aggregates them); None when there are none."""
        if len(self.samples_per_vehicle) < len(self.stage_rows):
            return [v for v, n in self.samples_per_vehicle.items() if n > 1]
        return None

    def state_lock_ids(self) -> list[int]:
        """Every vehicle whose state row the batch updates, in the one order all writers lock in."""
        return sorted(self.samples_per_vehicle.keys() | self.presence.keys())

    def presence_params(self) -> tuple[list, list, list, list, list]:
        """The arrays of the presence upsert: vehicle, device, online, online changed at, last seen."""
        vids = sorted(self.presence)
        ps = [self.presence[v] for v in vids]
        return (
            vids,
            [p.device_id for p in ps],
            [p.online for p in ps],
            [p.online_at for p in ps],
            [p.last_seen for p in ps],
        )


def element_rejections_row(m: Message, r: Parsed) -> tuple:
    """The one ingest_rejections row of an accepted message's element rejections: its payload once, the first
    rejection's reason, a summary detail, and every failing index with the reasons counted (`elements`)."""
    rejs = r.rejections
    first = rejs[0]
    n = len(rejs)
    detail = first.detail if n == 1 else f"{n} elements rejected; first: {first.detail}"
    if len(detail) > MAX_DETAIL:
        detail = detail[: MAX_DETAIL - 3] + "..."
    elements = {
        "count": n,
        "indices": [x.index for x in rejs],
        "by_reason": dict(Counter(x.reason for x in rejs)),
        "first": [
            {"index": x.index, "reason": x.reason, "detail": x.detail} for x in rejs[:ELEMENT_DETAILS_KEPT]
        ],
    }
    return (m.received_at, m.topic, r.device_id, m.payload, first.reason, detail, json.dumps(elements))


def device_ids(messages: Sequence[Message]) -> set[str]:
    """The devices of the accepted messages: the ones to look up in the registry before planning."""
    return {m.result.device_id for m in messages if type(m.result) is Parsed}


def plan_batch(messages: Sequence[Message], vehicles: Mapping[str, int | None]) -> BatchPlan:
    """Pure: the rows, rejections, quarantine, presence, counters and outcomes of one batch.

    `vehicles` maps each device of `device_ids(messages)` to the vehicle it is installed in (None: not installed,
    its messages are quarantined). The counts the database decides (readings stored, duplicates, events stored)
    are left for the writer to fill in.
    """
    st = BatchStats(messages=len(messages))
    stage_rows: list[tuple] = []
    events: list[tuple] = []
    rejections: list[tuple] = []
    quarantine: list[tuple] = []
    presence: dict[int, Presence] = {}
    samples_per_vehicle: dict[int, int] = {}
    outcomes = st.outcomes
    kinds = st.kinds
    reasons = st.reasons
    for m in messages:
        r = m.result
        if type(r) is not Parsed:
            rej = cast(Rejection, r)
            st.rejected += 1
            reasons[rej.reason] += 1
            kinds["rejected"] += 1
            payload = m.payload
            if rej.reason in HEAD_ONLY_REASONS:
                payload = payload[:REJECTED_HEAD_BYTES]
            rejections.append((m.received_at, m.topic, rej.device_id, payload, rej.reason, rej.detail, None))
            outcomes.append(REJECTED_PREFIX + rej.reason)
            continue
        kinds[r.kind] += 1
        vid = vehicles.get(r.device_id)
        if vid is None:
            st.quarantined += 1
            quarantine.append((m.received_at, m.topic, r.device_id, m.payload))
            outcomes.append(QUARANTINED)
            continue
        outcomes.append(STORED)
        extra = (vid, m.received_at)
        readings = r.readings
        if readings:
            samples_per_vehicle[vid] = samples_per_vehicle.get(vid, 0) + len(readings)
            ahead = m.received_at + STATE_AHEAD
            for row in readings:
                stage_rows.append(row + extra)
                if row[0] > ahead:
                    st.ahead_of_arrival += 1
        for ev in r.events:
            events.append(
                (ev.ts, r.device_id, vid, ev.seq, ev.type, json.dumps(ev.data, default=str), m.received_at)
            )
        if r.rejections:
            st.elements_rejected += len(r.rejections)
            for rej in r.rejections:
                reasons[rej.reason] += 1
            rejections.append(element_rejections_row(m, r))
        status = r.status
        if r.events or status is not None:
            p = presence.get(vid)
            if p is None:
                p = presence[vid] = Presence(r.device_id, m.received_at)
            elif m.received_at > p.last_seen:
                p.last_seen = m.received_at
            if status is not None and (p.online_at is None or m.received_at >= p.online_at):
                p.online = status == "online"
                p.online_at = m.received_at
    st.readings_staged = len(stage_rows)
    return BatchPlan(st, stage_rows, events, rejections, quarantine, presence, samples_per_vehicle)
