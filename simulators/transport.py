"""Where device messages go: an in-memory collector (scoring, tests) or a real MQTT broker.

Two MQTT modes:
- per-device (realistic, default): one paho client per device with its own client id and last will. All clients
  are serviced by ONE thread through a selector (paho's external-loop API: on_socket_open/close/register_write),
  so 1,000 devices cost 1,000 sockets but no extra threads.
- shared (load generation): one connection publishes for every device; last wills are emulated by publishing
  the retained `offline` status when a device goes silent.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import selectors
import threading
import time
from typing import NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from fleetcore.contract import STATUS
from fleetcore.mqtt import FATAL_CONNACK, MqttConnection
from fleetcore.settings import MqttUrl
from simulators.device import KEEPALIVE_S, WILL_AFTER_S, Device

log = logging.getLogger(__name__)

RECONNECT_MIN_S = 1.0
RECONNECT_MAX_S = 30.0


class SimMessage(NamedTuple):
    """One message as published: topic, payload, when (epoch seconds, simulated clock), QoS, retain flag."""

    topic: str
    payload: bytes
    publish_time: float
    qos: int
    retain: bool


class MemorySink:
    """Collects messages in publish order; emulates the broker's last will (1.5 × keep-alive after silence)."""

    def __init__(self) -> None:
        self.out: list[tuple[float, str, bytes, int, bool]] = []
        self._wills: list[tuple[float, int, str]] = []  # heap of (due, tiebreak, device_id)
        self._will_topic: dict[str, str] = {}
        self._pending: dict[str, float] = {}
        self._n = 0

    def attach(self, device: Device, t: float) -> None:
        self._will_topic[device.device_id] = device.topics[STATUS]
        device.on_connected(t)

    def publish(self, device: Device, kind: str, payload: bytes, t: float, qos: int, retain: bool) -> None:
        self.out.append((t, device.topics[kind], payload, qos, retain))

    def go_silent(self, device: Device, t: float) -> None:
        device.on_disconnected()
        due = t + WILL_AFTER_S
        self._pending[device.device_id] = due
        self._n += 1
        heapq.heappush(self._wills, (due, self._n, device.device_id))

    def come_back(self, device: Device, t: float) -> None:
        if self._pending.pop(device.device_id, None) is not None:
            # the broker still held the old session: a takeover publishes the will now (MQTT 5 §3.1.4)
            self.out.append((t, device.topics[STATUS], b"offline", 1, True))
        device.on_connected(t)

    def release(self, t: float) -> None:
        """Publish the wills that fell due by sim time t."""
        while self._wills and self._wills[0][0] <= t:
            due, _, dev_id = heapq.heappop(self._wills)
            if self._pending.get(dev_id) == due:
                del self._pending[dev_id]
                self.out.append((due, self._will_topic[dev_id], b"offline", 1, True))

    def drain(self) -> list[tuple[float, str, bytes, int, bool]]:
        """Messages so far in publish-time order (events stamped at a physics sub-step come slightly earlier)."""
        out, self.out = self.out, []
        out.sort(key=lambda m: m[0])  # stable: same-time messages keep their order
        return out


