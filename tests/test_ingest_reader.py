"""The worker's own MQTT read path: whole packets split out of arbitrary socket reads, handed over in order."""

from __future__ import annotations

import threading

import pytest

from fleetcore.settings import Settings
from ingest import consumer as C
from ingest.client import BufferedSocket
from tests.ingest_helpers import mqtt_string, mqtt_varint

ROOT = "test/fleet/v1"


def _publish(mid: int, topic: str, payload: bytes, *, flags: int = 0, props: bytes = b"") -> bytes:
    body = mqtt_string(topic) + mid.to_bytes(2, "big") + mqtt_varint(len(props)) + props + payload
    return bytes([0x32 | flags]) + mqtt_varint(len(body)) + body


class _Trickle:
    """A socket whose recv() returns at most `step` bytes, then reports 'nothing more for now'."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.pos = data, step, 0

    def recv(self, n: int) -> bytes:
        if self.pos >= len(self.data):
            raise BlockingIOError
        out = self.data[self.pos : self.pos + min(n, self.step)]
        self.pos += len(out)
        return out

    def close(self) -> None:
        pass


@pytest.mark.parametrize("step", [1, 7, 150, 4096, 256 * 1024])
def test_packets_split_across_reads_arrive_whole_and_in_order(step: int) -> None:
    settings = Settings(
        database_url="postgresql://unused@127.0.0.1/unused", mqtt_url="mqtt://127.0.0.1:1", topic_root=ROOT
    )
    cons = C.Consumer(settings, threading.Event())
    client = cons.mqtt.client
    sent = []
    stream = bytearray()
    for i in range(300):
        topic = f"{ROOT}/devices/dev-{i % 7}/telemetry"
        payload = b'{"ts": 1700000000000, "seq": %d, "speed_kmh": 12.5}' % i + b" " * (i % 200)
        flags = 0x08 if i % 50 == 3 else 0  # a few redeliveries (DUP) take the same fast path
        # every 40th packet carries a property (User Property), which only paho's own decoder handles
        props = b"\x26" + mqtt_string("k") + mqtt_string("v") if i % 40 == 5 else b""
        stream += _publish(i + 1, topic, payload, flags=flags, props=props)
        sent.append((i + 1, topic, payload))
    client._sock = BufferedSocket(_Trickle(bytes(stream), step))  # type: ignore[assignment]  # paho's internals
    client._state = 1  # type: ignore[assignment]  # connected, as far as paho's handlers care
    reads = 0
    while client._sock._sock.pos < len(stream) or client._sock.pending():  # type: ignore[union-attr]
        client.loop_read()
        reads += 1
        assert reads < len(stream) + 10
    got = [(d.mid, d.topic, d.payload) for d in cons.queue]
    assert sorted(got) == sent  # every packet once, none lost or cut
    fast = [g for g in got if g[0] % 40 != 6]
    assert fast == [s for s in sent if s[0] % 40 != 6]  # the fast path keeps arrival order
    assert all(d.result.kind == "telemetry" for d in cons.queue)  # type: ignore[union-attr]
    client._sock = None
