"""The seam between the stages and the engine that runs them (``engine: local | dask``).

A stage does its own I/O and metrics and hands its engine the one step that runs differently,
as two implementations: ``engine.run(local_step, dask_step, *args)``. `LocalEngine` calls the
local one in this process; `DaskEngine` calls the Dask one with itself (its cluster settings and
`map`), so no stage branches on the engine's name. Each stage's Dask steps live in a module of
their own (`pipelines.dask_data`, `dask_features`, `dask_fit`, `dask_score`) that imports Dask only
inside its functions: a stage's import closure, which `tests/test_dvc_deps.py` holds equal to its
``dvc.yaml`` deps, takes in its own steps and never another stage's, so a change to one stage's
code does not rerun the others. Both engines write the same outputs (the stage tests compare
them on a real LocalCluster).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from features.engine import DaskConfig, dask_client, engine_config
from pipelines.common import load_params, stage_config

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class Engine(Protocol):
    """What a stage asks of its engine; ``name`` goes into the stages' metrics."""

    name: str

    def run(self, local: Callable[..., R], dask: Callable[..., R], *args: Any, **kw: Any) -> R:
        """The stage's step on this engine: ``local(*args, **kw)`` or ``dask(self, ...)``."""
        ...

    def map(self, fn: Callable[[T], R], items: Sequence[T], *, desc: str) -> list[R]:
        """``fn`` on every item (a part, a shard), results in the items' order."""
        ...


class LocalEngine:
    """``engine: local``: every step in this process, the stages' own code."""

    name = "local"

    def run(self, local: Callable[..., R], dask: Callable[..., R], *args: Any, **kw: Any) -> R:
        """The local step."""
        return local(*args, **kw)

    def map(self, fn: Callable[[T], R], items: Sequence[T], *, desc: str) -> list[R]:
        """One item after the other, with a progress bar."""
        from tqdm import tqdm

        return [fn(item) for item in tqdm(items, desc=desc, unit="part")]


class DaskEngine:
    """``engine: dask`` on the cluster ``cfg`` describes (one client per step)."""

    name = "dask"

    def __init__(self, cfg: DaskConfig | None = None) -> None:
        self.cfg = cfg or DaskConfig()

    def run(self, local: Callable[..., R], dask: Callable[..., R], *args: Any, **kw: Any) -> R:
        """The Dask step, given this engine (its settings, `client`, `map`)."""
        return dask(self, *args, **kw)

    def client(self) -> Any:
        """A context manager with this engine's client (`features.engine.dask_client`)."""
        return dask_client(self.cfg)

    def map(self, fn: Callable[[T], R], items: Sequence[T], *, desc: str) -> list[R]:
        """One task per item (never cached: the tasks write files), progress as they finish,
        results gathered in the items' order."""
        from distributed import as_completed
        from tqdm import tqdm

        with self.client() as client:
            futures = client.map(fn, items, pure=False)
            for _ in tqdm(as_completed(futures), total=len(futures), desc=desc, unit="part"):
                pass
            return list(client.gather(futures))


def stage_engine(params: Mapping[str, Any], where: str = "params.yaml") -> Engine:
    """The engine ``params.yaml`` names (`features.engine.engine_config` validates it)."""
    cfg = engine_config(params, where)
    return DaskEngine(cfg.dask) if cfg.engine == "dask" else LocalEngine()


def engine_stage(cls: type[T], section: str) -> tuple[T, Engine]:
    """An engine stage's ``main()`` inputs: its typed config (``common.stage_config``) and the
    engine ``params.yaml`` names, read in that order so a bad section is refused first."""
    return stage_config(cls, section), stage_engine(load_params())
