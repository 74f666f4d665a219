"""NMEA 0183 decoding (RMC + GGA → fixes) and encoding, on top of pynmea2.

pynmea2 does the sentence splitting and checksum arithmetic; here we require the checksum (`check=True`), pair each
GGA with the RMC of the same time of day (GGA carries no date) and turn the text fields into typed values.

Real receivers: sentences come in any order (most send GGA before RMC); a multi-constellation receiver may send a
GGA per talker (`$GPGGA`, `$GLGGA`, `$GAGGA`, `$GBGGA`, `$GNGGA`) for the same second: the best of them completes
the fix (fix quality, then satellites, then HDOP), not the last. Receivers hit by the GPS week-number rollover
report dates 1024 weeks (19.6 years) too early: like gpsd, 1024 weeks are added while the date is before a floor
fixed at build time (`GPS_ROLLOVER_FLOOR`). Only ASCII text is read (Python's float() also takes full-width and
Arabic-Indic digits), and a minutes field of 60 or more is not a position.

Work is O(n log n) in the text: GGAs are paired with the nearest RMC of their time of day by binary search.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import pynmea2
from pynmea2 import nmea_utils

KNOT_KMH = 1.852  # 1 international knot = 1.852 km/h exactly (1 nautical mile = 1852 m)
VALID_RMC_STATUS = "A"  # RMC status: A = valid, V = void (receiver warning)
INVALID_MODE = "N"  # NMEA 2.3+ mode indicator N = data not valid
GGA_NO_FIX = 0  # GGA quality indicator 0 = fix not available
# GPS week numbers roll over every 1024 weeks (IS-GPS-200 §20.3.3.3.1.1; rollovers 1999-08-22 and 2019-04-07).
GPS_ROLLOVER = timedelta(weeks=1024)
# No fix this platform stores predates this day (it went into service later): an RMC date before it comes from
# a receiver that lost a week-number rollover, and is moved forward 1024 weeks at a time until it is not (gpsd does
# the same with its build date). Raise it with a release when needed, never past the oldest data still uploaded.
GPS_ROLLOVER_FLOOR = date(2020, 1, 1)
# GGA fix quality (NMEA 0183 4.10): better fixes rank higher; 6 dead reckoning, 7 manual, 8 simulation last.
QUALITY_RANK = {4: 6, 5: 5, 2: 4, 1: 3, 3: 3, 6: 2, 7: 1, 8: 0}
_TIME_RE = re.compile(r"\d{6}(?:\.\d{1,6})?", re.ASCII)
_DM_RE = re.compile(r"(\d+)(\d\d\.\d+)", re.ASCII)


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
    line: int | None = None  # the sentence's line number


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
    m = _DM_RE.fullmatch(text)
    if m is None or float(m[2]) >= 60:
        raise ValueError(f"{what} {text[:20]!r} is not (d)ddmm.mmmm with minutes below 60")
    value = nmea_utils.dm_to_sd(text)
    return -value if hemisphere == negative else value


def rollover(d: date) -> date:
    """A receiver's date, moved forward 1024 weeks at a time while it is before GPS_ROLLOVER_FLOOR."""
    while d < GPS_ROLLOVER_FLOOR:
        d += GPS_ROLLOVER
    return d


def _checked_time(text: str) -> None:
    if not _TIME_RE.fullmatch(text):
        raise ValueError(f"time {text[:20]!r} is not hhmmss[.sss]")


# pynmea2 parses dates with strptime (slow); one message, and one day of messages, repeat the same date.
_datestamp = functools.lru_cache(maxsize=64)(lambda text: rollover(nmea_utils.datestamp(text)))
_RMC_DATE = pynmea2.RMC.name_to_idx["datestamp"]


def _rmc(msg: pynmea2.NMEASentence, line_no: int) -> Fix:
    # pynmea2 computes each attribute on access, so every field is read once.
    status = msg.status
    if status != VALID_RMC_STATUS or msg.mode_indicator == INVALID_MODE:
        raise ValueError(f"void fix (status {status!r})")
    _checked_time(msg.data[0] if msg.data else "")
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


def _same_fix(a: Fix, b: Fix) -> bool:
    return (a.lat, a.lon, a.speed_kmh, a.heading_deg) == (b.lat, b.lon, b.speed_kmh, b.heading_deg)


