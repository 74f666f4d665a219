"""The service 01 PIDs of SAE J1979 (OBD-II): data length, formula, the reading column or obd_extra key each
feeds, decoder and encoder; and SAE J2012 DTC codes. The table behind fleetcore.protocol.obd."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

DTC_LETTERS = "PCBU"  # SAE J2012: the first two bits of the first byte


@dataclass(frozen=True, slots=True)
class Pid:
    """A service 01 PID: data length, the reading column it feeds or the obd_extra key it is stored under,
    formulas."""

    pid: int
    name: str
    nbytes: int
    field: str | None
    decode: Callable[[bytes], object] | None
    encode: Callable[[float], bytes] | None
    formula: str
    key: str | None = None  # obd_extra key (PIDs without a column)


def _u(data: bytes) -> int:
    return int.from_bytes(data, "big")


def _s8(b: int) -> int:
    return b - 256 if b >= 128 else b


def _enc(value: float, nbytes: int, pid: int) -> bytes:
    raw = round(value)
    if not 0 <= raw < 256**nbytes:
        raise ValueError(f"value out of the range PID {pid:02X} can encode")
    return raw.to_bytes(nbytes, "big")


_PCT = 100.0 / 255.0


def decode_dtc(b0: int, b1: int) -> str:
    """One two-byte DTC slot → code such as "P0133" (SAE J2012)."""
    return f"{DTC_LETTERS[b0 >> 6]}{(b0 >> 4) & 0x3}{b0 & 0xF:X}{b1:02X}"


def _monitor_status(d: bytes) -> dict[str, object]:
    # python-OBD decoders.status: bit 7 of A = MIL, the other 7 bits the number of confirmed DTCs
    return {"mil": bool(d[0] & 0x80), "dtc_count": d[0] & 0x7F, "compression_ignition": bool(d[1] & 0x08)}


def _freeze_dtc(d: bytes) -> str | None:
    return None if d == b"\x00\x00" else decode_dtc(d[0], d[1])


def hex_spaced(data: bytes) -> str:
    return " ".join(f"{b:02X}" for b in data)


def hex_compact(data: bytes) -> str:
    return data.hex().upper()


# One PID per line: (pid, name, data bytes, obd_extra key, decoder). Decoders follow python-OBD 0.7.3
# (obd/decoders.py, obd/UnitsAndScaling.py), values in the unit the key names; enumerations and bit fields are
# stored as their codes / hex (python-OBD turns them into text).
# fmt: off
_EXTRA: list[tuple[int, str, int, str, Callable[[bytes], object]]] = [
    (0x01, "monitor status since DTCs cleared", 4, "monitor_status", _monitor_status),
    (0x02, "DTC that caused the freeze frame", 2, "freeze_dtc", _freeze_dtc),
    (0x03, "fuel system status", 2, "fuel_system_status", lambda d: [d[0], d[1]]),
    (0x06, "short term fuel trim bank 1", 1, "short_fuel_trim_1_pct", lambda d: (d[0] - 128) * 100.0 / 128.0),
    (0x07, "long term fuel trim bank 1", 1, "long_fuel_trim_1_pct", lambda d: (d[0] - 128) * 100.0 / 128.0),
    (0x08, "short term fuel trim bank 2", 1, "short_fuel_trim_2_pct", lambda d: (d[0] - 128) * 100.0 / 128.0),
    (0x09, "long term fuel trim bank 2", 1, "long_fuel_trim_2_pct", lambda d: (d[0] - 128) * 100.0 / 128.0),
    (0x0A, "fuel pressure", 1, "fuel_pressure_kpa", lambda d: d[0] * 3.0),
    (0x0B, "intake manifold absolute pressure", 1, "intake_pressure_kpa", lambda d: float(d[0])),
    (0x0E, "timing advance", 1, "timing_advance_deg", lambda d: (d[0] - 128) / 2.0),
    (0x0F, "intake air temperature", 1, "intake_temp_c", lambda d: d[0] - 40.0),
    (0x10, "mass air flow rate", 2, "maf_g_s", lambda d: _u(d) * 0.01),
    (0x12, "commanded secondary air status", 1, "secondary_air_status", lambda d: d[0]),
    (0x13, "oxygen sensors present (2 banks)", 1, "o2_sensors_present", lambda d: d[0]),
    *[(0x14 + i, f"oxygen sensor {i + 1} voltage", 2, f"o2_s{i + 1}_v", lambda d: d[0] / 200.0) for i in range(8)],
    (0x1C, "OBD standards this vehicle conforms to", 1, "obd_standard", lambda d: d[0]),
    (0x1D, "oxygen sensors present (4 banks)", 1, "o2_sensors_present_alt", lambda d: d[0]),
    (0x1E, "auxiliary input status", 1, "pto_active", lambda d: bool(d[0] & 0x80)),
    (0x1F, "run time since engine start", 2, "run_time_s", lambda d: float(_u(d))),
    (0x21, "distance traveled with MIL on", 2, "distance_with_mil_km", lambda d: float(_u(d))),
    (0x22, "fuel rail pressure (relative to vacuum)", 2, "fuel_rail_pressure_vac_kpa", lambda d: _u(d) * 0.079),
    (0x23, "fuel rail gauge pressure (direct injection)", 2, "fuel_rail_pressure_direct_kpa", lambda d: _u(d) * 10.0),
    *[(0x24 + i, f"oxygen sensor {i + 1} wide-range voltage", 4, f"o2_s{i + 1}_wr_v",
       lambda d: _u(d[2:4]) * 8.0 / 65535) for i in range(8)],
    (0x2C, "commanded EGR", 1, "commanded_egr_pct", lambda d: d[0] * _PCT),
    (0x2D, "EGR error", 1, "egr_error_pct", lambda d: (d[0] - 128) * 100.0 / 128.0),
    (0x2E, "commanded evaporative purge", 1, "evap_purge_pct", lambda d: d[0] * _PCT),
    (0x30, "warm-ups since codes cleared", 1, "warmups_since_dtc_clear", lambda d: d[0]),
    (0x31, "distance traveled since codes cleared", 2, "distance_since_dtc_clear_km", lambda d: float(_u(d))),
    (0x32, "evaporative system vapor pressure", 2, "evap_vapor_pressure_pa",
     lambda d: (_s8(d[0]) * 256.0 + _s8(d[1])) / 4.0),
    (0x33, "absolute barometric pressure", 1, "barometric_pressure_kpa", lambda d: float(d[0])),
    *[(0x34 + i, f"oxygen sensor {i + 1} wide-range current", 4, f"o2_s{i + 1}_wr_ma",
       lambda d: _u(d[2:4]) / 256.0 - 128) for i in range(8)],
    (0x3C, "catalyst temperature bank 1 sensor 1", 2, "catalyst_temp_b1s1_c", lambda d: _u(d) * 0.1 - 40.0),
    (0x3D, "catalyst temperature bank 2 sensor 1", 2, "catalyst_temp_b2s1_c", lambda d: _u(d) * 0.1 - 40.0),
    (0x3E, "catalyst temperature bank 1 sensor 2", 2, "catalyst_temp_b1s2_c", lambda d: _u(d) * 0.1 - 40.0),
    (0x3F, "catalyst temperature bank 2 sensor 2", 2, "catalyst_temp_b2s2_c", lambda d: _u(d) * 0.1 - 40.0),
    (0x41, "monitor status this drive cycle", 4, "monitor_status_drive_cycle", _monitor_status),
    (0x43, "absolute load value", 2, "absolute_load_pct", lambda d: _u(d) * _PCT),
    (0x44, "commanded air-fuel equivalence ratio", 2, "commanded_equiv_ratio", lambda d: _u(d) * 0.0000305),
    (0x45, "relative throttle position", 1, "relative_throttle_pct", lambda d: d[0] * _PCT),
    (0x46, "ambient air temperature", 1, "ambient_air_temp_c", lambda d: d[0] - 40.0),
    (0x47, "absolute throttle position B", 1, "throttle_pos_b_pct", lambda d: d[0] * _PCT),
    (0x48, "absolute throttle position C", 1, "throttle_pos_c_pct", lambda d: d[0] * _PCT),
    (0x49, "accelerator pedal position D", 1, "accelerator_pos_d_pct", lambda d: d[0] * _PCT),
    (0x4A, "accelerator pedal position E", 1, "accelerator_pos_e_pct", lambda d: d[0] * _PCT),
    (0x4B, "accelerator pedal position F", 1, "accelerator_pos_f_pct", lambda d: d[0] * _PCT),
    (0x4C, "commanded throttle actuator", 1, "throttle_actuator_pct", lambda d: d[0] * _PCT),
    (0x4D, "time run with MIL on", 2, "run_time_mil_min", lambda d: float(_u(d))),
    (0x4E, "time since trouble codes cleared", 2, "time_since_dtc_clear_min", lambda d: float(_u(d))),
    (0x4F, "maximum values (ratio, voltage, current, pressure)", 4, "max_values_hex", hex_compact),
    (0x50, "maximum mass air flow rate", 4, "max_maf_g_s", lambda d: d[0] * 10.0),
    (0x51, "fuel type", 1, "fuel_type", lambda d: d[0]),
    (0x52, "ethanol fuel percent", 1, "ethanol_pct", lambda d: d[0] * _PCT),
    (0x53, "absolute evap system vapor pressure", 2, "evap_vapor_pressure_abs_kpa", lambda d: _u(d) / 200.0),
    (0x54, "evap system vapor pressure", 2, "evap_vapor_pressure_alt_pa", lambda d: _u(d) - 32767.0),
    (0x55, "short term secondary O2 trim bank 1", 2, "short_o2_trim_1_pct", lambda d: (d[0] - 128) * 100.0 / 128.0),
    (0x56, "long term secondary O2 trim bank 1", 2, "long_o2_trim_1_pct", lambda d: (d[0] - 128) * 100.0 / 128.0),
    (0x57, "short term secondary O2 trim bank 2", 2, "short_o2_trim_2_pct", lambda d: (d[0] - 128) * 100.0 / 128.0),
    (0x58, "long term secondary O2 trim bank 2", 2, "long_o2_trim_2_pct", lambda d: (d[0] - 128) * 100.0 / 128.0),
    (0x59, "fuel rail absolute pressure", 2, "fuel_rail_pressure_abs_kpa", lambda d: _u(d) * 10.0),
    (0x5A, "relative accelerator pedal position", 1, "relative_accel_pos_pct", lambda d: d[0] * _PCT),
    (0x5B, "hybrid battery pack remaining life", 1, "hybrid_battery_pct", lambda d: d[0] * _PCT),
    (0x5C, "engine oil temperature", 1, "oil_temp_c", lambda d: d[0] - 40.0),
    (0x5D, "fuel injection timing", 2, "fuel_inject_timing_deg", lambda d: (_u(d) - 26880) / 128.0),
    (0x5E, "engine fuel rate", 2, "fuel_rate_l_h", lambda d: _u(d) * 0.05),
    (0x5F, "emission requirements", 1, "emission_requirements", lambda d: d[0]),
]

PIDS: dict[int, Pid] = {
    p.pid: p
    for p in (
        Pid(0x04, "calculated engine load", 1, "engine_load_pct",
            lambda d: d[0] * _PCT, lambda v: _enc(v / _PCT, 1, 0x04), "100/255 · A  (%)"),
        Pid(0x05, "engine coolant temperature", 1, "coolant_c",
            lambda d: d[0] - 40.0, lambda v: _enc(v + 40, 1, 0x05), "A − 40  (°C)"),
        Pid(0x0C, "engine speed", 2, "rpm",
            lambda d: _u(d) / 4.0, lambda v: _enc(v * 4, 2, 0x0C), "(256·A + B) / 4  (rpm)"),
        Pid(0x0D, "vehicle speed", 1, "speed_kmh",
            lambda d: float(d[0]), lambda v: _enc(v, 1, 0x0D), "A  (km/h)"),
        Pid(0x11, "throttle position", 1, "throttle_pct",
            lambda d: d[0] * _PCT, lambda v: _enc(v / _PCT, 1, 0x11), "100/255 · A  (%)"),
        Pid(0x2F, "fuel tank level input", 1, "fuel_pct",
            lambda d: d[0] * _PCT, lambda v: _enc(v / _PCT, 1, 0x2F), "100/255 · A  (%)"),
        Pid(0x42, "control module voltage", 2, "battery_v",
            lambda d: _u(d) / 1000.0, lambda v: _enc(v * 1000, 2, 0x42), "(256·A + B) / 1000  (V)"),
        Pid(0xA6, "odometer", 4, "odometer_km",
            lambda d: _u(d) / 10.0, lambda v: _enc(v * 10, 4, 0xA6), "(2²⁴·A + 2¹⁶·B + 2⁸·C + D) / 10  (km)"),
    )
}
# fmt: on
for _pid, _name, _n, _key, _dec in _EXTRA:
    PIDS[_pid] = Pid(_pid, _name, _n, None, _dec, None, "python-OBD", key=_key)
# Integer-valued PIDs the simulator encodes without a column (run time, ambient temperature).
PIDS[0x1F] = Pid(0x1F, PIDS[0x1F].name, 2, None, PIDS[0x1F].decode, lambda v: _enc(v, 2, 0x1F), "256·A + B  (s)",
                 key="run_time_s")  # fmt: skip
PIDS[0x46] = Pid(0x46, PIDS[0x46].name, 1, None, PIDS[0x46].decode, lambda v: _enc(v + 40, 1, 0x46), "A − 40  (°C)",
                 key="ambient_air_temp_c")  # fmt: skip
# "PIDs supported [01-20]", [21-40], ...: 4-byte bitmaps an ELM327 scan tool reads first; kept as hex.
for _base in (0x00, 0x20, 0x40, 0x60, 0x80, 0xA0, 0xC0):
    PIDS[_base] = Pid(
        _base,
        f"PIDs supported [{_base + 1:02X}-{_base + 0x20:02X}]",
        4,
        None,
        hex_compact,
        None,
        "bit map",
        key=f"pids_supported_{_base + 1:02x}_{_base + 0x20:02x}",
    )
