"""The CI flow: the one command the workflow, `make ci-flow` and the tests run.

Two modes (docs/promotion.md, "CI: two modes"):

- ``smoke`` (every change): the pipeline on the smoke overrides (``.github/small-params.txt``,
  lowered floors) with a job-local MLflow store, so nothing it packages reaches the shared
  registry; its candidate is compared, read-only, with the champion; a report.
- ``release`` (the main branch, on demand): refuses smoke parameters, ``dvc repro`` on the
  committed params, pushes every new version to the DVC remote and tags it in the registry with
  the DVC pointer, then promotes against the champion of the shared registry; a report.

Stores come from the environment (CI secrets): ``MLFLOW_TRACKING_URI`` (a tracking server) and
``LUDORA_DVC_REMOTE`` (a DVC remote URL, set as the default remote in ``.dvc/config.local``).
Without them (a fork) the local store is used and the flow says so in one line.

Versions travel through the DVC remote as :mod:`training.packaging.transfer` describes; the
report is :mod:`pipelines.ci_report`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import typer
import yaml

from pipelines import paths
from pipelines.ci_report import base_ref, collect_diffs, render_report, write_report
from pipelines.common import REPO_ROOT, git_commit, load_params, main_repo_root, stage_config
from training.packaging.transfer import (
    CONTENT_TAG,
    DVC_TAG,
    dvc_exe,
    hydrate,
    push_and_tag,
    run_cmd,
)

__all__ = ["CONTENT_TAG", "DVC_TAG", "MODES", "REMOTE_ENV", "CIError", "Stores", "run_flow"]

logger = logging.getLogger(__name__)

MODES = ("smoke", "release")
REMOTE_ENV = "LUDORA_DVC_REMOTE"
REMOTE_NAME = "ludora-ci"
SMOKE_PARAMS = Path(".github/small-params.txt")
DEFAULT_REPORT = Path("reports/ci.md")


class CIError(RuntimeError):
    """The flow cannot go on (a store, a command, a refused parameter); the message says why."""


# ----------------------------------------------------------------------------- stores


@dataclasses.dataclass(frozen=True)
class Stores:
    """Where the registry and the artifacts live for this run."""

    tracking_uri: str
    shared: bool  # MLFLOW_TRACKING_URI was given (a secret); otherwise the local store
    remote: str | None  # DVC remote URL or name; None: nothing is pulled or pushed
    notes: tuple[str, ...] = ()

    def lines(self) -> list[str]:
        """What the report and the log say about the stores (one line each)."""
        where = "shared" if self.shared else "local"
        out = [f"registry: {self.tracking_uri} ({where})", f"DVC remote: {self.remote or 'none'}"]
        return out + list(self.notes)


def resolve_stores(root: Path, env: Mapping[str, str]) -> Stores:
    """Registry and DVC remote from the environment, falling back to the local store.

    ``LUDORA_DVC_REMOTE`` becomes the default remote in ``.dvc/config.local`` (never
    committed); without it a default remote already configured in ``.dvc/config`` is used.
    """
    uri = env.get("MLFLOW_TRACKING_URI", "").strip()
    url = env.get(REMOTE_ENV, "").strip()
    if url:
        run_cmd([dvc_exe(), "remote", "add", "--local", "-d", "-f", REMOTE_NAME, url], cwd=root)
        remote: str | None = url
    else:
        proc = run_cmd([dvc_exe(), "config", "core.remote"], cwd=root, check=False)
        remote = (proc.stdout.strip() or None) if proc.returncode == 0 else None
    local = f"sqlite:///{main_repo_root(root) / 'mlflow.db'}"
    notes = []
    if not uri and remote is None:  # a fork, or a run without secrets: one line says so
        notes.append(
            f"no MLFLOW_TRACKING_URI / {REMOTE_ENV} secrets (a fork?): local store {local}, "
            "no DVC remote; nothing shared is compared, pulled, pushed or promoted"
        )
    elif not uri:
        notes.append(f"no MLFLOW_TRACKING_URI secret: local store {local}, not the shared one")
    elif remote is None:
        notes.append(f"no {REMOTE_ENV} secret and no default DVC remote: nothing pulled or pushed")
    return Stores(uri or local, bool(uri), remote, tuple(notes))


@contextlib.contextmanager
def tracking(uri: str) -> Iterator[None]:
    """Point MLflow (this process and its children) at ``uri`` for the block."""
    import mlflow

    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old
        mlflow.set_tracking_uri(old or uri)


# ----------------------------------------------------------------------------- smoke guard


def smoke_overrides(path: Path) -> dict[str, Any]:
    """``-S key=value`` lines of the smoke file as {dotted key: YAML value}."""
    out: dict[str, Any] = {}
    for n, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith("-S ") or "=" not in line:
            raise CIError(f"{path}:{n}: expected '-S key=value', got {line!r}")
        key, value = line[3:].strip().split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def dotted(params: Mapping[str, Any], key: str) -> Any:
    """``params['a']['b']`` for ``a.b``; None when a level is missing."""
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _is_ceiling(key: str) -> bool:
    """``max_*`` gates are ceilings (higher is looser); the others are floors."""
    return any(part.startswith("max") for part in key.split("."))


def smoke_gates_in_effect(params: Mapping[str, Any], overrides: Mapping[str, Any]) -> list[str]:
    """Gates of ``params`` as loose as (or looser than) the smoke file lowers them."""
    loose = []
    for key, smoke in overrides.items():
        if not key.startswith("gates."):
            continue
        value = dotted(params, key)
        if not isinstance(value, int | float) or not isinstance(smoke, int | float):
            continue
        if (value >= smoke) if _is_ceiling(key) else (value <= smoke):
            loose.append(f"{key}={value}")
    return loose


def check_release_params(root: Path, params: Mapping[str, Any], smoke_file: Path) -> None:
    """Refuse a release on parameters a smoke run applied or lowered (one line each).

    Two ways lowered floors could reach the shared champion: overrides left in the workspace's
    params.yaml by ``dvc exp run -S`` (uncommitted), and the smoke floors committed as the real
    ones. Both are refused before anything runs.
    """
    proc = run_cmd(["git", "diff", "--quiet", "HEAD", "--", "params.yaml"], cwd=root, check=False)
    if proc.returncode != 0:
        raise CIError(
            "release: params.yaml differs from the commit (overrides applied by `dvc exp run "
            "-S`?); release promotes committed parameters only: commit them or run --mode smoke"
        )
    loose = smoke_gates_in_effect(params, smoke_overrides(smoke_file))
    if loose:
        raise CIError(
            f"release: {', '.join(loose)} as loose as the smoke floors of {smoke_file}; "
            "release promotes only on production gates (raise them in params.yaml)"
        )


# ----------------------------------------------------------------------------- decisions


def evaluator_for(model: str) -> Any:
    """The promotion evaluator of ``ludora-ml promote`` for ``model`` (same held-out data)."""
    from training.packaging import promotion as pr

    held_out = paths.stage_args("package")  # what the package stage gated the candidates on
    if model == "weakness":
        return pr.weakness_evaluator(held_out["features_test"])
    from pipelines.common import REPO_ROOT
    from pipelines.quantize_generator import QuantizeConfig
    from training.rubric_sample import load_requests

    q = stage_config(QuantizeConfig, "quantize_generator")
    return pr.generator_evaluator(
        pr.generator_reevaluator(
            held_out["text_test"],
            held_out["text_test"].with_name("train.jsonl"),
            eval_samples=q.eval_samples,
            seed=q.seed,
            max_new_tokens=q.max_new_tokens,
            threads=q.threads,
            unseen_eval_samples=q.unseen_eval_samples,
            realistic=load_requests([REPO_ROOT / p for p in q.realistic_requests]),
        )
    )


def gate_refusal(model: str, record: Mapping[str, Any]) -> Any:
    """A refused decision for a candidate the package stage did not package (failed gates)."""
    from training.packaging.promotion import Decision

    failed = record.get("failed_gates") or [record.get("status", "not packaged")]
    reasons = [f"not packaged: gate {g} failed" for g in failed]
    return Decision(model, 0, None, False, False, reasons, {}, None)


def compare_read_only(model: str, version: int, artifacts_root: Path, rules: Any) -> Any:
    """The candidate against the registry's champion, moving nothing (the smoke decision)."""
    from training.packaging import promotion as pr
    from training.packaging import registry as reg

    champ_mv = reg.current_champion(reg.client(), reg.REGISTRY_NAMES[model])
    champ = None if champ_mv is None else int(champ_mv.tags["ludora.version"])
    root = artifacts_root / model
    champ_dir = None if champ is None or champ == version else root / str(champ)
    cand_m, champ_m = evaluator_for(model)(root / str(version), champ_dir)
    reasons = pr.validate(cand_m, champ_m, rules)
    return pr.Decision(
        model,
        version,
        champ,
        not reasons,
        False,
        reasons,
        cand_m,
        champ_m,
        note="smoke parameters: compared only, nothing moved",
    )


