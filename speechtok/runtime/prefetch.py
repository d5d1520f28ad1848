"""Run an iterator ahead in a background thread, so that producing item n + 1 overlaps consuming item n.

Worth it when producing releases the GIL (libsndfile decoding, soxr resampling, numpy) and the consumer's
threads leave gaps (a model's serial stretches): in-process reading then costs little wall time, with none of
the start-up and transfer cost of worker processes.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def prefetch(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """Yield what `items` yields, in order, up to `depth` items ahead. An exception raised while producing is
    re-raised here, at the item it replaced; closing the generator early stops the thread after its current item."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry) -> bool:
        while not stop.is_set():  # the consumer may have gone: never block for good
            try:
                slots.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((_DONE, None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
            put((_DONE, e))

    thread = threading.Thread(target=produce, name="speechtok-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = slots.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
