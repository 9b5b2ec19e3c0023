"""`ludora-ml`: the commands people run by hand (stages run through `dvc repro`).

Each command imports its heavy dependencies inside its body so `ludora-ml --help` stays fast.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Ludora ML pipeline: training, export, promotion and serving.", no_args_is_help=True
)


@app.callback()
def _main(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    import logging

    from pipelines.common import setup_logging

    setup_logging(logging.DEBUG if verbose else logging.INFO)


# Commands are added below, one block per command, each owning its own imports.


# ----------------------------------------------------------------------------- serve (serving)
@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    weakness: str | None = typer.Option(
        None, help="Weakness artifact: dir, version, alias or models:/ludora-weakness@champion."
    ),
    generator: str | None = typer.Option(
        None, help="Generator artifact: dir, version, alias or models:/ludora-generator@champion."
    ),
    artifact_root: str | None = typer.Option(
        None, help="Local artifact store (default: artifacts/)."
    ),
    max_concurrency: int | None = typer.Option(None, help="Concurrent inferences (default 2)."),
    request_timeout_s: float | None = typer.Option(None, help="Per-request inference timeout."),
) -> None:
    """Serve the weakness and word-problem endpoints over HTTP (FastAPI + uvicorn)."""
    import uvicorn

    from serving.app import create_app
    from serving.settings import ServingSettings, SettingsError

    if weakness is None and generator is None:
        raise typer.BadParameter("give --weakness and/or --generator")
    try:
        settings = ServingSettings.from_env(
            artifact_root=artifact_root,
            max_concurrency=max_concurrency,
            request_timeout_s=request_timeout_s,
        )
    except SettingsError as exc:
        raise typer.BadParameter(str(exc)) from exc
    api = create_app(weakness_ref=weakness, generator_ref=generator, settings=settings)
    uvicorn.run(api, host=host, port=port, log_level="info")


# ----------------------------------------------------------------------------- promote / rollback
@app.command("promote")
def promote_cmd(
    model: str = typer.Option(..., help="weakness or generator."),
    version: int | None = typer.Option(None, min=1, help="Packaged version (default: latest)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Compare and report; move nothing."),
) -> None:
    """Promote a packaged version to `champion` if it passes floors and beats (or holds) it."""
    from pipelines.common import build_config, load_section, setup_mlflow
    from pipelines.package import ARTIFACTS_ROOT, FEATURES_TEST, TEXT_TEST, PackageConfig
    from training import promotion as pr

    if model not in pr.REGISTRY_NAMES:
        raise typer.BadParameter(
            f"--model must be one of {sorted(pr.REGISTRY_NAMES)}, got {model!r}"
        )
    gates = load_section("gates")
    setup_mlflow(build_config(PackageConfig, load_section("package"), "package").experiment)
    if model == "weakness":
        evaluate = pr.weakness_evaluator(FEATURES_TEST)
    else:

        def _reevaluate(artifact_dir):  # type: ignore[no-untyped-def]
            from pipelines.quantize_generator import (
                QuantizeConfig,
                read_jsonl,
                sample,
                text_metric_fn,
            )
            from quantize.generator import evaluate_variant

            section = load_section("quantize_generator")
            q = build_config(QuantizeConfig, section, "quantize_generator")
            train_file = TEXT_TEST.with_name("train.jsonl")
            train = [str(r["problem"]) for r in read_jsonl(train_file, ["problem"])]
            records = sample(
                read_jsonl(TEXT_TEST, ["prompt", "target", "keywords"]), q.eval_samples, q.seed + 1
            )
            return evaluate_variant(
                artifact_dir,
                records,
                metric_fn=text_metric_fn(train),
                max_new_tokens=q.max_new_tokens,
                threads=q.threads,
            )["metrics"]

        evaluate = pr.generator_evaluator(_reevaluate)
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
    from pipelines.common import build_config, load_section, setup_mlflow
    from pipelines.package import ARTIFACTS_ROOT, PackageConfig
    from training import promotion as pr

    if model not in pr.REGISTRY_NAMES:
        raise typer.BadParameter(
            f"--model must be one of {sorted(pr.REGISTRY_NAMES)}, got {model!r}"
        )
    setup_mlflow(build_config(PackageConfig, load_section("package"), "package").experiment)
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

    from features.config import FeatureConfig
    from pipelines.common import (
        atomic_write_json,
        build_config,
        load_section,
        require_file_target,
    )
    from training.kt_eval import eval_kt
    from training.weakness import WeaknessConfig

    for flag, path in (("--train", Path(train)), ("--test", Path(test))):
        if not path.is_file():
            raise typer.BadParameter(f"{flag}: {path} is not a file")
    if out is not None:
        try:  # checked before the run: --out must never replace (delete) a directory
            require_file_target(out)
        except IsADirectoryError as exc:
            raise typer.BadParameter(f"--out: {exc}") from exc
    cfg = build_config(WeaknessConfig, load_section("train_weakness"), "train_weakness")
    feat_cfg = build_config(FeatureConfig, load_section("features"), "features")
    result = eval_kt(
        Path(train), Path(test), cfg=cfg, feat_cfg=feat_cfg, item_difficulty=item_difficulty
    )
    if out is not None:
        atomic_write_json(Path(out), result)
    typer.echo(json.dumps(result, sort_keys=True))
