"""Scale a scan out over a Dask cluster (optional: ``pip install 'consent-matcher[dask]'``).

Only detection and embedding go to the cluster, through the standard
``concurrent.futures.Executor`` that ``Client.get_executor()`` gives: the same
code path as a local scan. Matching, deciding and writing stay with the one
database writer. Each worker process loads the face models once, on its first
task (:func:`matcher.faces.process_engine`). A task whose worker dies is run
again elsewhere by Dask (``retries``); a file that fails everywhere is recorded
as an error by the scan.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

RETRIES = 2


class DaskMissing(RuntimeError):
    pass


@contextlib.contextmanager
def dask_executor(address: str, local_workers: int) -> Iterator[tuple[object, int]]:
    """``(executor, threads)`` for the scheduler at ``address``, or a LocalCluster
    of ``local_workers`` single-threaded processes for ``address == "local"``."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise DaskMissing("--dask needs Dask: pip install 'consent-matcher[dask]'") from None
    cluster = None
    if address == "local":
        # Processes, one thread each: dlib's detector holds the GIL.
        cluster = LocalCluster(n_workers=local_workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    else:
        client = Client(address, timeout="30s")
    try:
        threads = sum(info.get("nthreads", 1) for info in client.scheduler_info()["workers"].values())
        yield client.get_executor(retries=RETRIES, pure=False), max(1, threads)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
