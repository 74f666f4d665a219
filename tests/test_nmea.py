"""NMEA 0183 decoding (pynmea2 underneath) and the encoders the simulator uses."""

from __future__ import annotations

from datetime import UTC, datetime

import pynmea2
import pytest

from fleetcore.protocol.nmea import GPS_ROLLOVER, GPS_ROLLOVER_FLOOR, KNOT_KMH, decode, encode_gga, encode_rmc

# The classic examples (gpsinformation.org / "NMEA data" pages): Munich, 23 March 1994.
RMC = "$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A"
GGA = "$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47"
GSV = "$GPGSV,2,1,08,01,40,083,46,02,17,308,41,12,07,344,39,14,22,228,45*75"
GSA = "$GPGSA,A,3,04,05,,09,12,,,24,,,,,2.5,1.3,2.1*39"


def with_checksum(body: str) -> str:
    """A sentence body (without $ and *) → full sentence, checksum computed by pynmea2."""
    return f"${body}*{pynmea2.NMEASentence.checksum(body):02X}"


def test_classic_rmc_gga_pair() -> None:
    fixes, problems = decode(f"{RMC}\r\n{GGA}\r\n")
    assert problems == []
    [fix] = fixes
    # 23 March 1994 is before GPS_ROLLOVER_FLOOR: a week-rollover date, moved forward twice by 1024 weeks
    assert fix.ts == datetime(1994, 3, 23, 12, 35, 19, tzinfo=UTC) + 2 * GPS_ROLLOVER
    assert fix.lat == pytest.approx(48 + 7.038 / 60)
    assert fix.lon == pytest.approx(11 + 31.0 / 60)
    assert fix.speed_kmh == pytest.approx(22.4 * 1.852)
    assert fix.heading_deg == 84.4
    assert (fix.alt_m, fix.hdop, fix.sats) == (545.4, 0.9, 8)


def test_gga_before_rmc_and_other_sentences_ignored() -> None:
    fixes, problems = decode("\n".join([GSA, GGA, GSV, RMC]))
    assert problems == []
    assert [(f.alt_m, f.sats) for f in fixes] == [(545.4, 8)]


def test_any_talker() -> None:
    for talker in ("GN", "GL", "GA", "BD"):
        rmc = with_checksum(RMC[1:].split("*")[0].replace("GPRMC", f"{talker}RMC"))
        gga = with_checksum(GGA[1:].split("*")[0].replace("GPGGA", f"{talker}GGA"))
        fixes, problems = decode(f"{rmc}\n{gga}")
        assert problems == [] and len(fixes) == 1 and fixes[0].sats == 8


def test_rmc_alone_has_no_altitude() -> None:
    [fix], problems = decode(RMC)
    assert problems == [] and fix.alt_m is None and fix.hdop is None and fix.sats is None


def test_southern_western_hemisphere() -> None:
    body = "GPRMC,081836,A,3751.65,S,14507.36,W,000.0,360.0,130998,011.3,E"
    [fix], _ = decode(with_checksum(body))
    assert fix.lat == pytest.approx(-(37 + 51.65 / 60))
    assert fix.lon == pytest.approx(-(145 + 7.36 / 60))
    assert fix.speed_kmh == 0.0 and fix.heading_deg == 360.0


def test_wrong_checksum() -> None:
    fixes, problems = decode(RMC.replace("*6A", "*6B"))
    assert fixes == [] and [p.reason for p in problems] == ["bad_checksum"]


def test_missing_checksum_is_refused() -> None:
    fixes, problems = decode(RMC.split("*")[0])
    assert fixes == [] and [p.reason for p in problems] == ["bad_checksum"]
    assert "line 0" in problems[0].detail


def test_corrupted_payload_fails_checksum() -> None:
    fixes, problems = decode(RMC.replace("4807.038", "4807.039"))
    assert fixes == [] and problems[0].reason == "bad_checksum"


def test_bad_checksum_on_gga_keeps_the_rmc() -> None:
    fixes, problems = decode(f"{RMC}\n{GGA.replace('*47', '*00')}")
    assert len(fixes) == 1 and fixes[0].alt_m is None
    assert [p.reason for p in problems] == ["bad_checksum"]


def test_bad_checksum_on_ignored_sentence_is_still_reported() -> None:
    fixes, problems = decode(f"{RMC}\n{GSV[:-2]}00")
    assert len(fixes) == 1 and [p.reason for p in problems] == ["bad_checksum"]


def test_void_rmc_is_not_a_position() -> None:
    body = "GPRMC,123520,V,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W"
    gga = with_checksum("GPGGA,123520,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,")
    fixes, problems = decode(f"{with_checksum(body)}\n{gga}")
    # the GGA of that time is not reported a second time
    assert fixes == [] and [p.reason for p in problems] == ["bad_nmea"]
    assert "void" in problems[0].detail


