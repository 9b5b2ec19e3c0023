"""Stage `train_weakness`: tuned, calibrated LightGBM weakness model, tracked in MLflow.

Reads `outputs/features/{train,val,test}.parquet` + `feature_spec.json` and, for the request
views (`train_weakness.views.names`), `outputs/events/events.parquet`; writes
`outputs/models/weakness/` (model.txt, calibration.json, feature_spec.json, thresholds.json,
training_summary.json), `metrics/weakness.json`, `plots/weakness/*.csv` and one calibration table
per view in `plots/weakness/views/`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipelines import paths, tracking
from pipelines.common import (
    REPO_ROOT,
    atomic_path,
    atomic_write_csv,
    atomic_write_json,
    git_commit,
    load_params,
    params_hash,
    setup_mlflow,
    stage_config,
    stage_main,
    write_json,
)
from pipelines.dask_fit import final_fit_dask
from pipelines.engines import stage_engine
from training.weakness import Split, WeaknessConfig, as_dict, load_split

if TYPE_CHECKING:
    from training.weakness_tuning import ViewData

logger = logging.getLogger(__name__)

SECTION = "train_weakness"
# test rows per summary view kept for the export's ONNX parity check (parity_rows.npz)
PARITY_VIEW_ROWS = 5000
# plot name -> file in the plots folder; each is declared under `plots:` in dvc.yaml with x/y.
PLOT_FILES = paths.WEAKNESS_PLOT_FILES
VIEW_PLOTS = Path(paths.WEAKNESS_VIEW_PLOTS).relative_to(paths.WEAKNESS_PLOTS)


def load_feature_spec(path: Path | str) -> dict[str, Any]:
    """Read the feature spec and check the fields this stage and the export rely on."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: feature spec not found (run the features stage)")
    spec = json.loads(path.read_text())
    names = spec.get("names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{path}: 'names' must be a non-empty list of strings")
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: 'names' holds duplicates")
    if not isinstance(spec.get("input_name"), str) or not spec["input_name"]:
        raise ValueError(f"{path}: 'input_name' must be a non-empty string")
    return spec


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists kept as their JSON text) for MLflow params."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        elif isinstance(value, list | tuple):
            out[name] = json.dumps(list(value))
        else:
            out[name] = value
    return out


def write_plots(plots: Mapping[str, list[dict[str, Any]]], plots_dir: Path) -> list[Path]:
    """Write the plot tables as CSV (one file each, atomically); returns the paths."""

    tables = {
        "roc": plots["roc"],
        "pr": plots["pr"],
        "calibration_before": [r for r in plots["calibration"] if r["stage"] == "before"],
        "calibration_after": [r for r in plots["calibration"] if r["stage"] == "after"],
        "importance": plots["importance"],
    }
    written = []
    for name, rows in tables.items():
        path = plots_dir / PLOT_FILES[name]
        atomic_write_csv(path, rows)
        written.append(path)
    return written


def build_view_data(
    cfg: WeaknessConfig,
    spec: Mapping[str, Any],
    events_file: Path | None,
    splits: tuple[Split, Split, Split],
) -> ViewData | None:
    """Every configured view of the splits (None: only the full view is configured).

    Train rows each get one seeded view (augmentation), a seeded subset of val rows every view
    (early stopping, per-view calibration), every test row every view (the per-view metrics).
    """
    import numpy as np
    import pandas as pd

    from training.weakness_tuning import ViewData, subsample_rows
    from training.weakness_views import (
        ViewBuilder,
        ViewSettings,
        all_views,
        assign_views,
        augmented_rows,
    )

    if len(cfg.views.names) == 1:
        return None
    if events_file is None or not Path(events_file).exists():  # a file, or engine: dask parts
        raise FileNotFoundError(
            f"{events_file}: events needed for train_weakness.views.names "
            f"{list(cfg.views.names)} (run the data stage, or set names: [full])"
        )
    settings = ViewSettings(recent_k=cfg.views.recent_k, spacing_s=cfg.views.spacing_s)
    builder = ViewBuilder(pd.read_parquet(events_file), spec, settings)
    names = builder.available(cfg.views.names)
    train, val, test = splits
    which = assign_views(len(train.y), names, cfg.views.full_share, cfg.seed)
    train_X = augmented_rows(builder, train.X, train.meta, names, which)
    val_rows = subsample_rows(len(val.y), cfg.views.max_val_rows, cfg.seed)
    val_keys = val.meta.iloc[val_rows].reset_index(drop=True)
    return ViewData(
        names=tuple(names),
        train_X=train_X,
        train_view=np.asarray(which),
        val_rows=val_rows,
        val=all_views(builder, val.X[val_rows], val_keys, names),
        test=all_views(builder, test.X, test.meta, names),
    )


def write_view_plots(rows: list[dict[str, Any]], views_dir: Path) -> list[Path]:
    """One reliability table per view: ``plots/weakness/views/calibration_<view>.csv``.

    The folder is replaced as a whole: DVC keeps it between runs (``persist``), so a view
    dropped from the params must not leave its old table behind.
    """
    import pandas as pd

    views = list(dict.fromkeys(r["view"] for r in rows))
    with atomic_path(views_dir) as tmp:
        tmp.mkdir()
        for view in views:
            table = [{k: v for k, v in r.items() if k != "view"} for r in rows if r["view"] == view]
            pd.DataFrame(table).to_csv(tmp / f"calibration_{view}.csv", index=False)
    return [views_dir / f"calibration_{view}.csv" for view in views]


