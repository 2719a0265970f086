"""The server's face work: uploads observed in a small pool of worker processes, each request with a deadline.

One slow or hostile upload then holds one worker for at most its work
budget (:class:`matcher.media.WorkLimits`), never the others: requests keep
being answered while it runs. A request that cannot get a worker before its
deadline is told the server is busy.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Executor, TimeoutError

from matcher.executors import process_pool
from matcher.model import Observation
from matcher.observe import ScanOptions, observe_shipped

# How long a request may wait beyond the work budget of its file (a worker's start, queueing).
GRACE_SECONDS = 15.0


class ServerBusy(Exception):
    """No worker could take the upload before the request's deadline."""


class FaceWork:
    """``workers`` processes (0: in the request's own thread, one at a time: for tests and small sites)."""

    def __init__(self, workers: int, options: ScanOptions):
        self.workers, self.options = workers, options
        self._executor: Executor | None = None
        self._models = threading.Lock()  # this process's own face models: one user at a time
        self._starting = threading.Lock()

    def observe(self, label: str, data: bytes) -> Observation:
        """The upload's faces; :class:`ServerBusy` when the deadline passes first."""
        return self.run(observe_shipped, label, data, len(data), time.time_ns(), self.options)

    def run(self, work, *args):
        """``work(*args)`` in a worker (a module-level function: it is sent to another process)."""
        if not self.workers:
            return self.in_process(work, *args)
        future = self._pool().submit(work, *args)
        try:
            return future.result(timeout=(self.options.limits.seconds or 0) + GRACE_SECONDS)
        except TimeoutError:
            future.cancel()  # not started yet: it never will be
            raise ServerBusy() from None

    def in_process(self, work, *args):
        """``work(*args)`` with this process's face models, one request at a time (dlib's
        models are not shared between threads)."""
        with self._models:
            return work(*args)

    def _pool(self) -> Executor:
        with self._starting:
            if self._executor is None:
                self._executor = process_pool(self.workers)
            return self._executor

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
