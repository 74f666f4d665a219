"""SAE J1979 (OBD-II) decoding and encoding of ELM327 response lines, as real adapters print them.

Formulas are those of SAE J1979 as tabulated in Wikipedia's "OBD-II PIDs" article and implemented by python-OBD
(`obd/commands.py`, `obd/decoders.py`, `obd/UnitsAndScaling.py`); DTC letters and digits follow SAE J2012. The
simulator uses the encoders here so that device and ingest cannot drift apart.

What an ELM327 prints, and what is understood here (`decode`):

* headers off (`AT H0`, the default): `41 0C 1A F8` (spaces optional);
* headers on (`AT H1`): CAN 11-bit `7E8 04 41 0C 1A F8 [padding]`, CAN 29-bit `18 DA F1 10 04 41 0C 1A F8`
  (ISO 15765-4: the header, the ISO-TP PCI byte, then the data), and the pre-CAN protocols (SAE J1850, ISO 9141-2,
  ISO 14230-4) `48 6B 10 41 0C 1A F8 CS` (three header bytes, the data, a checksum byte);
* ISO-TP multi-frame answers (more than 7 bytes: a VIN, more than two DTCs on CAN): with headers, a first frame
  `7E8 10 14 49 02 01 …` and consecutive frames `7E8 21 …`; without, the adapter's own layout, a length line
  `014` and numbered lines `0: 49 02 01 …`, `1: …`;
* stored / pending / permanent DTCs (services 03 / 07 / 0A): pre-CAN frames carry three two-byte slots
  (`43 01 33 00 00 00 00`, an odd number of bytes), CAN answers a count byte then the codes (`43 01 01 33`,
  `43 00`: an even number of bytes);
* adapter status lines: `SEARCHING...`, `BUS INIT: ...OK`, `OK` and `NO DATA` (the ECU did not answer: no value,
  nothing wrong) carry no data and are skipped; `?`, `STOPPED`, `CAN ERROR`, `BUS ERROR`, `UNABLE TO CONNECT`,
  `BUFFER FULL`, `DATA ERROR`, … and ECU negative responses (`7F 01 12`) are refused as `obd_adapter_error`.

Each line is judged on its own: what decodes is kept, each refused line is reported with its index and reason
(`ObdProblem`), so one unsupported answer never costs the rest of the reading. A service 01 PID that has a
reading column is stored there; every other PID python-OBD decodes is stored, decoded, in the reading's `obd_extra`
(jsonb) under a name; a PID nobody decodes (and any other answer: freeze frames, other service 09 info types) is
kept raw in `obd_extra["raw"]` (`"41 E1": "0102"`), not thrown away.

Work is bounded: at most MAX_LINES lines of at most MAX_LINE_CHARS characters per sample.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from fleetcore.contract import DTC_RE
from fleetcore.protocol.obd_pids import DTC_LETTERS, PIDS, decode_dtc, hex_compact, hex_spaced

SERVICE_01_RESPONSE = 0x41  # 0x40 + service 01 (show current data)
SERVICE_03_RESPONSE = 0x43  # 0x40 + service 03 (show stored DTCs)
SERVICE_07_RESPONSE = 0x47  # 0x40 + service 07 (show pending DTCs)
SERVICE_0A_RESPONSE = 0x4A  # 0x40 + service 0A (show permanent DTCs)
SERVICE_09_RESPONSE = 0x49  # 0x40 + service 09 (vehicle information)
NEGATIVE_RESPONSE = 0x7F  # ISO 14229 / ISO 15765-4 negative response: 7F <service> <code>
VIN_INFOTYPE = 0x02
DTC_SLOTS_PER_FRAME = 3  # pre-CAN service 03 response: three two-byte slots per frame
# Where each DTC service's codes go: the reading's `dtc` column (stored codes) or a key of obd_extra.
DTC_SERVICES = {
    SERVICE_03_RESPONSE: "dtc",
    SERVICE_07_RESPONSE: "pending_dtc",
    SERVICE_0A_RESPONSE: "permanent_dtc",
}

# Bounds per sample (one JSON object's `frames`): an ELM327 line holds at most 8 CAN bytes after a 29-bit header
# (~40 characters with spaces); 4095 bytes is the largest ISO-TP message (12-bit length).
MAX_LINES = 512
MAX_LINE_CHARS = 128
MAX_ISOTP_BYTES = 4095
MAX_RAW_ENTRIES = 64
MAX_SHOWN = 40

# ELM327 status lines (ELM327 datasheet, "Messages and what they mean")
IGNORED_LINES = ("NO DATA", "OK", "SEARCHING...", "SEARCHING")
ADAPTER_ERRORS = (
    "?",
    "STOPPED",
    "CAN ERROR",
    "BUS ERROR",
    "BUS BUSY",
    "UNABLE TO CONNECT",
    "BUFFER FULL",
    "DATA ERROR",
    "<DATA ERROR",
    "FB ERROR",
    "LV RESET",
    "ACT ALERT",
    "<RX ERROR",
    "RX ERROR",
    "ERR",
)


class ObdError(ValueError):
    """A frame that cannot be decoded; `reason` is a contract reason code (bad_obd_frame, obd_adapter_error)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class ObdProblem:
    """One refused line of a sample: its index in `frames`, a contract reason and a detail naming it."""

    index: int
    reason: str
    detail: str


