"""SAE J1979 / J2012 decoding and encoding against the standard examples (Wikipedia "OBD-II PIDs")."""

from __future__ import annotations

import pytest

from fleetcore.protocol.obd import (
    FIELD_PIDS,
    PIDS,
    ObdError,
    decode_dtc,
    decode_frames,
    encode_dtc,
    encode_dtcs,
    encode_fields,
    encode_pid,
)


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
    "frame", ["41 1F 01 2C", "41 46 3C", "41 01 00 07 E5 00", "41 00 BE 1F A8 13", "41 20 80 01 80 01"]
)
def test_known_pids_not_stored(frame: str) -> None:
    assert decode_frames([frame]) == {}


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
        ("41 99 00", "unknown_pid"),
        ("41 0C 1A", "bad_obd_frame"),  # rpm needs 2 bytes
        ("41 0C 1A F8 00", "bad_obd_frame"),
        ("41 0D", "bad_obd_frame"),
        ("41", "bad_obd_frame"),
        ("41 0G 00", "bad_obd_frame"),
        ("NO DATA", "bad_obd_frame"),
        ("410", "bad_obd_frame"),
        ("", "bad_obd_frame"),
        ("7F 01 12", "bad_obd_frame"),  # negative response
        ("49 02 01 00", "bad_obd_frame"),  # service 09: not supported
        ("43 01 33 00", "bad_obd_frame"),  # odd slot
        ("43 01 33 00 00 00 00 00 00", "bad_obd_frame"),  # four slots
        ("43", "bad_obd_frame"),
    ],
)
def test_bad_frames(frame: str, reason: str) -> None:
    with pytest.raises(ObdError) as info:
        decode_frames([frame])
    assert info.value.reason == reason
    assert repr(frame) in info.value.detail or frame == ""


def test_unknown_pid_detail_names_the_pid() -> None:
    with pytest.raises(ObdError, match="PID 99"):
        decode_frames(["41 0C 1A F8", "41 99 00"])


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
    assert fields[PIDS[pid].field] == pytest.approx(value, abs=tolerance + 1e-9)


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
