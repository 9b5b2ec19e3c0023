"""Every expected error of a stage or the CLI is one line on stderr and exit 1.

Real subprocesses (the console entry and a stage main through ``run_stage``): the user sees
``error: <what, where, allowed>`` and no traceback; ``--debug`` / LUDORA_DEBUG=1 shows it.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.fixtures.commands import assert_one_line_error, run_python
from tests.fixtures.events import DATA_STAGE, EVENTS_CSV_HEADER

REPO = Path(__file__).resolve().parents[2]
ROW = "u1,t1,i1,1767571200,quiz,0.5,10,0,1,false"
KT_HEADER = "user_id\titem_id\ttimestamp\tcorrect\tskill_id"


def data_stage(tmp_path: Path, events: Path, **env: str) -> subprocess.CompletedProcess[str]:
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {"data": {"source": "events_file", "path": str(events)}, "features": {"pass_mark": 0.6}}
        )
    )
    out, metrics = tmp_path / "out" / "events", tmp_path / "metrics" / "data.json"
    return run_python(["-c", DATA_STAGE, str(params), str(out), str(metrics)], env=env)


# (file name, bytes, expected parts of the message): unreadable files named for what they are.
BAD_FILES = [
    ("empty.csv", b"", ["empty file (no header line)"]),
    ("blank.csv", b"\n  \n\n", ["empty file (no header line)"]),
    ("binary.csv", bytes(range(256)) * 4, ["binary file (NUL bytes), not CSV text"]),
    (
        "latin1.csv",
        f"{EVENTS_CSV_HEADER}\nJos\xe9,t1,i1,1767571200,quiz,0.5,10,0,1,false\n".encode("latin-1"),
        ["not UTF-8 text", "save the file as UTF-8 CSV"],
    ),
    (
        "ragged.csv",
        f"{EVENTS_CSV_HEADER}\n{ROW}\n{ROW},extra\n".encode(),
        ["line 3: 11 fields, but the header has 10"],
    ),
    (
        "dup.csv",
        f"{EVENTS_CSV_HEADER},score\n{ROW},0.5\n".encode(),
        ["header names ['score'] appear more than once"],
    ),
    ("header_only.csv", f"{EVENTS_CSV_HEADER}\n".encode(), ["no rows"]),
]


@pytest.mark.parametrize(("name", "content", "parts"), BAD_FILES, ids=[b[0] for b in BAD_FILES])
def test_bad_events_file_is_one_line_and_writes_nothing(
    tmp_path: Path, name: str, content: bytes, parts: list[str]
) -> None:
    events = tmp_path / name
    events.write_bytes(content)
    proc = data_stage(tmp_path, events)
    assert_one_line_error(proc, str(events), *parts)
    assert not (tmp_path / "out").exists() and not (tmp_path / "metrics").exists()


def test_debug_env_shows_the_traceback(tmp_path: Path) -> None:
    events = tmp_path / "empty.csv"
    events.write_bytes(b"")
    proc = data_stage(tmp_path, events, LUDORA_DEBUG="1")
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "EventValidationError" in proc.stderr


def test_header_spaces_are_stripped_like_the_kt_reader(tmp_path: Path) -> None:
    """` score` in the header is the score column."""
    events = tmp_path / "spaced.csv"
    events.write_text(EVENTS_CSV_HEADER.replace(",", " , ") + "\n" + ROW + "\n")
    proc = data_stage(tmp_path, events)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "out" / "events" / "events.parquet").is_file()


def test_a_directory_given_as_a_file_says_so(tmp_path: Path) -> None:
    """A directory where a file is expected is named as such, not "not found"."""
    folder = tmp_path / "events.csv"
    folder.mkdir()
    proc = data_stage(tmp_path, folder)
    assert_one_line_error(proc, f"{folder}: is a directory, expected a events file")


def test_params_error_is_one_line(tmp_path: Path) -> None:
    """data.path beside source: simulator is refused, not ignored."""
    params = tmp_path / "params.yaml"
    sim = {
        "seed": 1,
        "n_learners": 5,
        "n_topics": 2,
        "days": 5,
        "sessions_per_week": 3.0,
        "activities_per_session": 3,
        "quiz_share": 0.5,
        "start": "2026-01-05T00:00:00Z",
    }
    params.write_text(
        yaml.safe_dump(
            {
                "data": {"source": "simulator", "path": "x.csv", "simulator": sim},
                "features": {"pass_mark": 0.6},
            }
        )
    )
    proc = run_python(
        ["-c", DATA_STAGE, str(params), str(tmp_path / "o"), str(tmp_path / "m.json")]
    )
    assert_one_line_error(proc, "data.path: must be null when data.source is 'simulator'")


# ----------------------------------------------------------------------------- eval-kt


def kt_file(path: Path, rows: list[tuple[str, int]]) -> Path:
    """rows: (learner, correct); items and skills cycle, row order is time (clock 0)."""
    lines = [KT_HEADER] + [f"{u}\t{i % 5}\t0\t{c}\t{i % 3}" for i, (u, c) in enumerate(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def mixed(prefix: str, n_users: int) -> list[tuple[str, int]]:
    return [(f"{prefix}{u}", (u + k) % 2) for u in range(n_users) for k in range(6)]


def eval_kt(train: Path, test: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_python(
        ["-m", "pipelines.cli", "eval-kt", "--train", str(train), "--test", str(test), *extra]
    )


@pytest.mark.parametrize(
    ("train_rows", "test_rows", "which", "parts"),
    [
        (
            mixed("a", 4),
            [("b0", 1)] * 3 + [("b1", 1)] * 3,
            "test",
            ["every test answer is correct (one class, 6 answers)"],
        ),
        (
            [("a0", 0), ("a1", 0)] * 4,
            mixed("b", 2),
            "train",
            ["every train answer is wrong (one class, 8 answers)"],
        ),
        (
            [("a0", 0), ("a0", 1)] * 4,
            mixed("b", 2),
            "train",
            ["1 learner; eval-kt needs at least 2"],
        ),
    ],
    ids=["one-class-test", "one-class-train", "one-learner"],
)
def test_eval_kt_refuses_unusable_inputs_before_training(
    tmp_path: Path, train_rows: list, test_rows: list, which: str, parts: list[str]
) -> None:
    """Refused before training: no `"auc": NaN`, no LightGBM traceback after the run."""
    train = kt_file(tmp_path / "train.tsv", train_rows)
    test = kt_file(tmp_path / "test.tsv", test_rows)
    out = tmp_path / "result.json"
    proc = eval_kt(train, test, "--out", str(out))
    assert_one_line_error(proc, str(train if which == "train" else test), *parts)
    assert "NaN" not in proc.stdout and not out.exists()


def test_eval_kt_empty_test_file(tmp_path: Path) -> None:
    train = kt_file(tmp_path / "train.tsv", mixed("a", 4))
    test = tmp_path / "test.tsv"
    test.write_bytes(b"")
    assert_one_line_error(eval_kt(train, test), f"{test}: empty file (no header line)")


def test_eval_kt_missing_and_directory_inputs(tmp_path: Path) -> None:
    train = kt_file(tmp_path / "train.tsv", mixed("a", 4))
    assert_one_line_error(
        eval_kt(train, tmp_path / "nope.tsv"), f"{tmp_path / 'nope.tsv'}: --test KT file not found"
    )
    assert_one_line_error(eval_kt(train, tmp_path), f"{tmp_path}: is a directory, expected a")


def test_eval_kt_out_directory_is_refused_before_the_run(tmp_path: Path) -> None:
    res = tmp_path / "res"
    res.mkdir()
    (res / "keep").write_text("mine")
    train = kt_file(tmp_path / "train.tsv", mixed("a", 4))
    proc = eval_kt(train, train, "--out", str(res))
    assert_one_line_error(proc, f"{res} is an existing directory")
    assert (res / "keep").read_text() == "mine"


def test_bad_params_value_in_cli_is_one_line(tmp_path: Path) -> None:
    """A bad `train_weakness` key fails at load time, through the CLI."""
    code = (
        "from pipelines.common import build_config, run_stage;"
        "from training.weakness import WeaknessConfig;"
        "run_stage(build_config, WeaknessConfig, {'base': {'num_leaves': -5}}, 'train_weakness')"
    )
    proc = run_python(["-c", code])
    assert_one_line_error(
        proc, "train_weakness.base.num_leaves: must be an integer in [2, 131072], got -5"
    )


# ----------------------------------------------------------------------------- rollback, serve


def test_rollback_on_a_new_registry_says_no_previous_champion(tmp_path: Path) -> None:
    """One line instead of an 87-line MlflowException."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = run_python(
        ["-m", "pipelines.cli", "rollback", "--model", "weakness"], env={"MLFLOW_TRACKING_URI": uri}
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "no previous champion" in ln]
    assert len(lines) == 1, proc.stderr[-3000:]


