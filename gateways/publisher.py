"""QoS 1 publishing whose broker acknowledgement the caller can wait for, from a thread or from asyncio.

The vendor message is acknowledged (to the broker for Teltonika, to the terminal for JT/T 808) only after every
message it became was PUBACKed, so a crash between the two means a redelivery, never a loss; redelivery is
harmless because the translation is deterministic (gateways.common).

paho calls on_publish from its network thread, possibly before `publish()` has returned the message id to us,
so an acknowledgement that arrives first is parked in `_early` until its waiter registers.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt

from fleetcore.mqtt import MqttConnection
from fleetcore.settings import MqttUrl

log = logging.getLogger(__name__)

# In-flight QoS 1 publishes paho keeps open towards the broker: one per terminal frame in flight, so at 5,000
# terminals reporting every 10 s (500/s) and a millisecond round trip, tens are in flight; 1,000 leaves room for
# a broker stall of a second without queueing in paho.
MAX_INFLIGHT = 1000

Waiter = Callable[[bool], None]


class AckedPublisher:
    """One MQTT connection; `publish()` returns a handle that completes when the broker acknowledged (or refused)."""

    def __init__(self, conn: MqttConnection) -> None:
        self.conn = conn
        conn.client.on_publish = self._on_publish
        self._lock = threading.Lock()
        self._waiters: dict[int, Waiter] = {}
        self._early: dict[int, bool] = {}
        self.refused = 0

    @classmethod
    def connect(cls, url: MqttUrl, client_id: str, **kwargs: object) -> AckedPublisher:
        """A publisher on a connection of its own (kwargs go to MqttConnection)."""
        kwargs.setdefault("max_inflight", MAX_INFLIGHT)
        return cls(MqttConnection(url, client_id, **kwargs))  # type: ignore[arg-type]

    def start(self, wait_s: float = 10.0) -> None:
        self.conn.start(wait_s)

    def stop(self) -> None:
        self.conn.stop()

    @property
    def connected(self) -> bool:
        return self.conn.connected.is_set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:  # noqa: ANN001
        try:
            ok = not (reason_code is not None and getattr(reason_code, "is_failure", False))
            if not ok:
                self.refused += 1
                log.warning("broker refused publish %s: %s", mid, reason_code)
            with self._lock:
                waiter = self._waiters.pop(mid, None)
                if waiter is None:
                    self._early[mid] = ok
                    return
            waiter(ok)
        except Exception:  # never let an exception escape a paho callback
            log.exception("error in on_publish")

    def _send(self, topic: str, payload: bytes, waiter: Waiter, retain: bool = False) -> None:
        info = self.conn.client.publish(topic, payload, qos=1, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            # NO_CONN: paho queued it and sends it after the reconnect; anything else is final
            waiter(False)
            return
        with self._lock:
            early = self._early.pop(info.mid, None)
            if early is None:
                self._waiters[info.mid] = waiter
                return
        waiter(early)

    def forget(self, waiter: Waiter) -> None:
        """Drop a waiter that timed out (its acknowledgement, if it ever comes, is ignored)."""
        with self._lock:
            for mid, w in list(self._waiters.items()):
                if w is waiter:
                    del self._waiters[mid]

    # ---- from a thread

    def publish_all(self, messages: list[tuple[str, bytes]], timeout: float, retain: bool = False) -> bool:
        """Publish every message and wait until all are acknowledged; False on a refusal or the timeout."""
        if not messages:
            return True
        done = threading.Event()
        state = {"left": len(messages), "ok": True}
        lock = threading.Lock()

        def waiter(ok: bool) -> None:
            with lock:
                state["left"] -= 1
                state["ok"] = state["ok"] and ok
                if state["left"] == 0 or not ok:
                    done.set()

        for topic, payload in messages:
            self._send(topic, payload, waiter, retain)
        finished = done.wait(timeout)
        if not finished:
            self.forget(waiter)
        return finished and bool(state["ok"])

    # ---- from asyncio

    async def apublish_all(
        self, messages: list[tuple[str, bytes]], timeout: float, retain: bool = False
    ) -> bool:
        """The same for a coroutine: publish every message, await all acknowledgements (False on refusal/timeout)."""
        if not messages:
            return True
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        state = {"left": len(messages), "ok": True}
        lock = threading.Lock()

        def resolve(ok: bool) -> None:
            if not fut.done():
                fut.set_result(ok)

        def waiter(ok: bool) -> None:
            with lock:
                state["left"] -= 1
                state["ok"] = state["ok"] and ok
                final = state["left"] == 0 or not ok
                result = bool(state["ok"])
            if final:
                loop.call_soon_threadsafe(resolve, result)

        for topic, payload in messages:
            self._send(topic, payload, waiter, retain)
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            self.forget(waiter)
            return False