@dataclass(slots=True)
class ObdResult:
    """What one sample's frames decode to: reading columns (`fields`, `dtc` included when a service 03 answer
    came), the other decoded values (`extra`, for the jsonb column; None when empty), the refused lines."""

    fields: dict[str, object] = field(default_factory=dict)
    extra: dict[str, object] = field(default_factory=dict)
    problems: list[ObdProblem] = field(default_factory=list)
    # whether any line carried data that was used (decoded or kept raw)
    used: int = 0


def _show(frame: object) -> str:
    text = repr(frame) if isinstance(frame, str | int | float | bool | None) else f"<{type(frame).__name__}>"
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def frame_bytes(frame: object) -> bytes:
    """Hex text of one ELM327 response ("41 0C 1A F8" or "410C1AF8") → bytes; ObdError when not hex."""
    if not isinstance(frame, str):
        raise ObdError("bad_obd_frame", f"frame {_show(frame)} is not a string")
    if not frame.isascii():
        raise ObdError("bad_obd_frame", f"frame {_show(frame)} is not hex bytes")
    try:
        data = bytes.fromhex(frame)
    except ValueError:
        raise ObdError("bad_obd_frame", f"frame {_show(frame)} is not hex bytes") from None
    if not data:
        raise ObdError("bad_obd_frame", "empty frame")
    return data


# ----------------------------------------------------------------------------------------------- lines → messages


@dataclass(slots=True)
class _Message:
    """One reassembled response: the index of its first line, its bytes (service byte first), and whether it
    came over CAN (True), a pre-CAN protocol (False) or is unknown (None: headers off)."""

    index: int
    data: bytes
    can: bool | None
    text: str


@dataclass(slots=True)
class _IsoTp:
    index: int
    text: str
    length: int
    data: bytearray
    next_seq: int


def _is_hex(text: str) -> bool:
    return bool(text) and all(c in "0123456789ABCDEFabcdef" for c in text)