def test_mode_indicator_not_valid_is_void() -> None:
    body = "GNRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,,,N"
    fixes, problems = decode(with_checksum(body))
    assert fixes == [] and problems[0].reason == "bad_nmea"


def test_gga_without_rmc_cannot_be_dated() -> None:
    fixes, problems = decode(GGA)
    assert fixes == [] and [p.reason for p in problems] == ["bad_nmea"]
    assert "no RMC" in problems[0].detail


def test_gga_without_fix_is_ignored() -> None:
    gga = with_checksum("GPGGA,123519,,,,,0,00,99.99,,,,,,")
    fixes, problems = decode(f"{RMC}\n{gga}")
    assert problems == [] and fixes[0].alt_m is None


@pytest.mark.parametrize(
    "body",
    [
        "GPRMC,123519,A,4807.038,X,01131.000,E,022.4,084.4,230394,003.1,W",  # hemisphere
        "GPRMC,123519,A,,,,,022.4,084.4,230394,003.1,W",  # no position
        "GPRMC,123519,A,48A7.038,N,01131.000,E,022.4,084.4,230394,003.1,W",  # latitude text
        "GPRMC,123519,A,4807.038,N,01131.000,E,fast,084.4,230394,003.1,W",  # speed text
        "GPRMC,126019,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W",  # minute 60
        "GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,320394,003.1,W",  # 32 March
        "GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,,003.1,W",  # no date
    ],
)
def test_malformed_rmc(body: str) -> None:
    fixes, problems = decode(with_checksum(body))
    assert fixes == [] and [p.reason for p in problems] == ["bad_nmea"]


def test_not_nmea_at_all() -> None:
    fixes, problems = decode("hello world")
    assert fixes == [] and [p.reason for p in problems] == ["bad_nmea"]


def test_unknown_sentence_type_with_good_checksum_is_ignored() -> None:
    fixes, problems = decode(f"{RMC}\n{with_checksum('GPXYZ,1,2,3')}")
    assert len(fixes) == 1 and problems == []


def test_several_fixes_and_duplicates() -> None:
    t0 = datetime(2026, 11, 26, 10, 0, 0, tzinfo=UTC)
    lines = []
    for i in range(3):
        ts = t0.replace(second=i)
        lines += [
            encode_rmc(ts, 52.52, 13.405 + i / 1000, 36.0, 90.0),
            encode_gga(ts, 52.52, 13.405, 34.0, 1.2, 9),
        ]
    lines.append(lines[0])  # a repeated sentence is one sample
    fixes, problems = decode("\r\n".join(lines))
    assert problems == []
    assert [f.ts.second for f in fixes] == [0, 1, 2]
    assert all(f.sats == 9 for f in fixes)


def test_fractional_seconds_pair_exactly() -> None:
    ts = datetime(2026, 11, 26, 23, 59, 59, 250000, tzinfo=UTC)
    [fix], problems = decode(encode_rmc(ts, 1, 2, 3, 4) + "\n" + encode_gga(ts, 1, 2, 5, 0.8, 7))
    assert problems == [] and fix.ts == ts and fix.sats == 7


@pytest.mark.parametrize(
    ("ts", "lat", "lon", "speed", "heading"),
    [
        (datetime(2026, 11, 26, 10, 11, 12, tzinfo=UTC), 52.520008, 13.404954, 48.3, 271.5),
        (datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC), -33.868820, 151.209296, 0.0, 0.0),
        (datetime(2026, 6, 30, 23, 59, 59, 123000, tzinfo=UTC), 40.712776, -74.005974, 199.9, 359.99),
        (datetime(2026, 3, 1, 0, 0, 0, tzinfo=UTC), -0.000001, -179.999999, 3.7, 12.0),
    ],
)
def test_round_trip(ts: datetime, lat: float, lon: float, speed: float, heading: float) -> None:
    text = (
        encode_rmc(ts, lat, lon, speed, heading, talker="GN")
        + "\r\n"
        + encode_gga(ts, lat, lon, 101.3, 0.87, 11)
    )
    assert text.startswith("$GNRMC,")
    [fix], problems = decode(text)
    assert problems == []
    assert fix.ts == ts
    assert fix.lat == pytest.approx(lat, abs=1e-6) and fix.lon == pytest.approx(lon, abs=1e-6)
    assert fix.speed_kmh == pytest.approx(speed, abs=0.001 * KNOT_KMH)
    assert fix.heading_deg == pytest.approx(heading, abs=0.005)
    assert (fix.alt_m, fix.hdop, fix.sats) == (101.3, 0.87, 11)


