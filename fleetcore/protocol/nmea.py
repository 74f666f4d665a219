"""NMEA 0183 decoding (RMC + GGA → fixes) and encoding, on top of pynmea2.

pynmea2 does the sentence splitting and checksum arithmetic; here we require the checksum (`check=True`), pair each
GGA with the RMC of the same time of day (GGA carries no date) and turn the text fields into typed values.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, time

import pynmea2
from pynmea2 import nmea_utils

KNOT_KMH = 1.852  # 1 international knot = 1.852 km/h exactly (1 nautical mile = 1852 m)
VALID_RMC_STATUS = "A"  # RMC status: A = valid, V = void (receiver warning)
INVALID_MODE = "N"  # NMEA 2.3+ mode indicator N = data not valid
GGA_NO_FIX = 0  # GGA quality indicator 0 = fix not available


@dataclass(slots=True)
class Fix:
    """One position fix: an RMC, optionally completed by the GGA of the same time of day."""

    ts: datetime
    lat: float
    lon: float
    speed_kmh: float | None
    heading_deg: float | None
    alt_m: float | None = None
    hdop: float | None = None
    sats: int | None = None
    sentence: int = 0  # index of the RMC's line, for error messages


@dataclass(frozen=True, slots=True)
class NmeaProblem:
    """A sentence that was not used: contract reason code and a detail naming the line."""

    reason: str
    detail: str


def _float(value: object, what: str) -> float | None:
    """pynmea2 returns the raw text when its converter fails; accept only a real number or an empty field."""
    if value is None or value == "":
        return None
    if isinstance(value, float):
        return value
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{what} {value!r} is not a number") from None


def _degrees(text: str, hemisphere: str, positive: str, negative: str, what: str) -> float:
    if not text:
        raise ValueError("position missing")
    if hemisphere not in (positive, negative):
        raise ValueError(f"bad {what} hemisphere {hemisphere!r}")
    value = nmea_utils.dm_to_sd(text)  # raises ValueError on a malformed (d)ddmm.mmmm
    return -value if hemisphere == negative else value


# pynmea2 parses dates with strptime (slow); one message, and one day of messages, repeat the same date.
_datestamp = functools.lru_cache(maxsize=64)(nmea_utils.datestamp)
_RMC_DATE = pynmea2.RMC.name_to_idx["datestamp"]


def _rmc(msg: pynmea2.NMEASentence, line_no: int) -> Fix:
    # pynmea2 computes each attribute on access, so every field is read once.
    status = msg.status
    if status != VALID_RMC_STATUS or msg.mode_indicator == INVALID_MODE:
        raise ValueError(f"void fix (status {status!r})")
    t = msg.timestamp
    if not isinstance(t, time):
        raise ValueError("bad or missing time")
    date_text = msg.data[_RMC_DATE] if len(msg.data) > _RMC_DATE else ""
    try:
        d = _datestamp(date_text)
    except ValueError:
        raise ValueError(f"bad or missing date {date_text!r}") from None
    lat = _degrees(msg.lat, msg.lat_dir, "N", "S", "latitude")
    lon = _degrees(msg.lon, msg.lon_dir, "E", "W", "longitude")
    speed_kn = _float(msg.spd_over_grnd, "speed")
    return Fix(
        ts=datetime.combine(d, t).astimezone(UTC),
        lat=lat,
        lon=lon,
        speed_kmh=None if speed_kn is None else speed_kn * KNOT_KMH,
        heading_deg=_float(msg.true_course, "course"),
        sentence=line_no,
    )


def decode(text: str) -> tuple[list[Fix], list[NmeaProblem]]:
    """Decode NMEA text (sentences separated by CR/LF) into fixes and per-sentence problems.

    Only RMC and GGA are used; other well-formed sentences (GSA, GSV, VTG, …) are ignored.
    """
    fixes: list[Fix] = []
    seen: set[datetime] = set()
    # time of day → RMC fixes with that time (a buffered upload may span several days)
    by_time: dict[time, list[Fix]] = {}
    void_times: set[time] = set()
    ggas: list[tuple[int, pynmea2.NMEASentence]] = []
    problems: list[NmeaProblem] = []
    for line_no, line in enumerate(text.splitlines()):
        line = line.strip()
        if not line:
            continue
        where = f"line {line_no} {line[:90]!r}"
        try:
            msg = pynmea2.parse(line, check=True)
        except pynmea2.ChecksumError as exc:
            problems.append(NmeaProblem("bad_checksum", f"{where}: {exc.args[0][0]}"))
            continue
        except pynmea2.SentenceTypeError:
            continue  # checksum verified, sentence type we do not use
        except (pynmea2.ParseError, ValueError) as exc:
            problems.append(NmeaProblem("bad_nmea", f"{where}: {exc}"))
            continue
        kind = getattr(msg, "sentence_type", None)
        try:
            if kind == "RMC":
                fix = _rmc(msg, line_no)
                if fix.ts in seen:
                    continue  # the same fix twice in one message: one sample
                seen.add(fix.ts)
                by_time.setdefault(fix.ts.timetz(), []).append(fix)
                fixes.append(fix)
            elif kind == "GGA":
                ggas.append((line_no, msg))
        except ValueError as exc:
            if kind == "RMC" and isinstance(msg.timestamp, time):
                void_times.add(msg.timestamp)
            problems.append(NmeaProblem("bad_nmea", f"{where}: {exc}"))
    for line_no, msg in ggas:
        where = f"line {line_no} GGA"
        try:
            _merge_gga(msg, line_no, by_time, void_times)
        except ValueError as exc:
            problems.append(NmeaProblem("bad_nmea", f"{where}: {exc}"))
    return fixes, problems


def _merge_gga(
    msg: pynmea2.NMEASentence, line_no: int, by_time: dict[time, list[Fix]], void_times: set[time]
) -> None:
    """Complete the RMC fix of the same time of day (the nearest one in the text) with altitude, HDOP, satellites."""
    t = msg.timestamp
    if not isinstance(t, time):
        raise ValueError("bad or missing time")
    quality = msg.gps_qual
    if quality is None or quality == GGA_NO_FIX:
        return  # the receiver had no fix at that time: nothing to add
    if not isinstance(quality, int):
        raise ValueError(f"bad quality indicator {quality!r}")
    candidates = by_time.get(t)
    if not candidates:
        if t in void_times:
            return  # the void RMC of that time is already reported
        raise ValueError(f"no RMC with time {t.isoformat()} in the message to date it")
    sats_text = msg.num_sats
    try:
        sats = int(sats_text) if sats_text else None
    except ValueError:
        raise ValueError(f"satellites {sats_text!r} is not an integer") from None
    hdop = _float(msg.horizontal_dil, "hdop")
    alt = _float(msg.altitude, "altitude")
    if alt is not None and msg.altitude_units != "M":
        raise ValueError(f"altitude unit {msg.altitude_units!r} is not metres")
    fix = min(candidates, key=lambda f: abs(f.sentence - line_no))
    fix.sats, fix.hdop, fix.alt_m = sats, hdop, alt


# ----------------------------------------------------------------------------------------------- encoders


def _dm(value: float, deg_digits: int, pos: str, neg: str) -> tuple[str, str]:
    """Degrees → NMEA (d)ddmm.mmmmm text and hemisphere; 5 decimals of a minute ≈ 2 cm."""
    units = round(abs(value) * 60 * 100_000)
    deg, minutes = divmod(units, 60 * 100_000)
    text = f"{deg:0{deg_digits}d}{minutes // 100_000:02d}.{minutes % 100_000:05d}"
    return text, (pos if value >= 0 else neg)


def _hms(ts: datetime) -> str:
    """hhmmss.ss, or hhmmss.sss when the time has milliseconds that centiseconds cannot carry."""
    ts = ts.astimezone(UTC)
    if ts.microsecond % 10_000 == 0:
        return f"{ts:%H%M%S}.{ts.microsecond // 10_000:02d}"
    return f"{ts:%H%M%S}.{ts.microsecond // 1000:03d}"


def _opt(value: float | None, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def encode_rmc(
    ts: datetime,
    lat: float,
    lon: float,
    speed_kmh: float | None,
    heading_deg: float | None,
    talker: str = "GP",
) -> str:
    """An RMC sentence (with checksum) for a valid fix; ts must be timezone-aware."""
    ts = ts.astimezone(UTC)
    lat_t, lat_h = _dm(lat, 2, "N", "S")
    lon_t, lon_h = _dm(lon, 3, "E", "W")
    speed = None if speed_kmh is None else speed_kmh / KNOT_KMH
    fields = (
        _hms(ts),
        "A",
        lat_t,
        lat_h,
        lon_t,
        lon_h,
        _opt(speed, ".3f"),
        _opt(heading_deg, ".2f"),
        f"{ts:%d%m%y}",
        "",
        "",
        "A",
    )
    return str(pynmea2.RMC(talker, "RMC", fields))


def encode_gga(
    ts: datetime,
    lat: float,
    lon: float,
    alt_m: float | None,
    hdop: float | None,
    sats: int | None,
    talker: str = "GP",
) -> str:
    """A GGA sentence (with checksum, GPS fix quality 1); ts must be timezone-aware."""
    lat_t, lat_h = _dm(lat, 2, "N", "S")
    lon_t, lon_h = _dm(lon, 3, "E", "W")
    fields = (
        _hms(ts),
        lat_t,
        lat_h,
        lon_t,
        lon_h,
        "1",
        "" if sats is None else f"{sats:02d}",
        _opt(hdop, ".2f"),
        _opt(alt_m, ".1f"),
        "M",
        "",
        "M",
        "",
        "",
    )
    return str(pynmea2.GGA(talker, "GGA", fields))
