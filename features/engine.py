"""Which engine runs the data, features, training and scoring stages, and the Dask client.

``engine: local`` (the default) is the numpy / pandas code in one process; ``engine: dask``
runs the same functions per partition on a Dask cluster. The ``dask`` section says where:
``scheduler_address: null`` starts a ``LocalCluster`` (``n_workers`` processes of
``threads_per_worker`` threads, ``memory_limit`` each) and closes it on exit; an address (or the
``DASK_SCHEDULER_ADDRESS`` environment variable, which wins, like ``MLFLOW_TRACKING_URI``)
connects to a running scheduler and leaves it running. Dask is imported only inside
:func:`dask_client`, so the local engine never pays for it. The engines themselves (what each
stage runs on them) are `pipelines.engines`, built from this config.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from data.params import OneOf, Range, build_config, check_value, require

logger = logging.getLogger(__name__)

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
ENGINES: tuple[str, ...] = ("local", "dask")
_SIZE = re.compile(r"auto|\d+(\.\d+)?\s*([kKMGT]i?B|B)?")


@dataclass(frozen=True)
class DaskConfig:
    """``params.yaml`` section ``dask``: the cluster and how the data is cut into partitions."""

    scheduler_address: str | None = None  # null: start a LocalCluster with the settings below
    n_workers: Annotated[int, Range(1, 256, integer=True)] = 2
    threads_per_worker: Annotated[int, Range(1, 64, integer=True)] = 1
    memory_limit: str = "4GiB"  # per worker (LocalCluster only); Dask's own size syntax
    # learners per partition of the event table (a learner's whole history is in one partition)
    learners_per_partition: Annotated[int, Range(1, 10_000_000, integer=True)] = 1000
    # learners per simulator shard (one parquet file each) when the dask engine simulates
    learners_per_shard: Annotated[int, Range(1, 10_000_000, integer=True)] = 1000

    def __post_init__(self) -> None:
        require(
            self.scheduler_address is None or bool(self.scheduler_address.strip()),
            "dask.scheduler_address",
            f"must be null or an address such as tcp://host:8786, got {self.scheduler_address!r}",
        )
        # checked without importing dask (the local engine never needs it)
        require(
            _SIZE.fullmatch(self.memory_limit.strip()) is not None,
            "dask.memory_limit",
            f"must be a size such as 4GiB, 512MB or auto, got {self.memory_limit!r}",
        )

    def address(self) -> str | None:
        """The scheduler to connect to: ``DASK_SCHEDULER_ADDRESS`` first, then the params."""
        env = os.environ.get(SCHEDULER_ENV, "").strip()
        return env or self.scheduler_address


@dataclass(frozen=True)
class EngineConfig:
    """The top-level ``engine`` switch and the ``dask`` section, validated together."""

    engine: Literal["local", "dask"] = "local"
    dask: DaskConfig = field(default_factory=DaskConfig)


def engine_config(params: Mapping[str, Any], where: str = "params.yaml") -> EngineConfig:
    """Build the :class:`EngineConfig` from the whole params mapping (missing keys: defaults).

    Errors name the key as the other sections do: ``params.yaml:engine: must be one of
    ['local', 'dask'], got 'spark'``, ``params.yaml:dask.n_workers: ...``.
    """
    engine = check_value(
        Annotated[str, OneOf(ENGINES)], params.get("engine", "local"), f"{where}:engine"
    )
    section = params.get("dask")
    dask = DaskConfig() if section is None else build_config(DaskConfig, section, f"{where}:dask")
    return EngineConfig(engine=engine, dask=dask)


@contextmanager
def dask_client(cfg: DaskConfig) -> Iterator[Any]:
    """A ``distributed.Client``: connected to the configured scheduler, or to a LocalCluster
    started here (and closed on exit, also on errors).

    Worker processes (not threads) for a LocalCluster, so the numpy kernel runs in parallel
    and each worker's memory limit is enforced the way it is on a real cluster.
    """
    from distributed import Client, LocalCluster

    address = cfg.address()
    if address:
        logger.info("dask: connecting to scheduler %s", address)
        client = Client(address)
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(
        n_workers=cfg.n_workers,
        threads_per_worker=cfg.threads_per_worker,
        memory_limit=cfg.memory_limit,
        processes=True,
        dashboard_address=":0",  # any free port: several clusters may run at once
    )
    client = Client(cluster)
    logger.info(
        "dask: LocalCluster of %d worker(s) x %d thread(s), %s each",
        cfg.n_workers,
        cfg.threads_per_worker,
        cfg.memory_limit,
    )
    try:
        yield client
    finally:
        client.close()
        cluster.close()
