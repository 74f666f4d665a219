"""QoS 1 publishing whose broker acknowledgement the caller can wait for, from a thread or from asyncio.

The vendor message is acknowledged (to the broker for Teltonika, to the terminal for JT/T 808) only after every
message it became was PUBACKed, so a crash between the two means a redelivery, never a loss; redelivery is
harmless because the translation is deterministic (gateways.common).

Two ways to drive the connection: `start()` runs paho's own network thread (the Teltonika worker, which waits
from a thread), `astart()` drives paho from the caller's asyncio event loop through paho's external-loop API (the
JT/T 808 server). On the event loop a PUBACK is read and resolves its waiter in the same thread: no second thread
to wake, no GIL handoff per report, which is what kept the p99 of the 5,000-terminal benchmark low on a loaded
machine (bench/jt808_results.md). Its cost: (re)connecting to the broker is a blocking TCP connect on the loop,
bounded by CONNECT_TIMEOUT_S.

In thread mode paho calls on_publish from its network thread, possibly before `publish()` has returned the message
id to us, so an acknowledgement that arrives first is parked in `_early` until its waiter registers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt

from fleetcore.mqtt import MqttConnection
from fleetcore.settings import MqttUrl

log = logging.getLogger(__name__)

# paho's own in-flight window: 0 = unlimited. With a limit paho queues what is beyond it and, on every PUBACK,
# scans every message it holds (Client._update_inflight), which is quadratic under a burst: measured, 5,000
# terminals sending at once drained at ~560 reports/s with a window of 1,000. The gateways bound what is in flight
# themselves: one frame per JT/T 808 terminal until its 0x8001, one batch of Teltonika messages at a time.
# Mosquitto 2.0 advertises a Receive Maximum (20 by default) but does not enforce it for QoS 1; a broker that
# does (disconnect 0x93) needs its limit above the fleet's terminal count.
MAX_INFLIGHT = 0

Waiter = Callable[[bool], None]
# On the event loop a (re)connect blocks the loop for at most this long (a broker host that does not answer).
CONNECT_TIMEOUT_S = 2.0
RECONNECT_MIN_S, RECONNECT_MAX_S = 1.0, 30.0


class AckedPublisher:
    """One MQTT connection; `publish()` returns a handle that completes when the broker acknowledged (or refused)."""

    def __init__(self, conn: MqttConnection) -> None:
        self.conn = conn
        conn.client.on_publish = self._on_publish
        self._lock = threading.Lock()
        self._waiters: dict[int, Waiter] = {}
        self._early: dict[int, bool] = {}
        self.refused = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._misc: asyncio.Task | None = None

    @classmethod
    def connect(cls, url: MqttUrl, client_id: str, **kwargs: object) -> AckedPublisher:
        """A publisher on a connection of its own (kwargs go to MqttConnection)."""
        kwargs.setdefault("max_inflight", MAX_INFLIGHT)
        return cls(MqttConnection(url, client_id, **kwargs))  # type: ignore[arg-type]

    def start(self, wait_s: float = 10.0) -> None:
        self.conn.start(wait_s)

    def stop(self) -> None:
        self.conn.stop()

    # ---- driven by an asyncio event loop (paho's external-loop API)

    async def astart(self, wait_s: float = 10.0) -> None:
        """Connect with paho driven by the running event loop; wait up to wait_s for the first CONNACK."""
        loop = asyncio.get_running_loop()
        self._loop, self._loop_thread = loop, threading.get_ident()
        c = self.conn.client
        c.connect_timeout = CONNECT_TIMEOUT_S
        c.on_socket_open = lambda client, userdata, sock: self._watch_socket(sock)
        c.on_socket_close = lambda client, userdata, sock: self._forget_socket(sock)
        c.on_socket_register_write = lambda client, userdata, sock: loop.add_writer(
            sock, self._loop_call, client.loop_write
        )
        c.on_socket_unregister_write = lambda client, userdata, sock: self._stop_writing(sock)
        self._connect(first=True)
        self._misc = loop.create_task(self._misc_loop())
        deadline = time.monotonic() + wait_s
        while not self.connected and time.monotonic() < deadline and not self.conn.fatal_error:
            await asyncio.sleep(0.02)
        if self.conn.fatal_error:
            await self.astop()
            raise ConnectionError(f"MQTT broker refused the connection: {self.conn.fatal_error}")
        if not self.connected:
            log.warning("mqtt not connected after %.0fs; retrying in the background", wait_s)

    def _loop_call(self, fn: Callable[[], object]) -> None:
        try:
            fn()
        except Exception:  # a paho error must not break the event loop's reader/writer callbacks
            log.exception("mqtt socket error")

    def _watch_socket(self, sock: object) -> None:
        assert self._loop is not None
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # type: ignore[attr-defined]
        self._loop.add_reader(sock, self._loop_call, self.conn.client.loop_read)  # type: ignore[arg-type]

    def _stop_writing(self, sock: object) -> None:
        assert self._loop is not None
        self._loop.remove_writer(sock)  # type: ignore[arg-type]

    def _forget_socket(self, sock: object) -> None:
        assert self._loop is not None
        self._loop.remove_reader(sock)  # type: ignore[arg-type]
        self._loop.remove_writer(sock)  # type: ignore[arg-type]

    def _connect(self, first: bool = False) -> bool:
        c, conn = self.conn.client, self.conn
        try:
            if not first:
                c.reconnect()
            elif conn.v5:
                c.connect(
                    conn.url.host,
                    conn.url.port,
                    keepalive=30,
                    clean_start=conn.clean_start,
                    properties=conn.connect_properties(),
                )
            else:
                c.connect(conn.url.host, conn.url.port, keepalive=30)
            return True
        except OSError as exc:
            log.warning("mqtt connect to %s:%s failed: %s", conn.url.host, conn.url.port, exc)
            return False

    async def _misc_loop(self) -> None:
        """Keep-alive pings and lost-connection checks every second; reconnect with back-off."""
        c = self.conn.client
        delay, retry_at = RECONNECT_MIN_S, 0.0
        while True:
            await asyncio.sleep(1.0)
            if self.conn.fatal_error:
                continue
            if c.socket() is not None:
                c.loop_misc()
                delay = RECONNECT_MIN_S
            elif time.monotonic() >= retry_at and not self._connect():
                retry_at = time.monotonic() + delay
                delay = min(delay * 2, RECONNECT_MAX_S)

    async def astop(self) -> None:
        """Stop the keep-alive task (it would reconnect), then DISCONNECT and let it leave."""
        if self._misc is not None:
            self._misc.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._misc
        with contextlib.suppress(Exception):
            self.conn.client.disconnect()
        await asyncio.sleep(0.05)

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
        fut: asyncio.Future[bool | None] = loop.create_future()  # None: timed out
        state = {"left": len(messages), "ok": True}
        lock = threading.Lock()

        def resolve(ok: bool | None) -> None:
            if not fut.done():
                fut.set_result(ok)

        def waiter(ok: bool) -> None:
            with lock:
                state["left"] -= 1
                state["ok"] = state["ok"] and ok
                final = state["left"] == 0 or not ok
                result = bool(state["ok"])
            if final:
                if threading.get_ident() == self._loop_thread:
                    resolve(result)  # paho runs on this loop: the PUBACK was read in this thread
                else:
                    loop.call_soon_threadsafe(resolve, result)

        for topic, payload in messages:
            self._send(topic, payload, waiter, retain)
        # a timer handle instead of asyncio.wait_for, which wraps the future in more futures on every report
        timer = loop.call_later(timeout, resolve, None)
        try:
            result = await fut
        finally:
            timer.cancel()
        if result is None:
            self.forget(waiter)
            return False
        return result
