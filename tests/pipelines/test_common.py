"""`pipelines.common.require_range`: bounds, integer mode, non-numbers and the message wording."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipelines.common import ConfigError, require_range
from tests.fixtures.events import DATA_STAGE, EVENTS_CSV_HEADER


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
    """``--out DIR/`` must never delete DIR and everything in it."""
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


# ----------------------------------------------------------------------------- leftovers of a kill


def _dead_pid() -> int:
    """A pid that surely belongs to no process: a child that has exited and been reaped."""
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(proc.stdout)


def test_rerun_sweeps_dead_leftovers_but_never_a_live_write(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    from pipelines.common import atomic_path

    target = tmp_path / "events"
    dead = tmp_path / f".events.{_dead_pid()}.abcd1234.tmp"
    (dead / "events").mkdir(parents=True)
    (dead / "events" / "partial.parquet").write_bytes(b"x" * 1000)
    live_proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".events.{live_proc.pid}.efgh5678.tmp"
        live.mkdir()
        legacy = tmp_path / ".events.q1w2e3r4.tmp"  # older code: no pid in the name
        legacy.mkdir()
        os.utime(legacy, (0, 0))
        other = tmp_path / f".events.csv.{_dead_pid()}.zzzz9999.tmp"  # another target's
        other.mkdir()
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "events.parquet").write_bytes(b"new")
        names = sorted(p.name for p in tmp_path.iterdir())
        assert names == sorted(["events", live.name, other.name])
    finally:
        live_proc.kill()
        live_proc.wait()


def test_interrupted_directory_swap_is_restored(tmp_path: Path) -> None:
    """Killed between the two renames of a swap: the old output is the only copy; keep it."""
    from pipelines.common import sweep_leftovers

    old = tmp_path / f".events.{_dead_pid()}.old"
    old.mkdir()
    (old / "events.parquet").write_text("previous")
    sweep_leftovers(tmp_path / "events")
    assert (tmp_path / "events" / "events.parquet").read_text() == "previous"
    assert not old.exists()


def _stage_setup(tmp_path: Path, n_rows: int) -> list[str]:
    import yaml

    csv = tmp_path / f"events{n_rows}.csv"
    rows = [f"u{i % 3},t1,i{i},{1767571200 + 60 * i},quiz,0.5,10,0,1,false" for i in range(n_rows)]
    csv.write_text("\n".join([EVENTS_CSV_HEADER, *rows]) + "\n")
    params = tmp_path / f"params{n_rows}.yaml"
    params.write_text(
        yaml.safe_dump(
            {"data": {"source": "events_file", "path": str(csv)}, "features": {"pass_mark": 0.6}}
        )
    )
    return [str(params), str(tmp_path / "out" / "events"), str(tmp_path / "metrics" / "data.json")]


def _start(args: list[str], pause_at: str):  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "LUDORA_PAUSE_BEFORE_RENAME": pause_at}
    return subprocess.Popen(
        [sys.executable, "-c", DATA_STAGE, *args],
        cwd=repo,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_paused(marker: Path, proc) -> None:  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "stage never reached the rename"
        time.sleep(0.1)


def _state(tmp_path: Path) -> tuple[int | None, int | None]:
    from tests.fixtures.events import data_stage_state

    return data_stage_state(
        tmp_path / "out" / "events" / "events.parquet", tmp_path / "metrics" / "data.json"
    )


@pytest.mark.parametrize("pause_at", ["events", "data.json"])
def test_sigkill_at_the_worst_moment_never_leaves_outputs_and_metrics_disagreeing(
    tmp_path: Path, pause_at: str
) -> None:
    import signal
    import time

    from pipelines import data as stage

    first = _stage_setup(tmp_path, 4)
    stage.run(*first)
    assert _state(tmp_path) == (4, 4)
    second = _stage_setup(tmp_path, 7)
    proc = _start(second, pause_at)
    marker = Path(second[1] if pause_at == "events" else second[2]).with_name(f"{pause_at}.paused")
    _wait_paused(marker, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    marker.unlink()
    n_events, n_metrics = _state(tmp_path)
    # old events and no metrics (before the events rename) or new events and no metrics
    # (before the metrics rename): never a metrics file describing other events.
    assert n_metrics is None and n_events == (4 if pause_at == "events" else 7)
    # no finally block ran: the stage's leftover guard (a watcher process) sweeps the temp
    # folders the kill left, so even a run that never comes again leaves none behind
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        leftovers = [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]
        leftovers += [p.name for p in (tmp_path / "metrics").iterdir() if p.name.startswith(".")]
        if not leftovers:
            break
        time.sleep(0.1)
    assert leftovers == []
    stage.run(*second)
    assert _state(tmp_path) == (7, 7)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["events"]
    assert sorted(p.name for p in (tmp_path / "metrics").iterdir()) == ["data.json"]


def test_sigterm_cleans_up_like_ctrl_c_and_keeps_the_old_pair(tmp_path: Path) -> None:
    import signal

    from pipelines import data as stage

    first = _stage_setup(tmp_path, 4)
    stage.run(*first)
    second = _stage_setup(tmp_path, 7)
    proc = _start(second, "events")
    marker = Path(second[1]).with_name("events.paused")
    _wait_paused(marker, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    marker.unlink()
    assert proc.returncode == 143, err
    assert "interrupted" in err and "Traceback" not in err
    assert _state(tmp_path) == (4, 4)  # the old pair, metrics put back
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["events"]
    assert sorted(p.name for p in (tmp_path / "metrics").iterdir()) == ["data.json"]


def test_no_module_below_pipelines_imports_pipelines() -> None:
    """Configs and atomic writes live at the bottom (data.params, core.atomic): no import cycle."""
    import ast

    repo = Path(__file__).resolve().parents[2]
    offenders = []
    for package in ("core", "data", "features", "training", "export", "quantize", "serving"):
        for path in sorted((repo / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    names = [node.module or ""]
                offenders += [
                    f"{path.relative_to(repo)}:{node.lineno} imports {n}"
                    for n in names
                    if n == "pipelines" or n.startswith("pipelines.")
                ]
    assert offenders == []


def test_pipelines_common_still_re_exports_the_moved_names() -> None:
    import core.atomic
    import data.params
    import pipelines.common as common

    for name in ("ConfigError", "build_config", "require", "require_range"):
        assert getattr(common, name) is getattr(data.params, name)
    for name in ("atomic_path", "atomic_write_json", "require_file_target"):
        assert getattr(common, name) is getattr(core.atomic, name)


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (
            {"base": {"num_leaves": -5}},
            "train_weakness.base.num_leaves: must be an integer in [2, 131072], got -5",
        ),
        (
            {"base": {"feature_fraction": 0}},
            "train_weakness.base.feature_fraction: must be in (0, 1], got 0",
        ),
        ({"base": {"num_leaf": 31}}, "train_weakness.base.num_leaf: unknown key; allowed: ["),
        (
            {"tuning": {"space": {"num_leaves": {"low": 1, "high": 127, "kind": "int"}}}},
            "train_weakness.tuning.space.num_leaves.low: must be an integer in [2, 131072], got 1",
        ),
        (
            {"tuning": {"space": {"learning_rate": {"low": 0.2, "high": 0.1}}}},
            "train_weakness.tuning.space.learning_rate: low must be < high, got low=0.2 high=0.1",
        ),
        (
            {"imbalance": "balance"},
            "train_weakness.imbalance: must be one of ['none', 'balanced', 'scale_pos_weight'], "
            "got 'balance'",
        ),
        ({"num_threads": "2"}, "train_weakness.num_threads: must be an integer >= 1, got '2'"),
    ],
)
def test_train_weakness_params_fail_at_load_time(section: dict, expected: str) -> None:
    """Not a LightGBM `Check failed` after 10 s of work: one line at load time."""
    from pipelines.common import build_config
    from training.weakness import WeaknessConfig

    with pytest.raises(ConfigError) as err:
        build_config(WeaknessConfig, section, "train_weakness")
    assert str(err.value).startswith(expected)
    assert "\n" not in str(err.value)
