"""Reading ahead: an iterator's next items made in a background thread while the consumer works on this one.

Parsing a chunk (polars, GIL released) then overlaps with validating the previous one, and validating
with writing Parquet; on two cores that is most of the difference between one core busy and two.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_DONE = object()


def read_ahead(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """``items`` as they come, with up to ``depth`` of them made ahead in a background thread.

    An exception in the producer is raised to the consumer at the item it failed on; a consumer that
    stops early stops the producer (at its next item), which closes ``items`` (a generator's files and
    threads are let go then, not whenever it is collected).
    """
    ready: queue.Queue[object] = queue.Queue(maxsize=max(depth, 1))
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        ready.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            ready.put(_Failure(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="assay-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item = ready.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                ready.get(timeout=0.1)
            except queue.Empty:
                pass
        worker.join()


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error
