"""JT/T 808-2013/-2019 wire format, both directions, pure (no I/O): the gateway reads it, the simulator writes it.

A frame on the wire is 0x7E, the escaped message, 0x7E. Escaping (JT/T 808 §4.4.1 / 2019 §4.5.1): 0x7E → 0x7D 0x02
and 0x7D → 0x7D 0x01. The message is header + body + check code, the check code being the XOR of every header and
body byte. Header (§4.4.3 / 2019 §4.5.3):

    2013: msg id (WORD), attributes (WORD), phone (BCD[6]), serial (WORD) [, total (WORD), index (WORD)]
    2019: msg id (WORD), attributes (WORD), version (BYTE), phone (BCD[10]), serial (WORD) [, total, index]

attributes: bits 0-9 body length, 10-12 encryption (bit 10 = RSA), 13 subpackage, 14 version flag (2019), 15
reserved. Multi-byte integers are big-endian; strings are GBK; times are BCD[6] YYMMDDhhmmss in GMT+8.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

FLAG = 0x7E
ESC = 0x7D
# Message ids used here (terminal → platform, platform → terminal).
TERMINAL_RESPONSE = 0x0001
HEARTBEAT = 0x0002
LOGOUT = 0x0003
REGISTER = 0x0100
AUTHENTICATE = 0x0102
LOCATION = 0x0200
BATCH_LOCATION = 0x0704
PLATFORM_RESPONSE = 0x8001
REGISTER_RESPONSE = 0x8100
# 0x8001 results (§8.2): 0 success/confirmed, 1 failure, 2 message error, 3 not supported, 4 alarm confirmed.
OK, FAILURE, MESSAGE_ERROR, NOT_SUPPORTED = 0, 1, 2, 3
# 0x8100 results (§8.6): 0 success, 1 vehicle already registered, 2 no such vehicle, 3 terminal already
# registered, 4 no such terminal.
REG_OK, REG_NO_SUCH_TERMINAL = 0, 4

MAX_BODY = 0x3FF  # 10 bits of body length
# The longest frame: 2019 header with subpackage fields (21) + body (1023) + check code, every byte escaped, flags.
MAX_FRAME = 2 * (21 + MAX_BODY + 1) + 2
ATTR_SUBPACKAGE = 1 << 13
ATTR_VERSION = 1 << 14
ATTR_RSA = 1 << 10
CHINA_TZ = timezone(timedelta(hours=8))  # BCD times are Beijing time (GMT+8), §4.4.2


class FrameError(ValueError):
    """A frame that cannot be read; `reason` is a short code, `header` is set when the header itself was readable."""

    def __init__(self, reason: str, detail: str, header: Header | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.header = header


# ---------------------------------------------------------------------------------------------------- framing


def escape(data: bytes) -> bytes:
    return data.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02")


def unescape(data: bytes) -> bytes:
    """Undo the escapes; a 0x7D followed by anything but 0x01/0x02 is an error."""
    if b"\x7d" not in data:
        return data
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b == ESC:
            if i + 1 >= n or data[i + 1] not in (1, 2):
                raise FrameError("bad_escape", f"0x7D at {i} not followed by 0x01/0x02")
            out.append(0x7D if data[i + 1] == 1 else 0x7E)
            i += 2
        else:
            out.append(b)
            i += 1
    return bytes(out)


def checksum(data: bytes) -> int:
    c = 0
    for b in data:
        c ^= b
    return c


class FrameSplitter:
    """Bytes from a TCP stream → escaped frame contents (between flags); handles any fragmentation.

    Several frames in one read, a frame across reads, and garbage before the first flag are all fine. Every flag
    after the first both ends a segment and starts the next, so two flags in a row (one message's end flag, the
    next one's start flag) delimit an empty segment, which is skipped, and a peer that shares one flag between
    messages is read too. A segment longer than MAX_FRAME is dropped (counted in `dropped`) so a broken peer
    cannot grow the buffer without bound.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._started = False
        self._overflow = False
        self.dropped = 0

    def feed(self, data: bytes) -> list[bytes]:
        frames: list[bytes] = []
        buf = self._buf
        start = 0
        while True:
            i = data.find(b"\x7e", start)
            end = len(data) if i < 0 else i
            if self._started and not self._overflow:
                buf += data[start:end]
                if len(buf) > MAX_FRAME:
                    buf.clear()
                    self._overflow = True
                    self.dropped += 1
            if i < 0:
                return frames
            if buf:
                frames.append(bytes(buf))
                buf.clear()
            self._started = True
            self._overflow = False
            start = i + 1


# ---------------------------------------------------------------------------------------------------- BCD


def bcd_decode(b: bytes) -> str:
    """BCD bytes → digit string; a nibble above 9 is an error."""
    s = b.hex()
    if not s.isdigit():
        raise FrameError("bad_bcd", f"{s!r} is not BCD")
    return s


def bcd_encode(digits: str, nbytes: int) -> bytes:
    """Digit string → BCD, left-padded with zeros to nbytes."""
    if not digits.isdigit() or len(digits) > 2 * nbytes:
        raise ValueError(f"{digits!r} does not fit BCD[{nbytes}]")
    return bytes.fromhex(digits.rjust(2 * nbytes, "0"))


def decode_time(b: bytes) -> datetime | None:
    """BCD[6] YYMMDDhhmmss in GMT+8 → aware UTC datetime; None for an unset or impossible time (e.g. all zeros)."""
    try:
        s = bcd_decode(b)
        local = datetime(
            2000 + int(s[0:2]), int(s[2:4]), int(s[4:6]), int(s[6:8]), int(s[8:10]), int(s[10:12])
        )
    except (FrameError, ValueError):
        return None
    return local.replace(tzinfo=CHINA_TZ).astimezone(UTC)


def encode_time(t: datetime) -> bytes:
    return bytes.fromhex(t.astimezone(CHINA_TZ).strftime("%y%m%d%H%M%S"))


# ---------------------------------------------------------------------------------------------------- header


@dataclass(frozen=True, slots=True)
class Header:
    msg_id: int
    attrs: int
    phone: str  # BCD digits as sent (12 in 2013, 20 in 2019)
    serial: int
    version: int | None = None  # 2019 protocol version byte; None for 2013 (and 2011)
    total: int = 0  # subpackage count (0 when not split)
    index: int = 0  # 1-based subpackage number

    @property
    def body_length(self) -> int:
        return self.attrs & MAX_BODY

    @property
    def split(self) -> bool:
        return bool(self.attrs & ATTR_SUBPACKAGE)


@dataclass(frozen=True, slots=True)
class Message:
    header: Header
    body: bytes


def decode_frame(escaped: bytes) -> Message:
    """One frame's content (flags removed, still escaped) → header and body; FrameError on anything wrong."""
    raw = unescape(escaped)
    if len(raw) < 13:
        raise FrameError("short_frame", f"{len(raw)} bytes")
    msg_id, attrs = struct.unpack_from(">HH", raw, 0)
    if attrs & ATTR_VERSION:
        if len(raw) < 18:
            raise FrameError("short_frame", f"{len(raw)} bytes for a 2019 header")
        version = raw[4]
        phone_b, pos = raw[5:15], 15
    else:
        version = None
        phone_b, pos = raw[4:10], 10
    try:
        phone = bcd_decode(phone_b)
    except FrameError as exc:
        raise FrameError("bad_header", exc.detail) from None
    (serial,) = struct.unpack_from(">H", raw, pos)
    pos += 2
    total = index = 0
    if attrs & ATTR_SUBPACKAGE:
        if len(raw) < pos + 5:
            raise FrameError("short_frame", "subpackage fields missing")
        total, index = struct.unpack_from(">HH", raw, pos)
        pos += 4
    header = Header(msg_id, attrs, phone, serial, version, total, index)
    body = raw[pos:-1]
    if checksum(raw[:-1]) != raw[-1]:
        raise FrameError(
            "bad_checksum", f"check code {raw[-1]:#04x}, computed {checksum(raw[:-1]):#04x}", header
        )
    if len(body) != header.body_length:
        raise FrameError(
            "bad_length", f"attributes say {header.body_length} body bytes, frame has {len(body)}", header
        )
    if attrs & ATTR_RSA:
        raise FrameError("encrypted", "RSA-encrypted bodies are not supported", header)
    return Message(header, body)


def encode_frame(
    msg_id: int,
    body: bytes,
    phone: str,
    serial: int,
    *,
    version: int | None = None,
    subpackage: tuple[int, int] | None = None,
) -> bytes:
    """Header + body + check code, escaped and flagged: ready for the wire. `version` set = the 2019 header."""
    if len(body) > MAX_BODY:
        raise ValueError(f"body of {len(body)} bytes: split it into subpackages")
    attrs = len(body)
    if subpackage:
        attrs |= ATTR_SUBPACKAGE
    if version is not None:
        attrs |= ATTR_VERSION
        head = struct.pack(">HHB", msg_id, attrs, version) + bcd_encode(phone, 10)
    else:
        head = struct.pack(">HH", msg_id, attrs) + bcd_encode(phone, 6)
    head += struct.pack(">H", serial & 0xFFFF)
    if subpackage:
        head += struct.pack(">HH", *subpackage)
    raw = head + body
    return b"\x7e" + escape(raw + bytes([checksum(raw)])) + b"\x7e"


def split_body(
    msg_id: int, body: bytes, phone: str, first_serial: int, size: int, **kw: object
) -> list[bytes]:
    """A long body as consecutive subpackage frames (serials first_serial, +1, ...), `size` body bytes each."""
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return [
        encode_frame(msg_id, p, phone, first_serial + n, subpackage=(len(parts), n + 1), **kw)  # type: ignore[arg-type]
        for n, p in enumerate(parts)
    ]


# ---------------------------------------------------------------------------------------------------- bodies


def encode_platform_response(reply_serial: int, reply_id: int, result: int) -> bytes:
    """0x8001 body: the acknowledged message's serial and id, and the result."""
    return struct.pack(">HHB", reply_serial, reply_id, result)


def decode_general_response(body: bytes) -> tuple[int, int, int]:
    """0x8001 / 0x0001 body → (reply serial, reply id, result)."""
    if len(body) < 5:
        raise FrameError("bad_body", "general response shorter than 5 bytes")
    return struct.unpack_from(">HHB", body)


def encode_register_response(reply_serial: int, result: int, auth_code: str = "") -> bytes:
    """0x8100 body; the authentication code only with success."""
    return struct.pack(">HB", reply_serial, result) + (auth_code.encode("gbk") if result == REG_OK else b"")


def decode_register_response(body: bytes) -> tuple[int, int, str]:
    if len(body) < 3:
        raise FrameError("bad_body", "0x8100 shorter than 3 bytes")
    serial, result = struct.unpack_from(">HB", body)
    return serial, result, body[3:].decode("gbk", "replace")


@dataclass(frozen=True, slots=True)
class Registration:
    province: int
    city: int
    maker: str
    model: str
    terminal_id: str
    plate_color: int
    plate: str


# Field widths of 0x0100 (maker, model, terminal id): 2013 §8.5 and 2019 §8.5; 2011 terminals send an 8-byte model.
_REG_WIDTHS = {2013: (5, 20, 7), 2019: (11, 30, 30), 2011: (5, 8, 7)}


def _text(b: bytes) -> str:
    return b.rstrip(b"\x00 ").decode("gbk", "replace").strip("\x00 ")


def encode_register(r: Registration, *, edition: int = 2013) -> bytes:
    maker_w, model_w, id_w = _REG_WIDTHS[edition]

    def fixed(s: str, w: int) -> bytes:
        return s.encode("gbk")[:w].ljust(w, b"\x00")

    return (
        struct.pack(">HH", r.province, r.city)
        + fixed(r.maker, maker_w)
        + fixed(r.model, model_w)
        + fixed(r.terminal_id, id_w)
        + bytes([r.plate_color])
        + r.plate.encode("gbk")
    )


def decode_register(body: bytes, *, version: int | None) -> Registration:
    """0x0100 body (only logged: the identity is the header's phone number)."""
    # a 2013 body is at least 37 bytes (4 + 5 + 20 + 7 + 1); shorter ones are the 2011 layout (8-byte model)
    edition = 2019 if version is not None else 2011 if len(body) < 37 else 2013
    maker_w, model_w, id_w = _REG_WIDTHS[edition]
    need = 4 + maker_w + model_w + id_w + 1
    if len(body) < need:
        raise FrameError("bad_body", f"registration of {len(body)} bytes, at least {need} expected")
    province, city = struct.unpack_from(">HH", body)
    p = 4
    maker = _text(body[p : p + maker_w])
    p += maker_w
    model = _text(body[p : p + model_w])
    p += model_w
    tid = _text(body[p : p + id_w])
    p += id_w
    return Registration(province, city, maker, model, tid, body[p], _text(body[p + 1 :]))


def encode_auth(code: str, *, version: int | None = None, imei: str = "", software: str = "") -> bytes:
    """0x0102 body: the code (2013); length-prefixed code + IMEI[15] + software version[20] (2019)."""
    c = code.encode("gbk")
    if version is None:
        return c
    return (
        bytes([len(c)])
        + c
        + imei.encode().ljust(15, b"\x00")[:15]
        + software.encode().ljust(20, b"\x00")[:20]
    )


def decode_auth(body: bytes, *, version: int | None) -> str:
    if version is None:
        return body.rstrip(b"\x00").decode("gbk", "replace")
    if not body or len(body) < 1 + body[0]:
        raise FrameError("bad_body", "2019 authentication shorter than its code length")
    return body[1 : 1 + body[0]].decode("gbk", "replace")


# ---------------------------------------------------------------------------------------------------- location reports
# 0x0200 body (§8.18 / 2019 §8.20): alarm flags (DWORD), status (DWORD), latitude and longitude (DWORD, 10⁻⁶ degree),
# altitude (WORD, m), speed (WORD, 1/10 km/h), direction (WORD, 0-359), time (BCD[6], GMT+8), then additional
# information items: id (BYTE), length (BYTE), value. 0x0704 (§8.57): count (WORD), type (BYTE: 0 normal, 1
# blind-area re-upload), then per report length (WORD) and a 0x0200 body.

# Status bits (§8.18 table 24).
STATUS_ACC = 1 << 0
STATUS_FIX = 1 << 1
STATUS_SOUTH = 1 << 2
STATUS_WEST = 1 << 3
# Additional information ids (§8.18 table 27).
ITEM_MILEAGE = 0x01  # DWORD, 1/10 km
ITEM_FUEL = (
    0x02  # WORD, 1/10 L (no contract field: the contract carries fuel_pct and we do not know the tank)
)
ITEM_TACHO_SPEED = 0x03  # WORD, 1/10 km/h (vehicle speed from the tachograph)
ITEM_SIGNAL = 0x30  # BYTE, mobile network signal strength
ITEM_SATS = 0x31  # BYTE, GNSS satellites in use
BODY_MIN = 28


@dataclass(slots=True)
class Location:
    alarm: int
    status: int
    lat: float
    lon: float
    alt_m: int
    speed_kmh: float
    heading_deg: int
    time: datetime | None  # None: the terminal's clock is unset (e.g. BCD zeros)
    items: dict[int, bytes] = field(default_factory=dict)
    raw_time: bytes = b""

    @property
    def ignition(self) -> bool:
        return bool(self.status & STATUS_ACC)

    @property
    def fix(self) -> bool:
        return bool(self.status & STATUS_FIX)

    def item_int(self, item_id: int) -> int | None:
        v = self.items.get(item_id)
        return int.from_bytes(v, "big") if v else None


def decode_location(body: bytes) -> Location:
    """A 0x0200 body; a truncated additional item ends the item list (what came before it is kept)."""
    if len(body) < BODY_MIN:
        raise FrameError("bad_body", f"location report of {len(body)} bytes, at least {BODY_MIN} expected")
    alarm, status, lat, lon, alt, speed, heading = struct.unpack_from(">IIIIhHH", body)
    t_raw = body[22:28]
    loc = Location(
        alarm=alarm,
        status=status,
        lat=lat / 1e6 * (-1 if status & STATUS_SOUTH else 1),
        lon=lon / 1e6 * (-1 if status & STATUS_WEST else 1),
        alt_m=alt,
        speed_kmh=speed / 10,
        heading_deg=heading,
        time=decode_time(t_raw),
        raw_time=t_raw,
    )
    p = BODY_MIN
    while p + 2 <= len(body):
        item_id, n = body[p], body[p + 1]
        if p + 2 + n > len(body):
            break
        loc.items[item_id] = body[p + 2 : p + 2 + n]
        p += 2 + n
    return loc


def encode_location(loc: Location) -> bytes:
    """The 0x0200 body of `loc` (terminal side: the simulator, the benchmark and round-trip tests)."""
    status = loc.status & ~(STATUS_SOUTH | STATUS_WEST)
    status |= (STATUS_SOUTH if loc.lat < 0 else 0) | (STATUS_WEST if loc.lon < 0 else 0)
    t = encode_time(loc.time) if loc.time is not None else (loc.raw_time or bytes(6))
    body = struct.pack(
        ">IIIIhHH",
        loc.alarm,
        status,
        round(abs(loc.lat) * 1e6),
        round(abs(loc.lon) * 1e6),
        loc.alt_m,
        round(loc.speed_kmh * 10),
        loc.heading_deg,
    )
    body += t
    for item_id, value in loc.items.items():
        body += bytes([item_id, len(value)]) + value
    return body


def decode_batch(body: bytes) -> tuple[int, list[Location]]:
    """A 0x0704 body → (type, reports)."""
    if len(body) < 3:
        raise FrameError("bad_body", "batch upload shorter than 3 bytes")
    count, kind = struct.unpack_from(">HB", body)
    p, reports = 3, []
    for i in range(count):
        if p + 2 > len(body):
            raise FrameError("bad_body", f"batch says {count} reports, ends after {i}")
        (n,) = struct.unpack_from(">H", body, p)
        if p + 2 + n > len(body):
            raise FrameError("bad_body", f"report {i} of {n} bytes runs past the end")
        reports.append(decode_location(body[p + 2 : p + 2 + n]))
        p += 2 + n
    return kind, reports


def encode_batch(reports: list[Location], kind: int = 0) -> bytes:
    out = struct.pack(">HB", len(reports), kind)
    for r in reports:
        b = encode_location(r)
        out += struct.pack(">H", len(b)) + b
    return out
