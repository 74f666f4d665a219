"""SAE J1979 / J2012 decoding and encoding against the standard examples (Wikipedia "OBD-II PIDs"), public decoders'
test vectors (tests/obd_vectors.py) and the line formats real ELM327 adapters print."""

from __future__ import annotations

import collections
import re
from pathlib import Path

import pytest

from fleetcore.protocol.obd import (
    FIELD_PIDS,
    PIDS,
    ObdError,
    decode,
    decode_dtc,
    decode_frames,
    encode_dtc,
    encode_dtcs,
    encode_fields,
    encode_pid,
)
from tests.obd_vectors import VECTORS


@pytest.mark.parametrize(
    ("frame", "field", "value"),
    [
        ("41 0C 1A F8", "rpm", 1726.0),  # (256·26 + 248) / 4
        ("410C1AF8", "rpm", 1726.0),  # ELM327 with spaces off (AT S0)
        ("41 0c 1a f8", "rpm", 1726.0),
        ("41 05 7B", "coolant_c", 83.0),  # 123 − 40
        ("41 05 00", "coolant_c", -40.0),
        ("41 0D 32", "speed_kmh", 50.0),
        ("41 0D FF", "speed_kmh", 255.0),
        ("41 04 FF", "engine_load_pct", 100.0),
        ("41 04 80", "engine_load_pct", 128 * 100 / 255),
        ("41 11 33", "throttle_pct", 20.0),  # 51 · 100/255
        ("41 2F 80", "fuel_pct", 128 * 100 / 255),
        ("41 42 36 B0", "battery_v", 14.0),  # 0x36B0 = 14000 mV
        ("41 A6 00 01 E2 40", "odometer_km", 12345.6),  # 123456 / 10
    ],
)
def test_service_01_pids(frame: str, field: str, value: float) -> None:
    assert decode_frames([frame]) == {field: pytest.approx(value)}


@pytest.mark.parametrize(
    ("frame", "key", "value"),
    [
        ("41 1F 01 2C", "run_time_s", 300.0),
        ("41 46 3C", "ambient_air_temp_c", 20.0),
        (
            "41 01 00 07 E5 00",
            "monitor_status",
            {"mil": False, "dtc_count": 0, "compression_ignition": False},
        ),
        ("41 00 BE 1F A8 13", "pids_supported_01_20", "BE1FA813"),
        ("41 20 80 01 80 01", "pids_supported_21_40", "80018001"),
    ],
)
def test_pids_without_a_column_go_to_obd_extra(frame: str, key: str, value: object) -> None:
    res = decode([frame])
    assert res.fields == {} and res.extra == {key: value} and res.problems == []


def test_several_frames_make_one_set_of_fields_last_wins() -> None:
    fields = decode_frames(["41 0C 1A F8", "41 0D 32", "41 0D 33", "43 01 33 00 00 00 00"])
    assert fields == {"rpm": 1726.0, "speed_kmh": 51.0, "dtc": ["P0133"]}


@pytest.mark.parametrize(
    ("frame", "codes"),
    [
        ("43 01 33 00 00 00 00", ["P0133"]),
        ("43 00 00 00 00 00 00", []),
        ("43 03 01 C1 00 92 34", ["P0301", "U0100", "B1234"]),
    ],
)
def test_service_03_dtcs(frame: str, codes: list[str]) -> None:
    assert decode_frames([frame]) == {"dtc": codes}


def test_dtc_letters_per_j2012() -> None:
    assert decode_dtc(0x01, 0x33) == "P0133"
    assert decode_dtc(0x40, 0x35) == "C0035"
    assert decode_dtc(0x92, 0x34) == "B1234"
    assert decode_dtc(0xC1, 0x00) == "U0100"
    assert decode_dtc(0x3F, 0xFF) == "P3FFF"


def test_dtcs_from_several_frames_accumulate() -> None:
    assert decode_frames(["43 01 33 00 00 00 00", "43 03 01 00 00 00 00"]) == {"dtc": ["P0133", "P0301"]}


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("41 0C 1A", "bad_obd_frame"),  # rpm needs 2 bytes
        ("41 0C 1A F8 00", "bad_obd_frame"),
        ("41 0D", "bad_obd_frame"),
        ("41", "bad_obd_frame"),
        ("41 0G 00", "bad_obd_frame"),
        ("410", "bad_obd_frame"),
        ("", "bad_obd_frame"),
        ("7F 01 12", "obd_adapter_error"),  # negative response
        ("49 02 01 00", "bad_obd_frame"),  # one pre-CAN VIN line of five
        ("43 02 01 33", "bad_obd_frame"),  # CAN count byte says 2 codes, carries 1
        ("43 03 01 33", "bad_obd_frame"),  # CAN count byte says 3 codes, carries 1
        ("43 01 33 00 00 00 00 00 00", "bad_obd_frame"),  # four slots
        ("43", "bad_obd_frame"),
    ],
)
def test_bad_frames(frame: str, reason: str) -> None:
    with pytest.raises(ObdError) as info:
        decode_frames([frame])
    assert info.value.reason == reason
    assert repr(frame) in info.value.detail or frame == ""