class PerDeviceSink:
    """One paho MQTT 5 client per device, all driven by the caller's thread through `pump()`."""

    def __init__(self, url: MqttUrl, *, client_prefix: str = "") -> None:
        self.url = url
        self.prefix = client_prefix
        self.sel = selectors.DefaultSelector()
        self.clients: dict[str, mqtt.Client] = {}
        self.devices: dict[str, Device] = {}
        self.frozen: set[str] = set()
        self.retry_at: dict[str, float] = {}
        self.backoff: dict[str, float] = {}
        self.fatal: str | None = None
        self.closing = False
        self.sim_time = 0.0
        self._last_misc = time.monotonic()
        self.published = 0

    # -- paho external-loop hooks
    def _sock_open(self, client: mqtt.Client, userdata: object, sock: object) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.register(sock, selectors.EVENT_READ, client)  # type: ignore[arg-type]

    def _sock_close(self, client: mqtt.Client, userdata: object, sock: object) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.unregister(sock)  # type: ignore[arg-type]

    def _want_write(self, client: mqtt.Client, userdata: object, sock: object) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.modify(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, client)  # type: ignore[arg-type]

    def _no_write(self, client: mqtt.Client, userdata: object, sock: object) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.sel.modify(sock, selectors.EVENT_READ, client)  # type: ignore[arg-type]

    def attach(self, device: Device, t: float) -> None:
        """Create the device's client (last will: retained `offline`) and connect it."""
        dev_id = device.device_id
        # MQTT 5 unless the settings say the broker only speaks 3.1.1 (FLEET_MQTT_PROTOCOL)
        proto = mqtt.MQTTv311 if getattr(self.url, "protocol", "5") == "3.1.1" else mqtt.MQTTv5
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.prefix + dev_id, protocol=proto)
        self.url.configure(c)
        c.will_set(device.topics[STATUS], b"offline", qos=1, retain=True)
        c.max_inflight_messages_set(50)
        c.on_socket_open = self._sock_open
        c.on_socket_close = self._sock_close
        c.on_socket_register_write = self._want_write
        c.on_socket_unregister_write = self._no_write

        def on_connect(client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
            try:
                if reason_code.is_failure:
                    log.error("device %s: connect refused: %s", dev_id, reason_code)
                    if reason_code.value in FATAL_CONNACK:
                        self.fatal = str(reason_code)
                    return
                self.backoff.pop(dev_id, None)
                device.on_connected(self.sim_time)
            except Exception:  # never let an exception escape a paho callback
                log.exception("device %s: on_connect failed", dev_id)

        def on_disconnect(client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
            device.on_disconnected()
            if dev_id not in self.frozen and self.fatal is None and not self.closing:
                delay = self.backoff.get(dev_id, RECONNECT_MIN_S)
                self.backoff[dev_id] = min(delay * 2, RECONNECT_MAX_S)
                self.retry_at[dev_id] = time.monotonic() + delay

        c.on_connect = on_connect
        c.on_disconnect = on_disconnect
        self.clients[dev_id] = c
        self.devices[dev_id] = device
        try:
            c.connect(self.url.host, self.url.port, keepalive=KEEPALIVE_S)
        except OSError as exc:
            log.warning("device %s: cannot connect (%s); retrying", dev_id, exc)
            self.retry_at[dev_id] = time.monotonic() + RECONNECT_MIN_S

    def publish(self, device: Device, kind: str, payload: bytes, t: float, qos: int, retain: bool) -> None:
        self.clients[device.device_id].publish(device.topics[kind], payload, qos=qos, retain=retain)
        self.published += 1

    def go_silent(self, device: Device, t: float) -> None:
        """Stop servicing the connection without closing it: the broker fires the will after 1.5 × keep-alive."""
        dev_id = device.device_id
        self.frozen.add(dev_id)
        device.on_disconnected()
        sock = self.clients[dev_id].socket()
        if sock is not None:
            self._sock_close(self.clients[dev_id], None, sock)

    def come_back(self, device: Device, t: float) -> None:
        """Reconnect (a fresh TCP connection; the broker takes over the old session)."""
        dev_id = device.device_id
        self.frozen.discard(dev_id)
        self._reconnect(dev_id)

    def _reconnect(self, dev_id: str) -> None:
        self.retry_at.pop(dev_id, None)
        try:
            self.clients[dev_id].reconnect()
        except OSError as exc:
            delay = self.backoff.get(dev_id, RECONNECT_MIN_S)
            self.backoff[dev_id] = min(delay * 2, RECONNECT_MAX_S)
            self.retry_at[dev_id] = time.monotonic() + delay
            log.debug("device %s: reconnect failed: %s", dev_id, exc)

    def abort(self, device_id: str) -> None:
        """Drop the TCP connection without DISCONNECT (the broker publishes the will at once)."""
        c = self.clients[device_id]
        sock = c.socket()
        if sock is not None:
            self.frozen.add(device_id)
            self._sock_close(c, None, sock)
            sock.close()  # type: ignore[union-attr]
            self.devices[device_id].on_disconnected()

    def pump(self, until: float) -> None:
        """Service every socket until the monotonic time `until` (at least one pass)."""
        sel = self.sel
        while True:
            timeout = until - time.monotonic()
            for key, mask in sel.select(max(0.0, min(timeout, 0.5))):
                c: mqtt.Client = key.data
                try:
                    if mask & selectors.EVENT_READ:
                        c.loop_read()
                    if mask & selectors.EVENT_WRITE:
                        c.loop_write()
                except Exception:
                    log.exception("mqtt socket error")
            now = time.monotonic()
            if now - self._last_misc >= 1.0:
                self._last_misc = now
                for dev_id, c in self.clients.items():
                    if dev_id not in self.frozen:
                        c.loop_misc()  # keep-alive pings and lost-connection detection
                for dev_id, due in list(self.retry_at.items()):
                    if due <= now and dev_id not in self.frozen and not self.closing:
                        self._reconnect(dev_id)
            if now >= until:
                return

    def connected_count(self) -> int:
        return sum(1 for d in self.devices.values() if d.connected)

    def close(self, t: float) -> None:
        """Clean shutdown: every device announces `offline` (retained), then disconnects."""
        self.closing = True
        self.retry_at.clear()
        live = [
            (c, c.publish(self.devices[d].topics[STATUS], b"offline", qos=1, retain=True))
            for d, c in self.clients.items()
            if d not in self.frozen and self.devices[d].connected
        ]
        # wait for the PUBACKs so no sign-off is cut short by the DISCONNECT
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and not all(info.is_published() for _, info in live):
            self.pump(time.monotonic() + 0.05)
        for c, _ in live:
            c.disconnect()
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and any(c.socket() is not None for c in self.clients.values()):
            self.pump(time.monotonic() + 0.05)
        for c in self.clients.values():
            sock = c.socket()
            if sock is not None:
                self._sock_close(c, None, sock)
                sock.close()  # type: ignore[union-attr]
        self.sel.close()


class SharedSink:
    """One MQTT connection publishing for every device (for load); last wills emulated."""

    def __init__(self, url: MqttUrl, *, client_id: str = "fleet-simulator") -> None:
        self.conn = MqttConnection(url, client_id, max_inflight=1000)
        self.devices: dict[str, Device] = {}
        self.sim_time = 0.0
        self._wills: dict[str, float] = {}
        self.published = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        self.conn.start()

    def attach(self, device: Device, t: float) -> None:
        self.devices[device.device_id] = device
        device.on_connected(t)

    def publish(self, device: Device, kind: str, payload: bytes, t: float, qos: int, retain: bool) -> None:
        self.conn.client.publish(device.topics[kind], payload, qos=qos, retain=retain)
        self.published += 1

    def go_silent(self, device: Device, t: float) -> None:
        device.on_disconnected()
        self._wills[device.device_id] = t + WILL_AFTER_S

    def come_back(self, device: Device, t: float) -> None:
        if self._wills.pop(device.device_id, None) is not None:
            self.conn.client.publish(device.topics[STATUS], b"offline", qos=1, retain=True)
        device.on_connected(t)

    def pump(self, until: float) -> None:
        for dev_id, due in list(self._wills.items()):
            if due <= self.sim_time:
                del self._wills[dev_id]
                self.conn.client.publish(self.devices[dev_id].topics[STATUS], b"offline", qos=1, retain=True)
        delay = until - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def connected_count(self) -> int:
        return sum(1 for d in self.devices.values() if d.connected) if self.conn.connected.is_set() else 0

    def close(self, t: float) -> None:
        infos = [
            self.conn.client.publish(d.topics[STATUS], b"offline", qos=1, retain=True)
            for d in self.devices.values()
            if d.connected
        ]
        deadline = time.monotonic() + 5.0
        for info in infos:  # let the sign-offs reach the broker before disconnecting
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(max(0.0, deadline - time.monotonic()))
        self.conn.stop()
