"""`ludora-ml`: the commands people run by hand (stages run through `dvc repro`).

Each command imports its heavy dependencies inside its body so `ludora-ml --help` stays fast.
"""

from __future__ import annotations

from typing import Any

import typer

from pipelines import paths


class _App(typer.Typer):
    """Typer whose expected errors (bad params, files, inputs) print one line and exit 1.

    The same wrapper as the stages (pipelines.common.run_stage): a traceback only with
    ``--debug`` or LUDORA_DEBUG=1.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from pipelines.common import run_stage

        return run_stage(super().__call__, *args, name="ludora-ml", **kwargs)


app = _App(
    help="Ludora ML pipeline: training, export, promotion and serving.", no_args_is_help=True
)


@app.callback()
def _main(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of expected errors."),
) -> None:
    import logging
    import os

    from pipelines.common import DEBUG_ENV, setup_logging

    if debug:
        os.environ[DEBUG_ENV] = "1"
    setup_logging(logging.DEBUG if verbose else logging.INFO)


# Commands are added below, one block per command, each owning its own imports.


# ----------------------------------------------------------------------------- serve (serving)
# The one serve command, shared with the light wheel's `ludora-serving serve` (serving/cli.py).
from serving.cli import serve  # noqa: E402  (typer only at import; the rest inside the body)

app.command("serve")(serve)


# ----------------------------------------------------------------------------- build-serving
@app.command("build-serving")
def build_serving_cmd(
    out: str = typer.Option("dist", "--out", help="Folder for the wheel (created)."),
) -> None:
    """Write the ludora-serving wheel: serving/ under the one import name ludora_serving."""
    from pathlib import Path

    from export.serving_dist import build_wheel

    typer.echo(build_wheel(Path(out)))


# ----------------------------------------------------------------------------- promote / rollback
@app.command("promote")
def promote_cmd(
    model: str = typer.Option(..., help="weakness or generator."),
    version: int | None = typer.Option(None, min=1, help="Packaged version (default: latest)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Compare and report; move nothing."),
) -> None:
    """Promote a packaged version to `champion` if it passes floors and beats (or holds) it."""
    from pipelines.ci import evaluator_for
    from pipelines.common import setup_mlflow, stage_config
    from pipelines.gates import load_gates
    from pipelines.package import ARTIFACTS_ROOT, PackageConfig
    from training.packaging import promotion as pr

    if model not in pr.REGISTRY_NAMES:
        raise typer.BadParameter(
            f"--model must be one of {sorted(pr.REGISTRY_NAMES)}, got {model!r}"
        )
    gates = load_gates()
    setup_mlflow(stage_config(PackageConfig, "package").experiment)
    evaluate = evaluator_for(model)
    try:
        decision = pr.promote(
            model,
            artifacts_root=ARTIFACTS_ROOT,
            rules=pr.rules_from_params(gates, model),
            evaluate=evaluate,
            version=version,
            dry_run=dry_run,
        )
    except pr.PromotionError as exc:
        typer.echo(f"promote: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(decision.summary())
    if not decision.passed:
        raise typer.Exit(1)


@app.command("rollback")
def rollback_cmd(model: str = typer.Option(..., help="weakness or generator.")) -> None:
    """Move `champion` back to the previous champion (history kept in the registry)."""
    from pipelines.common import setup_mlflow, stage_config
    from pipelines.package import ARTIFACTS_ROOT, PackageConfig
    from training.packaging import promotion as pr

    if model not in pr.REGISTRY_NAMES:
        raise typer.BadParameter(
            f"--model must be one of {sorted(pr.REGISTRY_NAMES)}, got {model!r}"
        )
    setup_mlflow(stage_config(PackageConfig, "package").experiment)
    try:
        old, new = pr.rollback(model, artifacts_root=ARTIFACTS_ROOT)
    except pr.PromotionError as exc:
        typer.echo(f"rollback: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{model}: champion moved back from v{old} to v{new}")


@app.command("eval-kt")
def eval_kt_cmd(
    train: str = typer.Option(..., "--train", help="KT TSV of the training learners."),
    test: str = typer.Option(..., "--test", help="KT TSV of other (unseen) learners."),
    item_difficulty: bool = typer.Option(
        False, "--item-difficulty", help="Add the item's out-of-fold peer success rate."
    ),
    out: str | None = typer.Option(None, "--out", help="Also write the JSON result here."),
) -> None:
    """Train the weakness model on a knowledge-tracing split and score the test learners."""
    import json
    from pathlib import Path

    from data.sources import read_kt_tsv, require_input_file
    from features.config import FeatureConfig
    from pipelines.common import atomic_write_json, require_file_target, stage_config
    from training.kt_eval import eval_kt
    from training.weakness import WeaknessConfig

    if out is not None:
        # checked before the run: --out must never replace (delete) a directory
        require_file_target(out)
    cfg = stage_config(WeaknessConfig, "train_weakness")
    feat_cfg = stage_config(FeatureConfig, "features")
    # Both files are read and checked before any training (one-line errors naming the file);
    # eval_kt then reads them from this cache.
    events = {
        Path(p): read_kt_tsv(require_input_file(p, f"{flag} KT"))
        for flag, p in (("--train", train), ("--test", test))
    }
    check_kt_inputs(events[Path(train)], events[Path(test)], train, test, feat_cfg.pass_mark)
    result = eval_kt(
        Path(train),
        Path(test),
        cfg=cfg,
        feat_cfg=feat_cfg,
        item_difficulty=item_difficulty,
        reader=lambda p: events[Path(p)],
    )
    # NaN is not JSON: a metric that cannot be computed is an error, never `"auc": NaN`.
    bad = sorted(k for k, v in result.items() if isinstance(v, float) and v != v)
    if bad:
        raise ValueError(f"eval-kt: {bad} could not be computed (NaN) on {test}; nothing written")
    text = json.dumps(result, sort_keys=True, allow_nan=False)
    if out is not None:
        atomic_write_json(Path(out), result)
    typer.echo(text)


def check_kt_inputs(
    train: Any, test: Any, train_path: str, test_path: str, pass_mark: float
) -> None:
    """Refuse, before training, KT splits on which eval-kt cannot fit or score a model.

    A label is ``score < pass_mark`` (a wrong answer): training needs both classes and at
    least two learners (one is held out for early stopping and calibration); the test AUC
    needs both classes.
    """
    for path, events, role in ((train_path, train, "train"), (test_path, test, "test")):
        fails = int((events["score"] < pass_mark).sum())
        if fails in (0, len(events)):
            only = "wrong" if fails else "correct"
            raise ValueError(
                f"{path}: every {role} answer is {only} (one class, {len(events)} answers); "
                f"eval-kt needs both correct and wrong answers in the {role} file"
            )
    n_learners = int(train["user_id"].nunique())
    if n_learners < 2:
        raise ValueError(
            f"{train_path}: {n_learners} learner; eval-kt needs at least 2 train learners "
            "(one is held out for early stopping and calibration)"
        )


# ----------------------------------------------------------------------------- export-backend
@app.command("export-backend")
def export_backend_cmd(
    to: str = typer.Option(..., "--to", help="Directory to write (created; see --force)."),
    weakness: str = typer.Option("champion", help="Weakness artifact: dir, version or alias."),
    generator: str = typer.Option("champion", help="Generator artifact: dir, version or alias."),
    force: bool = typer.Option(
        False, "--force", help="Move an existing foreign DIR aside (DIR.replaced-<time>)."
    ),
    features_test: str = typer.Option(
        paths.FEATURES_TEST, help="Weakness parity rows (the test split)."
    ),
    prompts: str = typer.Option(
        paths.TEXT_TEST, help="Generator parity prompts (JSONL 'prompt' field)."
    ),
    max_prompts: int | None = typer.Option(None, min=1, help="Parity prompts (default: all)."),
    fused_attention: bool = typer.Option(
        True,
        "--fused-attention/--exact-step",
        help="Try the fused step (ORT contrib ops) first, gated; or ship the exact lean step.",
    ),
    artifact_root: str | None = typer.Option(None, help="Local artifact store."),
) -> None:
    """Write the backend's drop-in: one-file weakness and generator ONNX, tokenizer, manifest."""
    from pathlib import Path

    from export.backend import BackendExportConfig, export_backend, summarize
    from pipelines.common import REPO_ROOT
    from serving.settings import ServingSettings

    def _path(p: str) -> Path:
        return Path(p) if Path(p).is_absolute() else REPO_ROOT / p

    cfg = BackendExportConfig(
        to=Path(to),
        weakness_ref=weakness,
        generator_ref=generator,
        force=force,
        features_test=_path(features_test),
        prompts_file=_path(prompts),
        max_prompts=max_prompts,
        fused_attention=fused_attention,
    )
    manifest = export_backend(cfg, ServingSettings.from_env(artifact_root=artifact_root))
    for line in summarize(manifest):
        typer.echo(line)


if __name__ == "__main__":
    app()
