"""params.yaml is the one source of the stage configs' values.

For every stage config model (and the models nested in it), loaded from the real params.yaml:

- a field without a default must have its key in params.yaml;
- a field with a default whose key params.yaml sets must hold the value params.yaml gives
  (compared after validation, so ``[3, 10]`` equals ``(3, 10)``): a default that differed would
  be a second, silent source of the value, used by whoever builds the config without the file.

A key params.yaml does not set may keep a code default (e.g. ``train_weakness.monotone``, the
simulator's behaviour constants): there is nothing for it to disagree with. A ``None`` default
means "not given" (``data.simulator`` when the events come from a file), never a value.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from data.params import build_config
from data.sources import DataConfig
from features.config import FeatureConfig
from features.engine import DaskConfig, EngineConfig
from pipelines.common import SECTIONS, load_params
from pipelines.export_generator import ExportGeneratorConfig
from pipelines.export_weakness import ExportConfig
from pipelines.gates import GatesConfig
from pipelines.package import PackageConfig
from pipelines.prepare_text import PrepareTextConfig
from pipelines.quantize_generator import QuantizeConfig
from pipelines.train_generator import TrainGeneratorConfig
from training.quests import QuestsConfig
from training.scoring import ScoreConfig
from training.weakness import WeaknessConfig

Values = Callable[[Mapping[str, Any]], Any]

# section -> (the model its stage builds, the mapping the stage builds it from)
MODELS: dict[str, tuple[type, Values]] = {
    "engine": (EngineConfig, lambda p: {"engine": p["engine"], "dask": p["dask"]}),
    "dask": (DaskConfig, lambda p: p["dask"]),
    # pipelines.data.load_config injects features.pass_mark
    "data": (DataConfig, lambda p: {**p["data"], "pass_mark": p["features"]["pass_mark"]}),
    "features": (FeatureConfig, lambda p: p["features"]),
    "train_weakness": (WeaknessConfig, lambda p: p["train_weakness"]),
    "score": (ScoreConfig, lambda p: p["score"]),
    "quests": (QuestsConfig, lambda p: p["quests"]),
    "export_weakness": (ExportConfig, lambda p: p["export_weakness"]),
    "prepare_text": (PrepareTextConfig, lambda p: p["prepare_text"]),
    "train_generator": (TrainGeneratorConfig, lambda p: p["train_generator"]),
    "export_generator": (ExportGeneratorConfig, lambda p: p["export_generator"]),
    "quantize_generator": (QuantizeConfig, lambda p: p["quantize_generator"]),
    "gates": (GatesConfig, lambda p: p["gates"]),
    "package": (PackageConfig, lambda p: p["package"]),
}


def _dataclasses_in(hint: Any) -> list[type]:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return [hint]
    return [dc for arg in typing.get_args(hint) for dc in _dataclasses_in(arg)]


def _dict_value_dataclass(hint: Any) -> type | None:
    """``C`` for ``dict[str, C]`` (C a dataclass), possibly inside Annotated / Optional."""
    if typing.get_origin(hint) is typing.Annotated:
        return _dict_value_dataclass(typing.get_args(hint)[0])
    if typing.get_origin(hint) is dict:
        found = _dataclasses_in(typing.get_args(hint)[1])
        return found[0] if found else None
    for arg in typing.get_args(hint):
        found_dc = _dict_value_dataclass(arg)
        if found_dc is not None:
            return found_dc
    return None


def _default(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def competing_defaults(cls: type, raw: Any, built: Any, where: str) -> list[str]:
    """Problems of ``cls`` (built from ``raw`` into ``built``) and of the models inside it."""
    problems: list[str] = []
    if not isinstance(raw, Mapping):
        return problems
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        key, default = f.name, _default(f)
        if default is dataclasses.MISSING:
            if key not in raw:
                problems.append(f"{where}.{key}: required by {cls.__name__}, missing in params")
                continue
        elif key in raw and default is not None and default != getattr(built, key):
            problems.append(
                f"{where}.{key}: {cls.__name__} default {default!r} != params.yaml "
                f"{getattr(built, key)!r}"
            )
        if key not in raw:
            continue
        value = getattr(built, key)
        for inner in _dataclasses_in(hints[key]):
            if isinstance(value, inner):
                problems += competing_defaults(inner, raw[key], value, f"{where}.{key}")
        item_cls = _dict_value_dataclass(hints[key])
        if item_cls is not None and isinstance(raw[key], Mapping):
            for name, item in value.items():
                problems += competing_defaults(
                    item_cls, raw[key].get(name), item, f"{where}.{key}.{name}"
                )
    return problems


def test_every_section_has_its_model() -> None:
    assert set(MODELS) == set(SECTIONS)


@pytest.mark.parametrize("section", sorted(MODELS))
def test_params_yaml_is_the_one_source_of_defaults(section: str) -> None:
    params = load_params()
    cls, values = MODELS[section]
    raw = values(params)
    built = build_config(cls, raw, f"params.yaml:{section}")
    assert competing_defaults(cls, raw, built, section) == []


@dataclasses.dataclass(frozen=True)
class Inner:
    share: float = 0.0


@dataclasses.dataclass(frozen=True)
class Model:
    seed: int
    rate: float = 0.5
    inner: Inner = dataclasses.field(default_factory=Inner)
    extra: int = 3  # not in params: a code default, allowed


def test_the_check_catches_a_competing_default() -> None:
    """A model whose default differs from params, and one requiring a key params lacks."""
    raw = {"seed": 1, "rate": 0.3, "inner": {"share": 0.3}}
    built = build_config(Model, raw, "m")
    assert competing_defaults(Model, raw, built, "m") == [
        "m.rate: Model default 0.5 != params.yaml 0.3",
        "m.inner: Model default Inner(share=0.0) != params.yaml Inner(share=0.3)",
        "m.inner.share: Inner default 0.0 != params.yaml 0.3",
    ]
    assert competing_defaults(Model, {"rate": 0.5}, Model(seed=0), "m") == [
        "m.seed: required by Model, missing in params"
    ]
