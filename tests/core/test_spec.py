"""Feature spec: round-trip through JSON and validation errors naming the field."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from core.spec import SpecError, read_spec, write_spec_text
from features.build import spec_from_config
from features.config import FeatureConfig
from pipelines.common import ConfigError, build_config
from tests.fixtures.events import PEER, feature_config


def test_round_trip(tmp_path: Path) -> None:
    spec = spec_from_config(feature_config(), PEER)
    (tmp_path / "feature_spec.json").write_text(write_spec_text(spec))
    assert read_spec(tmp_path) == spec
    assert spec["half_life_s"] == 7 * 86400.0
    assert spec["input_name"] == "features"
    assert spec["names"][0] == "topic_n_attempts"
    assert spec["dtypes"] == ["float32"] * len(spec["names"])


def _set(spec: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    spec = copy.deepcopy(spec)
    node = spec
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return spec


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("pass_mark",), 1.5, "pass_mark"),
        (("half_life_s",), 0.0, "half_life_s"),
        (("rolling_windows",), [0], "rolling_windows"),
        (("names",), ["x"], "names"),
        (("dtypes",), ["float64"], "dtypes"),
        (("version",), 2, "version"),
        (("assessment_activities",), [], "assessment_activities"),
        (("peer", "prior_mean"), float("nan"), "peer.prior_mean"),
        (("peer", "topics", "a"), [50.0, 40.0], "peer.topics"),
    ],
)
def test_validation_names_the_field(
    tmp_path: Path, path: tuple[str, ...], value: Any, field: str
) -> None:
    bad = _set(spec_from_config(feature_config(), PEER), path, value)
    file = tmp_path / "feature_spec.json"
    file.write_text(json.dumps(bad))
    with pytest.raises(SpecError, match=field.replace(".", r"\.")) as err:
        read_spec(file)
    assert str(file) in str(err.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="not found"):
        read_spec(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("rolling_windows", [3, 3]),
        ("pass_mark", 0.0),
        ("half_life_days", -1.0),
        ("peer_prior_weight", -2.0),
    ],
)
def test_params_range_errors_name_the_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=f"features.{key}"):
        build_config(FeatureConfig, {key: value}, "features")
