"""The scorer on a short simulator run: labelled crashes and a pothole go through the live detector pipeline."""

from __future__ import annotations

from bench import monitor_score as scoring


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


def _at(s: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(1_700_000_000 + s, UTC)


def _truth(start: float, end: float, observable: bool = True) -> dict:
    return {"device_id": "d1", "kind": "overspeed", "start": _at(start).isoformat(),
            "end": _at(end).isoformat(), "details": {"observable": observable}}  # fmt: skip


def test_repeat_detections_in_one_episode_find_separate_labels():
    # one store alert (detections < 10 min apart), but the detector re-armed and flagged each speeding stretch
    ep = scoring.Episode("d1", "overspeed", _at(30), _at(30), _at(400), "medium", count=3)
    ep.hits = [[_at(30), _at(30), False], [_at(200), _at(200), False], [_at(400), _at(400), False]]
    run = scoring.RunResult("t", 1, 3600, 0, 0.0, [ep], [_truth(0, 120), _truth(170, 260), _truth(370, 500)])
    m = scoring.match(run)["per_kind"]["overspeed"]
    assert (m["tp"], m["fp"], m["fn"]) == (3, 0, 0) and m["delays"] == [30.0, 30.0, 30.0]
    # a label with no detection of its own is still a miss
    ep.hits = [[_at(30), _at(30), False], [_at(60), _at(60), False]]
    m = scoring.match(run)["per_kind"]["overspeed"]
    assert (m["tp"], m["fp"], m["fn"]) == (1, 0, 2)


def test_unobservable_labels_are_neither_misses_nor_false_alarms():
    ep = scoring.Episode("d1", "overspeed", _at(40), _at(40), _at(40), "medium")
    run = scoring.RunResult("t", 1, 3600, 0, 0.0, [ep], [_truth(0, 100, False), _truth(2000, 2100, False)])
    m = scoring.match(run)["per_kind"]["overspeed"]
    assert (m["tp"], m["fp"], m["fn"], m["unobservable"]) == (0, 0, 0, 2)
    # a detection far from any label is still a false alarm
    run.episodes.append(scoring.Episode("d1", "overspeed", _at(3000), _at(3000), _at(3000), "medium"))
    m = scoring.match(run)["per_kind"]["overspeed"]
    assert m["fp"] == 1
