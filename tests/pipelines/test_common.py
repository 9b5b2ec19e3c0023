"""`pipelines.common.require_range`: bounds, integer mode, non-numbers and the message wording."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipelines.common import ConfigError, require_range


@pytest.mark.parametrize(
    ("value", "kwargs"),
    [
        (1, {"lo": 1, "hi": 64}),  # closed ends include the bounds
        (64, {"lo": 1, "hi": 64}),
        (1.0, {"lo": 0.0, "hi": 1.0, "lo_open": True}),  # (0, 1]
        (0.0, {"lo": 0.0, "hi": 1.0, "hi_open": True}),  # [0, 1)
        (0.25, {"lo": 0.0, "hi": 0.5, "lo_open": True, "hi_open": True}),
        (0, {"lo": 0}),  # >= 0
        (10**9, {"lo": 0}),
        (1e-9, {"lo": 0, "lo_open": True}),  # > 0
        (float("inf"), {"lo": 0, "lo_open": True}),  # like `x > 0`, inf passes
        (-5.0, {"hi": 1.0}),  # <= 1
        (0.999, {"hi": 1.0, "hi_open": True}),  # < 1
        (3, {"lo": 1, "hi": 5, "integer": True}),
        (2, {"lo": 1, "integer": True}),
    ],
)
def test_accepts_values_in_range(value: float, kwargs: dict) -> None:
    require_range(value, "s.x", **kwargs)


@pytest.mark.parametrize(
    ("value", "kwargs", "message"),
    [
        (0, {"lo": 1, "hi": 64}, "s.x: must be in [1, 64], got 0"),
        (65, {"lo": 1, "hi": 64}, "s.x: must be in [1, 64], got 65"),
        (0.0, {"lo": 0.0, "hi": 1.0, "lo_open": True}, "s.x: must be in (0, 1], got 0.0"),
        (1.0, {"lo": 0.0, "hi": 1.0, "hi_open": True}, "s.x: must be in [0, 1), got 1.0"),
        (
            0.5,
            {"lo": 0.0, "hi": 0.5, "lo_open": True, "hi_open": True},
            "s.x: must be in (0, 0.5), got 0.5",
        ),
        (-1, {"lo": 0}, "s.x: must be >= 0, got -1"),
        (0.0, {"lo": 0, "lo_open": True}, "s.x: must be > 0, got 0.0"),
        (-0.1, {"lo": 0, "lo_open": True}, "s.x: must be > 0, got -0.1"),
        (1.5, {"hi": 1}, "s.x: must be <= 1, got 1.5"),
        (1, {"hi": 1, "hi_open": True}, "s.x: must be < 1, got 1"),
        (200_000, {"lo": 1, "hi": 100_000}, "s.x: must be in [1, 100000], got 200000"),
        (0, {"lo": 1, "hi": 64, "integer": True}, "s.x: must be an integer in [1, 64], got 0"),
        (99, {"lo": 100, "integer": True}, "s.x: must be an integer >= 100, got 99"),
        (
            -1,
            {"lo": 0, "hi": 1000, "integer": True, "note": "0 = off"},
            "s.x: must be an integer in [0, 1000] (0 = off), got -1",
        ),
    ],
)
def test_out_of_range_message_names_field_range_and_value(
    value: float, kwargs: dict, message: str
) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        require_range(value, "s.x", **kwargs)


def test_nan_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"must be in \[0, 1\], got nan"):
        require_range(float("nan"), "s.x", lo=0, hi=1)
    with pytest.raises(ConfigError, match=r"must be > 0, got nan"):
        require_range(float("nan"), "s.x", lo=0, lo_open=True)


@pytest.mark.parametrize(
    ("value", "got"),
    [(True, "True"), (False, "False"), (2.0, "2.0"), (1.5, "1.5"), ("3", "'3'"), (None, "None")],
)
def test_integer_mode_rejects_bools_floats_and_non_numbers(value: object, got: str) -> None:
    message = f"s.n: must be an integer in [0, 10], got {got}"
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        require_range(value, "s.n", lo=0, hi=10, integer=True)


@pytest.mark.parametrize(
    ("value", "got"), [("0.5", "'0.5'"), (None, "None"), (True, "True"), ([0.5], "[0.5]")]
)
def test_non_numbers_are_rejected_without_type_error(value: object, got: str) -> None:
    message = f"s.f: must be a number in (0, 1], got {got}"
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        require_range(value, "s.f", lo=0, hi=1, lo_open=True)


def test_float_mode_accepts_ints_and_numpy_scalars() -> None:
    np = pytest.importorskip("numpy")
    require_range(1, "s.f", lo=0.0, hi=1.0)
    require_range(np.float64(0.5), "s.f", lo=0.0, hi=1.0)
    require_range(np.int64(3), "s.n", lo=1, hi=5, integer=True)
    with pytest.raises(ConfigError, match=r"got 1\.5$"):
        require_range(np.float64(1.5), "s.f", lo=0.0, hi=1.0)


def test_needs_a_bound() -> None:
    with pytest.raises(TypeError):
        require_range(1, "s.x")


def test_stage_config_reports_the_value() -> None:
    from pipelines.common import build_config
    from pipelines.train_generator import TrainGeneratorConfig

    with pytest.raises(ConfigError, match=r"train_generator\.learning_rate: .*\(0, 1\], got 0\.0"):
        build_config(TrainGeneratorConfig, {"learning_rate": 0.0}, "train_generator")


def test_resolve_input_path_escapes_dvc_temp_workspace(tmp_path: Path) -> None:
    from pipelines.common import resolve_input_path

    main = tmp_path / "repo"
    temp = main / ".dvc" / "tmp" / "exps" / "standalone" / "tmpabc"
    temp.mkdir(parents=True)
    shared = tmp_path / "shared" / "corpus.json"
    shared.parent.mkdir()
    shared.write_text("[]")
    (temp / "inside.csv").write_text("x")
    # beside the repo: only reachable from the main checkout
    assert resolve_input_path("../shared/corpus.json", temp) == main / "../shared/corpus.json"
    assert resolve_input_path("../shared/corpus.json", temp).resolve() == shared.resolve()
    # inside the repo: the temp copy's own file wins
    assert resolve_input_path("inside.csv", temp) == temp / "inside.csv"
    # missing everywhere: the local path, so the error names where it was looked for
    assert resolve_input_path("nope.csv", temp) == temp / "nope.csv"
    assert resolve_input_path(shared, temp) == shared


def test_atomic_json_never_replaces_an_existing_directory(tmp_path: Path) -> None:
    """Issue 12, defect 1: ``--out DIR/`` once deleted DIR and everything in it."""
    from pipelines.common import atomic_write_json

    res = tmp_path / "res"
    res.mkdir()
    (res / "keep").write_text("precious")
    with pytest.raises(IsADirectoryError, match="existing directory"):
        atomic_write_json(res, {"auc": 0.7})
    assert (res / "keep").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res"]  # no temp folder left


def test_atomic_path_refuses_a_file_over_a_directory_and_back(tmp_path: Path) -> None:
    from pipelines.common import atomic_path

    d = tmp_path / "d"
    d.mkdir()
    (d / "keep").write_text("x")
    with pytest.raises(IsADirectoryError), atomic_path(d) as tmp:
        tmp.write_text("file")
    assert (d / "keep").exists()
    f = tmp_path / "f"
    f.write_text("old")
    with pytest.raises(NotADirectoryError), atomic_path(f) as tmp:
        tmp.mkdir()
    assert f.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f"]