# ----------------------------------------------------------------------------- the flow


def run_flow(
    *,
    mode: str,
    smoke_file: Path = SMOKE_PARAMS,
    report: Path = DEFAULT_REPORT,
    base: str | None = None,
    env: Mapping[str, str] | None = None,
) -> list[Any]:
    """Pull, reproduce, push, promote (release) or compare (smoke), report. Returns decisions."""
    from pipelines.package import ARTIFACTS_ROOT
    from training.packaging import promotion as pr

    root = REPO_ROOT
    if mode not in MODES:
        raise CIError(f"--mode must be one of {list(MODES)}, got {mode!r}")
    env = dict(os.environ if env is None else env)
    smoke_path = smoke_file if smoke_file.is_absolute() else root / smoke_file
    if not smoke_path.is_file():
        raise CIError(f"{smoke_path}: smoke parameter file not found")
    if mode == "release":
        check_release_params(root, load_params(root / "params.yaml"), smoke_path)
    stores = resolve_stores(root, env)
    for line in stores.lines():
        logger.info(line)
    server = stores.tracking_uri.startswith(("http://", "https://"))
    if mode == "release" and server and not stores.remote:
        raise CIError(
            f"release: a shared registry ({stores.tracking_uri}) needs a DVC remote "
            f"({REMOTE_ENV}): without it the champion's files cannot be pulled here and the "
            "candidate's cannot be stored for the next job"
        )
    artifacts_root = ARTIFACTS_ROOT
    models = list(load_params(root / "params.yaml")["package"]["models"])
    with tracking(stores.tracking_uri):
        if stores.remote:
            logger.info("pulling outputs, run cache and the registry's versions")
            run_cmd([dvc_exe(), "pull", "-q", "--run-cache", "--allow-missing"], cwd=root)
            for model in models:
                pulled = hydrate(root, artifacts_root, model)
                if pulled:
                    logger.info("%s: pulled versions %s from the DVC remote", model, pulled)
    if mode == "release":
        job_uri = stores.tracking_uri
        logger.info("dvc repro on the committed params")
        run_cmd(
            [dvc_exe(), "repro"],
            cwd=root,
            env={**env, "MLFLOW_TRACKING_URI": job_uri},
            stream=True,
        )
    else:
        # smoke versions are registered in a job-local store, never in the shared registry
        job_uri = f"sqlite:///{main_repo_root(root) / 'mlflow.db'}"
        overrides = [t for line in _override_lines(smoke_path) for t in line.split(" ", 1)]
        logger.info(
            "dvc exp run with %d smoke overrides, registry %s", len(overrides) // 2, job_uri
        )
        run_cmd(
            [dvc_exe(), "exp", "run", *overrides],
            cwd=root,
            env={**env, "MLFLOW_TRACKING_URI": job_uri},
            stream=True,
        )
    package_report = json.loads(paths.stage_args("package")["metrics_file"].read_text())
    params = load_params(root / "params.yaml")
    decisions = []
    with tracking(stores.tracking_uri):
        for model in models:
            rec = package_report.get(model) or {}
            if rec.get("version") is None:
                decisions.append(gate_refusal(model, rec))
                continue
            version = int(rec["version"])
            rules = pr.rules_from_params(params["gates"], model)
            if mode == "smoke":
                decisions.append(compare_read_only(model, version, artifacts_root, rules))
                continue
            if stores.remote:  # stored before it can become champion: any clone can pull it
                push_and_tag(root, artifacts_root, model, version)
            decisions.append(_promote(model, version, artifacts_root, rules))
        if mode == "release" and stores.remote:
            run_cmd([dvc_exe(), "push", "-q", "--run-cache"], cwd=root)
    ref = base_ref(root, base)
    text = render_report(
        mode=mode,
        commit=git_commit(root),
        base=ref,
        stores=stores.lines(),
        decisions=decisions,
        package_report=package_report,
        diffs=collect_diffs(root, ref),
    )
    write_report(text, report if report.is_absolute() else root / report, env)
    return decisions