def test_unknown_pid_is_kept_raw_with_the_rest() -> None:
    res = decode(["41 0C 1A F8", "41 99 00 01", "41 E1 02"])
    assert res.fields == {"rpm": 1726.0}
    assert res.extra == {"raw": {"41 99": "0001", "41 E1": "02"}} and res.problems == []


def test_non_string_frame() -> None:
    with pytest.raises(ObdError) as info:
        decode_frames([410])
    assert info.value.reason == "bad_obd_frame"


def test_encode_standard_examples() -> None:
    assert encode_pid(0x0C, 1726) == "41 0C 1A F8"
    assert encode_pid(0x05, 83) == "41 05 7B"
    assert encode_pid(0x0D, 50) == "41 0D 32"
    assert encode_dtcs(["P0133"]) == ["43 01 33 00 00 00 00"]
    assert encode_dtcs([]) == ["43 00 00 00 00 00 00"]
    assert encode_dtcs(["P0301", "U0100", "B1234", "C0035"]) == [
        "43 03 01 C1 00 92 34",
        "43 40 35 00 00 00 00",
    ]


@pytest.mark.parametrize(
    ("pid", "value", "tolerance"),
    [
        (0x04, 42.0, 100 / 255 / 2),
        (0x05, 91.0, 0),
        (0x0C, 2345.25, 0),
        (0x0C, 800.1, 0.125),
        (0x0D, 123.0, 0),
        (0x11, 17.3, 100 / 255 / 2),
        (0x2F, 63.9, 100 / 255 / 2),
        (0x42, 14.123, 0),
        (0xA6, 98765.4, 1e-9),
    ],
)
def test_round_trip(pid: int, value: float, tolerance: float) -> None:
    fields = decode_frames([encode_pid(pid, value)])
    column = PIDS[pid].field
    assert column is not None
    assert fields[column] == pytest.approx(value, abs=tolerance + 1e-9)


def test_round_trip_dtcs() -> None:
    codes = ["P0301", "P0133", "C0035", "B1234", "U0100", "P3FFF", "P0420"]
    assert decode_frames(encode_dtcs(codes)) == {"dtc": codes}


@pytest.mark.parametrize(("pid", "value"), [(0x0D, 256), (0x0D, -1), (0x05, -41), (0x99, 1), (0x01, 0)])
def test_encode_refuses_what_the_pid_cannot_carry(pid: int, value: float) -> None:
    with pytest.raises(ValueError):
        encode_pid(pid, value)


def test_encode_refuses_bad_dtc() -> None:
    with pytest.raises(ValueError):
        encode_dtc("X0133")
    with pytest.raises(ValueError):
        encode_dtcs(["P4133"])


def test_encode_fields_round_trip() -> None:
    values = {
        "rpm": 2150.5,
        "speed_kmh": 87.0,
        "coolant_c": 92.0,
        "battery_v": 14.05,
        "odometer_km": 51234.5,
        "lat": 52.5,  # no PID: ignored
        "fuel_pct": None,  # not measured: no frame
    }
    frames = encode_fields(values, dtcs=["P0301"])
    assert len(frames) == 6
    decoded = decode_frames(frames)
    assert decoded == {
        "rpm": 2150.5,
        "speed_kmh": 87.0,
        "coolant_c": 92.0,
        "battery_v": pytest.approx(14.05),
        "odometer_km": 51234.5,
        "dtc": ["P0301"],
    }
    assert FIELD_PIDS == {
        "engine_load_pct": 0x04,
        "coolant_c": 0x05,
        "rpm": 0x0C,
        "speed_kmh": 0x0D,
        "throttle_pct": 0x11,
        "fuel_pct": 0x2F,
        "battery_v": 0x42,
        "odometer_km": 0xA6,
    }


# ----------------------------------------------------------------------------------------------- real devices


def test_one_unsupported_frame_no_longer_loses_the_reading() -> None:
    """The measured defect: `41 0F 45` (intake air temperature) made rpm and speed go too."""
    res = decode(["41 0C 1A F8", "41 0D 32", "41 0F 45"])
    assert res.fields == {"rpm": 1726.0, "speed_kmh": 50.0}
    assert res.extra == {"intake_temp_c": 29.0} and res.problems == []


def test_each_refused_line_is_reported_and_the_rest_kept() -> None:
    res = decode(["41 0C 1A F8", "STOPPED", "41 0D", "zz", "41 0D 32", 7])
    assert res.fields == {"rpm": 1726.0, "speed_kmh": 50.0}
    assert [(p.index, p.reason) for p in res.problems] == [
        (1, "obd_adapter_error"),
        (2, "bad_obd_frame"),
        (3, "bad_obd_frame"),
        (5, "bad_obd_frame"),
    ]


