"""The JT/T 808 gateway over real TCP, the real registry database and the real Mosquitto."""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from fleetcore.db import Conn, one
from fleetcore.protocol import jt808 as j
from fleetcore.settings import Settings
from gateways.jt808.terminals import device_id_for
from tests.factories import vehicle
from tests.jt808_helpers import Listener, Terminal, jt808_gateway, location
from tests.waiting import wait_until

pytestmark = [pytest.mark.mqtt, pytest.mark.db]
PREFIX = "jt808-"


def _phone() -> str:
    return "013" + "".join(random.choice("0123456789") for _ in range(9))


@pytest.fixture
def gw_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"jt808_client_id": f"gw-jt-{uuid.uuid4().hex[:8]}"})


@pytest.fixture
def gateway(gw_settings: Settings) -> Iterator:
    with jt808_gateway(gw_settings) as gw:
        yield gw


@pytest.fixture
def listener(gw_settings: Settings) -> Iterator[Listener]:
    lst = Listener(gw_settings)
    yield lst
    lst.stop()


def registered(conn: Conn) -> str:
    phone = _phone()
    vehicle(conn, device_id=device_id_for(PREFIX, phone))
    return phone


def test_an_unknown_terminal_cannot_register_or_authenticate(gateway, conn) -> None:  # noqa: ANN001
    t = Terminal(gateway.port, _phone())
    assert t.register() == (j.REG_NO_SUCH_TERMINAL, "")
    assert t.authenticate("anything") == j.FAILURE
    assert t.recv(2) is None  # and the connection is closed
    assert gateway.metrics.counts["rejected.unknown_terminal"] == 1


def test_only_the_issued_code_authenticates(gateway, conn, listener) -> None:  # noqa: ANN001
    phone = registered(conn)
    t = Terminal(gateway.port, phone)
    result, code = t.register()
    assert result == j.REG_OK and len(code) == 32
    assert t.authenticate(code[:-1] + ("0" if code[-1] != "0" else "1")) == j.FAILURE
    assert t.recv(2) is None
    # a registered device with another terminal's code is refused as well
    other = registered(conn)
    _, other_code = Terminal(gateway.port, other).register()
    t = Terminal(gateway.port, phone)
    assert t.authenticate(other_code) == j.FAILURE
    t = Terminal(gateway.port, phone)
    assert t.authenticate(code) == j.OK
    status = f"{listener_root(gateway)}/devices/{device_id_for(PREFIX, phone)}/status"
    wait_until(
        lambda: (status, b"online", False) in listener.got or (status, b"online", True) in listener.got
    )
    row = one(
        conn.execute("SELECT auth_sha256, authenticated_at FROM jt808_terminals WHERE phone = %s", (phone,))
    )
    assert row["authenticated_at"] is not None and code.encode() not in bytes(row["auth_sha256"])


def listener_root(gateway) -> str:  # noqa: ANN001
    return gateway.settings.topic_root


def test_reports_before_authentication_are_refused(gateway, conn, listener) -> None:  # noqa: ANN001
    t = Terminal(gateway.port, registered(conn))
    assert t.response(t.send(j.LOCATION, j.encode_location(location()))) == j.FAILURE
    assert t.response(t.send(j.HEARTBEAT, b"")) == j.OK
    time.sleep(0.3)
    assert listener.kind("telemetry") == []


@pytest.mark.parametrize("version", [None, 1], ids=["2013", "2019"])
def test_a_location_report_is_republished_then_acknowledged(gateway, conn, listener, version) -> None:  # noqa: ANN001
    phone = registered(conn)
    t = Terminal(gateway.port, phone, version=version)
    t.login()
    when = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=5)
    serial = t.send(j.LOCATION, j.encode_location(location(when)))
    assert t.response(serial) == j.OK
    # the 0x8001 came after the broker's PUBACK, so the sample is already at the broker
    wait_until(lambda: listener.kind("telemetry"), timeout=5)
    (payload,) = listener.kind("telemetry")
    ts = int(when.timestamp() * 1000)
    assert json.loads(payload) == {
        "ts": ts, "seq": ts, "ignition": True, "lat": 52.520008, "lon": 13.404954, "speed_kmh": 48.5,
        "heading_deg": 271, "alt_m": 34, "odometer_km": 48211.4, "sats": 11,
    }  # fmt: skip