def run(
    *,
    cfg: WeaknessConfig,
    all_params: Mapping[str, Any],
    features_dir: Path,
    model_dir: Path,
    metrics_file: Path,
    plots_dir: Path,
    events_file: Path | None = None,
    train_fn: Any = None,
) -> dict[str, Any]:
    """Train, evaluate, log to MLflow and write the declared outputs; returns the metrics.

    ``train_fn``: the final fit (`training.weakness_tuning.fit_weakness`); None = local.
    """
    import mlflow

    from training.weakness_tuning import fit_weakness, trials_table

    spec = load_feature_spec(features_dir / "feature_spec.json")
    names = spec["names"]
    train = load_split(features_dir / "train.parquet", names)
    val = load_split(features_dir / "val.parquet", names)
    test = load_split(features_dir / "test.parquet", names)
    logger.info(
        "rows: train %d, val %d, test %d; %d features",
        len(train.y),
        len(val.y),
        len(test.y),
        len(names),
    )
    views = build_view_data(cfg, spec, events_file, (train, val, test))

    setup_mlflow("weakness")
    commit = git_commit()
    with mlflow.start_run(run_name="train_weakness") as run_info:
        run_id = run_info.info.run_id
        mlflow.set_tags(
            {"git_commit": commit, "stage": SECTION, "params_hash": params_hash(all_params)}
        )
        mlflow.log_params(flatten(all_params))

        def on_trial(
            number: int, params: dict[str, Any], auc: float, best_it: int, sec: float
        ) -> None:
            with mlflow.start_run(run_name=f"trial-{number}", nested=True):
                mlflow.log_params(params)
                mlflow.log_metrics({"val_auc": auc, "best_iteration": best_it, "seconds": sec})

        result = fit_weakness(
            train, val, test, names, cfg, on_trial=on_trial, views=views, train_fn=train_fn
        )
        metrics = result.metrics
        tracking.log_weakness_training(features_dir, result.booster, names, root=REPO_ROOT)
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, int | float)})
        for view, vm in (metrics.get("views") or {}).items():
            mlflow.log_metrics(
                {f"{view}.{k}": float(v) for k, v in vm.items() if isinstance(v, int | float)}
            )
        mlflow.log_params({f"best.{k}": v for k, v in result.best_params.items()})
        if result.study is not None:
            mlflow.log_dict({"trials": trials_table(result.study)}, "optuna/trials.json")
            mlflow.log_dict(
                {
                    "best_value": result.study.best_value,
                    "best_params": result.study.best_params,
                    "n_trials": len(result.study.trials),
                },
                "optuna/summary.json",
            )
        mlflow.log_dict(spec, "feature_spec.json")
        mlflow.log_dict(result.calibration, "calibration.json")

        thresholds = cfg.action_levels.to_json()  # params and thresholds.json: one encoding
        summary = {
            "mlflow_run_id": run_id,
            "git_commit": commit,
            "params_hash": params_hash(all_params),
            "best_params": result.best_params,
            "best_iteration": metrics["best_iteration"],
            "config": as_dict(cfg),
            "n_trials": 0 if result.study is None else len(result.study.trials),
            "views": {
                "names": [] if views is None else list(views.names),
                "recent_k": cfg.views.recent_k,
                "spacing_s": cfg.views.spacing_s,
            },
        }
        with atomic_path(model_dir) as tmp:
            tmp.mkdir()
            result.booster.save_model(
                str(tmp / "model.txt"), num_iteration=result.booster.best_iteration
            )
            if views is not None:
                # rows of each summary view for the export's ONNX parity check
                import numpy as np

                kept = {v: views.test[v][:PARITY_VIEW_ROWS] for v in views.names if v != "full"}
                np.savez_compressed(tmp / "parity_rows.npz", **kept)  # type: ignore[arg-type]
            for name, obj in (
                ("calibration.json", result.calibration),
                ("feature_spec.json", spec),
                ("thresholds.json", thresholds),
                ("training_summary.json", summary),
            ):
                write_json(tmp / name, obj)
        atomic_write_json(metrics_file, metrics)
        for path in write_plots(result.plots, plots_dir):
            mlflow.log_artifact(str(path), "plots")
        for path in write_view_plots(result.plots.get("views", []), plots_dir / VIEW_PLOTS):
            mlflow.log_artifact(str(path), "plots/views")
        mlflow.log_artifact(str(model_dir / "model.txt"), "model")
        mlflow.log_artifact(str(model_dir / "thresholds.json"), "model")
    logger.info(
        "test auc %.4f (oracle %s), ece %.4f -> %.4f; run %s",
        metrics["auc"],
        metrics["oracle_auc"],
        metrics["ece_before"],
        metrics["ece_after"],
        run_id,
    )
    return metrics


@contextmanager
def _local_fit() -> Iterator[Callable[..., Any] | None]:
    """The local engine's final fit: None, so `fit_weakness` uses `train_booster` itself."""
    yield None


def main() -> None:
    """Entry point of `python -m pipelines.train_weakness`."""
    cfg = stage_config(WeaknessConfig, SECTION)
    # MLflow records the whole resolved params file, not only this section.
    all_params = load_params()
    # engine: dask: the final fit is DaskLGBMClassifier on the cluster (docs/scale.md)
    with stage_engine(all_params).run(_local_fit, final_fit_dask) as train_fn:
        run(cfg=cfg, all_params=all_params, train_fn=train_fn, **paths.stage_args(SECTION))


if __name__ == "__main__":
    stage_main(main)
