"""OBD-II test vectors from independent public decoders, transcribed as facts (frames → what they mean).

Each vector: (source, frames, expected) where expected maps reading columns and obd_extra keys to values (floats
compared with a tolerance of 0.01), or {"problems": [reasons]} for lines that must be refused. The count per
source is in docs/device-guide.md §6 (tests/test_obd.py checks the table).

Sources:
- PYOBD: python-OBD 0.7.3 (PyPI `obd`, GPLv2), its shipped tests: tests/test_decoders.py (decoder values; the
  decoder is named with each), tests/test_protocol_can.py, tests/test_protocol_legacy.py, tests/test_protocol.py
  (line formats). The byte layouts are python-OBD's; the frames are written as an ELM327 prints them.
- TRACCAR: Traccar's ObdDecoderTest (src/test/java/org/traccar/helper/ObdDecoderTest.java, Apache 2.0),
  transcribed from memory of that file: the search tool was not available to re-read it, so these five values
  are the ones least certain of their source (each one is also what SAE J1979's formula gives).
- ELM327: the ELM327 data sheet (Elm Electronics, ELM327DSL rev. L): its example responses for headers on/off,
  CAN 11/29-bit, the multi-line VIN and the adapter's status messages.
"""

from __future__ import annotations

PYOBD = "python-OBD 0.7.3 tests"
TRACCAR = "Traccar ObdDecoderTest"
ELM327 = "ELM327 data sheet"