def _split_headers(tokens: list[str]) -> tuple[str, bytes] | None:
    """(header kind, bytes after the header) for a line with headers on; None when the line has no header.

    kinds: "can11" (3-hex-digit id, e.g. 7E8), "can29" (18 DA F1 10), "legacy" (48 6B 10 / 83 F1 10 ... CS).
    """
    if len(tokens) >= 2 and len(tokens[0]) == 3:
        return "can11", bytes.fromhex("".join(tokens[1:]))
    if len(tokens) == 1 and len(tokens[0]) % 2 == 1 and len(tokens[0]) >= 5:  # spaces off: 7E80641...
        return "can11", bytes.fromhex(tokens[0][3:])
    raw = bytes.fromhex("".join(tokens))
    if len(raw) >= 6 and raw[0] == 0x18 and raw[1] in (0xDA, 0xDB):
        return "can29", raw[4:]
    # SAE J1850 / ISO 9141-2: priority, target 6B (OBD tester functional address), source; ISO 14230-4 (KWP):
    # format byte 10xxxxxx / 11xxxxxx, target F1 (tester), source. The trailing checksum byte is dropped.
    if len(raw) >= 5 and (raw[1] == 0x6B or (raw[0] & 0x80 and raw[1] == 0xF1)) and 0x41 <= raw[3] <= 0x7F:
        return "legacy", raw[3:-1]
    return None