@pytest.mark.parametrize("status", ["NO DATA", "SEARCHING...", "BUS INIT: ...OK", "OK", "no data"])
def test_status_lines_carry_no_data_and_are_skipped(status: str) -> None:
    res = decode([status, "41 0D 32"])
    assert res.fields == {"speed_kmh": 50.0} and res.problems == []
    assert decode([status]).used == 0


@pytest.mark.parametrize(
    "line",
    ["?", "STOPPED", "CAN ERROR", "BUS ERROR", "BUFFER FULL", "UNABLE TO CONNECT", "ERR94", "<DATA ERROR"],
)
def test_adapter_errors_are_refused(line: str) -> None:
    [p] = decode([line, "41 0D 32"]).problems
    assert (p.index, p.reason) == (0, "obd_adapter_error")


@pytest.mark.parametrize(
    ("frames", "codes"),
    [
        (["43 00"], []),  # CAN, no codes
        (["43 01 01 33"], ["P0133"]),  # CAN, one code after the count byte
        (["43 02 01 33 C1 00"], ["P0133", "U0100"]),
        (["4300"], []),
        (["7E8 02 43 00"], []),  # headers on
        (["7E8 04 43 01 01 33 00 00 00"], ["P0133"]),  # headers on, padding
        (["18 DA F1 10 04 43 01 01 33 AA AA AA"], ["P0133"]),  # 29-bit header
        (
            ["7E8 10 0A 43 04 01 33 01 34", "7E8 21 01 35 01 36 00 00 00"],
            ["P0133", "P0134", "P0135", "P0136"],
        ),
        (["00A", "0: 43 04 01 33 01 34", "1: 01 35 01 36 00 00 00"], ["P0133", "P0134", "P0135", "P0136"]),
        (["48 6B 10 43 01 33 00 00 00 00 5A"], ["P0133"]),  # J1850 with headers
        (["43 01 33 00 00 00 00"], ["P0133"]),  # pre-CAN, headers off
    ],
)
def test_stored_dtcs_in_can_and_pre_can_layouts(frames: list[str], codes: list[str]) -> None:
    res = decode(frames)
    assert res.problems == [] and res.fields == {"dtc": codes}


def test_pending_and_permanent_dtcs_go_to_obd_extra() -> None:
    res = decode(["43 01 01 33", "47 01 03 01", "4A 00"])
    assert res.fields == {"dtc": ["P0133"]}
    assert res.extra == {"pending_dtc": ["P0301"], "permanent_dtc": []}


def test_headers_on_11_and_29_bit_and_pre_can() -> None:
    frames = ["7E8 04 41 0C 1A F8 AA AA AA", "18DAF11003410D32AAAAAAAA", "48 6B 10 41 05 7B C3"]
    assert decode(frames).fields == {"rpm": 1726.0, "speed_kmh": 50.0, "coolant_c": 83.0}


def test_headers_on_spaces_off() -> None:
    assert decode(["7E804410C1AF8"]).fields == {"rpm": 1726.0}


def test_isotp_out_of_sequence_is_refused_and_later_frames_still_used() -> None:
    res = decode(["7E8 10 14 49 02 01 31 44 34", "7E8 22 42 31 32 33 34 35 36", "41 0D 32"])
    assert res.fields == {"speed_kmh": 50.0}
    assert sorted(p.index for p in res.problems) == [0, 1]


def test_bounded_work_per_sample() -> None:
    res = decode(["41 0D 32"] * 10_000)
    assert res.fields == {"speed_kmh": 50.0}
    assert [p.reason for p in res.problems] == ["bad_obd_frame"]
    assert len(decode(["41 0D " + "32 " * 10_000]).problems) == 1


@pytest.mark.parametrize(
    ("source", "frames", "expected"), VECTORS, ids=[f"{v[0]}-{i}" for i, v in enumerate(VECTORS)]
)
def test_public_vectors(source: str, frames: list[str], expected: dict) -> None:
    res = decode(frames)
    if "problems" in expected:
        assert [p.reason for p in res.problems] == expected["problems"]
        return
    assert res.problems == []
    got = {**res.fields, **res.extra}
    assert set(got) == set(expected)
    for key, value in expected.items():
        if isinstance(value, float):
            assert got[key] == pytest.approx(value, abs=0.025), key
        else:
            assert got[key] == value, key


def test_device_guide_counts_the_vectors_per_source() -> None:
    counts = collections.Counter(v[0] for v in VECTORS)
    guide = (Path(__file__).resolve().parent.parent / "docs" / "device-guide.md").read_text()
    for source, n in counts.items():
        assert re.search(rf"\| {re.escape(source)} +\| +{n} +\|", guide), (source, n)


def test_every_python_obd_service_01_pid_is_decoded() -> None:
    """python-OBD 0.7.3 commands.py __mode1__ covers PIDs 00-5F; every one of them has a decoder here."""
    assert set(range(0x00, 0x60)) <= {p for p, spec in PIDS.items() if spec.decode is not None}
