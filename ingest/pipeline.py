"""After the queue: writer threads commit the batches the consumer takes, committed batches are released in the
order they were taken, and their messages are acknowledged, directly (vehicle_state per batch) or after the state
flush that covers them (coalesced, the "ingest-state" thread).

Writers may commit out of order, but PUBACKs go out in the order the PUBLISHes arrived (MQTT 5 §4.6): `AckSequencer`
holds a committed batch until every earlier one is released. A message is acknowledged only on the connection that
delivered it (`acks_for`).
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from fleetcore.logfmt import kv
from ingest.batch import BatchStats, Message
from ingest.state import PendingState, StateFlusher
from ingest.writer import BatchWriter

log = logging.getLogger(__name__)

# How often the worker logs a one-line summary.
STATS_EVERY_S = 10.0
# How long an idle state thread sleeps before it looks again (it is woken when work arrives).
STATE_IDLE_WAIT_S = 0.25

# A QoS 1 message waiting for its state flush: (packet id, connection epoch). Only these two numbers are held
# per message, not its payload: part of the worker's memory bound.
PendingAck = tuple[int, int]


@dataclass(slots=True)
class Delivery(Message):
    """A queued message with what acknowledging it needs: the packet id, the QoS, and the connection (epoch) it
    arrived on; `queued_at` (monotonic) starts its batch's age.

    A subclass of the writer's Message rather than a tuple around one: one object per message on the hot path
    (measured: a NamedTuple around a Message adds ~190 ns per message, ~2 % of the worker's CPU per message;
    this ~40 ns), and a batch goes to the writer as it is.
    """

    mid: int
    qos: int
    epoch: int
    queued_at: float


def acks_for(batch: Sequence[Delivery], epoch: int) -> list[int]:
    """The packet ids to acknowledge for a released batch: its QoS 1 messages that arrived on connection `epoch`.

    A message delivered on an earlier connection is redelivered by the broker on this one (same packet id);
    acking the old id now could ack a different, uncommitted message, so it is skipped.
    """
    return [d.mid for d in batch if d.qos and d.epoch == epoch]


def pending_acks(batch: Sequence[Delivery]) -> list[PendingAck]:
    """The acknowledgements a released batch leaves waiting for the next state flush (QoS 1 messages only)."""
    return [(d.mid, d.epoch) for d in batch if d.qos]


class AckSequencer:
    """Releases committed batches in the order they were taken from the queue.

    A batch waits here until every earlier one is released. A batch that was not committed (the worker was stopped
    while the database was down) blocks every later one for good: they are not acknowledged, the broker delivers
    them again, and storage dedupes what was committed.
    """

    def __init__(self, release: Callable[[list, BatchStats], None]) -> None:
        self._release = release
        self._lock = threading.Lock()
        self._next = 0
        self._done: dict[int, tuple[list, BatchStats | None]] = {}
        self.blocked = False

    def finished(self, n: int, batch: list, st: BatchStats | None) -> None:
        """Batch number `n` is done: `st` when committed, None when given up."""
        with self._lock:
            self._done[n] = (batch, st)
            while not self.blocked and self._next in self._done:
                b, s = self._done[self._next]
                if s is None:
                    self.blocked = True
                    break
                del self._done[self._next]
                self._next += 1
                self._release(b, s)

    def held(self) -> int:
        """Messages in finished batches that are waiting (or blocked) here."""
        with self._lock:
            return sum(len(b) for b, _ in self._done.values())


class Pipeline:
    """The writer threads, the ordered release of committed batches, and (coalesced) the state thread.

    `cond` is the consumer's queue condition: `busy()` and `submit()` are called by the thread that takes batches,
    and a writer that finishes notifies it. `send_acks` PUBACKs packet ids of connection `epoch()`; `status()`
    adds the consumer's fields to the periodic stats line.
    """

    def __init__(
        self,
        writers: list[BatchWriter],
        state: StateFlusher,
        *,
        cond: threading.Condition,
        stop: threading.Event,
        send_acks: Callable[[list[int]], int],
        epoch: Callable[[], int],
        status: Callable[[], dict[str, int]],
        coalesce: bool,
        state_flush_s: float,
        state_flush_messages: int,
    ) -> None:
        self.writers = writers
        self.state = state
        self.cond = cond
        self.stop = stop
        self._send_acks = send_acks
        self._epoch = epoch
        self._status = status
        self.coalesce = coalesce
        self.state_flush_s = state_flush_s
        self.state_flush_messages = state_flush_messages
        # vehicle_state coalesced over the committed batches, and the acknowledgements that wait for it (all
        # under self._state_cond)
        self._state_cond = threading.Condition()
        self._pending = PendingState()
        self._deferred: list[PendingAck] = []  # in arrival order
        self._deferred_since = 0.0  # when the oldest of them was committed
        self._flushing = False
        self._state_final = False  # set when the writers are done: flush what is left, then end
        # batches handed to writers and not yet finished (under self.cond); at most one per writer, so at most
        # len(writers) batches are out of the queue at a time: part of the memory bound
        self._writing = 0
        self._taken = 0
        # payload bytes of the messages received and not yet committed: the consumer adds what it queues, a writer
        # takes off what it committed (under `cond`); the consumer's network thread waits while it is at its bound
        self.inflight_bytes = 0
        self.error: BaseException | None = None
        self.totals: collections.Counter[str] = collections.Counter()
        self._window: collections.Counter[str] = collections.Counter()
        self._last_stats = time.monotonic()
        self._jobs: queue.SimpleQueue[tuple[int, list[Delivery]] | None] = queue.SimpleQueue()
        self.sequencer = AckSequencer(self._release)
        self._threads = [
            threading.Thread(target=self._write_loop, args=(w,), name=f"ingest-writer-{i}", daemon=True)
            for i, w in enumerate(writers)
        ]
        self._state_thread = threading.Thread(target=self._state_loop, name="ingest-state", daemon=True)

    # -- the thread that takes batches --------------------------------------------------------------------

    def start(self) -> None:
        for t in self._threads:
            t.start()
        if self.coalesce:
            self._state_thread.start()
        self._last_stats = time.monotonic()

    def busy(self) -> bool:
        """Every writer has a batch (call under `cond`)."""
        return self._writing >= len(self.writers)

    def submit(self, batch: list[Delivery]) -> None:
        """Hand a batch to the next free writer (there is one: `busy()` was False)."""
        with self.cond:
            self._writing += 1  # only the taking thread adds, so its check of busy() still holds
            self._jobs.put((self._taken, batch))
            self._taken += 1

    @property
    def blocked(self) -> bool:
        """A batch was given up uncommitted: nothing after it may be acknowledged."""
        return self.sequencer.blocked

    def held(self) -> int:
        """Messages in finished batches not yet released (or never to be)."""
        return self.sequencer.held()

    def idle(self) -> bool:
        """No batch being written, no state or acknowledgement waiting (call under `cond`)."""
        with self._state_cond:
            state_done = not self._deferred and not self._pending.vehicles and not self._flushing
        return self._writing == 0 and state_done

    def finish(self) -> bool:
        """Let the writers commit what they were handed, then flush the state; whether no state is left over."""
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:  # the batches handed out are committed (or given up when stopped) first
            t.join(None if self.error is None else 5)
        with self._state_cond:  # then the state of what was committed, and its acknowledgements
            self._state_final = True
            self._state_cond.notify_all()
        if self.coalesce:
            self._state_thread.join(None if self.error is None else 5)
        state_done = not self._state_thread.is_alive() and not self._deferred and not self._pending.vehicles
        self.totals.update(self._window)
        self._window.clear()
        return state_done

    def close(self) -> None:
        for w in (*self.writers, self.state):
            w.close()

    # -- writer threads -----------------------------------------------------------------------------------

    def _write_loop(self, writer: BatchWriter) -> None:
        """One writer thread: commit the batches it is handed on its own connection, in any order."""
        try:
            while True:
                job = self._jobs.get()
                if job is None:
                    return
                n, batch = job
                nbytes = sum([len(d.payload) for d in batch])
                try:
                    st = writer.commit(batch, self.stop)
                    self.sequencer.finished(n, batch, st)
                finally:
                    with self.cond:
                        self._writing -= 1
                        self.inflight_bytes -= nbytes
                        self.cond.notify_all()  # wakes the dispatcher waiting for a free writer (and the reader)
        except BaseException as exc:  # a bug, not a database problem (commit retries those): the worker stops
            self.error = exc
            with self.cond:
                self.cond.notify_all()

    def _release(self, batch: list[Delivery], st: BatchStats) -> None:
        """A committed batch whose turn has come (the sequencer calls this in take order). Per-batch state: its
        messages are acknowledged now. Coalesced: its samples join the pending state, its messages the
        acknowledgements that wait for the next state flush."""
        with self._state_cond:
            window = self._window
            for k in ("messages", "readings_stored", "duplicates", "rejected", "quarantined"):
                window[k] += getattr(st, k)
            if self.coalesce:
                idle = not self._deferred and not self._pending.vehicles
                if idle:
                    self._deferred_since = time.monotonic()
                self._pending.add(st.state_rows)
                self._pending.messages += len(batch)
                self._deferred.extend(pending_acks(batch))
                if idle or self._pending.messages >= self.state_flush_messages:
                    self._state_cond.notify_all()  # the state thread (re)computes when the next flush is due
                return
        self._count_acked(self._send_acks(acks_for(batch, self._epoch())))

    # -- the state thread ---------------------------------------------------------------------------------

    def _state_loop(self) -> None:
        """The state thread: write the pending state when due, then acknowledge the messages it covers."""
        cond = self._state_cond
        try:
            while True:
                with cond:
                    while True:
                        has_work = bool(self._deferred or self._pending.vehicles)
                        if not has_work and self._state_final:
                            return
                        if not has_work:
                            cond.wait(STATE_IDLE_WAIT_S)
                            continue
                        wait = self._deferred_since + self.state_flush_s - time.monotonic()
                        if (
                            wait <= 0
                            or self._state_final
                            or self._pending.messages >= self.state_flush_messages
                        ):
                            break
                        cond.wait(wait)
                    pending, deferred = self._pending, self._deferred
                    self._pending, self._deferred = PendingState(), []
                    self._flushing = True
                try:
                    if pending.vehicles and self.state.commit(pending, self.stop) is None:
                        # stopped while the database is down: nothing more is acknowledged; the broker delivers
                        # these messages again and the state is rebuilt from them
                        kv(log, logging.WARNING, "state_not_written", unacknowledged=len(deferred))
                        return
                    epoch = self._epoch()
                    acked = self._send_acks([mid for mid, ep in deferred if ep == epoch])
                finally:
                    with cond:
                        self._flushing = False
                self._count_acked(acked)
        except BaseException as exc:  # a bug, not a database problem (StateFlusher.commit retries those)
            self.error = exc
            with self.cond:
                self.cond.notify_all()

    # -- stats --------------------------------------------------------------------------------------------

    def _count_acked(self, acked: int) -> None:
        with self._state_cond:
            window = self._window
            window["acked"] += acked
            now = time.monotonic()
            if now - self._last_stats >= STATS_EVERY_S:
                self._log_stats(window, now - self._last_stats)
                self.totals.update(window)
                window.clear()
                self._last_stats = now

    def _log_stats(self, window: collections.Counter, seconds: float) -> None:
        kv(
            log,
            logging.INFO,
            "ingest_stats",
            msgs_per_s=round(window["messages"] / seconds, 1),
            stored=window["readings_stored"],
            duplicates=window["duplicates"],
            rejected=window["rejected"],
            quarantined=window["quarantined"],
            **self._status(),
        )
