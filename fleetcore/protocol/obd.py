"""SAE J1979 (OBD-II) decoding and encoding of ELM327-style response frames.

Formulas are those of SAE J1979 as tabulated in Wikipedia's "OBD-II PIDs" article; DTC letters and digits follow
SAE J2012. The simulator uses the encoders here so that device and ingest cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from fleetcore.contract import DTC_RE

SERVICE_01_RESPONSE = 0x41  # 0x40 + service 01 (show current data)
SERVICE_03_RESPONSE = 0x43  # 0x40 + service 03 (show stored DTCs)
DTC_SLOTS_PER_FRAME = 3  # classic (non-CAN) service 03 response: three two-byte slots per frame
DTC_LETTERS = "PCBU"  # SAE J2012: the first two bits of the first byte


class ObdError(ValueError):
    """A frame that cannot be decoded; `reason` is a contract reason code (bad_obd_frame, unknown_pid)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Pid:
    """A service 01 PID: data length, the reading field it feeds (None: known but not stored), formulas."""

    pid: int
    name: str
    nbytes: int
    field: str | None
    decode: Callable[[bytes], float] | None
    encode: Callable[[float], bytes] | None
    formula: str


def _u(data: bytes) -> int:
    return int.from_bytes(data, "big")


def _enc(value: float, nbytes: int, pid: int) -> bytes:
    raw = round(value)
    if not 0 <= raw < 256**nbytes:
        raise ValueError(f"value out of the range PID {pid:02X} can encode")
    return raw.to_bytes(nbytes, "big")


_PCT = 100.0 / 255.0

# A table reads better one PID per two lines.
# fmt: off
PIDS: dict[int, Pid] = {
    p.pid: p
    for p in (
        Pid(0x01, "monitor status since DTCs cleared", 4, None, None, None, "bit field (MIL, DTC count)"),
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
        Pid(0x1F, "run time since engine start", 2, None,
            lambda d: float(_u(d)), lambda v: _enc(v, 2, 0x1F), "256·A + B  (s)"),
        Pid(0x2F, "fuel tank level input", 1, "fuel_pct",
            lambda d: d[0] * _PCT, lambda v: _enc(v / _PCT, 1, 0x2F), "100/255 · A  (%)"),
        Pid(0x42, "control module voltage", 2, "battery_v",
            lambda d: _u(d) / 1000.0, lambda v: _enc(v * 1000, 2, 0x42), "(256·A + B) / 1000  (V)"),
        Pid(0x46, "ambient air temperature", 1, None,
            lambda d: d[0] - 40.0, lambda v: _enc(v + 40, 1, 0x46), "A − 40  (°C)"),
        Pid(0xA6, "odometer", 4, "odometer_km",
            lambda d: _u(d) / 10.0, lambda v: _enc(v * 10, 4, 0xA6), "(2²⁴·A + 2¹⁶·B + 2⁸·C + D) / 10  (km)"),
    )
}
# fmt: on
# "PIDs supported [01-20]", [21-40], ...: 4-byte bitmaps an ELM327 scan tool reads first; known, not stored.
for _base in (0x00, 0x20, 0x40, 0x60, 0x80, 0xA0, 0xC0):
    PIDS[_base] = Pid(
        _base, f"PIDs supported [{_base + 1:02X}-{_base + 0x20:02X}]", 4, None, None, None, "bit map"
    )


def _show(frame: object) -> str:
    text = repr(frame)
    return text if len(text) <= 40 else text[:37] + "..."


def frame_bytes(frame: object) -> bytes:
    """Hex text of one ELM327 response ("41 0C 1A F8" or "410C1AF8") → bytes; ObdError when not hex."""
    if not isinstance(frame, str):
        raise ObdError("bad_obd_frame", f"frame {_show(frame)} is not a string")
    try:
        data = bytes.fromhex(frame)
    except ValueError:
        raise ObdError("bad_obd_frame", f"frame {_show(frame)} is not hex bytes") from None
    if not data:
        raise ObdError("bad_obd_frame", "empty frame")
    return data


def decode_dtc(b0: int, b1: int) -> str:
    """One two-byte DTC slot → code such as "P0133" (SAE J2012)."""
    return f"{DTC_LETTERS[b0 >> 6]}{(b0 >> 4) & 0x3}{b0 & 0xF:X}{b1:02X}"