def test_encoded_sentences_verify_with_pynmea2() -> None:
    ts = datetime(2026, 11, 26, 10, 11, 12, tzinfo=UTC)
    rmc = pynmea2.parse(encode_rmc(ts, 48.1, 11.5, 50, 10), check=True)  # raises on a bad checksum
    gga = pynmea2.parse(encode_gga(ts, 48.1, 11.5, 500, 1.0, 8), check=True)
    # An independent decoder reads back what we encoded, not just a valid checksum.
    assert rmc.datetime == ts and rmc.latitude == pytest.approx(48.1) and rmc.longitude == pytest.approx(11.5)
    assert float(rmc.spd_over_grnd) * KNOT_KMH == pytest.approx(50, abs=0.01) and float(rmc.true_course) == 10
    assert gga.latitude == pytest.approx(48.1) and gga.longitude == pytest.approx(11.5)
    assert float(gga.altitude) == 500 and float(gga.horizontal_dil) == 1.0 and int(gga.num_sats) == 8


def test_encode_without_speed_and_course() -> None:
    ts = datetime(2026, 11, 26, 10, 11, 12, tzinfo=UTC)
    [fix], problems = decode(encode_rmc(ts, 48.1, 11.5, None, None))
    assert problems == [] and fix.speed_kmh is None and fix.heading_deg is None


def test_decode_is_idempotent() -> None:
    text = f"{RMC}\n{GGA}"
    assert decode(text) == decode(text)


def test_same_time_of_day_on_two_days_pairs_with_the_nearest_rmc() -> None:
    day1 = datetime(2026, 11, 25, 8, 0, 0, tzinfo=UTC)
    day2 = datetime(2026, 11, 26, 8, 0, 0, tzinfo=UTC)
    text = "\n".join(
        [
            encode_rmc(day1, 1.0, 2.0, 10, 20),
            encode_gga(day1, 1.0, 2.0, 100.0, 1.0, 5),
            encode_rmc(day2, 1.0, 2.0, 10, 20),
            encode_gga(day2, 1.0, 2.0, 200.0, 2.0, 6),
        ]
    )
    fixes, problems = decode(text)
    assert problems == []
    assert [(f.ts, f.alt_m, f.sats) for f in fixes] == [(day1, 100.0, 5), (day2, 200.0, 6)]


@pytest.mark.parametrize(
    "gga_body",
    [
        "GPGGA,123519,4807.038,N,01131.000,E,1,eight,0.9,545.4,M,46.9,M,,",
        "GPGGA,123519,4807.038,N,01131.000,E,1,08,wide,545.4,M,46.9,M,,",
        "GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,F,46.9,M,,",
        "GPGGA,123519,4807.038,N,01131.000,E,X,08,0.9,545.4,M,46.9,M,,",
        "GPGGA,xx3519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,",
    ],
)
def test_malformed_gga_keeps_rmc_untouched(gga_body: str) -> None:
    fixes, problems = decode(f"{RMC}\n{with_checksum(gga_body)}")
    assert [p.reason for p in problems] == ["bad_nmea"]
    assert (fixes[0].alt_m, fixes[0].hdop, fixes[0].sats) == (None, None, None)


# ----------------------------------------------------------------------------------------------- real receivers


def test_multi_constellation_keeps_the_best_gga_not_the_last() -> None:
    """$GPGGA (8 satellites) then $GLGGA (2) then $GNRMC for the same second stored 2 (last GGA won)."""
    text = "\r\n".join(
        [
            with_checksum("GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,"),
            with_checksum("GLGGA,123519,4807.038,N,01131.000,E,1,02,3.1,541.0,M,46.9,M,,"),
            with_checksum("GNRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,251126,003.1,W"),
        ]
    )
    [fix], problems = decode(text)
    assert problems == [] and (fix.sats, fix.hdop, fix.alt_m) == (8, 0.9, 545.4)


@pytest.mark.parametrize("talker", ["GP", "GL", "GA", "GB", "GN"])
def test_every_talker_competes_for_the_best_gga(talker: str) -> None:
    lines = [with_checksum(f"{t}GGA,123519,4807.038,N,01131.000,E,1,{n:02d},1.0,545.4,M,46.9,M,,") for t, n in
             (("GP", 5), (talker, 12), ("GL", 3))]  # fmt: skip
    lines.insert(1, with_checksum("GNRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,251126,003.1,W"))
    [fix], _ = decode("\n".join(lines))
    assert fix.sats == 12