VECTORS: list[tuple[str, list[str], dict]] = [
    # python-OBD tests/test_decoders.py (decoder, data bytes after mode + PID) on a PID that uses that decoder
    (PYOBD, ["41 04 00"], {"engine_load_pct": 0.0}),  # percent 00
    (PYOBD, ["41 04 FF"], {"engine_load_pct": 100.0}),  # percent FF
    (PYOBD, ["41 06 00"], {"short_fuel_trim_1_pct": -100.0}),  # percent_centered 00
    (PYOBD, ["41 06 80"], {"short_fuel_trim_1_pct": 0.0}),  # percent_centered 80
    (PYOBD, ["41 06 FF"], {"short_fuel_trim_1_pct": 99.2}),  # percent_centered FF
    (PYOBD, ["41 05 00"], {"coolant_c": -40.0}),  # temp 00
    (PYOBD, ["41 05 FF"], {"coolant_c": 215.0}),  # temp FF
    (PYOBD, ["41 34 00 00 00 00"], {"o2_s1_wr_ma": -128.0}),  # current_centered
    (PYOBD, ["41 34 00 00 80 00"], {"o2_s1_wr_ma": 0.0}),
    (PYOBD, ["41 34 AB CD 80 00"], {"o2_s1_wr_ma": 0.0}),  # first two bytes unused
    (PYOBD, ["41 34 00 00 FF FF"], {"o2_s1_wr_ma": 128.0}),
    (PYOBD, ["41 14 00 00"], {"o2_s1_v": 0.0}),  # sensor_voltage
    (PYOBD, ["41 14 FF FF"], {"o2_s1_v": 1.275}),
    (PYOBD, ["41 24 00 00 00 00"], {"o2_s1_wr_v": 0.0}),  # sensor_voltage_big
    (PYOBD, ["41 24 00 00 80 00"], {"o2_s1_wr_v": 4.0}),
    (PYOBD, ["41 24 00 00 FF FF"], {"o2_s1_wr_v": 8.0}),
    (PYOBD, ["41 24 AB CD 00 00"], {"o2_s1_wr_v": 0.0}),
    (PYOBD, ["41 0A 00"], {"fuel_pressure_kpa": 0.0}),  # fuel_pressure
    (PYOBD, ["41 0A 80"], {"fuel_pressure_kpa": 384.0}),
    (PYOBD, ["41 0A FF"], {"fuel_pressure_kpa": 765.0}),
    (PYOBD, ["41 0B 00"], {"intake_pressure_kpa": 0.0}),  # pressure
    (PYOBD, ["41 53 00 00"], {"evap_vapor_pressure_abs_kpa": 0.0}),  # abs_evap_pressure
    (PYOBD, ["41 53 FF FF"], {"evap_vapor_pressure_abs_kpa": 327.675}),
    (PYOBD, ["41 54 00 00"], {"evap_vapor_pressure_alt_pa": -32767.0}),  # evap_pressure_alt
    (PYOBD, ["41 54 7F FF"], {"evap_vapor_pressure_alt_pa": 0.0}),
    (PYOBD, ["41 54 FF FF"], {"evap_vapor_pressure_alt_pa": 32768.0}),
    (PYOBD, ["41 0E 00"], {"timing_advance_deg": -64.0}),  # timing_advance
    (PYOBD, ["41 0E FF"], {"timing_advance_deg": 63.5}),
    (PYOBD, ["41 5D 00 00"], {"fuel_inject_timing_deg": -210.0}),  # inject_timing
    (PYOBD, ["41 5D FF FF"], {"fuel_inject_timing_deg": 302.0}),  # python-OBD: float_equals, ±0.025
    (PYOBD, ["41 50 00 00 00 00"], {"max_maf_g_s": 0.0}),  # max_maf
    (PYOBD, ["41 50 FF 00 00 00"], {"max_maf_g_s": 2550.0}),
    (PYOBD, ["41 50 00 AB CD EF"], {"max_maf_g_s": 0.0}),  # last three bytes unused
    (PYOBD, ["41 5E 00 00"], {"fuel_rate_l_h": 0.0}),  # fuel_rate
    (PYOBD, ["41 5E FF FF"], {"fuel_rate_l_h": 3276.75}),
    (PYOBD, ["41 43 00 00"], {"absolute_load_pct": 0.0}),  # absolute_load
    (PYOBD, ["41 43 FF FF"], {"absolute_load_pct": 25700.0}),
    (PYOBD, ["41 1E 00"], {"pto_active": False}),  # aux_input_status
    (PYOBD, ["41 1E 80"], {"pto_active": True}),
    (
        PYOBD,
        ["41 01 83 07 FF 00"],
        {"monitor_status": {"mil": True, "dtc_count": 3, "compression_ignition": False}},
    ),
    (
        PYOBD,
        ["41 01 00 79 03 03"],
        {"monitor_status": {"mil": False, "dtc_count": 0, "compression_ignition": True}},
    ),
    (PYOBD, ["41 02 01 04"], {"freeze_dtc": "P0104"}),  # single_dtc
    (PYOBD, ["41 02 41 23"], {"freeze_dtc": "C0123"}),
    (PYOBD, ["43 01 04 80 03 41 23"], {"dtc": ["P0104", "B0003", "C0123"]}),  # dtc, multiple codes
    (PYOBD, ["43 00 00 01 04 00 00"], {"dtc": ["P0104"]}),  # dtc, 0000 dropped
    (
        PYOBD,
        ["43 01 04 00 00 00 00", "43 80 03 00 00 00 00"],
        {"dtc": ["P0104", "B0003"]},
    ),  # several messages
    (
        PYOBD,
        ["014", "0: 49 02 01 57 50 30", "1: 5A 5A 5A 39 39 5A 54", "2: 53 33 39 32 31 32 34"],
        {"vin": "WP0ZZZ99ZTS392124"},
    ),  # test_vin's data, as the adapter prints it on CAN, headers off
    # python-OBD tests/test_protocol_can.py (11-bit CAN, headers on)
    (PYOBD, ["7E8 06 41 00 00 01 02 03"], {"pids_supported_01_20": "00010203"}),  # single frame
    (
        PYOBD,
        ["7E8 06 41 00 00 01 02 03", "7EB 06 41 00 00 01 02 03", "7EA 06 41 00 00 01 02 03"],
        {"pids_supported_01_20": "00010203"},
    ),  # three ECUs
    (
        PYOBD,
        [
            "7E8 10 20 49 04 00 01 02 03",
            "7E8 21 04 05 06 07 08 09 0A",
            "7E8 22 0B 0C 0D 0E 0F 10 11",
            "7E8 23 12 13 14 15 16 17 18",
        ],
        {"problems": ["bad_obd_frame"]},
    ),
    # ^ python-OBD's multi-line case: its first frame announces 0x20 = 32 bytes and 27 follow; python-OBD keeps the
    #   27, an incomplete ISO-TP message is refused here. With the true length (0x1B) it decodes:
    (
        PYOBD,
        [
            "7E8 10 1B 49 04 00 01 02 03",
            "7E8 21 04 05 06 07 08 09 0A",
            "7E8 22 0B 0C 0D 0E 0F 10 11",
            "7E8 23 12 13 14 15 16 17 18",
        ],
        {"raw": {"49 04": bytes(range(25)).hex().upper()}},
    ),
    (
        PYOBD,
        ["7E8 10 20 49 04 00 01 02 03", "7E8 22 0B 0C 0D 0E 0F 10 11", "7E8 23 12 13 14 15 16 17 18"],
        {"problems": ["bad_obd_frame", "bad_obd_frame", "bad_obd_frame"]},
    ),  # a frame missing: refused
    (PYOBD, ["12.8 Volts"], {"problems": ["bad_obd_frame"]}),  # non-hex line
    # python-OBD tests/test_protocol_legacy.py and test_protocol.py (J1850 / ISO 9141 / KWP, headers on)
    (PYOBD, ["48 6B 10 41 00 00 01 02 03 FF"], {"pids_supported_01_20": "00010203"}),
    (PYOBD, ["48 6B 10 41 00 BE 1F B8 11 AA"], {"pids_supported_01_20": "BE1FB811"}),
    (
        PYOBD,
        ["48 6B 10 43 00 01 02 03 04 05 FF", "48 6B 10 43 06 07 08 09 0A 0B FF"],
        {"dtc": ["P0001", "P0203", "P0405", "P0607", "P0809", "P0A0B"]},
    ),
    # Traccar ObdDecoderTest (decodeData(pid, value) and decodeCodes)
    (TRACCAR, ["41 05 7B"], {"coolant_c": 83.0}),
    (TRACCAR, ["41 0C 13 24"], {"rpm": 1225.0}),
    (TRACCAR, ["41 0D 14"], {"speed_kmh": 20.0}),
    (TRACCAR, ["41 31 FA 32"], {"distance_since_dtc_clear_km": 64050.0}),
    (TRACCAR, ["41 2F 41"], {"fuel_pct": 25.49}),  # Traccar truncates to 25
    (TRACCAR, ["43 01 0D 14"], {"dtc": ["P0D14"]}),  # decodeCodes("0D14"), as a CAN answer with its count
    # ELM327 data sheet examples
    (ELM327, ["SEARCHING...", "41 00 BE 1F B8 10"], {"pids_supported_01_20": "BE1FB810"}),
    (ELM327, ["7E8 06 41 00 BE 3F A8 13 00"], {"pids_supported_01_20": "BE3FA813"}),
    (ELM327, ["18 DA F1 10 06 41 00 BE 3F A8 13"], {"pids_supported_01_20": "BE3FA813"}),
    (
        ELM327,
        ["014", "0: 49 02 01 31 44 34", "1: 47 50 30 30 52 35 35", "2: 42 31 32 33 34 35 36"],
        {"vin": "1D4GP00R55B123456"},
    ),
    (
        ELM327,
        ["7E8 10 14 49 02 01 31 44 34", "7E8 21 47 50 30 30 52 35 35", "7E8 22 42 31 32 33 34 35 36"],
        {"vin": "1D4GP00R55B123456"},
    ),
    (
        ELM327,
        [
            "48 6B 10 49 02 01 00 00 00 31 FF",
            "48 6B 10 49 02 02 44 34 47 50 FF",
            "48 6B 10 49 02 03 30 30 52 35 FF",
            "48 6B 10 49 02 04 35 42 31 32 FF",
            "48 6B 10 49 02 05 33 34 35 36 FF",
        ],
        {"vin": "1D4GP00R55B123456"},
    ),
    (ELM327, ["BUS INIT: ...OK", "41 0D 32"], {"speed_kmh": 50.0}),
    (ELM327, ["NO DATA", "41 0C 1A F8"], {"rpm": 1726.0}),
    (ELM327, ["?"], {"problems": ["obd_adapter_error"]}),
    (ELM327, ["STOPPED"], {"problems": ["obd_adapter_error"]}),
    (ELM327, ["CAN ERROR"], {"problems": ["obd_adapter_error"]}),
    (ELM327, ["UNABLE TO CONNECT"], {"problems": ["obd_adapter_error"]}),
    (ELM327, ["7F 01 12"], {"problems": ["obd_adapter_error"]}),
]
