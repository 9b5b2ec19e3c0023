"""``engine: dask`` for the final weakness fit: `training.weakness_dask` on the cluster."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pipelines.engines import DaskEngine


@contextmanager
def final_fit_dask(engine: DaskEngine) -> Iterator[Callable[..., Any] | None]:
    """`training.weakness_dask.train_booster_dask` bound to a client open meanwhile."""
    import functools

    from training.weakness_dask import train_booster_dask

    with engine.client() as client:
        yield functools.partial(train_booster_dask, client)
