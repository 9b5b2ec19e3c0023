"""Every key of the `gates` section is checked: one line naming the key, value and allowed range.

A gate that is not validated is a gate that may silently not run: a misspelt metric name under
`max_drop` used to be skipped (the typo disabled the gate), `auc_floor: 2` failed every
candidate with exit 0, `null` or a deleted section ended in a TypeError / KeyError traceback.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.common import ConfigError
from pipelines.gates import GENERATOR_METRICS, WEAKNESS_METRICS, load_gates
from tests.fixtures.commands import run_python

REPO = Path(__file__).resolve().parents[2]
BASE = yaml.safe_load((REPO / "params.yaml").read_text())


def _set(*keys: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(params: dict[str, Any]) -> None:
        node = params["gates"]
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return mutate


def _drop(*keys: str) -> Callable[[dict[str, Any]], None]:
    def mutate(params: dict[str, Any]) -> None:
        node = params["gates"]
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]

    return mutate


CASES = [
    (
        "floor_null",
        _set("weakness", "auc_floor", value=None),
        "gates.weakness.auc_floor: must be a number in [0.5, 1), got None",
    ),
    (
        "floor_text",
        _set("weakness", "auc_floor", value="abc"),
        "gates.weakness.auc_floor: must be a number in [0.5, 1), got 'abc'",
    ),
    (
        "floor_2",
        _set("weakness", "auc_floor", value=2),
        "gates.weakness.auc_floor: must be in [0.5, 1), got 2",
    ),
    ("no_weakness", _drop("weakness"), "gates: missing required key 'weakness'"),
    (
        "promotion_5",
        _set("weakness", "promotion", "auc", value=5),
        "gates.weakness.promotion.auc: must be a mapping, got 5",
    ),
    (
        "typo_metric",
        _set("generator", "max_drop", "bogus_metric", value=0.1),
        "gates.generator.max_drop.bogus_metric: unknown metric; allowed: [",
    ),
    (
        "typo_floor",
        _set("generator", "floors", "rouge", value=0.1),
        "gates.generator.floors.rouge: unknown metric",
    ),
    (
        "typo_promotion",
        _set("weakness", "promotion", "acu", value={}),
        "gates.weakness.promotion.acu: unknown metric",
    ),
    (
        "typo_key",
        _set("weakness", "auc_flor", value=0.7),
        "gates.weakness.auc_flor: unknown key; allowed: ['auc_floor', 'views', 'promotion']",
    ),
    (
        "typo_view",
        _set("weakness", "views", "max_auc_gap", "average", value=0.1),
        "gates.weakness.views.max_auc_gap.average: unknown view",
    ),
    (
        "drop_over_1",
        _set("generator", "max_drop", "rouge_l", value=3),
        "gates.generator.max_drop.rouge_l: must be in [0, 1], got 3",
    ),
    (
        "bool_floor",
        _set("generator", "floors", "rouge_l", value=True),
        "gates.generator.floors.rouge_l: must be a number in [0, 1], got True",
    ),
    (
        "rel_change",
        _set("weakness", "promotion", "auc", "min_relative_change", value=-1),
        "min_relative_change: must be in [0, 1], got -1",
    ),
    (
        "no_share",
        _drop("generator", "max_changed_share"),
        "gates.generator: missing required key 'max_changed_share'",
    ),
]


def _write(tmp_path: Path, mutate: Callable[[dict[str, Any]], None]) -> Path:
    params = copy.deepcopy(BASE)
    mutate(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.mark.parametrize(("mutate", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_gate_is_refused_with_one_line(
    tmp_path: Path, mutate: Callable[[dict[str, Any]], None], expected: str
) -> None:
    path = _write(tmp_path, mutate)
    with pytest.raises(ConfigError) as err:
        load_gates(path)
    assert "\n" not in str(err.value)
    assert expected in str(err.value), str(err.value)


def test_the_repo_gates_pass() -> None:
    assert (
        load_gates(REPO / "params.yaml")["weakness"]["auc_floor"]
        == BASE["gates"]["weakness"]["auc_floor"]
    )


def test_every_gated_metric_is_one_the_pipeline_measures() -> None:
    """The allowed names are what the quantize stage writes (metrics/quantize.json)."""
    measured = json.loads((REPO / "metrics" / "quantize.json").read_text())["variants"]
    names = set().union(*(set(v["metrics"]) for v in measured.values()))
    # served_realistic_* appear once quantize_generator.realistic_requests is served
    realistic = {m for m in GENERATOR_METRICS if m.startswith("served_realistic_")}
    assert names <= set(GENERATOR_METRICS)
    assert set(GENERATOR_METRICS) - realistic <= names
    from training.weakness_metrics import binary_metrics

    assert set(binary_metrics([0, 1, 0, 1], [0.1, 0.9, 0.4, 0.6], n_bins=10)) == set(
        WEAKNESS_METRICS
    )


def test_the_package_stage_and_promote_read_gates_through_the_check(tmp_path: Path) -> None:
    """A real process through the entry-point wrapper: exit 1, one line, no traceback."""
    path = _write(tmp_path, _set("weakness", "auc_floor", value=None))
    code = (
        "import sys; from pipelines.common import run_stage; from pipelines.gates import "
        "load_gates; run_stage(load_gates, sys.argv[1])"
    )
    proc = run_python(["-c", code, str(path)], timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"error: {path}:gates.weakness.auc_floor: must be a number in [0.5, 1), got None"
    ]
    for module in ("pipelines/package.py", "pipelines/cli.py"):
        assert "load_gates()" in (REPO / module).read_text()
