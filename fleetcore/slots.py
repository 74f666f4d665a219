"""Stable client ids for interchangeable workers on a shared subscription: a client id template with `{slot}`.

A worker's client id is its persistent MQTT session. Brokers keep a persistent session that belongs to a shared
subscription group a member of the group while it is offline (Mosquitto, and EMQX without re-dispatch), so they
go on queueing its share of the stream for it until the session expires. A worker whose id changes on every
start (a container id) leaves a session behind at every restart, and that session takes 1/N of the messages into
a queue nobody reads.

With `{slot}` in the configured client id the worker claims the lowest free slot number instead: a PostgreSQL
advisory lock held on a connection of its own for as long as it runs. A worker started after another stopped takes
the freed slot, resumes that session and judges what was queued for it meanwhile. The lock goes with the
connection, so a crashed worker's slot is free again at once.

One scheme for every kind of worker (ingest, monitor), each with its own lock namespace; kept in the shared base
so a domain never imports another domain.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import zlib

import psycopg

from fleetcore.logfmt import kv

log = logging.getLogger(__name__)

PLACEHOLDER = "{slot}"
MAX_SLOTS = 1000
# How often the lease connection is checked; a lost connection is re-established and the same slot re-locked.
CHECK_EVERY_S = 5.0
RETRY_S = 2.0


def lock_key(namespace: str, template: str) -> int:
    """The advisory lock's first key: one namespace per worker kind and client id template (signed 32-bit)."""
    return zlib.crc32(f"{namespace}:{template}".encode()) - 2**31


def _try_lock(conn: psycopg.Connection, key: int, slot: int) -> bool:
    """Take the slot's advisory lock on this connection if it is free (held until the connection closes)."""
    row = conn.execute("SELECT pg_try_advisory_lock(%s, %s)", (key, slot)).fetchone()
    return bool(row and row[0])


class StoppedBeforeClaim(Exception):
    """The worker was told to stop while it waited for the database to claim a slot."""


class SlotLease:
    """Holds one slot of a client id template for as long as the worker runs."""

    def __init__(self, url: str, template: str, stop: threading.Event, *, namespace: str) -> None:
        if PLACEHOLDER not in template:
            raise ValueError(f"client id {template!r} has no {PLACEHOLDER}")
        self.url = url
        self.template = template
        self.namespace = namespace
        self.key = lock_key(namespace, template)
        self.stop = stop
        self.slot: int | None = None
        self._conn: psycopg.Connection | None = None
        self._watch: threading.Thread | None = None
        self._released = threading.Event()

    def _connect(self) -> psycopg.Connection:
        """The lease's own connection: the advisory lock lives exactly as long as it does."""
        return psycopg.connect(self.url, autocommit=True, connect_timeout=5, application_name=self.namespace)

    @property
    def client_id(self) -> str:
        if self.slot is None:
            raise RuntimeError("no slot claimed")
        return self.template.replace(PLACEHOLDER, str(self.slot))

    def claim(self) -> str:
        """Lock the lowest free slot (retrying while the database is unreachable); the client id it gives."""
        while not self.stop.is_set():
            try:
                conn = self._connect()
            except psycopg.OperationalError as exc:
                kv(log, logging.WARNING, "slot_db_unavailable", error=str(exc).strip().splitlines()[0][:200])
                self.stop.wait(RETRY_S)
                continue
            # one statement per slot: a lock taken in a WHERE clause can be taken for rows a LIMIT then drops
            slot = next((n for n in range(1, MAX_SLOTS + 1) if _try_lock(conn, self.key, n)), None)
            if slot is None:
                conn.close()
                raise RuntimeError(f"all {MAX_SLOTS} slots of {self.template!r} are taken")
            self.slot, self._conn = slot, conn
            kv(log, logging.INFO, "slot_claimed", slot=self.slot, client_id=self.client_id)
            self._watch = threading.Thread(target=self._keep, name=f"{self.namespace}-lease", daemon=True)
            self._watch.start()
            return self.client_id
        raise StoppedBeforeClaim

    def _keep(self) -> None:
        """Re-lock the same slot if the lease connection is lost; stop the worker if another one took it meanwhile."""
        while not self._released.wait(CHECK_EVERY_S):
            conn = self._conn
            try:
                if conn is not None and not conn.closed:
                    conn.execute("SELECT 1")
                    continue
            except psycopg.Error:
                pass
            with contextlib.suppress(Exception):
                if conn is not None:
                    conn.close()
            try:
                conn = self._connect()
            except psycopg.OperationalError:
                self._conn = None
                continue  # still down: try again at the next check
            if self.slot is None or not _try_lock(conn, self.key, self.slot):
                conn.close()
                self._conn = None
                kv(log, logging.ERROR, "slot_lost", slot=self.slot, client_id=self.client_id)
                self.stop.set()  # two workers on one client id would keep taking the session from each other
                return
            self._conn = conn
            kv(log, logging.INFO, "slot_reclaimed", slot=self.slot)

    def release(self) -> None:
        self._released.set()
        if self._watch is not None:
            self._watch.join(10)
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