def _promote(model: str, version: int, artifacts_root: Path, rules: Any) -> Any:
    """``promote`` of exactly the version this run packaged (it passed this run's gates)."""
    from training.packaging import promotion as pr

    try:
        return pr.promote(
            model,
            artifacts_root=artifacts_root,
            rules=rules,
            evaluate=evaluator_for(model),
            version=version,
        )
    except pr.PromotionError as exc:
        return pr.Decision(model, version, None, False, False, [str(exc)], {}, None)


def _override_lines(path: Path) -> list[str]:
    smoke_overrides(path)  # validates the format
    return [
        line.strip()
        for line in path.read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]


# ----------------------------------------------------------------------------- CLI

app = typer.Typer(help="The CI flow (docs/promotion.md): smoke or release, with a report.")


@app.command("run")
def run_cmd_cli(
    mode: str = typer.Option(..., "--mode", help="smoke (every change) or release (main)."),
    report: Path = typer.Option(DEFAULT_REPORT, "--report", help="Markdown report file."),
    base: str | None = typer.Option(None, "--base", help="Ref to diff against (origin/main)."),
    smoke_params: Path = typer.Option(SMOKE_PARAMS, "--smoke-params", help="Smoke overrides."),
) -> None:
    """Run the flow; exit 1 when a release candidate is refused (the report is written first)."""
    decisions = run_flow(mode=mode, smoke_file=smoke_params, report=report, base=base)
    for d in decisions:  # candidate 0: the package stage packaged nothing (failed gates)
        typer.echo(d.summary() if d.candidate else f"{d.model}: {'; '.join(d.reasons)}")
    typer.echo(f"report: {report}")
    if mode == "release" and not all(d.passed for d in decisions):
        raise typer.Exit(1)


