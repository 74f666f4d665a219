"""The scorer on a short simulator run: labelled crashes and a pothole go through the live detector pipeline."""

from __future__ import annotations

from monitor import scoring


def test_crashes_found_and_pothole_ignored():
    scenario = {
        "name": "mini",
        "faults": [
            {"kind": "crash", "vehicle": 0, "start_s": 120, "params": {"peak_g": 4.0}},
            {"kind": "minor_collision", "vehicle": 1, "start_s": 120},
            {"kind": "pothole", "vehicle": 2, "start_s": 120},
        ],
    }
    run = scoring.simulate("mini", vehicles=4, seconds=900, seed=3, scenario=scenario)
    assert {t["fault"] for t in run.truth} >= {"crash", "pothole"}
    summary = scoring.summarise([run], None)
    crash = next(r for r in summary["detectors"] if r["kind"] == "crash")
    labelled = sum(1 for t in run.truth if t["kind"] == "crash")
    assert crash["tp"] == labelled and crash["fn"] == 0 and crash["fp"] == 0
    assert crash["delay_max_s"] < 15
    md = scoring.to_markdown(summary)
    assert "| crash |" in md and "crash_recall" in md
