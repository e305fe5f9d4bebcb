"""read_ahead: the items of an iterator, made on a background thread, in order, errors in place."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from netpolgen.ingest.read_ahead import read_ahead


def test_items_come_in_order_and_from_another_thread() -> None:
    threads: set[int] = set()

    def numbers() -> Iterator[int]:
        for number in range(200):
            threads.add(threading.get_ident())
            yield number

    assert list(read_ahead(numbers(), depth=3)) == list(range(200))
    assert threads and threading.get_ident() not in threads


def test_an_error_comes_after_every_item_made_before_it() -> None:
    def failing() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("broken at 3")

    seen = []
    with pytest.raises(ValueError, match="broken at 3"):
        for item in read_ahead(failing()):
            seen.append(item)
    assert seen == [1, 2]


def test_the_producer_stays_at_most_depth_plus_one_ahead() -> None:
    made = []

    def counting() -> Iterator[int]:
        for number in range(100):
            made.append(number)
            yield number

    items = read_ahead(counting(), depth=2)
    assert next(items) == 0
    time.sleep(0.3)  # time for the thread to run as far ahead as it may
    # One handed over, two waiting in the queue, one made and waiting for room.
    assert len(made) <= 4
    items.close()


def test_stopping_early_stops_the_thread_and_closes_the_iterator() -> None:
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            number = 0
            while True:
                yield number
                number += 1
        finally:
            closed.set()

    before = threading.active_count()
    items = read_ahead(endless())
    assert [next(items) for _ in range(5)] == [0, 1, 2, 3, 4]
    items.close()
    assert closed.is_set()
    assert threading.active_count() == before


def test_an_error_in_the_consumer_also_stops_the_thread() -> None:
    before = threading.active_count()

    def consume() -> None:
        for item in read_ahead(iter(range(1000))):
            if item == 10:
                raise RuntimeError("consumer gave up")

    with pytest.raises(RuntimeError):
        consume()
    assert threading.active_count() == before


def test_an_empty_iterator_ends_at_once() -> None:
    assert list(read_ahead(iter([]))) == []