def decode(text: str) -> tuple[list[Fix], list[NmeaProblem]]:
    """Decode NMEA text (sentences separated by CR/LF) into fixes and per-sentence problems.

    Only RMC and GGA are used; other well-formed sentences (GSA, GSV, VTG, …) are ignored. Problems carry the
    reason codes bad_checksum, bad_nmea and conflicting_fix (a second RMC of the same instant with another
    position: the first is kept).
    """
    fixes: list[Fix] = []
    seen: dict[datetime, Fix] = {}
    # time of day → RMC fixes with that time (a buffered upload may span several days), in line order
    by_time: dict[time, list[Fix]] = {}
    void_times: set[time] = set()
    ggas: list[tuple[int, pynmea2.NMEASentence]] = []
    problems: list[NmeaProblem] = []
    for line_no, line in enumerate(text.splitlines()):
        line = line.strip()
        if not line:
            continue
        where = f"line {line_no} {line[:90]!r}"
        if not line.isascii():
            problems.append(NmeaProblem("bad_nmea", f"{where}: NMEA 0183 is ASCII text", line_no))
            continue
        try:
            msg = pynmea2.parse(line, check=True)
        except pynmea2.ChecksumError as exc:
            problems.append(NmeaProblem("bad_checksum", f"{where}: {str(exc.args[0][0])[:120]}", line_no))
            continue
        except pynmea2.SentenceTypeError:
            continue  # checksum verified, sentence type we do not use
        except (pynmea2.ParseError, ValueError) as exc:
            problems.append(NmeaProblem("bad_nmea", f"{where}: {str(exc)[:120]}", line_no))
            continue
        kind = getattr(msg, "sentence_type", None)
        try:
            if kind == "RMC":
                fix = _rmc(msg, line_no)
                first = seen.get(fix.ts)
                if first is not None:
                    if not _same_fix(first, fix):  # the same fix twice in one message is one sample
                        problems.append(
                            NmeaProblem(
                                "conflicting_fix",
                                f"{where}: another position for {fix.ts.isoformat()}, already given by line "
                                f"{first.sentence}; that one is kept",
                                line_no,
                            )
                        )
                    continue
                seen[fix.ts] = fix
                by_time.setdefault(fix.ts.timetz(), []).append(fix)
                fixes.append(fix)
            elif kind == "GGA":
                ggas.append((line_no, msg))
        except ValueError as exc:
            if kind == "RMC" and isinstance(msg.timestamp, time):
                void_times.add(msg.timestamp)
            problems.append(NmeaProblem("bad_nmea", f"{where}: {exc}", line_no))
    # the best GGA of each fix: (rank, fix quality, sats, hdop, alt)
    best: dict[int, tuple[tuple, int | None, float | None, float | None]] = {}
    for line_no, msg in ggas:
        where = f"line {line_no} GGA"
        try:
            found = _gga(msg, line_no, by_time, void_times)
        except ValueError as exc:
            problems.append(NmeaProblem("bad_nmea", f"{where}: {exc}", line_no))
            continue
        if found is not None:
            fix, rank, sats, hdop, alt = found
            have = best.get(id(fix))
            if have is None or rank > have[0]:
                best[id(fix)] = (rank, sats, hdop, alt)
    for fix in fixes:
        b = best.get(id(fix))
        if b is not None:
            fix.sats, fix.hdop, fix.alt_m = b[1], b[2], b[3]
    return fixes, problems


def _gga(
    msg: pynmea2.NMEASentence, line_no: int, by_time: dict[time, list[Fix]], void_times: set[time]
) -> tuple[Fix, tuple, int | None, float | None, float | None] | None:
    """The RMC fix this GGA completes (the nearest of the same time of day in the text), how good the GGA is, and
    its satellites, HDOP and altitude; None when it adds nothing (no fix, or the RMC of its time was void)."""
    quality = msg.gps_qual
    if quality is None or quality == GGA_NO_FIX:
        return None  # the receiver had no fix at that time (u-blox sends empty time and position then)
    if not isinstance(quality, int):
        raise ValueError(f"bad quality indicator {quality!r}")
    _checked_time(msg.data[0] if msg.data else "")
    t = msg.timestamp
    if not isinstance(t, time):
        raise ValueError("bad or missing time")
    candidates = by_time.get(t)
    if not candidates:
        if t in void_times:
            return None  # the void RMC of that time is already reported
        raise ValueError(f"no RMC with time {t.isoformat()} in the message to date it")
    sats_text = msg.num_sats
    if sats_text and not sats_text.isascii():
        raise ValueError("satellites is not ASCII digits")
    try:
        sats = int(sats_text) if sats_text else None
    except ValueError:
        raise ValueError(f"satellites {sats_text!r} is not an integer") from None
    hdop = _float(msg.horizontal_dil, "hdop")
    alt = _float(msg.altitude, "altitude")
    if alt is not None and msg.altitude_units != "M":
        raise ValueError(f"altitude unit {msg.altitude_units!r} is not metres")
    # nearest in the text: candidates are in line order, so a binary search finds the neighbours
    fix = candidates[_nearest(candidates, line_no)] if len(candidates) > 1 else candidates[0]
    rank = (
        QUALITY_RANK.get(quality, 0),
        sats if sats is not None else -1,
        -(hdop if hdop is not None else 1e9),
    )
    return fix, rank, sats, hdop, alt


def _nearest(candidates: list[Fix], line_no: int) -> int:
    """Index of the fix whose line is nearest `line_no` (the earlier one on a tie), by binary search."""
    lo, hi = 0, len(candidates)
    while lo < hi:
        mid = (lo + hi) // 2
        if candidates[mid].sentence < line_no:
            lo = mid + 1
        else:
            hi = mid
    if lo == 0:
        return 0
    if lo == len(candidates):
        return lo - 1
    before, after = candidates[lo - 1].sentence, candidates[lo].sentence
    return lo - 1 if line_no - before <= after - line_no else lo


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