def decode_frames(frames: Iterable[object]) -> dict[str, object]:
    """Decode the frames of one OBD message into reading fields; `dtc` present only when a 43 frame was sent.

    A later frame for the same PID overrides an earlier one. Raises ObdError on the first bad frame.
    """
    out: dict[str, object] = {}
    dtcs: list[str] | None = None
    for frame in frames:
        data = frame_bytes(frame)
        service = data[0]
        if service == SERVICE_01_RESPONSE:
            if len(data) < 2:
                raise ObdError("bad_obd_frame", f"frame {_show(frame)}: service 01 response without a PID")
            spec = PIDS.get(data[1])
            if spec is None:
                raise ObdError("unknown_pid", f"frame {_show(frame)}: PID {data[1]:02X} is not supported")
            if len(data) != 2 + spec.nbytes:
                raise ObdError(
                    "bad_obd_frame",
                    f"frame {_show(frame)}: PID {spec.pid:02X} needs {spec.nbytes} data bytes, got {len(data) - 2}",
                )
            if spec.field is not None and spec.decode is not None:
                out[spec.field] = spec.decode(data[2:])
        elif service == SERVICE_03_RESPONSE:
            body = data[1:]
            if len(body) % 2 or not 2 <= len(body) <= 2 * DTC_SLOTS_PER_FRAME:
                raise ObdError(
                    "bad_obd_frame",
                    f"frame {_show(frame)}: service 03 response needs 1 to 3 two-byte DTC slots",
                )
            if dtcs is None:
                dtcs = []
            for i in range(0, len(body), 2):
                if body[i] or body[i + 1]:  # 00 00 = empty slot
                    dtcs.append(decode_dtc(body[i], body[i + 1]))
        else:
            raise ObdError(
                "bad_obd_frame", f"frame {_show(frame)}: response byte {service:02X} is not 41 or 43"
            )
    if dtcs is not None:
        out["dtc"] = dtcs
    return out


def _hex(data: bytes) -> str:
    return " ".join(f"{b:02X}" for b in data)


def encode_pid(pid: int, value: float) -> str:
    """The ELM327 service 01 response frame carrying `value` for `pid`, e.g. encode_pid(0x0C, 1726) → "41 0C 1A F8"."""
    spec = PIDS.get(pid)
    if spec is None or spec.encode is None:
        raise ValueError(f"PID {pid:02X} has no numeric encoding")
    return _hex(bytes((SERVICE_01_RESPONSE, pid)) + spec.encode(value))


def encode_dtc(code: str) -> bytes:
    """A DTC such as "P0133" → its two bytes (SAE J2012)."""
    code = code.upper()
    if not DTC_RE.match(code):
        raise ValueError(f"{code!r} is not a DTC")
    b0 = (DTC_LETTERS.index(code[0]) << 6) | (int(code[1]) << 4) | int(code[2], 16)
    return bytes((b0, int(code[3:], 16)))


def encode_dtcs(codes: list[str]) -> list[str]:
    """Service 03 response frames for `codes`, three per `43` frame padded with `00 00`; one empty frame if none."""
    frames = []
    for i in range(0, max(len(codes), 1), DTC_SLOTS_PER_FRAME):
        chunk = b"".join(encode_dtc(c) for c in codes[i : i + DTC_SLOTS_PER_FRAME])
        chunk += b"\x00" * (2 * DTC_SLOTS_PER_FRAME - len(chunk))
        frames.append(_hex(bytes((SERVICE_03_RESPONSE,)) + chunk))
    return frames


# reading field → the service 01 PID that carries it
FIELD_PIDS: dict[str, int] = {p.field: p.pid for p in PIDS.values() if p.field is not None}


def encode_fields(values: dict[str, float | None], dtcs: list[str] | None = None) -> list[str]:
    """Frames for the fields of `values` a PID carries (None and PID-less fields skipped), plus `43` frames for `dtcs`."""
    frames = [encode_pid(FIELD_PIDS[k], v) for k, v in values.items() if v is not None and k in FIELD_PIDS]
    if dtcs is not None:
        frames += encode_dtcs(dtcs)
    return frames
