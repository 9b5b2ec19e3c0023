"""The CI flow end to end: a real `mlflow server`, a local DVC remote, clones, the workflow.

Each run happens in a fresh clone of a tiny copy of this repository (the committed tree with a
weakness-only `dvc.yaml` derived from the real one, and tiny committed params), like a CI job:
nothing carries over between runs except what the shared registry and the DVC remote hold.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines import ci
from tests.pipelines._mlflow_server import mlflow_server

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
WEAKNESS_STAGES = ("data", "features", "train_weakness", "export_weakness", "package")
GENERATOR_INPUTS = (
    "outputs/onnx/generator",
    "metrics/quantize.json",
    "outputs/models/generator",
    "outputs/text",
)
# The smoke file of the tiny repo: one training override and one lowered floor, as the real one.
SMOKE = "-S train_weakness.num_boost_round=20\n-S gates.weakness.auc_floor=0.55\n"


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def _commit(cwd: Path, message: str) -> None:
    _git(cwd, "add", "-A")
    _git(cwd, "-c", "user.email=t@ludora.invalid", "-c", "user.name=t", "commit", "-qm", message)


def _set(params_file: Path, key: str, value: Any) -> None:
    params = yaml.safe_load(params_file.read_text())
    node = params
    *parents, last = key.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))


def make_origin(path: Path) -> Path:
    """This repo's tree, reduced to the weakness model, on a tiny budget, committed on main."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout of the repository")
    # tracked and new (not ignored) files: the tree as it would be committed
    files = _git(REPO, "ls-files", "-z", "--cached", "--others", "--exclude-standard").split("\0")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (path / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, path / name)
    pipeline = yaml.safe_load((path / "dvc.yaml").read_text())
    stages = {name: pipeline["stages"][name] for name in WEAKNESS_STAGES}
    package = stages["package"]
    package["deps"] = [d for d in package["deps"] if not str(d).startswith(GENERATOR_INPUTS)]
    package["params"] = [p for p in package["params"] if not str(p).startswith("quantize")]
    (path / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    (path / "dvc.lock").unlink(missing_ok=True)
    params = path / "params.yaml"
    for key, value in {
        "data.simulator.n_learners": 150,
        "data.simulator.days": 40,
        "train_weakness.tuning.n_trials": 0,
        # test AUC 0.760 here; 60 rounds: 0.764 (better), 3 rounds: 0.754 (worse)
        "train_weakness.num_boost_round": 6,
        # tiny-data production floors: above the smoke ones, so release accepts them
        "gates.weakness.auc_floor": 0.6,
        "gates.weakness.views.min_auc": 0.5,
        "gates.weakness.views.max_ece": 0.15,
        "gates.weakness.views.max_auc_gap": {"averages_counts": 0.1},
        "package.models": ["weakness"],
    }.items():
        _set(params, key, value)
    (path / ".github/small-params.txt").write_text(SMOKE + "-S gates.weakness.views.max_ece=0.2\n")
    _git(path, "init", "-q", "-b", "main")
    _commit(path, "tiny weakness-only pipeline")
    return path


class Flow:
    """Fresh clones of the origin, run with the shared stores in their environment."""

    def __init__(self, base: Path, url: str | None, remote: Path | None) -> None:
        self.base, self.origin = base, make_origin(base / "origin")
        self.env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "MLFLOW_TRACKING_URI": url or "",
            ci.REMOTE_ENV: str(remote or ""),
        }
        self.env.pop("GITHUB_STEP_SUMMARY", None)
        self.n = 0

    def clone(self, branch: str | None = None) -> Path:
        self.n += 1
        path = self.base / f"job{self.n}"
        _git(self.base, "clone", "-q", str(self.origin), str(path))
        _git(path, "config", "user.email", "ci@ludora.invalid")
        _git(path, "config", "user.name", "ludora-ci")
        if branch:
            _git(path, "checkout", "-qb", branch)
        return path

    def run(self, cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args),
            cwd=cwd,
            env={**self.env, "PYTHONPATH": str(cwd), **env},
            capture_output=True,
            text=True,
            timeout=600,
        )

    def make(self, cwd: Path, mode: str, **env: str) -> subprocess.CompletedProcess[str]:
        """What the workflow runs: `make ci-flow CI_MODE=<mode>` (with this venv's bin)."""
        return self.run(cwd, "make", "-s", "ci-flow", f"CI_MODE={mode}", f"BIN={BIN}", **env)

    def change_origin(self, key: str, value: Any) -> None:
        _set(self.origin / "params.yaml", key, value)
        _commit(self.origin, f"{key}={value}")


