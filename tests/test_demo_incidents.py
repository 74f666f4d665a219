"""The demo's incidents: one fault per incident group really happens (the first candidate able to have it), the
rest stand down, kinds rotate, and the first (a crash) happens within seconds of being armed."""

from __future__ import annotations

from fleetapp.demo import FIRST_INCIDENT_S, demo_incidents
from simulators.incidents import INCIDENT_KINDS, incident_scenario
from simulators.runner import Simulation
from simulators.scenario import FIRST_OF_GROUP, OBSERVABLE_BY, Fault, parse_scenario

WARMUP_S = 600  # cars on the road, as the demo's warm-up does (shorter: this is a unit test)


def test_one_incident_per_group_and_the_crash_comes_first():
    sc = incident_scenario(vehicles=40, start_s=WARMUP_S + 10, every_s=40, count=4)
    assert parse_scenario(sc.to_json()).faults == sc.faults  # a plain scenario document
    sim = Simulation(vehicles=40, rate_hz=1.0, seed=3, scenario=sc)
    for _ in range(WARMUP_S + 10 + 4 * 40):
        sim.tick()
    started: dict[str, list[Fault]] = {}
    for faults in sim.faults.values():
        for f in faults:
            if f.truth is not None:
                started.setdefault(f.spec.params[FIRST_OF_GROUP], []).append(f)
    assert sorted(started) == [f"incident-{n}" for n in range(4)]
    assert all(len(fs) == 1 for fs in started.values()), started
    kinds = [started[f"incident-{n}"][0].kind for n in range(4)]
    assert kinds == list(INCIDENT_KINDS)
    for fs in started.values():
        f = fs[0]
        assert sim.specs[f.spec.vehicle].protocol in OBSERVABLE_BY[f.kind]  # the monitor can see it
    crash = started["incident-0"][0]
    assert crash.t_on - crash.arm_t < 30, "no candidate drove at crash speed within 30 s"


def test_demo_incidents_start_after_the_warm_up_and_can_be_switched_off():
    sc = demo_incidents(60, warmup_s=900, every_s=180)
    assert sc is not None and min(f.start_s for f in sc.faults) == 900 + FIRST_INCIDENT_S
    assert {f.kind for f in sc.faults} == set(INCIDENT_KINDS)
    assert demo_incidents(60, warmup_s=900, every_s=0) is None