def _messages(frames: list[object]) -> tuple[list[_Message], list[ObdProblem], int]:
    """ELM327 lines → reassembled responses, refused lines, and the number of lines skipped as status."""
    out: list[_Message] = []
    problems: list[ObdProblem] = []
    isotp: dict[str, _IsoTp] = {}  # header (or "" with headers off) → message being reassembled
    pending_len: int | None = None  # headers off: the length line that precedes "0: ..."
    pending_at: tuple[int, str] = (0, "")
    skipped = 0
    n_lines = 0

    def bad(i: int, text: str, why: str, reason: str = "bad_obd_frame") -> None:
        problems.append(ObdProblem(i, reason, f"frame {i} {_show(text)}: {why}"))

    for i, frame in enumerate(frames):
        if not isinstance(frame, str):
            problems.append(ObdProblem(i, "bad_obd_frame", f"frame {i} {_show(frame)} is not a string"))
            continue
        if len(frame) > MAX_LINE_CHARS * 8:
            bad(i, frame, f"longer than {MAX_LINE_CHARS * 8} characters")
            continue
        lines = frame.replace(">", "\n").splitlines() or [""]
        for line in lines:
            n_lines += 1
            if n_lines > MAX_LINES:
                bad(i, line, f"more than {MAX_LINES} lines in one sample")
                return out, problems, skipped
            text = line.strip()
            upper = text.upper()
            if not text:
                if len(lines) == 1:
                    problems.append(ObdProblem(i, "bad_obd_frame", f"frame {i}: empty frame"))
                continue
            if len(text) > MAX_LINE_CHARS:
                bad(i, text, f"longer than {MAX_LINE_CHARS} characters")
                continue
            if upper in IGNORED_LINES or upper.startswith(("SEARCHING", "BUS INIT")):
                skipped += 1
                continue
            if not text.isascii():
                bad(i, text, "is not hex bytes")
                continue
            if upper in ADAPTER_ERRORS or (upper.startswith("ERR") and upper[3:].isdigit()):
                bad(i, text, "the adapter reports an error", "obd_adapter_error")
                continue
            numbered = None
            if (
                len(text) >= 2 and text[1] == ":" and _is_hex(text[0])
            ):  # headers off, ISO-TP line "0: 49 02 ..."
                numbered = int(text[0], 16)
                text_hex = text[2:]
            else:
                text_hex = text
            tokens = text_hex.split()
            if not tokens or not all(_is_hex(t) for t in tokens):
                bad(i, text, "is not hex bytes")
                continue
            if (
                numbered is None and len(tokens) == 1 and len(tokens[0]) == 3
            ):  # headers off: "014" length line
                if pending_len is not None:
                    bad(*pending_at, "length line not followed by its numbered lines")
                pending_len = int(tokens[0], 16)
                pending_at = (i, text)
                continue
            if numbered is None and pending_len is not None:
                bad(*pending_at, "length line not followed by its numbered lines")
                pending_len = None
            if numbered is not None:
                if any(len(t) % 2 for t in tokens):
                    bad(i, text, "is not hex bytes")
                    continue
                data = bytes.fromhex("".join(tokens))
                cur = isotp.get("")
                if numbered == 0:
                    if cur is not None:
                        bad(cur.index, cur.text, "multi-frame answer incomplete")
                    length = pending_len if pending_len is not None else len(data)
                    isotp[""] = cur = _IsoTp(i, text, length, bytearray(data), 1)
                    pending_len = None
                elif cur is None or numbered != cur.next_seq:
                    bad(i, text, "consecutive line out of sequence")
                    continue
                else:
                    cur.data += data
                    cur.next_seq = (cur.next_seq + 1) & 0xF
                if len(cur.data) >= cur.length:
                    out.append(_Message(cur.index, bytes(cur.data[: cur.length]), True, cur.text))
                    del isotp[""]
                continue
            try:
                split = _split_headers(tokens)
                data = bytes.fromhex("".join(tokens)) if split is None else split[1]
            except ValueError:
                bad(i, text, "is not hex bytes")
                continue
            if split is None:
                if not data:
                    bad(i, text, "empty frame")
                    continue
                out.append(_Message(i, data, None, text))
                continue
            kind, body = split
            if kind == "legacy":
                if not body:
                    bad(i, text, "no data after the header")
                    continue
                out.append(_Message(i, body, False, text))
                continue
            # CAN: ISO-TP PCI byte (ISO 15765-2): 0x0N single frame of N bytes, 0x1N NN first frame, 0x2N next
            header = tokens[0] if kind == "can11" else "".join(tokens)[:8]
            if not body:
                bad(i, text, "no ISO-TP PCI byte")
                continue
            pci = body[0] >> 4
            if pci == 0:
                n = body[0] & 0xF
                if not 1 <= n <= len(body) - 1:
                    bad(i, text, f"single frame says {n} bytes, carries {len(body) - 1}")
                    continue
                out.append(_Message(i, body[1 : 1 + n], True, text))
            elif pci == 1:
                if len(body) < 2:
                    bad(i, text, "first frame without its length")
                    continue
                length = ((body[0] & 0xF) << 8) | body[1]
                if length < 8:
                    bad(i, text, f"first frame of a {length}-byte message")
                    continue
                if header in isotp:
                    bad(isotp[header].index, isotp[header].text, "multi-frame answer incomplete")
                isotp[header] = _IsoTp(i, text, length, bytearray(body[2:]), 1)
            elif pci == 2:
                cur = isotp.get(header)
                if cur is None or body[0] & 0xF != cur.next_seq:
                    bad(i, text, "consecutive frame without its first frame or out of sequence")
                    continue
                cur.data += body[1:]
                cur.next_seq = (cur.next_seq + 1) & 0xF
                if len(cur.data) >= cur.length:
                    out.append(_Message(cur.index, bytes(cur.data[: cur.length]), True, cur.text))
                    del isotp[header]
            else:
                bad(i, text, f"ISO-TP frame type {pci:X} is not a response")
    if pending_len is not None:
        bad(*pending_at, "length line not followed by its numbered lines")
    for cur in isotp.values():
        bad(cur.index, cur.text, f"multi-frame answer incomplete ({len(cur.data)} of {cur.length} bytes)")
    return out, problems, skipped


# ----------------------------------------------------------------------------------------------- messages → values