def test_alarms_are_events_once_per_rising_edge(gateway, conn, listener) -> None:  # noqa: ANN001
    phone = registered(conn)
    t = Terminal(gateway.port, phone)
    t.login()
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=60)
    collision, sos = 1 << 29, 1 << 0
    alarms = [0, collision, collision, collision | sos, sos, 0, collision]
    for i, a in enumerate(alarms):
        assert (
            t.response(t.send(j.LOCATION, j.encode_location(location(t0 + timedelta(seconds=i), alarm=a))))
            == 0
        )
    wait_until(lambda: len(listener.kind("telemetry")) == len(alarms), timeout=5)
    events = [json.loads(p) for p in listener.kind("event")]
    assert [(e["type"], e.get("alarm")) for e in events] == [
        ("crash", "collision"), ("sos", "emergency"), ("crash", "collision"),
    ]  # fmt: skip
    assert [e["ts"] for e in events] == [
        int((t0 + timedelta(seconds=s)).timestamp() * 1000) for s in (1, 3, 6)
    ]
    # the edge state survives a reconnect: a report with the collision bit still set raises nothing new
    t.close()
    t = Terminal(gateway.port, phone)
    _, code = t.register()
    assert t.authenticate(code) == j.OK
    assert (
        t.response(
            t.send(j.LOCATION, j.encode_location(location(t0 + timedelta(seconds=7), alarm=collision)))
        )
        == 0
    )
    time.sleep(0.3)
    assert len(listener.kind("event")) == 3


def test_frames_split_across_reads_joined_in_one_read_and_subpackages(gateway, conn, listener) -> None:  # noqa: ANN001
    phone = registered(conn)
    t = Terminal(gateway.port, phone)
    t.login()
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=120)
    # three reports in one write
    wires = [t.frame(j.LOCATION, j.encode_location(location(t0 + timedelta(seconds=i))))[1] for i in range(3)]
    t.sock.sendall(b"".join(wires))
    assert [t.response(s) for s in range(t.serial - 2, t.serial + 1)] == [0, 0, 0]
    # one report a byte at a time
    serial, wire = t.frame(j.LOCATION, j.encode_location(location(t0 + timedelta(seconds=3))))
    for b in wire:
        t.sock.sendall(bytes([b]))
    assert t.response(serial) == 0
    # a blind-area batch of 40 reports in subpackages of 300 bytes
    batch = j.encode_batch([location(t0 + timedelta(seconds=10 + i)) for i in range(40)], 1)
    first = t.serial + 1
    parts = j.split_body(j.BATCH_LOCATION, batch, phone, first, 300)
    t.serial += len(parts)
    for p in parts:
        t.sock.sendall(p)
    assert [t.response(first + i) for i in range(len(parts))] == [0] * len(parts)
    wait_until(lambda: len(listener.kind("telemetry")) == 5, timeout=5)
    samples = json.loads(listener.kind("telemetry")[-1])
    assert isinstance(samples, list) and len(samples) == 40  # one buffered upload (contract §4)


def test_bad_frames_are_answered_and_counted_and_the_connection_lives(gateway, conn) -> None:  # noqa: ANN001
    t = Terminal(gateway.port, registered(conn))
    t.login()
    serial, wire = t.frame(j.LOCATION, j.encode_location(location()))
    raw = bytearray(j.unescape(wire[1:-1]))
    raw[-1] ^= 0xFF
    t.sock.sendall(b"\x7e" + j.escape(bytes(raw)) + b"\x7e")
    assert t.response(serial) == j.MESSAGE_ERROR
    assert t.response(t.send(0x0900, b"\x01\x02")) == j.NOT_SUPPORTED
    assert t.response(t.send(j.HEARTBEAT, b"")) == j.OK
    assert gateway.metrics.counts["rejected.bad_checksum"] == 1


