"""The engine switch and the Dask client it opens (one-line errors, env precedence, cleanup)."""

from __future__ import annotations

import pytest

from data.params import ConfigError
from features.engine import SCHEDULER_ENV, DaskConfig, dask_client, engine_config


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"engine": "spark"}, "params.yaml:engine: must be one of ['local', 'dask'], got 'spark'"),
        ({"dask": {"n_workers": 0}}, "params.yaml:dask.n_workers: must be an integer in [1, 256]"),
        ({"dask": {"memory_limit": "lots"}}, "dask.memory_limit: must be a size such as 4GiB, "),
        ({"dask": {"typo": 1}}, "params.yaml:dask.typo: unknown key; allowed: ['scheduler_addr"),
    ],
)
def test_bad_engine_params_are_one_line(params: dict, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        engine_config(params)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_defaults_and_env_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = engine_config({})
    assert cfg.engine == "local" and cfg.dask.scheduler_address is None
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    assert DaskConfig(scheduler_address="tcp://a:1").address() == "tcp://a:1"
    monkeypatch.setenv(SCHEDULER_ENV, "tcp://b:2")
    assert DaskConfig(scheduler_address="tcp://a:1").address() == "tcp://b:2"


def test_local_cluster_is_started_and_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SCHEDULER_ENV, raising=False)
    with dask_client(DaskConfig(n_workers=1, memory_limit="512MiB")) as client:
        assert client.submit(sum, [1, 2]).result() == 3
        cluster = client.cluster
        assert len(client.scheduler_info()["workers"]) == 1
    assert client.status == "closed" and cluster.status.name == "closed"
