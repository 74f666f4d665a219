"""Acknowledgement order with several writers: PUBACKs in the order the PUBLISHes arrived (MQTT 5 §4.6)."""

from __future__ import annotations

import random

from ingest.batch import BatchStats
from ingest.pipeline import AckSequencer


def _batches(n: int) -> list[list[int]]:
    return [[i * 10 + k for k in range(3)] for i in range(n)]


def test_batches_committed_out_of_order_are_released_in_take_order() -> None:
    released: list[list[int]] = []
    seq = AckSequencer(lambda batch, st: released.append(batch))
    batches = _batches(50)
    order = list(range(50))
    random.Random(7).shuffle(order)
    for n in order:
        seq.finished(n, batches[n], BatchStats(messages=3))
        # whatever has been released is always a prefix of the take order
        assert released == batches[: len(released)]
    assert released == batches
    assert seq.held() == 0 and not seq.blocked


def test_a_batch_given_up_blocks_every_later_one() -> None:
    released: list[list[int]] = []
    seq = AckSequencer(lambda batch, st: released.append(batch))
    b = _batches(5)
    seq.finished(1, b[1], BatchStats())
    seq.finished(0, b[0], BatchStats())
    seq.finished(3, b[3], BatchStats())  # committed, but after the one given up: never acknowledged
    seq.finished(2, b[2], None)  # the worker stopped while the database was down
    seq.finished(4, b[4], BatchStats())
    assert released == [b[0], b[1]]
    assert seq.blocked
    assert seq.held() == 9  # batches 2, 3 and 4 (3 messages each) stay unacknowledged: redelivered, deduped
