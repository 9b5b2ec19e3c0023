"""The params file itself: a syntax error, a duplicated key or an unknown section is one line.

Every stage and `ludora-ml` command reads params through ``pipelines.common.load_params``; a
YAML ParserError used to surface as a 61-line traceback from a stage (183 from `promote`), and a
repeated key or a misspelt section was accepted silently (YAML keeps the last value).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pipelines.common import SECTIONS, ConfigError, load_params
from tests.fixtures.commands import assert_one_line_error, run_python
from tests.fixtures.events import DATA_STAGE

REPO = Path(__file__).resolve().parents[2]
GOOD = "data:\n  source: simulator\nfeatures:\n  pass_mark: 0.6\n"

CASES = [
    ("unclosed", "data:\n  source: [simulator\nfeatures:\n  pass_mark: 0.6\n", "params.yaml:3:"),
    ("tab", "data:\n\tsource: simulator\n", "params.yaml:2:1: invalid YAML: found character '\\t'"),
    (
        "duplicate",
        "data:\n  source: simulator\n  source: events_file\n",
        "params.yaml:3:3: invalid YAML: duplicate key 'source' (first at line 2)",
    ),
    (
        "duplicate_section",
        GOOD + "data:\n  source: kt_tsv\n",
        "params.yaml:5:1: invalid YAML: duplicate key 'data' (first at line 1)",
    ),
    ("unknown_section", GOOD + "featurs:\n  pass_mark: 0.5\n", "params.yaml:featurs: unknown"),
    ("quote", "data:\n  source: 'simulator\n", "params.yaml:3:1: invalid YAML"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_load_params_refuses_with_file_line_and_column(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_params(path)
    message = str(err.value)
    assert "\n" not in message
    assert expected in message, message


def test_the_repo_params_file_loads_and_names_only_known_sections() -> None:
    params = load_params(REPO / "params.yaml")
    assert set(params) <= set(SECTIONS)
    assert {"data", "gates", "score"} <= set(params)


def _run_stage(params: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Run the data stage on ``params`` in a fresh interpreter, as a user would (no debug)."""
    return run_python(
        ["-c", DATA_STAGE, str(params), str(tmp_path / "o"), str(tmp_path / "m.json")],
        timeout=120,
    )


def test_a_stage_reports_a_syntax_error_as_one_line(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(CASES[0][1])
    assert_one_line_error(
        _run_stage(params, tmp_path), f"{params}:3:", "flow sequence started at line 2"
    )
    assert not (tmp_path / "o").exists()


def test_a_simulation_too_big_for_memory_is_refused_before_it_starts(tmp_path: Path) -> None:
    """n_learners at its allowed maximum used to end in a MemoryError traceback (18.8 GiB)."""
    import time

    import yaml

    sim = {
        "seed": 1,
        "n_learners": 10_000_000,
        "n_topics": 12,
        "days": 150,
        "sessions_per_week": 3.0,
        "activities_per_session": 6,
        "quiz_share": 0.4,
        "start": "2026-01-05T00:00:00Z",
    }
    params = tmp_path / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "data": {"source": "simulator", "path": None, "simulator": sim},
                "features": {"pass_mark": 0.6},
            }
        )
    )
    started = time.monotonic()
    assert_one_line_error(
        _run_stage(params, tmp_path),
        "data.simulator.n_learners: 10000000 learners",
        "GiB available; allowed here: at most",
    )
    assert time.monotonic() - started < 60  # refused up front, not after simulating


def test_the_memory_estimate_lets_the_default_simulation_through() -> None:
    from data.memory_budget import check_fits_in_memory
    from data.params import build_config
    from data.simulator import SimulatorConfig

    sim = load_params(REPO / "params.yaml")["data"]["simulator"]
    cfg = build_config(SimulatorConfig, sim, "data.simulator")
    check_fits_in_memory(cfg, "data.simulator", available=2 * 1024**3)  # a small 2 GiB box
    with pytest.raises(ConfigError, match=r"allowed here: at most \d+ learners"):
        check_fits_in_memory(cfg, "data.simulator", available=64 * 1024**2)


@pytest.mark.parametrize(
    "command",
    [["promote", "--model", "weakness"], ["eval-kt", "--train", "a.tsv", "--test", "b.tsv"]],
    ids=["promote", "eval-kt"],
)
def test_cli_commands_report_a_params_syntax_error_as_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    """`ludora-ml promote` printed 183 lines of YAML traceback, eval-kt a traceback too."""
    params = tmp_path / "params.yaml"
    params.write_text(
        (REPO / "params.yaml").read_text().replace("auc_floor: 0.70", "auc_floor: [0.7")
    )
    for name in ("a.tsv", "b.tsv"):
        (tmp_path / name).write_text("user_id\titem_id\ttimestamp\tcorrect\tskill_id\n")
    code = (
        "import sys; from pathlib import Path; import pipelines.common as c; "
        "c.PARAMS_FILE = Path(sys.argv[1]); from pipelines.cli import app; "
        "app(sys.argv[2:], prog_name='ludora-ml')"
    )
    proc = run_python(
        ["-c", code, str(params), *command], cwd=tmp_path, env={"PYTHONPATH": str(REPO)}
    )
    assert_one_line_error(proc, f"{params}:", "invalid YAML")