def test_an_unset_clock_is_acknowledged_but_not_republished(gateway, conn, listener) -> None:  # noqa: ANN001
    t = Terminal(gateway.port, registered(conn))
    t.login()
    zero = location(None, alarm=1 << 29)
    zero.time, zero.raw_time = None, bytes(6)
    assert t.response(t.send(j.LOCATION, j.encode_location(zero))) == j.OK
    old = location(datetime(2004, 1, 1, tzinfo=UTC))
    assert t.response(t.send(j.LOCATION, j.encode_location(old))) == j.OK
    time.sleep(0.3)
    assert listener.kind("telemetry") == [] and listener.kind("event") == []
    assert gateway.metrics.counts["rejected.clock_unset"] == 2


def test_a_second_connection_of_a_terminal_replaces_the_first(gateway, conn) -> None:  # noqa: ANN001
    phone = registered(conn)
    a = Terminal(gateway.port, phone)
    result, code = a.register()
    assert a.authenticate(code) == j.OK
    b = Terminal(gateway.port, phone)
    assert b.authenticate(code) == j.OK
    assert a.recv(3) is None  # closed by the gateway
    assert b.response(b.send(j.HEARTBEAT, b"")) == j.OK


def test_no_acknowledgement_without_the_brokers(gw_settings: Settings, conn) -> None:  # noqa: ANN001
    """With the broker unreachable the report is not acknowledged: the terminal keeps it and sends it again."""
    from fleetapp.embedded import free_port

    dead = gw_settings.model_copy(
        update={"mqtt_url": f"mqtt://127.0.0.1:{free_port()}", "gateway_publish_timeout_s": 1.0}
    )
    with jt808_gateway(dead, mqtt_wait_s=0.5) as gw:
        t = Terminal(gw.port, registered(conn))
        result, code = t.register()
        t.authenticate(code)  # the `online` status cannot be published either; authentication still answers
        serial = t.send(j.LOCATION, j.encode_location(location()))
        assert t.recv(2.5) is None
        assert gw.metrics.counts.get("reports", 0) == 0
        del serial


def test_the_gateway_reconnects_to_a_restarted_broker(gw_settings: Settings, conn) -> None:  # noqa: ANN001
    """paho runs on the gateway's event loop: a broker restart is noticed and the connection comes back."""
    from tests.ingest_helpers import mosquitto

    with mosquitto() as broker:
        s = gw_settings.model_copy(update={"mqtt_url": broker.url})
        with jt808_gateway(s) as gw:
            t = Terminal(gw.port, registered(conn))
            t.login()
            assert t.response(t.send(j.LOCATION, j.encode_location(location()))) == j.OK
            broker.restart()
            later = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
            serial = t.send(j.LOCATION, j.encode_location(location(later)))
            # acknowledged once the gateway is back at the broker (its publish timeout is 10 s; back-off from 1 s)
            assert t.response(serial, timeout=15) in (j.OK, None)
            wait_until(lambda: gw.pub.connected, timeout=15, message="gateway did not reconnect")
            assert (
                t.response(t.send(j.LOCATION, j.encode_location(location(later + timedelta(seconds=1)))))
                == j.OK
            )


def test_a_silent_connection_is_closed_after_the_idle_timeout(gw_settings: Settings, conn) -> None:  # noqa: ANN001
    with jt808_gateway(gw_settings.model_copy(update={"jt808_idle_timeout_s": 1.0})) as gw:
        t = Terminal(gw.port, registered(conn))
        t.login()
        start = time.monotonic()
        assert t.recv(15) is None  # closed by the gateway
        assert 1.0 <= time.monotonic() - start < 12
