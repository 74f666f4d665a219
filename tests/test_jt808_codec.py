"""JT/T 808 wire format (fleetcore.protocol.jt808) against published frames, and round trips of our own encoder.

Frames are facts transcribed from public decoder tests:
- TRACCAR: traccar/traccar src/test/java/org/traccar/protocol/HuabaoProtocolDecoderTest.java (JT/T 808-2011/2013
  terminals of several makers) and HuabaoFrameDecoderTest.java (framing). Traccar does not verify check codes; two
  of its frames carry a wrong one and are kept here as such.
- XTREAM: makeclan/xtream-codec debug/jt/jt-808-server-spring-boot-starter-debug-ui/src/utils/codec-utils.ts
  (JT/T 808-2019 frames: version flag, protocol version 1, 20-digit phone number), with their decoded bodies.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fleetcore.protocol import jt808 as j

# ---------------------------------------------------------------------------------------------------- vectors

# TRACCAR HuabaoProtocolDecoderTest: 0x0200 location reports (2013 header), with what the frame says.
# (hex, phone, serial, alarm, status, lat, lon, speed km/h, time UTC)
TRACCAR_LOCATIONS = [
    ("7E02000053200002604323004800000000000C00000158B91406CB7007006B00000000220512101138010400000F2803020000250400000000300114310100E30100D50E0100026043232795980277530030E50400000000E7020FC8E8020E83AB7E",
     "200002604323", 72, 0, 0xC0000, 22.591764, 113.995783, 0.0, "2022-05-12T02:11:38"),
    ("7E020000480123456789010013000000800000000301597BC506CBFF6600EB00000155210726203531010400000000EB24000C00B28986047701207027150200060089FFFFEFFF0004002D0E10000600C5FFFFFFEF697E",
     "012345678901", 19, 0x80, 0x3, 22.641605, 114.032486, 0.0, "2021-07-26T12:35:31"),
    ("7E020000830191715904370A2E00000000800000030158991806CA0FEB00040000010D211108194050010400000003CC14383938363034373831303230373033313836303830011A8001AA810213888202007A8301148401AA8502189B8601338702007D028801338901148A0200998B1131323334353637383941424344454647488C04000200A88D0200828E0114A0002E7E",
     "019171590437", 2606, 0, 0x80000003, 22.583576, 113.905643, 0.0, "2021-11-08T11:40:50"),
    ("7e0200007c0191718447540dcd000000008000000b029eabc204ba78510004000000042111182321120104000017f6cc14383933303237323037303339333033383732373130011d800134810204718202008283010e84017b85021ae986012f870201788901038b114a4e31424a314352364b573333363533358c040008dcb68d02018c8e013da000c07e",
     "019171844754", 3533, 0, 0x8000000B, 43.95309, -79.329361, 0.0, "2021-11-18T15:21:12"),
    ("7e02000033421030000018004c000200000004000201556dcb06c4d41d000c00f100fc210118095853010400000000fe0140ff0c01cc000000002694000055d87a7e",
     "421030000018", 76, 0x20000, 0x40002, 22.375883, 113.562653, 24.1, "2021-01-18T01:58:53"),
    ("7e02000033202011200010001300020000000400020158b30006c93ee5002000000000201127162937010400000000fe0145ff0c01cc00000000263300000f3e627e",
     "202011200010", 19, 0x20000, 0x40002, 22.590208, 113.852133, 0.0, "2020-11-27T08:29:37"),
    ("7e0200002e202000129707001c0000000000001c0601a2f0a8091f0bf00000000000ed201103031733000000000000000000780000000018000000267e",
     "202000129707", 28, 0, 0x1C06, -27.455656, 153.029616, 0.0, "2020-11-02T19:17:33"),
    ("7E0200005C03204187290418C70000000000040003015AFC8D06D134D600000000000020040110063457080000000000000000010400000002530901000000000000000030010F310106EB1D000800233030312E3437000A000300000000000000000005000101A500357E",
     "032041872904", 6343, 0, 0x40003, 22.740109, 114.373846, 0.0, "2020-04-01T02:06:34"),
    ("7E0200005C087034547007000B0000000000040003015A7CEF06CF8A84000000000000200108064451570800000000000000000104000000005309010000000000000000300113310109EB1D000800233030302E3838000A0003001A00000000000000050001037700B27E",
     "087034547007", 11, 0, 0x40003, 22.707439, 114.264708, 0.0, "2020-01-07T22:44:51"),
    ("7e02000054086031592715006e0000000000000002015a3c1a06c8733800000000000019103022183633362a4d30302c34352c31313338363030526f79314f70656e26303030303030303030303030263132333435363738393031323334353623ff7e",
     "086031592715", 110, 0, 0x2, 22.690842, 113.799992, 0.0, "2019-10-30T14:18:36"),
    ("7e0200004e08026300003006480000000000000007021477d90841920700000000005019110515194001040000167130011631010cd00400000400d3020027d4013fd6143839363130313832303030343833363532383330da0104897e",
     "080263000030", 1608, 0, 0x7, -34.895833, 138.514951, 0.0, "2019-11-05T07:19:40"),
    ("7e020000400303000002280042000000000000000301618ab406c31ec800000000000518092116145701040000047830011031010aeb16000c00b28986011780108622216500060089ffffffffc37e",
     "030300000228", 66, 0, 0x3, 23.169716, 113.450696, 0.0, "2018-09-21T08:14:57"),
    ("7E0200002A013833501744001900000000000000C201597FA806CC01580080000000081508180721210104000002F502020000030200009F7E",
     "013833501744", 25, 0, 0xC2, 22.6426, 114.032984, 0.0, "2015-08-17T23:21:21"),
    ("7E0200002F01357888888800B60000000000000003015972B406CBF6B802230000000116061317571301040000000003020000EB0700050001016708B37E",
     "013578888888", 182, 0, 0x3, 22.639284, 114.030264, 0.0, "2016-06-13T09:57:13"),
    ("7e02000054093037612710000700000000000000010223aca000dc9dd800000000000017121417122133362a4d30302c34352c31313336393042383030313233303026303030303030303030303030263132333435363738393031323334353623897e",
     "093037612710", 7, 0, 0x1, 35.892384, 14.458328, 0.0, "2017-12-14T09:12:21"),
    ("7e0200002c00160128561400020000000000040001005de1f7065c6cef00000000000017011710044201040000a9002a02000030011b3101030c7e",
     "001601285614", 2, 0, 0x40001, 6.152695, 106.720495, 0.0, "2017-01-17T02:04:42"),
    ("7e0200002c00160128561400030000000000040007005de13c065c6cdb00160000000017011710054201040000a9002a02000030011b310104e47e",
     "001601285614", 3, 0, 0x40007, -6.152508, 106.720475, 0.0, "2017-01-17T02:05:42"),
    ("7e0200002e094027587492000a000000010000000a03083db7001329f3000000140000130412164952010400000012360a0002341502cb0c20085c107e",
     "094027587492", 10, 0x1, 0xA, 50.871735, -1.255923, 2.0, "2013-04-12T08:49:52"),
    ("7e020000220014012499170007000000000000400e012af16f02cbd2ba000000000000150101194257010400000077a97e",
     "001401249917", 7, 0, 0x400E, -19.591535, -46.912186, 0.0, "2015-01-01T11:42:57"),
]  # fmt: skip

# TRACCAR: 0x0704 batch uploads (phone, type, reports).
TRACCAR_BATCHES = [
    ("7e070400db07904116875014480003010046000000000000000b020057d40072fb9c0064017200f220090215230301040000092930011f31010ceb1c000c00b28921200272401241734f00060089ffffffef000400ce1d460046000000000000000b0200570c0072fdb2005f013600ee20090215230801040000092a30011f31010ceb1c000c00b28921200272401241734f00060089ffffffef000400ce1e800046000000000000000b020056ac0072fe9b005a00d200ec20090215231301040000092a30011b31010ceb1c000c00b28921200272401241734f00060089ffffffef000400ce1e35d77e",
     "079041168750", 1, 3),
    ("7E0704014301356777777707F5000801002600000000000000030159741206CBFD5001720000000116052709062401040000001D03020000002600000000000000030159746606CBFD50016B0000000116052709065301040000001D0302000000260000000000000003015975E406CBFE58013F0000000116052709072701040000001D0302000000260000000000000003015976DE06CBFF10012E0000000116052709075601040000001D0302000000260000000000000003015976BC06CBFED0012D0000000116052709083001040000001D0302000000260000000000000003015976FE06CBFEC001080000000116052709090001040000001D0302000000260000000000000003015976FE06CBFE7800FC0000000116052709093301040000001D0302000000260000000000000003015977A606CBFF3001080000000116052709100201040000001D030200001F7E",
     "013567777777", 1, 8),
    ("7E070400F30303000002450064000401003A000000000000000301618AC606C31F20000000000029180514202847010400000000EB16000C00B28986061708003732585700060089FFFFFFFE003A000000000000000301618AE806C31EB800000000009F180514202917010400000000EB16000C00B28986061708003732585700060089FFFFFFFE003A000000000000000301618AE806C31EB800000000009F180514202947010400000000EB16000C00B28986061708003732585700060089FFFFFFFE003A000001000000080301618AE806C31EB800000000009F180514203006010400000000EB16000C00B28986061708003732585700060089FFFFFFFED77E",
     "030300000245", 1, 4),
]  # fmt: skip

# TRACCAR: registrations 0x0100 (phone, plate) and authentications 0x0102 (phone, code).
TRACCAR_REGISTRATIONS = [
    ("7E01000021013345678906000F002C012F373031313142534A2D4D3742203030303030303001D4C1423838383838B47E", "013345678906", "BSJ-M7B", "粤B88888"),
    ("7e0100002d0141305678720024002c012f373031313142534a2d41362d424400000000000000000000003035363738373201d4c14238383838386d7e", "014130567872", "BSJ-A6-BD", "粤B88888"),
    ("7E0100002D013511221122000500000000373031303748422D52303347424400000000000000000000003233363631303402CBD5424136383630387E", "013511221122", "HB-R03GBD", "苏BA6860"),
    ("7e0100002d007089994489002800000000000000000048422d523033474244000000000000000000000031393036373531024142433030303030d17e", "007089994489", "HB-R03GBD", "ABC00000"),
]  # fmt: skip
TRACCAR_AUTHS = [
    ("7E0102000E013511221122000661757468656E7469636174696F6E3F7E", "013511221122", "authentication"),
    ("7E010200100940278494700084323031313131303831313333323139369F7E", "094027849470", "2011110811332196"),
]
TRACCAR_HEARTBEAT = "7e0002000004304832546500b7ca7e"
# TRACCAR: a frame with an unescaped 0x7E inside its body ("...8702007e88..."): on the wire that is two segments,
# neither of which verifies.
TRACCAR_UNESCAPED_FLAG = "7e0200008e01917159043700b300000000800000030158990606ca0fd7000400000000211129111705010400000000cc14383938363037423831303230393031363239363830010d8001aa81021388820200858301148401aa8502189b8601338702007e8801338901148a0200998b1131323334353637383941424344454647488c04000200a88d0200828e0114a00b50353338662c5530323966037e"  # fmt: skip
# TRACCAR frames whose check code does not verify (Traccar ignores it; a JT/T 808 platform must not).
TRACCAR_BAD_CHECKSUM = [
    "7E02000032013511221122000700000000000C000301578CC006CA3A5C00470000000014072317201501040000000030011631010BD07E",
]
# TRACCAR: a vendor 0x0900 pass-through frame whose "phone" is not BCD.
TRACCAR_NOT_BCD = "7E0900005A4E5DE66FBA2200C4F02204280610090002010D052B0150052C0400129009052D016B052E014F05300231BA053502000005360203B8053802000005390200AD053D0201EA05440150054604009899D90545040000001E000C00030160A85C06D1C1389C7E"  # fmt: skip

XTREAM_PHONE = "00000000013912344329"
XTREAM_0200 = "7e02004026010000000001391234432900000000006f0000001601dc9a0707456246007b004200032501292233440202006401040000000c417e"  # fmt: skip
XTREAM_0200_ITEMS = "7e0200407c010000000001391234432900000000007b000000de01d907f2073d336c029a004e000014102119510901040000006f020200de0302029a0402014d2504000003093001211206010000000001130700000001000000310137642f000000dedf6f03420b0c0d0e0f04d201d907f2073d336c1410211951090001313233343536371410211951090101008e7e"  # fmt: skip
XTREAM_0704 = "7e0704403f01000000000139123443290000000200001c000000010000000101d907f2073d336c029a00210059241029213903001c000000010000000101d907f3073d336d03090043005a241029213903f87e"  # fmt: skip
XTREAM_8001 = (
    "7e8001400501000000000139123443290000006f020000dc7e"  # reply to serial 111, msg 0x0200, result 0
)
XTREAM_8001_FAIL = (
    "7e8001400501000000000139123443290000007b020001c97e"  # reply to serial 123, msg 0x0200, result 1
)
XTREAM_8100 = (
    "7e8100400d01000000000139123443290000006f006f6b2e2e6f6b2e2e6f6bd27e"  # serial 111, ok, "ok..ok..ok"
)
XTREAM_0002 = "7e0002400001000000000139123443290000377e"
XTREAM_8003_2013 = "7e800300090139123443230000006f030002000300049d7e"


def frame(hex_: str) -> j.Message:
    (raw,) = j.FrameSplitter().feed(bytes.fromhex(hex_))
    return j.decode_frame(raw)


def beijing(s: str) -> datetime:
    return datetime.fromisoformat(s).replace(tzinfo=UTC)


# ---------------------------------------------------------------------------------------------------- framing


def test_traccar_frame_decoder_unescapes() -> None:
    """HuabaoFrameDecoderTest: 7e 30 7d02 08 7d01 55 7e carries 30 7e 08 7d 55."""
    (raw,) = j.FrameSplitter().feed(bytes.fromhex("7e307d02087d01557e"))
    assert j.unescape(raw) == bytes.fromhex("307e087d55")
    assert j.escape(bytes.fromhex("307e087d55")) == bytes.fromhex("307d02087d0155")


@pytest.mark.parametrize("bad", ["7d", "7d03", "307d00"])
def test_a_dangling_or_unknown_escape_is_an_error(bad: str) -> None:
    with pytest.raises(j.FrameError) as e:
        j.unescape(bytes.fromhex(bad))
    assert e.value.reason == "bad_escape"


def test_several_frames_in_one_read_and_one_frame_across_reads() -> None:
    frames = [bytes.fromhex(h) for h in (TRACCAR_HEARTBEAT, TRACCAR_AUTHS[0][0], TRACCAR_LOCATIONS[1][0])]
    stream = b"\x00garbage" + b"".join(frames)
    s = j.FrameSplitter()
    assert [j.decode_frame(r).header.msg_id for r in s.feed(stream)] == [0x0002, 0x0102, 0x0200]
    # the same stream one byte per read
    s = j.FrameSplitter()
    got = [r for i in range(len(stream)) for r in s.feed(stream[i : i + 1])]
    assert [j.decode_frame(r).header.msg_id for r in got] == [0x0002, 0x0102, 0x0200]
    # in three uneven chunks
    s = j.FrameSplitter()
    cut = [0, 7, 40, len(stream)]
    got = [r for a, b in zip(cut, cut[1:], strict=False) for r in s.feed(stream[a:b])]
    assert len(got) == 3


def test_a_shared_flag_between_messages_is_read_too() -> None:
    a, b = bytes.fromhex(TRACCAR_HEARTBEAT), bytes.fromhex(XTREAM_0002)
    got = j.FrameSplitter().feed(a + b[1:])  # "7e A 7e B 7e"
    assert [j.decode_frame(r).header.phone for r in got] == ["043048325465", XTREAM_PHONE]


def test_an_endless_segment_is_dropped_and_the_stream_recovers() -> None:
    s = j.FrameSplitter()
    assert s.feed(b"\x7e" + b"\x01" * (j.MAX_FRAME + 10)) == []
    assert s.dropped == 1
    assert len(s.feed(b"\x01\x7e" + bytes.fromhex(TRACCAR_HEARTBEAT))) == 1


def test_checksum_is_the_xor_of_header_and_body() -> None:
    raw = j.unescape(bytes.fromhex(TRACCAR_HEARTBEAT)[1:-1])
    assert j.checksum(raw[:-1]) == raw[-1] == 0xCA


# ---------------------------------------------------------------------------------------------------- published frames


@pytest.mark.parametrize("vector", TRACCAR_LOCATIONS, ids=[v[1] + "-" + str(v[2]) for v in TRACCAR_LOCATIONS])
def test_traccar_location_reports(vector: tuple) -> None:
    hex_, phone, serial, alarm, status, lat, lon, speed, t = vector
    m = frame(hex_)
    assert (m.header.msg_id, m.header.phone, m.header.serial, m.header.version) == (
        0x0200,
        phone,
        serial,
        None,
    )
    loc = j.decode_location(m.body)
    assert (loc.alarm, loc.status) == (alarm, status)
    assert (loc.lat, loc.lon, loc.speed_kmh) == (pytest.approx(lat), pytest.approx(lon), speed)
    assert loc.time == beijing(t)
    if hex_.startswith("7e0200002e2020"):
        return  # this frame repeats item 0x00 as padding; the item dict keeps one of them
    assert j.encode_location(loc) == m.body  # byte-exact round trip, items in their order


def test_traccar_location_additional_items() -> None:
    loc = j.decode_location(frame(TRACCAR_LOCATIONS[0][0]).body)
    assert (
        loc.item_int(j.ITEM_MILEAGE) == 0x0F28
        and loc.item_int(j.ITEM_SATS) == 0
        and loc.item_int(0x30) == 0x14
    )
    loc = j.decode_location(
        frame(TRACCAR_LOCATIONS[12][0]).body
    )  # 013833501744: mileage, fuel, tachograph speed
    assert (loc.item_int(j.ITEM_MILEAGE), loc.item_int(j.ITEM_FUEL), loc.item_int(j.ITEM_TACHO_SPEED)) == (
        0x2F5,
        0,
        0,
    )


@pytest.mark.parametrize("vector", TRACCAR_BATCHES, ids=[v[1] for v in TRACCAR_BATCHES])
def test_traccar_batch_uploads(vector: tuple) -> None:
    hex_, phone, kind, n = vector
    m = frame(hex_)
    got_kind, reports = j.decode_batch(m.body)
    assert (m.header.msg_id, m.header.phone, got_kind, len(reports)) == (0x0704, phone, kind, n)
    assert all(r.time is not None for r in reports)
    assert j.encode_batch(reports, got_kind) == m.body


@pytest.mark.parametrize("vector", TRACCAR_REGISTRATIONS, ids=[v[1] for v in TRACCAR_REGISTRATIONS])
def test_traccar_registrations(vector: tuple) -> None:
    hex_, phone, model, plate = vector
    m = frame(hex_)
    r = j.decode_register(m.body, version=None)
    assert (m.header.msg_id, m.header.phone, r.model, r.plate) == (0x0100, phone, model, plate)


def test_traccar_2011_registration_is_readable() -> None:
    m = frame("7e010000190940278494700012000000000000000000000000000000000000094027849470000a7e")
    assert m.header.phone == "094027849470" and len(m.body) == 25
    assert j.decode_register(m.body, version=None).plate_color == 0


@pytest.mark.parametrize("vector", TRACCAR_AUTHS, ids=[v[1] for v in TRACCAR_AUTHS])
def test_traccar_authentications(vector: tuple) -> None:
    hex_, phone, code = vector
    m = frame(hex_)
    assert (m.header.msg_id, m.header.phone, j.decode_auth(m.body, version=None)) == (0x0102, phone, code)


def test_traccar_heartbeat() -> None:
    m = frame(TRACCAR_HEARTBEAT)
    assert (m.header.msg_id, m.header.phone, m.header.serial, m.body) == (0x0002, "043048325465", 0xB7, b"")


@pytest.mark.parametrize("hex_", TRACCAR_BAD_CHECKSUM)
def test_traccar_frames_with_a_wrong_check_code_are_refused(hex_: str) -> None:
    with pytest.raises(j.FrameError) as e:
        frame(hex_)
    assert e.value.reason == "bad_checksum"
    assert e.value.header is not None and e.value.header.msg_id == 0x0200  # enough to answer "message error"


def test_an_unescaped_flag_inside_a_frame_breaks_it_in_two_refused_pieces() -> None:
    pieces = j.FrameSplitter().feed(bytes.fromhex(TRACCAR_UNESCAPED_FLAG))
    assert len(pieces) == 2
    for piece in pieces:
        with pytest.raises(j.FrameError):
            j.decode_frame(piece)


def test_a_header_whose_phone_is_not_bcd_is_refused() -> None:
    with pytest.raises(j.FrameError) as e:
        frame(TRACCAR_NOT_BCD)
    assert e.value.reason == "bad_header"


def test_xtream_2019_location() -> None:
    m = frame(XTREAM_0200)
    assert (m.header.version, m.header.phone, m.header.serial) == (1, XTREAM_PHONE, 0)
    loc = j.decode_location(m.body)
    # bodyJson: alarmFlag 111, status 22, latitude 31234567 (status bit 2: south), longitude 121987654,
    # altitude 123, speed 66 (x 0.1 km/h), direction 3, time 25-01-29 22:33:44 (Beijing), items {1: 12, 2: 100}
    assert (loc.alarm, loc.status, loc.lat, loc.lon, loc.alt_m) == (111, 22, -31.234567, 121.987654, 123)
    assert (loc.speed_kmh, loc.heading_deg) == (6.6, 3)
    assert loc.time == datetime(2025, 1, 29, 22, 33, 44, tzinfo=j.CHINA_TZ)
    assert (loc.item_int(1), loc.item_int(2)) == (12, 100)
    assert j.encode_location(loc) == m.body


def test_xtream_2019_location_with_many_items() -> None:
    m = frame(XTREAM_0200_ITEMS)
    loc = j.decode_location(m.body)
    assert (loc.alarm, loc.status, loc.alt_m, loc.speed_kmh) == (123, 222, 666, 7.8)
    assert loc.item_int(j.ITEM_MILEAGE) == 111 and loc.item_int(j.ITEM_SATS) == 0x37
    assert j.encode_location(loc) == m.body


def test_xtream_2019_batch() -> None:
    m = frame(XTREAM_0704)
    kind, reports = j.decode_batch(m.body)
    assert (kind, [r.alt_m for r in reports], [r.heading_deg for r in reports]) == (0, [666, 777], [89, 90])
    assert j.encode_frame(0x0704, j.encode_batch(reports), XTREAM_PHONE, 0, version=1).hex() == XTREAM_0704


@pytest.mark.parametrize(
    ("expected", "msg_id", "body"),
    [
        (XTREAM_8001, j.PLATFORM_RESPONSE, j.encode_platform_response(111, 0x0200, j.OK)),
        (XTREAM_8001_FAIL, j.PLATFORM_RESPONSE, j.encode_platform_response(123, 0x0200, j.FAILURE)),
        (XTREAM_8100, j.REGISTER_RESPONSE, j.encode_register_response(111, j.REG_OK, "ok..ok..ok")),
        (XTREAM_0002, j.HEARTBEAT, b""),
    ],
)
def test_our_encoder_writes_the_published_2019_frames_byte_for_byte(
    expected: str, msg_id: int, body: bytes
) -> None:
    assert j.encode_frame(msg_id, body, XTREAM_PHONE, 0, version=1).hex() == expected


def test_our_encoder_writes_the_published_2013_frame() -> None:
    body = bytes.fromhex("006f03000200030004")
    assert j.encode_frame(0x8003, body, "013912344323", 0).hex() == XTREAM_8003_2013


def test_published_responses_decode() -> None:
    assert j.decode_general_response(frame(XTREAM_8001).body) == (111, 0x0200, 0)
    assert j.decode_register_response(frame(XTREAM_8100).body) == (111, 0, "ok..ok..ok")


# ---------------------------------------------------------------------------------------------------- own round trips


def _loc(**kw: object) -> j.Location:
    base: dict = dict(alarm=0, status=j.STATUS_ACC | j.STATUS_FIX, lat=52.520008, lon=13.404954, alt_m=34,
                      speed_kmh=48.5, heading_deg=271, time=datetime(2026, 3, 2, 6, 0, 5, tzinfo=UTC),
                      items={j.ITEM_MILEAGE: (482114).to_bytes(4, "big"), j.ITEM_SATS: bytes([11])})  # fmt: skip
    base.update(kw)
    return j.Location(**base)


@pytest.mark.parametrize("version", [None, 1])
@pytest.mark.parametrize("phone", ["013912345678", "1", "000000000000"])
def test_round_trip_every_message_in_both_editions(version: int | None, phone: str) -> None:
    reg = j.Registration(44, 303, "70111", "FLEET-SIM", "SIM0001", 1, "粤B12345")
    bodies = {
        j.REGISTER: j.encode_register(reg, edition=2019 if version else 2013),
        j.AUTHENTICATE: j.encode_auth("c0ffee", version=version, imei="356307042441013", software="1.0"),
        j.LOCATION: j.encode_location(_loc(lat=-33.86, lon=-151.2)),
        j.BATCH_LOCATION: j.encode_batch([_loc(), _loc(alarm=1 << 29)], 1),
        j.HEARTBEAT: b"",
    }
    width = 20 if version else 12
    for serial, (msg_id, body) in enumerate(bodies.items(), start=65534):
        wire = j.encode_frame(msg_id, body, phone, serial, version=version)
        (raw,) = j.FrameSplitter().feed(wire)
        m = j.decode_frame(raw)
        assert (m.header.msg_id, m.header.phone, m.header.version) == (
            msg_id,
            phone.rjust(width, "0"),
            version,
        )
        assert m.header.serial == serial & 0xFFFF and m.body == body
    assert j.decode_register(bodies[j.REGISTER], version=version) == reg
    assert j.decode_auth(bodies[j.AUTHENTICATE], version=version) == "c0ffee"
    back = j.decode_location(bodies[j.LOCATION])
    assert (back.lat, back.lon) == (-33.86, -151.2)


def test_bytes_that_need_escaping_survive() -> None:
    # a serial and a body full of flag and escape bytes
    body = bytes([0x7E, 0x7D, 0x01, 0x02, 0x7E, 0x7E, 0x7D])
    wire = j.encode_frame(0x0900, body, "013912345678", 0x7E7D)
    assert wire.count(b"\x7e") == 2
    m = j.decode_frame(j.FrameSplitter().feed(wire)[0])
    assert m.body == body and m.header.serial == 0x7E7D


def test_subpackages_carry_total_and_index() -> None:
    body = j.encode_batch([_loc() for _ in range(30)])
    wires = j.split_body(j.BATCH_LOCATION, body, "013912345678", 100, 200)
    heads = [j.decode_frame(j.FrameSplitter().feed(w)[0]) for w in wires]
    assert [(m.header.total, m.header.index, m.header.serial) for m in heads] == [
        (len(wires), i + 1, 100 + i) for i in range(len(wires))
    ]
    assert b"".join(m.body for m in heads) == body


@pytest.mark.parametrize(
    ("wire_change", "reason"),
    [
        (lambda raw: raw[:-1] + bytes([raw[-1] ^ 1]), "bad_checksum"),
        (lambda raw: raw[:3] + bytes([raw[3] + 1]) + raw[4:-1] + bytes([j.checksum(raw[:3] + bytes([raw[3] + 1]) + raw[4:-1])]), "bad_length"),
        (lambda raw: raw[:5], "short_frame"),
    ],
)  # fmt: skip
def test_malformed_frames(wire_change, reason: str) -> None:  # noqa: ANN001
    raw = j.unescape(j.encode_frame(j.LOCATION, j.encode_location(_loc()), "013912345678", 1)[1:-1])
    with pytest.raises(j.FrameError) as e:
        j.decode_frame(j.escape(wire_change(raw)))
    assert e.value.reason == reason


def test_a_truncated_additional_item_ends_the_item_list() -> None:
    body = j.encode_location(_loc()) + bytes([0x30, 5, 1])
    assert set(j.decode_location(body).items) == {j.ITEM_MILEAGE, j.ITEM_SATS}
    with pytest.raises(j.FrameError):
        j.decode_location(body[:20])


def test_times_are_beijing_time_and_an_unset_clock_is_none() -> None:
    t = datetime(2026, 3, 2, 6, 0, 5, tzinfo=UTC)
    assert j.encode_time(t) == bytes.fromhex("260302140005")
    assert j.decode_time(bytes.fromhex("260302140005")) == t
    assert j.decode_time(bytes(6)) is None  # 00-00-00: month 0
    assert j.decode_time(bytes.fromhex("2613320000ff")) is None
    assert j.decode_time(bytes.fromhex("991231235959")) == datetime(2099, 12, 31, 15, 59, 59, tzinfo=UTC)
    assert j.decode_time(j.encode_time(t + timedelta(hours=20))) == t + timedelta(hours=20)


def test_bcd() -> None:
    assert j.bcd_encode("13912345678", 6) == bytes.fromhex("013912345678")
    assert j.bcd_decode(bytes.fromhex("013912345678")) == "013912345678"
    with pytest.raises(ValueError):
        j.bcd_encode("1234567890123", 6)
