"""The seam between the stages and the engine that runs them (``engine: local | dask``).

A stage does its own I/O and metrics and calls its engine for the one step that runs
differently: writing the events, building the examples, the final weakness fit, scoring, or
mapping a function over parts. `LocalEngine` runs the stage's own numpy / pandas code in this
process; `pipelines.dask_engine.DaskEngine` runs the same kernels on a Dask cluster and holds
every Dask-specific line, so no stage branches on the engine's name and the local engine never
imports Dask. Both write the same outputs (the stage tests compare them on a real
LocalCluster).

The local steps stay in their stage modules (they are those stages' code, tested there) and are
imported when called, so a stage module can import this one without a cycle.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from features.engine import engine_config

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from data.sources import DataConfig
    from features.config import FeatureConfig
    from features.split import SplitPlan
    from training.scoring import ExportedModel, ScoreConfig

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
# what `score` returns: (as_of, learners per level per topic, the model's level labels)
ScoreResult = tuple[int, dict[str, dict[str, int]], list[str]]
# what `write_features` returns: (split metrics, feature spec, split plan)
FeaturesResult = tuple[dict[str, Any], dict[str, Any], "SplitPlan"]


class Engine(Protocol):
    """What a stage asks of its engine; ``name`` goes into the stages' metrics."""

    name: str

    def write_events(
        self, cfg: DataConfig, *, params_path: Path, out_dir: Path, metrics_file: Path
    ) -> dict[str, Any]:
        """Stage `data`: load or simulate, validate, write events + oracle and the metrics."""
        ...

    def write_features(
        self, cfg: FeatureConfig, *, events_file: Path, oracle_file: Path | None, out_dir: Path
    ) -> FeaturesResult:
        """Stage `features`: write ``{train,val,test}.parquet`` into ``out_dir`` (a temp dir)."""
        ...

    def final_fit(self) -> AbstractContextManager[Callable[..., Any] | None]:
        """Stage `train_weakness`: the final fit's ``train_fn`` (None: `train_booster`), valid
        while the context is open."""
        ...

    def score(
        self, cfg: ScoreConfig, model: ExportedModel, *, events_file: Path, out_dir: Path
    ) -> ScoreResult:
        """Stage `score`: write ``part-*.parquet`` into ``out_dir`` (a temp dir)."""
        ...

    def map(self, fn: Callable[[T], R], items: Sequence[T], *, desc: str) -> list[R]:
        """``fn`` on every item (a part, a shard), results in the items' order."""
        ...


class LocalEngine:
    """``engine: local``: every step in this process, the stages' own code."""

    name = "local"

    def write_events(
        self, cfg: DataConfig, *, params_path: Path, out_dir: Path, metrics_file: Path
    ) -> dict[str, Any]:
        """The data stage's local path (`pipelines.data.write_events_local`)."""
        from pipelines.data import write_events_local

        return write_events_local(
            cfg, params_path=params_path, out_dir=out_dir, metrics_file=metrics_file
        )

    def write_features(
        self, cfg: FeatureConfig, *, events_file: Path, oracle_file: Path | None, out_dir: Path
    ) -> FeaturesResult:
        """The features stage's local path (`pipelines.features.write_features_local`)."""
        from pipelines.features import write_features_local

        return write_features_local(
            cfg, events_file=events_file, oracle_file=oracle_file, out_dir=out_dir
        )

    @contextmanager
    def final_fit(self) -> Iterator[Callable[..., Any] | None]:
        """None: `training.weakness_tuning.fit_weakness` uses the local `train_booster`."""
        yield None

    def score(
        self, cfg: ScoreConfig, model: ExportedModel, *, events_file: Path, out_dir: Path
    ) -> ScoreResult:
        """The score stage's local path (`pipelines.score.score_local`)."""
        from pipelines.score import score_local

        return score_local(cfg, model, events_file, out_dir)

    def map(self, fn: Callable[[T], R], items: Sequence[T], *, desc: str) -> list[R]:
        """One item after the other, with a progress bar."""
        from tqdm import tqdm

        return [fn(item) for item in tqdm(items, desc=desc, unit="part")]


def stage_engine(params: Mapping[str, Any], where: str = "params.yaml") -> Engine:
    """The engine ``params.yaml`` names (`features.engine.engine_config` validates it)."""
    cfg = engine_config(params, where)
    if cfg.engine == "dask":
        from pipelines.dask_engine import DaskEngine

        return DaskEngine(cfg.dask)
    return LocalEngine()
