"""Where a scan's workers run: behind the standard :class:`concurrent.futures.Executor` interface.

A local process pool, an inline executor (the one-worker case of the same
code path), or a distributed one (:mod:`matcher.cluster`) all run the scan
the same way.
"""

from __future__ import annotations

import signal
from concurrent.futures import Executor, Future, ProcessPoolExecutor


class InlineExecutor(Executor):
    """Runs each task at once in this process: the one-worker case of the same code path."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # delivered through the future, like a pool would
            future.set_exception(exc)
        return future


def _start_worker() -> None:
    # Ctrl-C is handled by the scanning process, which stops the pool itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # One worker process per core: OpenCV's own threads (resizing, the face
    # proposal network) would only compete with the other workers.
    import cv2

    cv2.setNumThreads(1)


def make_executor(workers: int) -> Executor:
    """A pool of ``workers`` processes, or inline for one."""
    return InlineExecutor() if workers <= 1 else process_pool(workers)


def process_pool(workers: int) -> ProcessPoolExecutor:
    """``workers`` processes, started fresh (spawned: no state inherited), OpenCV single-threaded."""
    import multiprocessing

    return ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker
    )