@app.command("pull")
def pull_cli() -> None:
    """Pull the registry's champions (and the newest versions) into artifacts/ (serving hosts)."""
    from pipelines.package import ARTIFACTS_ROOT

    stores = resolve_stores(REPO_ROOT, os.environ)
    if not stores.remote:
        raise CIError(f"pull: no DVC remote ({REMOTE_ENV} unset and no default remote)")
    models = list(load_params()["package"]["models"])
    with tracking(stores.tracking_uri):
        for model in models:
            typer.echo(f"{model}: pulled {hydrate(REPO_ROOT, ARTIFACTS_ROOT, model)}")


@app.command("push")
def push_cli(
    model: str = typer.Option(..., help="weakness or generator."),
    version: int = typer.Option(..., min=1, help="Packaged version to store."),
) -> None:
    """Store a packaged version in the DVC remote and tag its registry version."""
    from pipelines.package import ARTIFACTS_ROOT

    stores = resolve_stores(REPO_ROOT, os.environ)
    if not stores.remote:
        raise CIError(f"push: no DVC remote ({REMOTE_ENV} unset and no default remote)")
    with tracking(stores.tracking_uri):
        typer.echo(f"{model} v{version}: {push_and_tag(REPO_ROOT, ARTIFACTS_ROOT, model, version)}")


def main() -> None:
    """Entry point: logging, then the typer app with one-line expected errors."""
    from pipelines.common import run_stage, setup_logging

    setup_logging()
    run_stage(app, name="pipelines.ci")


if __name__ == "__main__":
    # Run the importable module, not __main__: run_stage recognises this repo's errors by their
    # module (pipelines.ci.CIError), and prints them as one line instead of a traceback.
    from pipelines.ci import main as _main

    _main()