def test_serve_with_a_missing_model_fails_at_start(tmp_path: Path) -> None:
    """Exit 1 at start, not a server answering 503."""
    proc = run_python(
        [
            "-m",
            "pipelines.cli",
            "serve",
            "--weakness",
            "/nonexistent",
            "--artifact-root",
            str(tmp_path),
        ]
    )
    assert_one_line_error(proc, "weakness model '/nonexistent' failed to load", "--allow-partial")


def _ready(port: int, proc: subprocess.Popen[str], timeout_s: float = 120.0) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited {proc.returncode}: {proc.stderr.read()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            time.sleep(0.5)
    raise AssertionError("server did not start")


@pytest.mark.slow
def test_serve_without_flags_serves_the_champions(tmp_path: Path) -> None:
    from tests.fixtures.generator import make_generator_artifact
    from tests.fixtures.store import set_alias
    from tests.fixtures.weakness import make_weakness_artifact
    from tests.serving._server import free_port

    make_weakness_artifact(tmp_path)
    make_generator_artifact(tmp_path)
    set_alias(tmp_path, "weakness", "champion", 1)
    set_alias(tmp_path, "generator", "champion", 1)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipelines.cli",
            "serve",
            "--port",
            str(port),
            "--artifact-root",
            str(tmp_path),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert _ready(port, proc) == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_bad_serving_setting_is_one_line_naming_the_variable(tmp_path: Path) -> None:
    """serving.settings (pydantic-settings): LUDORA_SERVE_* errors name the variable and range."""
    proc = run_python(
        ["-m", "pipelines.cli", "serve", "--artifact-root", str(tmp_path)],
        env={"LUDORA_SERVE_TOP_P": "2"},
    )
    assert_one_line_error(
        proc, "serving setting 'top_p' (LUDORA_SERVE_TOP_P) must be in (0, 1], got '2'"
    )


def test_cli_debug_flag_shows_the_traceback(tmp_path: Path) -> None:
    train = kt_file(tmp_path / "train.tsv", mixed("a", 4))
    test = tmp_path / "test.tsv"
    test.write_bytes(b"")
    proc = run_python(
        ["-m", "pipelines.cli", "--debug", "eval-kt", "--train", str(train), "--test", str(test)]
    )
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "EventValidationError" in proc.stderr
