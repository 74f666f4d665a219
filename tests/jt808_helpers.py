"""A blocking JT/T 808 terminal for tests, and the gateway running in a thread of the test process."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from fleetcore.protocol import jt808 as j
from fleetcore.settings import Settings
from gateways.jt808.server import Jt808Gateway
from tests.waiting import wait_until


class Terminal:
    """One terminal connection: send messages, read the platform's answers."""

    def __init__(self, port: int | None, phone: str, *, version: int | None = None) -> None:
        assert port is not None, "the gateway is not listening"
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.phone = phone
        self.version = version
        self.serial = 0
        self.splitter = j.FrameSplitter()
        self.inbox: list[j.Message] = []

    def close(self) -> None:
        self.sock.close()

    def frame(self, msg_id: int, body: bytes) -> tuple[int, bytes]:
        self.serial = (self.serial + 1) & 0xFFFF
        return self.serial, j.encode_frame(msg_id, body, self.phone, self.serial, version=self.version)

    def send(self, msg_id: int, body: bytes) -> int:
        serial, wire = self.frame(msg_id, body)
        self.sock.sendall(wire)
        return serial

    def recv(self, timeout: float = 10.0) -> j.Message | None:
        """The next message from the platform; None when the connection closed or nothing came in time."""
        self.sock.settimeout(timeout)
        while not self.inbox:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                return None
            if not data:
                return None
            self.inbox += [j.decode_frame(r) for r in self.splitter.feed(data)]
        return self.inbox.pop(0)

    def response(self, serial: int, timeout: float = 10.0) -> int | None:
        """The 0x8001 result for our message `serial` (None if none came)."""
        m = self.recv(timeout)
        if m is None:
            return None
        assert m.header.msg_id == j.PLATFORM_RESPONSE, m
        reply_serial, _, result = j.decode_general_response(m.body)
        assert reply_serial == serial
        return result

    def register(self) -> tuple[int, str]:
        reg = j.Registration(44, 303, "70111", "FLEET-TEST", "T000001", 1, "粤B12345")
        serial = self.send(j.REGISTER, j.encode_register(reg, edition=2019 if self.version else 2013))
        m = self.recv()
        assert m is not None and m.header.msg_id == j.REGISTER_RESPONSE
        reply, result, code = j.decode_register_response(m.body)
        assert reply == serial
        return result, code

    def authenticate(self, code: str) -> int | None:
        return self.response(
            self.send(j.AUTHENTICATE, j.encode_auth(code, version=self.version, imei="1" * 15))
        )

    def login(self) -> None:
        result, code = self.register()
        assert result == j.REG_OK
        assert self.authenticate(code) == j.OK


def location(t: datetime | None = None, *, alarm: int = 0, speed: float = 48.5, **kw: object) -> j.Location:
    t = t or datetime.now(UTC).replace(microsecond=0)
    base: dict = dict(alarm=alarm, status=j.STATUS_ACC | j.STATUS_FIX, lat=52.520008, lon=13.404954, alt_m=34,
                      speed_kmh=speed, heading_deg=271, time=t,
                      items={j.ITEM_MILEAGE: (482114).to_bytes(4, "big"), j.ITEM_SATS: bytes([11])})  # fmt: skip
    base.update(kw)
    return j.Location(**base)


@contextlib.contextmanager
def jt808_gateway(settings: Settings, mqtt_wait_s: float = 10.0) -> Iterator[Jt808Gateway]:
    """The gateway on a free port, its event loop in a thread; stopped (connections closed) on exit."""
    stop = threading.Event()
    gw = Jt808Gateway(settings.model_copy(update={"jt808_port": 0}))
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(gw.serve(stop, mqtt_wait_s=mqtt_wait_s))
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=target, name="jt808-test", daemon=True)
    t.start()
    try:
        wait_until(lambda: gw.ready.is_set() or errors, timeout=20, message="gateway did not start")
        if errors:
            raise errors[0]
        yield gw
    finally:
        stop.set()
        t.join(20)
        if errors:
            raise errors[0]


class Listener:
    """Records what arrives under the test's topic root (retained status included)."""

    def __init__(self, settings: Settings) -> None:
        import uuid

        self.got: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        url = settings.mqtt
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"jt-l-{uuid.uuid4().hex[:8]}")
        self.c.on_message = self._on
        ready = threading.Event()
        self.c.on_subscribe = lambda *a: ready.set()
        self.c.connect(url.host, url.port)
        self.c.subscribe(f"{settings.topic_root}/devices/#", qos=1)
        self.c.loop_start()
        assert ready.wait(10)

    def _on(self, client, userdata, msg) -> None:  # noqa: ANN001
        with self.lock:
            self.got.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def kind(self, kind: str) -> list[bytes]:
        with self.lock:
            return [p for t, p, _ in self.got if t.endswith("/" + kind)]

    def stop(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()
