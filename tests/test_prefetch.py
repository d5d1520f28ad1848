"""prefetch: same items in the same order, produced ahead in a thread; errors surface; early exit stops it."""

from __future__ import annotations

import threading
import time

import pytest

from speechtok.runtime.prefetch import prefetch


def test_same_items_in_order_and_produced_ahead():
    produced = []

    def items():
        for i in range(5):
            produced.append(i)
            yield i

    it = prefetch(items(), depth=2)
    assert next(it) == 0
    deadline = time.monotonic() + 10
    while len(produced) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert produced == [0, 1, 2, 3]  # one handed out, two queued, one waiting to be queued: no further
    assert list(it) == [1, 2, 3, 4]


def test_an_error_is_raised_at_the_item_it_replaced():
    def items():
        yield 1
        raise OSError("disk gone")

    it = prefetch(items())
    assert next(it) == 1
    with pytest.raises(OSError, match="disk gone"):
        next(it)


def test_closing_early_stops_the_thread():
    it = prefetch(iter(range(10**9)))
    assert next(it) == 0
    it.close()
    time.sleep(0.3)
    assert not any(t.name == "speechtok-prefetch" and t.is_alive() for t in threading.enumerate())