def _dtc_codes(m: _Message) -> list[str] | str:
    """The codes of a service 03/07/0A answer, or why it cannot be read.

    Pre-CAN: three two-byte slots per frame (an odd byte count); CAN: a count byte, then that many codes (an
    even byte count, or whatever came over CAN with headers or ISO-TP).
    """
    body = m.data[1:]
    can = m.can if m.can is not None else len(m.data) % 2 == 0
    if can:
        if not body:
            return "CAN DTC answer without its count byte"
        count = body[0]
        codes_bytes = body[1:]
        if 2 * count > len(codes_bytes) or len(codes_bytes) % 2:
            return f"says {count} codes, carries {len(codes_bytes)} bytes"
        slots = codes_bytes[: 2 * count]
    else:
        if len(body) % 2 or not 2 <= len(body) <= 2 * DTC_SLOTS_PER_FRAME:
            return "pre-CAN DTC answer needs 1 to 3 two-byte slots"
        slots = body
    return [decode_dtc(slots[k], slots[k + 1]) for k in range(0, len(slots), 2) if slots[k] or slots[k + 1]]


def _vin_text(data: bytes) -> str | None:
    text = data.lstrip(b"\x00\x01\x02").decode("ascii", "replace")
    return text if len(text) == 17 and text.isalnum() else None


def decode(frames: Iterable[object]) -> ObdResult:
    """Decode the frames of one OBD sample: every decodable answer kept, every refused one reported."""
    frames = list(frames)[: MAX_LINES + 1]
    msgs, problems, _ = _messages(frames)
    res = ObdResult(problems=problems)
    fields = res.fields
    extra = res.extra
    raw: dict[str, str] = {}
    legacy_vin: list[_Message] = []
    for m in msgs:
        d = m.data
        sid = d[0]
        if sid == SERVICE_01_RESPONSE:
            if len(d) < 2:
                problems.append(ObdProblem(m.index, "bad_obd_frame", f"frame {m.index} {_show(m.text)}: service 01 response without a PID"))  # fmt: skip
                continue
            spec = PIDS.get(d[1])
            if spec is None or spec.decode is None:
                if len(raw) < MAX_RAW_ENTRIES:
                    raw[f"41 {d[1]:02X}"] = hex_compact(d[2:])
                    res.used += 1
                else:
                    problems.append(ObdProblem(m.index, "bad_obd_frame", f"frame {m.index}: more than {MAX_RAW_ENTRIES} raw answers"))  # fmt: skip
                continue
            if len(d) != 2 + spec.nbytes:
                problems.append(
                    ObdProblem(
                        m.index,
                        "bad_obd_frame",
                        f"frame {m.index} {_show(m.text)}: PID {spec.pid:02X} needs {spec.nbytes} data bytes, got {len(d) - 2}",
                    )
                )
                continue
            value = spec.decode(d[2:])
            if spec.field is not None:
                fields[spec.field] = value
            elif spec.key is not None:
                extra[spec.key] = value
            res.used += 1
        elif sid in DTC_SERVICES:
            codes = _dtc_codes(m)
            if isinstance(codes, str):
                problems.append(
                    ObdProblem(m.index, "bad_obd_frame", f"frame {m.index} {_show(m.text)}: {codes}")
                )
                continue
            target = fields if sid == SERVICE_03_RESPONSE else extra
            key = DTC_SERVICES[sid]
            have = target.get(key)
            target[key] = (have if isinstance(have, list) else []) + codes
            res.used += 1
        elif sid == SERVICE_09_RESPONSE and len(d) >= 2 and d[1] == VIN_INFOTYPE:
            if m.can is not True and len(d) <= 7:  # a pre-CAN line: 49 02 <order> + 4 bytes
                legacy_vin.append(m)
                continue
            vin = _vin_text(d[3:])  # 49 02 <number of data items> + 17 characters
            if vin is None:
                problems.append(ObdProblem(m.index, "bad_obd_frame", f"frame {m.index} {_show(m.text)}: not a 17-character VIN"))  # fmt: skip
                continue
            extra["vin"] = vin
            res.used += 1
        elif sid == NEGATIVE_RESPONSE:
            problems.append(ObdProblem(m.index, "obd_adapter_error", f"frame {m.index} {_show(m.text)}: negative response (7F) from the ECU"))  # fmt: skip
        elif 0x41 <= sid <= 0x4F:
            if len(raw) < MAX_RAW_ENTRIES:
                raw[hex_spaced(d[:2])] = hex_compact(d[2:])
                res.used += 1
            else:
                problems.append(ObdProblem(m.index, "bad_obd_frame", f"frame {m.index}: more than {MAX_RAW_ENTRIES} raw answers"))  # fmt: skip
        else:
            problems.append(
                ObdProblem(
                    m.index,
                    "bad_obd_frame",
                    f"frame {m.index} {_show(m.text)}: response byte {sid:02X} is not an OBD-II answer (41-4F)",
                )
            )
    if legacy_vin:
        # pre-CAN VIN: five lines 49 02 <order 1..5> + 4 bytes, the first padded with three 00 bytes
        legacy_vin.sort(key=lambda m: m.data[2])
        orders = [m.data[2] for m in legacy_vin]
        vin = (
            _vin_text(b"".join(m.data[3:] for m in legacy_vin))
            if orders == list(range(1, len(orders) + 1))
            else None
        )
        if vin is None:
            first = legacy_vin[0]
            problems.append(ObdProblem(first.index, "bad_obd_frame", f"frame {first.index} {_show(first.text)}: VIN lines incomplete or out of order"))  # fmt: skip
        else:
            extra["vin"] = vin
            res.used += len(legacy_vin)
    if raw:
        extra["raw"] = raw
    problems.sort(key=lambda p: p.index)
    return res