def _champion(url: str) -> tuple[int, list[int]]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=url, registry_uri=url)
    mv = client.get_model_version_by_alias("ludora-weakness", "champion")
    history = json.loads(
        client.get_registered_model("ludora-weakness").tags["ludora.champion_history"]
    )
    return int(mv.tags["ludora.version"]), history


def _versions(url: str) -> dict[int, dict[str, str]]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=url, registry_uri=url)
    return {
        int(mv.tags["ludora.version"]): dict(mv.tags)
        for mv in client.search_model_versions("name='ludora-weakness'")
    }


@pytest.mark.slow
def test_release_promotes_refuses_rolls_back_and_serves_the_registry_champion(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("needs make (the workflow runs `make ci-flow`)")
    remote = tmp_path / "dvc-remote"
    remote.mkdir()
    with mlflow_server(
        f"sqlite:///{tmp_path / 'registry.db'}", tmp_path, artifacts_destination=tmp_path / "mlart"
    ) as url:
        flow = Flow(tmp_path, url, remote)

        # 1. the first candidate (6 rounds): promoted (floors only) and pushed to the DVC remote
        job1 = flow.clone()
        first = flow.make(job1, "release")
        assert first.returncode == 0, first.stderr[-3000:]
        assert "weakness: candidate v1 vs no champion: promoted" in first.stdout
        assert _champion(url) == (1, [1])
        v1 = _versions(url)[1]
        assert v1[ci.DVC_TAG].endswith(".dir") and any(remote.rglob("*"))
        assert "**promoted**" in (job1 / "reports/ci.md").read_text()

        # 2. a better one (more boosting rounds) on main: promoted over v1
        flow.change_origin("train_weakness.num_boost_round", 60)
        job2 = flow.clone()
        second = flow.make(job2, "release")
        assert second.returncode == 0, second.stderr[-3000:]
        assert "candidate v2 vs champion v1: promoted" in second.stdout
        # v1 came from the DVC remote (this clone never built it), with the registry's content
        pulled = json.loads((job2 / "artifacts/weakness/1/manifest.json").read_text())
        assert pulled["content_sha256"] == v1[ci.CONTENT_TAG]
        assert _champion(url) == (2, [1, 2])

        # 3. a deliberately worse one (3 rounds): refused with its reasons; v2 stays
        flow.change_origin("train_weakness.num_boost_round", 3)
        job3 = flow.clone()
        worse = flow.make(job3, "release")
        assert worse.returncode != 0, worse.stdout
        assert "candidate v3 vs champion v2: refused" in worse.stdout
        assert "auc" in worse.stdout and "baseline model auc" in worse.stdout
        report = (job3 / "reports/ci.md").read_text()
        assert "**refused**" in report and "| auc |" in report
        assert _champion(url) == (2, [1, 2])
        assert ci.DVC_TAG in _versions(url)[3]  # stored too: the next job numbers from v4

        # 4. rollback: champion back to v1, in the shared registry
        back = flow.run(
            job3, str(BIN / "python"), "-m", "pipelines.cli", "rollback", "--model", "weakness"
        )
        assert back.returncode == 0, back.stderr
        assert "from v2 to v1" in back.stdout
        assert _champion(url) == (1, [1])

        # 5. a serving host: a fresh clone pulls what the registry names; the folders the
        # registry recorded (on the "runners" job1..3) are gone, so only the pull can serve
        host = flow.clone()
        got = flow.run(host, str(BIN / "python"), "-m", "pipelines.ci", "pull")
        assert got.returncode == 0, got.stderr
        for job in (job1, job2, job3):
            shutil.rmtree(job / "artifacts")
        from fastapi.testclient import TestClient

        from serving.app import create_app
        from serving.settings import ServingSettings

        settings = ServingSettings(artifact_root=host / "artifacts", tracking_uri=url)
        app = create_app(weakness_ref="models:/ludora-weakness@champion", settings=settings)
        with TestClient(app) as client:
            models = client.get("/api/v1/ai/models").json()["models"]
            served = client.post(
                "/api/v1/ai/predict-weakness",
                json={
                    "user_id": "u1",
                    "average_score_per_topic": {"t01": 0.2, "t02": 0.9},
                    "recent_quiz_scores": [0.3, 0.9],
                    "time_spent_per_topic_minutes": {"t01": 30, "t02": 20},
                },
            )
        (weakness,) = [m for m in models if m["name"] in ("weakness", "ludora-weakness")]
        assert weakness["version"] == "1"  # what the registry says after the rollback
        assert weakness["path"] == str(host / "artifacts/weakness/1")
        assert served.status_code == 200 and served.json()["model_version"] == "1"

        # 6. a smoke run of a change: a report with metric diffs against main; nothing shared
        before = _versions(url)
        branch = flow.clone(branch="change")
        _set(branch / "params.yaml", "train_weakness.base.num_leaves", 7)
        _commit(branch, "fewer leaves")
        summary = tmp_path / "step-summary.md"
        smoke = flow.make(branch, "smoke", GITHUB_STEP_SUMMARY=str(summary))
        assert smoke.returncode == 0, smoke.stderr[-3000:]
        text = (branch / "reports/ci.md").read_text()
        assert text.startswith("# ludora-ml CI: smoke run of") and "vs origin/main" in text
        assert "| metrics/weakness.json | auc |" in text  # the metric diff against main
        assert "| params.yaml | train_weakness.base.num_leaves | 31 | 7 |" in text
        assert "| params.yaml | gates.weakness.auc_floor | 0.6 | 0.55 |" in text
        assert "compared only, nothing moved" in text and "champion v1" in text
        assert summary.read_text() == text
        assert _versions(url) == before and _champion(url) == (1, [1])


def test_release_refuses_smoke_parameters_before_running_anything(tmp_path):
    flow = Flow(tmp_path, None, None)
    job = flow.clone()
    python = str(BIN / "python")
    # overrides left in the workspace (what `dvc exp run -S` does)
    _set(job / "params.yaml", "gates.weakness.auc_floor", 0.65)
    dirty = flow.run(job, python, "-m", "pipelines.ci", "run", "--mode", "release")
    assert dirty.returncode == 1
    lines = dirty.stderr.strip().splitlines()
    assert len(lines) == 1 and "params.yaml differs from the commit" in lines[0], dirty.stderr
    # the smoke floor committed as the real one
    _set(job / "params.yaml", "gates.weakness.auc_floor", 0.55)
    _commit(job, "lower the floor")
    lowered = flow.run(job, python, "-m", "pipelines.ci", "run", "--mode", "release")
    assert lowered.returncode == 1
    lines = lowered.stderr.strip().splitlines()
    assert len(lines) == 1, lowered.stderr
    assert "gates.weakness.auc_floor=0.55" in lines[0] and "smoke floors" in lines[0]
    assert not (job / "outputs").exists() and not (job / "artifacts").exists()


def test_without_secrets_the_local_store_is_used_and_said_in_one_line(tmp_path):
    (tmp_path / "repo").mkdir()
    stores = ci.resolve_stores(tmp_path / "repo", {})
    assert not stores.shared and stores.remote is None
    assert stores.tracking_uri == f"sqlite:///{(tmp_path / 'repo').resolve() / 'mlflow.db'}"
    (note,) = stores.notes
    assert "no MLFLOW_TRACKING_URI" in note and "local store" in note


@pytest.mark.parametrize(
    ("key", "value", "loose"),
    [
        ("gates.weakness.auc_floor", 0.55, True),
        ("gates.weakness.auc_floor", 0.5, True),
        ("gates.weakness.auc_floor", 0.7, False),
        ("gates.weakness.views.max_ece", 0.2, True),
        ("gates.weakness.views.max_ece", 0.3, True),
        ("gates.weakness.views.max_ece", 0.02, False),
    ],
)
def test_smoke_gates_in_effect_by_direction(key, value, loose):
    overrides = ci.smoke_overrides(REPO / ".github/small-params.txt")
    params: dict[str, Any] = {}
    node = params
    *parents, last = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    assert bool(ci.smoke_gates_in_effect(params, overrides)) is loose


def test_the_committed_params_pass_the_release_guard():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    overrides = ci.smoke_overrides(REPO / ".github/small-params.txt")
    assert any(k.startswith("gates.") for k in overrides)
    assert ci.smoke_gates_in_effect(params, overrides) == []


def test_workflow_runs_the_make_target_the_tests_run():
    workflow = yaml.safe_load((REPO / ".github/workflows/pipeline.yml").read_text())
    job = workflow["jobs"]["pipeline"]
    steps = [s for s in job["steps"] if "make ci-flow" in s.get("run", "")]
    assert len(steps) == 1, "the workflow must run the flow through `make ci-flow` once"
    step = steps[0]
    assert 'CI_MODE="$CI_MODE"' in step["run"]
    mode = job["env"]["CI_MODE"]
    assert "refs/heads/main" in mode and "'release'" in mode and "'smoke'" in mode
    assert step["env"]["MLFLOW_TRACKING_URI"] == "${{ secrets.MLFLOW_TRACKING_URI }}"
    assert step["env"][ci.REMOTE_ENV] == f"${{{{ secrets.{ci.REMOTE_ENV} }}}}"
    triggers = workflow.get("on", workflow.get(True))
    assert {"push", "workflow_dispatch"} <= set(triggers)
    makefile = (REPO / "Makefile").read_text()
    recipe = makefile.split("\nci-flow:\n", 1)[1].splitlines()[0]
    assert "-m pipelines.ci run --mode $(CI_MODE)" in recipe
    assert "reports/" in str(workflow["jobs"]["pipeline"]["steps"][-1]["with"]["path"])
    comment = [s for s in job["steps"] if "gh pr comment" in s.get("run", "")]
    assert comment and "--body-file reports/ci.md" in comment[0]["run"]
    assert job["permissions"]["pull-requests"] == "write"


def test_report_shows_the_decision_gates_and_diffs():
    from pipelines.ci_report import Diffs, render_report
    from training.packaging.promotion import Decision

    refused = Decision(
        "weakness",
        3,
        2,
        False,
        False,
        ["Metric auc ... baseline model auc = 0.76"],
        {"auc": 0.75},
        {"auc": 0.76},
    )
    text = render_report(
        mode="release",
        commit="0123456789abcdef",
        base="origin/main",
        stores=["registry: http://mlflow (shared)", "DVC remote: s3://bucket"],
        decisions=[refused],
        package_report={
            "weakness": {
                "gates": [{"name": "auc_floor", "threshold": 0.7, "value": 0.75, "passed": True}]
            }
        },
        diffs=Diffs(
            metrics={
                "metrics/weakness.json": {
                    "auc": {"old": 0.76, "new": 0.75, "diff": -0.01},
                    "views.full.auc": {"old": 0.76, "new": 0.75, "diff": -0.01},
                },
                "metrics/data.json": {"n_events": {"old": 10, "new": 11, "diff": 1}},
            },
            metrics_table="| Path | Metric |",
            params={"params.yaml": {"train_weakness.num_boost_round": {"old": 60, "new": 3}}},
            rubric_changes=["eval/rubric/generator-v8/ratings_0.json"],
            rubric_shares={"generator-v8": {"n": 100, "meets_all": 0.6, "solvable": 0.99}},
        ),
    )
    assert text.startswith("# ludora-ml CI: release run of 0123456789ab vs origin/main")
    assert "### weakness: candidate v3 vs champion v2: **refused**" in text
    assert "- Metric auc ... baseline model auc = 0.76" in text
    assert "| auc | 0.75 | 0.76 | -0.01 |" in text
    assert "| weakness | auc_floor | 0.7 | 0.75 | pass |" in text
    assert "| metrics/weakness.json | auc | 0.76 | 0.75 | -0.01 |" in text
    headline = text.split("<details>")[0]
    assert "views.full.auc" not in headline and "n_events" not in headline  # in the details
    assert "| params.yaml | train_weakness.num_boost_round | 60 | 3 |" in text
    assert "- `eval/rubric/generator-v8/ratings_0.json`" in text
    assert "| sample | n | meets_all | solvable |" in text
    assert "| generator-v8 | 100 | 0.6 | 0.99 |" in text


def test_rated_samples_summarise_the_changed_rubric_folders():
    from pipelines.ci_report import rated_samples

    changed = ["eval/rubric/generator-v6/ratings_0.json", "docs/generator_eval.md"]
    shares = rated_samples(REPO, changed)
    assert set(shares) == {"generator-v6"} and shares["generator-v6"]["n"] > 0
    assert 0 <= shares["generator-v6"]["meets_all"] <= 1


def test_a_store_behind_the_registry_cannot_register_its_version_number(tmp_path, monkeypatch):
    """Two clones, one registry: the second clone's v1 is not the registry's v1."""
    from pipelines.package import package_candidate, register_version, weakness_candidate
    from tests.fixtures.store import fresh_tracking_uri
    from tests.fixtures.weakness import make_weakness_export
    from training.packaging.registry import PromotionError

    monkeypatch.setenv("MLFLOW_TRACKING_URI", fresh_tracking_uri(tmp_path))
    for clone, noise in (("a", 0.0), ("b", 0.3)):
        src = tmp_path / clone / "onnx"
        src.mkdir(parents=True)
        make_weakness_export(src, noise=noise)
        root = tmp_path / clone / "artifacts"
        assert package_candidate(weakness_candidate(src, auc_floor=0.5), root)["version"] == 1
        if clone == "a":
            assert register_version(root / "weakness/1", experiment="t") == "1"
            assert register_version(root / "weakness/1", experiment="t") == "1"  # idempotent
    with pytest.raises(PromotionError, match=r"ludora v1 with other content.*behind the registry"):
        register_version(root / "weakness/1", experiment="t")
    # nor is it ever compared as the registry's v1
    from training.packaging.transfer import TransferError, hydrate

    with pytest.raises(TransferError, match=r"weakness/1 holds content .* diverged"):
        hydrate(tmp_path / "b", root, "weakness")


def test_release_on_a_tracking_server_without_a_dvc_remote_is_refused(tmp_path):
    flow = Flow(tmp_path, "http://127.0.0.1:9", None)  # never contacted: refused before
    job = flow.clone()
    result = flow.run(job, str(BIN / "python"), "-m", "pipelines.ci", "run", "--mode", "release")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "needs a DVC remote (LUDORA_DVC_REMOTE)" in errors[0], result.stderr
    assert "Traceback" not in result.stderr and not (job / "outputs").exists()


def test_a_candidate_that_failed_its_gates_is_a_refusal_naming_them():
    from pipelines.ci_report import decision_md

    refusal = ci.gate_refusal(
        "weakness", {"status": "skipped_gates_failed", "failed_gates": ["auc_floor"]}
    )
    assert not refusal.passed and refusal.reasons == ["not packaged: gate auc_floor failed"]
    text = "\n".join(decision_md(refusal))
    assert "candidate none vs champion none: **refused**" in text
    assert "- not packaged: gate auc_floor failed" in text
