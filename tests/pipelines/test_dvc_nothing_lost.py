"""Under real `dvc repro`, a failed, stopped or killed stage never costs the last good outputs.

Each test builds a throwaway DVC project in a temp folder whose `data` stage carries the repo's
own `dvc.yaml` declaration of that stage's outputs (so dropping `persist` there fails here) and
runs the real stage code on a tiny events CSV. DVC deletes a stage's declared outputs before it
runs the command unless they are `persist: true`; the stage then replaces them atomically.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
HEADER = (
    "user_id,topic_id,item_id,timestamp,activity,score,time_spent_s,hints_used,attempt,is_revisit"
)
STAGE_PY = (
    "import functools\n"
    "from pipelines.common import stage_main\n"
    "from pipelines import data\n"
    "main = functools.partial(data.run, 'params.yaml', 'outputs/events', 'metrics/data.json')\n"
    "main.__module__ = 'pipelines.data'\n"
    "stage_main(main)\n"
)

pytestmark = pytest.mark.skipif(not (BIN / "dvc").exists(), reason="dvc is not installed")


def _csv(path: Path, n_rows: int, score: str = "0.5") -> None:
    rows = [
        f"u{i % 3},t1,i{i},{1767571200 + 60 * i},quiz,{score},10,0,1,false" for i in range(n_rows)
    ]
    path.write_text("\n".join([HEADER, *rows]) + "\n")


def _project(tmp_path: Path) -> Path:
    """A DVC project (no git) whose `data` stage declares its outputs as the repo does."""
    real = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["data"]
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "stage.py").write_text(STAGE_PY)
    _csv(proj / "events.csv", 4)
    params = {"data": {"source": "events_file", "path": "events.csv"}}
    (proj / "params.yaml").write_text(yaml.safe_dump({**params, "features": {"pass_mark": 0.6}}))
    stage = {
        "cmd": "python stage.py",
        "deps": ["events.csv"],
        "params": ["data", "features.pass_mark"],
        "outs": real["outs"],
        "metrics": real["metrics"],
    }
    (proj / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"data": stage}}))
    _dvc(proj, "init", "--no-scm", "-q")
    return proj


def _env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "DVC_NO_ANALYTICS": "1", **extra}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("LUDORA_PAUSE_BEFORE_RENAME", None)
    env.update(extra)
    return env


def _dvc(proj: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "dvc"), *args],
        cwd=proj,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=300,
    )


def _state(proj: Path) -> tuple[int | None, int | None]:
    from tests.fixtures.events import data_stage_state

    return data_stage_state(
        proj / "outputs" / "events" / "events.parquet", proj / "metrics" / "data.json"
    )


def _leftovers(proj: Path) -> list[str]:
    return sorted(
        p.name
        for d in (proj / "outputs", proj / "metrics")
        if d.is_dir()
        for p in d.iterdir()
        if p.name.startswith(".")
    )


def _good_first_run(proj: Path) -> str:
    done = _dvc(proj, "repro")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _state(proj) == (4, 4)
    return (proj / "dvc.lock").read_text()


def _start_paused(proj: Path) -> tuple[subprocess.Popen[str], int]:
    """`dvc repro -f` with the stage paused just before its rename; (dvc, the stage's pid)."""
    _csv(proj / "events.csv", 7)
    proc = subprocess.Popen(
        [str(BIN / "dvc"), "repro", "-f"],
        cwd=proj,
        env=_env(LUDORA_PAUSE_BEFORE_RENAME="events"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    marker = proj / "outputs" / "events.paused"
    deadline = time.monotonic() + 120
    while not marker.exists() or not marker.read_text():
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        assert time.monotonic() < deadline, "the stage never reached its rename"
        time.sleep(0.1)
    time.sleep(0.2)
    stage_pid = int(marker.read_text())
    marker.unlink()
    return proc, stage_pid


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _wait_gone(pid: int, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _wait_no_leftovers(proj: Path, timeout_s: float = 20.0) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while _leftovers(proj) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _leftovers(proj)


def test_failed_stage_keeps_the_previous_outputs_and_metrics(tmp_path: Path) -> None:
    proj = _project(tmp_path)
    lock = _good_first_run(proj)
    _csv(proj / "events.csv", 7, score="1.5")
    failed = _dvc(proj, "repro")
    assert failed.returncode != 0
    assert "column 'score'" in failed.stdout + failed.stderr
    assert "Traceback" not in failed.stdout + failed.stderr
    assert _state(proj) == (4, 4)  # DVC used to delete both before the stage ran
    assert (proj / "dvc.lock").read_text() == lock
    assert _leftovers(proj) == []


def test_sigterm_to_dvc_ends_the_stage_and_keeps_the_previous_outputs(tmp_path: Path) -> None:
    proj = _project(tmp_path)
    lock = _good_first_run(proj)
    proc, stage_pid = _start_paused(proj)
    proc.send_signal(signal.SIGTERM)  # dvc alone, as `kill -TERM <dvc pid>` does
    proc.wait(timeout=60)
    # dvc exits at once; its stage used to run on and write outputs dvc.lock never recorded
    assert _wait_gone(stage_pid), "the stage outlived dvc"
    assert _state(proj) == (4, 4)
    assert (proj / "dvc.lock").read_text() == lock
    assert _wait_no_leftovers(proj) == []


def test_ctrl_c_during_repro_keeps_the_previous_outputs(tmp_path: Path) -> None:
    proj = _project(tmp_path)
    _good_first_run(proj)
    proc, stage_pid = _start_paused(proj)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "interrupted" in out and "Traceback" not in out
    assert _wait_gone(stage_pid)
    assert _state(proj) == (4, 4)
    assert _wait_no_leftovers(proj) == []


def test_kill_9_of_the_stage_leaves_no_temp_files_for_good(tmp_path: Path) -> None:
    proj = _project(tmp_path)
    _good_first_run(proj)
    proc, stage_pid = _start_paused(proj)
    os.kill(stage_pid, signal.SIGKILL)  # no finally block runs
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    # the next `dvc repro` skips the stage (its outputs still match dvc.lock once the inputs
    # are back), so no later run of the stage would sweep what the kill left
    _csv(proj / "events.csv", 4)
    again = _dvc(proj, "repro")
    assert again.returncode == 0, again.stdout + again.stderr
    assert _state(proj) == (4, 4)
    assert _wait_no_leftovers(proj) == []


def test_every_declared_output_of_every_stage_survives_a_failed_run() -> None:
    """The same protection for train_generator, quantize_generator and the rest: persist."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    missing = []
    for name, stage in stages.items():
        for kind in ("outs", "metrics", "plots"):
            for entry in stage.get(kind, []):
                path, spec = next(iter(entry.items())) if isinstance(entry, dict) else (entry, {})
                if not (spec or {}).get("persist"):
                    missing.append(f"{name}: {path}")
    assert missing == []
