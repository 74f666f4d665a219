"""The incidents `fleet demo` injects through the scenario machinery, so a newcomer sees alerts on the console."""

from __future__ import annotations

from simulators.fleet_spec import make_spec
from simulators.scenario import FIRST_OF_GROUP, OBSERVABLE_BY, FaultSpec, Scenario

# Incidents of `fleet demo`, in turn: what a newcomer should see on the console (a crash first: its alert is
# immediate; an unauthorised movement's takes about 40 s, an overheating engine's about 50 s, a failing battery's
# about 2 minutes: bench/monitor_score.md).
INCIDENT_KINDS = ("crash", "unauthorized_movement", "overheating", "battery_failing")
INCIDENT_CANDIDATES = (
    12  # vehicles armed per incident; the first that can have it does, the others stand down
)


def incident_scenario(*, vehicles: int, start_s: float, every_s: float, count: int) -> Scenario:
    """`count` incidents, one every `every_s` seconds from `start_s`, cycling through INCIDENT_KINDS.

    Which car is not fixed in advance (whether a given car is driving at 30 km/h at a given second is not known
    before the run): each incident arms INCIDENT_CANDIDATES suitable cars (driving kinds: rented cars; parked
    kinds: cars not rented out; always a device that can show the fault) in one group, and the first that can
    have it does (runner.Simulation stands the rest of the group down). Candidates rotate, so incidents spread
    over the fleet."""
    specs = [make_spec(i) for i in range(vehicles)]
    faults: list[FaultSpec] = []
    for n in range(count):
        kind = INCIDENT_KINDS[n % len(INCIDENT_KINDS)]
        parked = kind in ("battery_failing", "unauthorized_movement")
        pool = [s.index for s in specs if s.protocol in OBSERVABLE_BY[kind] and s.rented != parked]
        if not pool:
            continue
        shift = (n * 7) % len(pool)
        chosen = (pool[shift:] + pool[:shift])[:INCIDENT_CANDIDATES]
        start = start_s + n * every_s
        for v in chosen:
            faults.append(FaultSpec(kind, v, start, None, every_s, {FIRST_OF_GROUP: f"incident-{n}"}))
    return Scenario("demo incidents", faults)
