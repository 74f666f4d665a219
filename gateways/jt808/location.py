"""JT/T 808 location reports (0x0200, and 0x0704 batches of them) → contract samples and events (pure).

The wire format is fleetcore.protocol.jt808 (shared with the simulator's terminals). Alarms are edge-triggered here:
a bit that stays set in every report while the condition lasts is reported once, when it rises, as the contract
event ALARM_EVENTS names.
"""

from __future__ import annotations

from typing import Any

from fleetcore.contract import NUMERIC_BY_NAME
from fleetcore.protocol.jt808 import ITEM_MILEAGE, ITEM_SATS, ITEM_TACHO_SPEED, Location
from gateways.common import Rejected, Translation, clock_problem, event_seq, telemetry_seq

# Alarm bits (§8.18 table 25) → (contract event type, the alarm's name kept in the event's data).
ALARM_EVENTS: dict[int, tuple[str, str]] = {
    0: ("sos", "emergency"),
    1: ("overspeed", "overspeed"),
    2: ("fatigue", "fatigue_driving"),
    8: ("power_cut", "main_power_cut"),
    29: ("crash", "collision"),
    30: ("crash", "rollover"),
}
MAPPED_ALARMS = sum(1 << bit for bit in ALARM_EVENTS)


def _ok(name: str, x: float) -> bool:
    spec = NUMERIC_BY_NAME[name]
    return spec.lo <= x <= spec.hi


def to_contract(
    device_id: str,
    reports: list[Location],
    alarm_bits: int,
    *,
    now_ms: int,
    max_age_days: int,
) -> tuple[Translation, int]:
    """Reports (oldest first) → samples and rising-edge alarm events; returns them and the new alarm state.

    `alarm_bits` is the state after the last report already republished for this terminal. A report with an
    unset or implausible clock is not republished (and does not move the alarm state: its bits are judged with
    the next datable report).
    """
    out = Translation(device_id)
    for loc in reports:
        if loc.time is None:
            out.rejected.append(Rejected("clock_unset", f"BCD time {loc.raw_time.hex()} is not a date"))
            continue
        ts = int(loc.time.timestamp() * 1000)
        if (why := clock_problem(ts, now_ms, max_age_days)) is not None:
            out.rejected.append(Rejected(why, f"report time {loc.time.isoformat()}", ts))
            continue
        sample: dict[str, Any] = {"ts": ts, "seq": telemetry_seq(ts), "ignition": loc.ignition}
        where: dict[str, Any] = {}
        if loc.fix and (loc.lat, loc.lon) != (0.0, 0.0):
            sample["lat"], sample["lon"] = loc.lat, loc.lon
            where.update(lat=loc.lat, lon=loc.lon)
            for name, x in (
                ("speed_kmh", loc.speed_kmh),
                ("heading_deg", loc.heading_deg),
                ("alt_m", loc.alt_m),
            ):
                if _ok(name, x):
                    sample[name] = x
        tacho = loc.item_int(ITEM_TACHO_SPEED)
        if "speed_kmh" not in sample and tacho is not None and _ok("speed_kmh", tacho / 10):
            sample["speed_kmh"] = tacho / 10
        if "speed_kmh" in sample:
            where["speed_kmh"] = sample["speed_kmh"]
        mileage = loc.item_int(ITEM_MILEAGE)
        if mileage is not None and _ok("odometer_km", mileage / 10):
            sample["odometer_km"] = mileage / 10
        sats = loc.item_int(ITEM_SATS)
        if sats is not None and _ok("sats", sats):
            sample["sats"] = sats
        out.samples.append(sample)
        rising = loc.alarm & ~alarm_bits & MAPPED_ALARMS
        for bit, (etype, alarm) in ALARM_EVENTS.items():
            if rising & (1 << bit):
                out.events.append(
                    {
                        "ts": ts,
                        "seq": event_seq(ts, bit),
                        "type": etype,
                        "source": "jt808",
                        "alarm": alarm,
                        "alarm_bit": bit,
                        **where,
                    }  # fmt: skip
                )
        alarm_bits = loc.alarm
    return out, alarm_bits