def test_better_fix_quality_beats_more_satellites() -> None:
    text = "\n".join(
        [
            with_checksum("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,251126,003.1,W"),
            with_checksum("GPGGA,123519,4807.038,N,01131.000,E,6,12,0.9,545.4,M,46.9,M,,"),  # dead reckoning
            with_checksum("GNGGA,123519,4807.038,N,01131.000,E,4,07,0.7,545.1,M,46.9,M,,"),  # RTK fixed
        ]
    )
    [fix], _ = decode(text)
    assert (fix.sats, fix.alt_m) == (7, 545.1)


def test_u_blox_no_fix_gga_adds_nothing_and_is_not_refused() -> None:
    fixes, problems = decode("$GPGGA,,,,,,0,00,99.99,,,,,,*48")
    assert fixes == [] and problems == []


def test_week_rollover_moves_the_date_forward_1024_weeks() -> None:
    # a receiver that lost the 2019-04-07 rollover reports 1999-08-22 + (true date − 2019-04-07)
    body = "GPRMC,101112,A,4807.038,N,01131.000,E,022.4,084.4,130507,,,A"  # 13 May 2007
    [fix], problems = decode(with_checksum(body))
    assert problems == [] and fix.ts == datetime(2007, 5, 13, 10, 11, 12, tzinfo=UTC) + GPS_ROLLOVER
    assert fix.ts.date() >= GPS_ROLLOVER_FLOOR
    [fix], _ = decode(with_checksum(body.replace("130507", "210899")))  # the day before the 1999 rollover
    assert fix.ts == datetime(1999, 8, 21, 10, 11, 12, tzinfo=UTC) + 2 * GPS_ROLLOVER


def test_a_second_different_fix_with_the_same_time_is_recorded() -> None:
    text = "\n".join(
        [
            with_checksum("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,251126,,,A"),
            with_checksum("GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,251126,,,A"),  # same: one sample
            with_checksum("GPRMC,123519,A,4907.038,N,01131.000,E,022.4,084.4,251126,,,A"),  # another position
        ]
    )
    [fix], problems = decode(text)
    assert fix.lat == pytest.approx(48 + 7.038 / 60)
    assert [p.reason for p in problems] == ["conflicting_fix"] and "line 2" in problems[0].detail


@pytest.mark.parametrize(
    "body",
    [
        "GPRMC,123519,A,４８07.038,N,01131.000,E,022.4,084.4,251126,,,A",  # full-width digits
        "GPRMC,123519,A,٤٨07.038,N,01131.000,E,022.4,084.4,251126,,,A",  # Arabic-Indic digits
        "GPRMC,123519,A,4899.999,N,01131.000,E,022.4,084.4,251126,,,A",  # 99.999 minutes
        "GPRMC,123519,A,4807.038,N,01160.000,E,022.4,084.4,251126,,,A",  # 60 minutes
        "GPRMC,1235_9,A,4807.038,N,01131.000,E,022.4,084.4,251126,,,A",  # Python's int() takes "_9"
    ],
)
def test_non_ascii_digits_and_minutes_of_60_or_more_are_not_positions(body: str) -> None:
    fixes, problems = decode(with_checksum(body))
    assert fixes == [] and [p.reason for p in problems] == ["bad_nmea"]


def test_pairing_is_not_quadratic_in_fixes_sharing_a_time_of_day() -> None:
    """7,000 RMC+GGA pairs at the same time of day on 7,000 days took 3.8 s (every GGA scanned every RMC); now
    they cost about what 7,000 pairs at distinct times cost."""
    import time as clock
    from datetime import timedelta

    def text(same_time_of_day: bool) -> str:
        t0 = datetime(2020, 1, 1, 8, 0, 0, tzinfo=UTC)
        lines = []
        for i in range(7000):
            ts = t0 + timedelta(days=i) if same_time_of_day else t0 + timedelta(seconds=i)
            lines += [encode_rmc(ts, 1.0, 2.0, 10, 20), encode_gga(ts, 1.0, 2.0, 100.0, 1.0, 5)]
        return "\n".join(lines)

    same, distinct = text(True), text(False)
    elapsed = {}
    for name, t in (("same", same), ("distinct", distinct)):
        start = clock.process_time()
        fixes, problems = decode(t)
        elapsed[name] = clock.process_time() - start
        assert len(fixes) == 7000 and problems == [] and all(f.sats == 5 for f in fixes)
    assert elapsed["same"] < 2 * elapsed["distinct"] + 0.2, elapsed


def test_problem_details_stay_short_for_a_huge_sentence() -> None:
    fixes, problems = decode("$GPRMC," + "9" * 1_000_000 + "*00")
    assert fixes == [] and len(problems) == 1 and len(problems[0].detail) < 400
