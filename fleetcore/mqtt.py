"""MQTT client construction with the hygiene every process needs (MQTT 5, paho 2.x)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from fleetcore.settings import MqttUrl

log = logging.getLogger(__name__)

# CONNACK reason codes after which retrying cannot help (MQTT 5 spec 3.2.2.2).
FATAL_CONNACK = {0x84, 0x85, 0x86, 0x87, 0x8C}


class MqttConnection:
    """A paho client that re-subscribes on every connect and stops retrying on bad credentials."""

    def __init__(
        self,
        url: MqttUrl,
        client_id: str,
        *,
        subscriptions: list[tuple[str, int]] | None = None,
        clean_start: bool = True,
        session_expiry_s: int = 0,
        manual_ack: bool = False,
        will: tuple[str, bytes, int, bool] | None = None,
        on_message: Callable[[mqtt.Client, object, mqtt.MQTTMessage], None] | None = None,
        max_inflight: int = 20,
        max_queued: int = 0,
        receive_maximum: int | None = None,
        client_class: type[mqtt.Client] = mqtt.Client,
    ) -> None:
        self.url = url
        self.subscriptions = subscriptions or []
        self.clean_start = clean_start
        self.session_expiry_s = session_expiry_s
        # MQTT 5 Receive Maximum: how many unacknowledged QoS 1/2 messages the broker may send us (flow control).
        self.receive_maximum = receive_maximum
        self.connected = threading.Event()
        self.fatal_error: str | None = None
        # MQTT 3.1.1 only for brokers without MQTT 5 (settings.mqtt_protocol); there the session flag is
        # "clean session" on the client and there are no CONNECT properties.
        self.v5 = getattr(url, "protocol", "5") != "3.1.1"
        self.client = client_class(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311,
            clean_session=None if self.v5 else clean_start,
            manual_ack=manual_ack,
        )
        url.configure(self.client)
        if will:
            topic, payload, qos, retain = will
            self.client.will_set(topic, payload, qos=qos, retain=retain)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(max_queued)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        if on_message is not None:
            self.client.on_message = _guard(on_message)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        try:
            if reason_code.is_failure:
                code = reason_code.value
                log.error("mqtt connect refused: %s", reason_code)
                if code in FATAL_CONNACK:
                    self.fatal_error = str(reason_code)
                    client.disconnect()
                return
            for topic, qos in self.subscriptions:
                client.subscribe(topic, qos=qos)
            self.connected.set()
            log.info(
                "mqtt connected to %s:%s (session present=%s)",
                self.url.host,
                self.url.port,
                flags.session_present,
            )
        except Exception:  # never let an exception escape a callback
            log.exception("error in on_connect")

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        self.connected.clear()
        if reason_code is not None and getattr(reason_code, "value", 0) != 0:
            log.warning("mqtt disconnected: %s", reason_code)

    def connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)
        if self.session_expiry_s:
            props.SessionExpiryInterval = self.session_expiry_s
        if self.receive_maximum:
            props.ReceiveMaximum = self.receive_maximum
        return props

    def start(self, wait_s: float = 10.0) -> None:
        """Connect in the background (network thread) and wait for the first CONNACK."""
        if self.v5:
            self.client.connect_async(
                self.url.host,
                self.url.port,
                keepalive=30,
                clean_start=self.clean_start,
                properties=self.connect_properties(),
            )
        else:
            self.client.connect_async(self.url.host, self.url.port, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(wait_s):
            if self.fatal_error:
                self.stop()
                raise ConnectionError(f"MQTT broker refused the connection: {self.fatal_error}")
            log.warning("mqtt not connected after %.0fs; retrying in the background", wait_s)

    def stop(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()

    def publish(
        self, topic: str, payload: bytes | str, qos: int = 1, retain: bool = False, timeout: float = 10.0
    ) -> bool:
        """Publish and, for QoS > 0, wait for the broker's acknowledgement."""
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if qos == 0:
            return info.rc == mqtt.MQTT_ERR_SUCCESS
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError):
            return False
        return info.is_published()


def _guard(fn: Callable[[mqtt.Client, object, mqtt.MQTTMessage], None]):
    def wrapper(client, userdata, message):  # noqa: ANN001
        try:
            fn(client, userdata, message)
        except Exception:
            log.exception("error handling message on %s", getattr(message, "topic", "?"))

    return wrapper