def decode_frames(frames: Iterable[object]) -> dict[str, object]:
    """Strict form of `decode`: the reading columns (plus the obd_extra values) of frames that must all decode;
    ObdError on the first refused one."""
    res = decode(frames)
    if res.problems:
        p = res.problems[0]
        raise ObdError(p.reason, p.detail)
    return {**res.fields, **res.extra}


def encode_pid(pid: int, value: float) -> str:
    """The ELM327 service 01 response frame carrying `value` for `pid`, e.g. encode_pid(0x0C, 1726) → "41 0C 1A F8"."""
    spec = PIDS.get(pid)
    if spec is None or spec.encode is None:
        raise ValueError(f"PID {pid:02X} has no numeric encoding")
    return hex_spaced(bytes((SERVICE_01_RESPONSE, pid)) + spec.encode(value))


def encode_dtc(code: str) -> bytes:
    """A DTC such as "P0133" → its two bytes (SAE J2012)."""
    code = code.upper()
    if not DTC_RE.match(code):
        raise ValueError(f"{code!r} is not a DTC")
    b0 = (DTC_LETTERS.index(code[0]) << 6) | (int(code[1]) << 4) | int(code[2], 16)
    return bytes((b0, int(code[3:], 16)))


def encode_dtcs(codes: list[str]) -> list[str]:
    """Pre-CAN service 03 response frames for `codes`, three per `43` frame padded with `00 00`; one empty frame
    if none."""
    frames = []
    for i in range(0, max(len(codes), 1), DTC_SLOTS_PER_FRAME):
        chunk = b"".join(encode_dtc(c) for c in codes[i : i + DTC_SLOTS_PER_FRAME])
        chunk += b"\x00" * (2 * DTC_SLOTS_PER_FRAME - len(chunk))
        frames.append(hex_spaced(bytes((SERVICE_03_RESPONSE,)) + chunk))
    return frames


# reading field → the service 01 PID that carries it
FIELD_PIDS: dict[str, int] = {p.field: p.pid for p in PIDS.values() if p.field is not None}


def encode_fields(values: dict[str, float | None], dtcs: list[str] | None = None) -> list[str]:
    """Frames for the fields of `values` a PID carries (None and PID-less fields skipped), plus `43` frames for `dtcs`."""
    frames = [encode_pid(FIELD_PIDS[k], v) for k, v in values.items() if v is not None and k in FIELD_PIDS]
    if dtcs is not None:
        frames += encode_dtcs(dtcs)
    return frames
