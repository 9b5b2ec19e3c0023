"""The params file itself: a syntax error, a duplicated key or an unknown section is one line.

Every stage and `ludora-ml` command reads params through ``pipelines.common.load_params``; a
YAML ParserError used to surface as a 61-line traceback from a stage (183 from `promote`), and a
repeated key or a misspelt section was accepted silently (YAML keeps the last value).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.common import SECTIONS, ConfigError, load_params

REPO = Path(__file__).resolve().parents[2]
STAGE = (
    "import sys; from pipelines.common import run_stage; import pipelines.data as d; "
    "run_stage(d.main, *sys.argv[1:])"
)
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


def test_a_stage_reports_a_syntax_error_as_one_line(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(CASES[0][1])
    proc = subprocess.run(
        [sys.executable, "-c", STAGE, str(params), str(tmp_path / "o"), str(tmp_path / "m.json")],
        cwd=REPO,
        env={**os.environ, "LUDORA_DEBUG": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and f"{params}:3:" in errors[0], proc.stderr
    assert "flow sequence started at line 2" in errors[0]
    assert not (tmp_path / "o").exists()
