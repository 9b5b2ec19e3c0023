"""One real 2-worker LocalCluster per test process, shared by the dask tests (starts in ~3 s).

Worker processes (not threads), so what the tests check (pickling of the kernel's inputs,
partition-local state) is what a real cluster does.
"""

from __future__ import annotations

import atexit
import functools
from typing import Any


@functools.cache
def shared_client() -> Any:
    """A ``distributed.Client`` on LocalCluster(n_workers=2, threads_per_worker=1, processes)."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        memory_limit="1GiB",
        dashboard_address=":0",  # any free port: several clusters may run at once
    )
    client = Client(cluster)

    def close() -> None:
        client.close()
        cluster.close()

    atexit.register(close)
    return client
