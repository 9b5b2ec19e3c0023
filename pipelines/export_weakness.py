"""Stage `export_weakness`: booster -> ONNX, parity gate on the whole test split, draft manifest.

Reads `outputs/models/weakness/` and `outputs/features/test.parquet`; writes
`outputs/onnx/weakness/` (model.onnx, calibration.json, thresholds.json, feature_spec.json,
manifest.draft.json) and `metrics/weakness_export.json`. A failed gate writes nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from core.io import read_json
from data.params import Range
from pipelines import paths
from pipelines.common import (
    atomic_path,
    atomic_write_json,
    build_config,
    git_commit,
    load_section,
    params_hash,
    require,
    stage_main,
    write_json,
)
from pipelines.gates import ViewGates
from serving.manifest import file_entry
from serving.onnx_files import WEAKNESS_MODEL_FILE

logger = logging.getLogger(__name__)

SECTION = "export_weakness"


@dataclass(frozen=True)
class ExportConfig:
    """The ``export_weakness`` params section.

    Defaults equal params.yaml's values (tests/pipelines/test_params_defaults.py keeps them so)
    for tests that build a config in code; ranges are the fields' validators (build_config).
    """

    target_opset: Annotated[int, Range(9, 21, integer=True)] = 15
    max_abs_diff: Annotated[float, Range(0, 1)] = 1e-5
    max_flips: Annotated[int, Range(0, integer=True)] = 0
    n_worst_rows: Annotated[int, Range(1, 100, integer=True)] = 5
    topic_aliases: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for src, dst in self.topic_aliases.items():
            require(
                bool(src) and bool(dst) and not src.startswith("__"),
                f"{SECTION}.topic_aliases.{src}",
                f"ids must be non-empty and not start with '__', got {src!r} -> {dst!r}",
            )


def view_gates(
    view_metrics: Mapping[str, Any], calibration: Mapping[str, Any], gates: ViewGates
) -> list[dict[str, Any]]:
    """Per view: AUC floor, ECE ceiling, AUC gap to the full view, increasing calibration."""
    out: list[dict[str, Any]] = []
    full_auc = (view_metrics.get("full") or {}).get("auc")
    for view, m in view_metrics.items():
        auc, ece = m.get("auc"), m.get("ece")
        out.append(
            {
                "name": f"view_auc_floor[{view}]",
                "threshold": gates.min_auc,
                "value": auc,
                "passed": auc is not None and auc >= gates.min_auc,
            }
        )
        out.append(
            {
                "name": f"view_ece_max[{view}]",
                "threshold": gates.max_ece,
                "value": ece,
                "passed": ece is not None and ece <= gates.max_ece,
            }
        )
        if view in gates.max_auc_gap:
            gap = None if auc is None or full_auc is None else full_auc - auc
            out.append(
                {
                    "name": f"view_auc_gap_to_full[{view}]",
                    "threshold": gates.max_auc_gap[view],
                    "value": gap,
                    "passed": gap is not None and gap <= gates.max_auc_gap[view],
                }
            )
        # a decreasing map would turn "more success -> lower weakness" around
        sub = (calibration.get("views") or {}).get(view, calibration)
        slope = sub.get("a", 1.0) if sub.get("method") == "platt" else 1.0
        out.append(
            {
                "name": f"view_calibration_increasing[{view}]",
                "threshold": 0.0,
                "value": slope,
                "passed": slope > 0.0,
            }
        )
    return out


def _model_json(path: Path) -> Any:
    """A file train_weakness writes (the error says to run it)."""
    return read_json(path, missing="not found (run train_weakness)")


def run(
    *,
    cfg: ExportConfig,
    section: dict[str, Any],
    model_dir: Path,
    test_file: Path,
    out_dir: Path,
    metrics_file: Path,
    train_metrics_file: Path | None,
    gates_views: ViewGates | None = None,
) -> dict[str, Any]:
    """Convert, check parity, and write the ONNX directory and export metrics."""
    import lightgbm as lgb

    from export.weakness_onnx import (
        LABEL_OUTPUT,
        PROBABILITY_OUTPUT,
        convert_booster,
        io_description,
        onnx_fail_probability,
        opsets,
        parity_check,
    )
    from serving.weakness_post import apply_calibration
    from training.weakness import load_split, predict_raw
    from training.weakness_metrics import binary_metrics, nan_to_none

    spec = _model_json(model_dir / "feature_spec.json")
    calibration = _model_json(model_dir / "calibration.json")
    thresholds = _model_json(model_dir / "thresholds.json")
    summary = _model_json(model_dir / "training_summary.json")
    booster = lgb.Booster(model_file=str(model_dir / "model.txt"))
    test = load_split(test_file, spec["names"])

    model = convert_booster(booster, spec, target_opset=cfg.target_opset)
    blob = model.SerializeToString()
    p_native = predict_raw(booster, test.X)
    p_onnx = onnx_fail_probability(blob, test.X, spec["input_name"])
    report = parity_check(
        p_native,
        p_onnx,
        calibration=(calibration.get("views") or {}).get("full", calibration),
        thresholds=thresholds["thresholds"],
        meta=test.meta,
        max_abs_diff=cfg.max_abs_diff,
        max_flips=cfg.max_flips,
        n_worst=cfg.n_worst_rows,
    )
    # each summary view's test rows that the train stage kept (other regions of the feature
    # space), compared under that view's own calibration map
    view_rows = model_dir / "parity_rows.npz"
    n_view_rows = 0
    if view_rows.is_file():
        import numpy as np

        with np.load(view_rows) as saved:
            kept = {v: saved[v] for v in saved.files}
        for view, x_v in kept.items():
            if not len(x_v):
                continue
            n_view_rows += len(x_v)
            r = parity_check(
                predict_raw(booster, x_v),
                onnx_fail_probability(blob, x_v, spec["input_name"]),
                calibration=(calibration.get("views") or {}).get(view, calibration),
                thresholds=thresholds["thresholds"],
                meta=None,
                max_abs_diff=cfg.max_abs_diff,
                max_flips=cfg.max_flips,
                n_worst=cfg.n_worst_rows,
            )
            report = _worse(report, r)
    logger.info(
        "parity on %d rows: max diff raw %.3g, calibrated %.3g, flips %s",
        report.n_rows,
        report.max_abs_diff_raw,
        report.max_abs_diff_calibrated,
        report.flips_per_threshold,
    )
    full_view = "full" if "full" in (calibration.get("views") or {}) else None
    onnx_metrics = binary_metrics(
        test.y,
        apply_calibration(p_onnx, calibration, full_view),
        n_bins=int(summary["config"]["ece_bins"]),
    )
    gates = [
        {
            "name": "onnx_vs_native_max_abs_diff_raw",
            "threshold": cfg.max_abs_diff,
            "value": report.max_abs_diff_raw,
            "passed": report.max_abs_diff_raw <= cfg.max_abs_diff,
        },
        {
            "name": "onnx_vs_native_max_abs_diff_calibrated",
            "threshold": cfg.max_abs_diff,
            "value": report.max_abs_diff_calibrated,
            "passed": report.max_abs_diff_calibrated <= cfg.max_abs_diff,
        },
        {
            "name": "onnx_vs_native_decision_flips",
            "threshold": cfg.max_flips,
            "value": report.total_flips,
            "passed": report.total_flips <= cfg.max_flips,
        },
    ]
    train_metrics = (
        _model_json(train_metrics_file)
        if train_metrics_file is not None and train_metrics_file.is_file()
        else {}
    )
    if gates_views is not None and train_metrics.get("views"):
        gates += view_gates(train_metrics["views"], calibration, gates_views)
    topics = sorted(spec["peer"]["topics"])
    unknown = sorted(dst for dst in cfg.topic_aliases.values() if dst not in topics)
    if unknown:
        raise ValueError(
            f"{SECTION}.topic_aliases: target(s) {unknown} are not training topics; "
            f"allowed: {topics}"
        )
    metrics = {
        "parity_rows": report.n_rows,
        "parity_view_rows": n_view_rows,
        "max_abs_diff_raw": report.max_abs_diff_raw,
        "max_abs_diff_calibrated": report.max_abs_diff_calibrated,
        "decision_flips": report.total_flips,
        "level_flips": report.level_flips,
        "flips_per_threshold": report.flips_per_threshold,
        "onnx_auc": onnx_metrics["auc"],
        "onnx_logloss": onnx_metrics["logloss"],
        "onnx_ece": onnx_metrics["ece"],
        "gates_passed": all(g["passed"] for g in gates),
    }
    io = io_description(model)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        (tmp / WEAKNESS_MODEL_FILE).write_bytes(blob)
        for name, obj in (
            ("calibration.json", calibration),
            ("thresholds.json", thresholds),
            ("feature_spec.json", spec),
        ):
            write_json(tmp / name, obj)
        files = {p.name: file_entry(p) for p in sorted(tmp.iterdir())}
        manifest = {
            "model": "weakness",
            "variant": "fp32",
            "files": files,
            "onnx": {
                **io,
                "input_name": spec["input_name"],
                "probability_output": PROBABILITY_OUTPUT,
                "probability_column": 1,
                "label_output": LABEL_OUTPUT,
                "opset": opsets(model),
                "target_opset": cfg.target_opset,
            },
            "feature_names": list(spec["names"]),
            "n_features": len(spec["names"]),
            "calibration": calibration,
            "thresholds": thresholds,
            # training topics, Ludora id -> training topic, and the request views the model
            # was trained and calibrated on (serving reads all three from the manifest)
            "topics": topics,
            "topic_aliases": dict(sorted(cfg.topic_aliases.items())),
            "views": summary.get("views") or {"names": []},
            "metrics": nan_to_none({"train_stage": train_metrics, "onnx_test": onnx_metrics}),
            "gates": gates,
            "mlflow_run_id": summary.get("mlflow_run_id"),
            "git_commit": git_commit(),
            "training_git_commit": summary.get("git_commit"),
            "params_hash": summary.get("params_hash"),
            "export_params_hash": params_hash(section),
        }
        (tmp / "manifest.draft.json").write_text(
            json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False) + "\n"
        )
    atomic_write_json(metrics_file, nan_to_none(metrics))
    return metrics


def _worse(a: Any, b: Any) -> Any:
    """The parity report holding the larger differences and flip counts of the two."""
    from export.weakness_onnx import ParityReport

    return ParityReport(
        n_rows=a.n_rows,  # the full test split's rows; the view rows are counted apart
        max_abs_diff_raw=max(a.max_abs_diff_raw, b.max_abs_diff_raw),
        max_abs_diff_calibrated=max(a.max_abs_diff_calibrated, b.max_abs_diff_calibrated),
        flips_per_threshold={
            k: a.flips_per_threshold.get(k, 0) + b.flips_per_threshold.get(k, 0)
            for k in {**a.flips_per_threshold, **b.flips_per_threshold}
        },
        level_flips=a.level_flips + b.level_flips,
    )


def main() -> None:
    """Entry point of `python -m pipelines.export_weakness`."""
    section = load_section(SECTION)
    cfg = build_config(ExportConfig, section, SECTION)
    views_section = (load_section("gates").get("weakness") or {}).get("views")
    gates_views = (
        None
        if views_section is None
        else build_config(ViewGates, views_section, "gates.weakness.views")
    )
    run(cfg=cfg, section=section, gates_views=gates_views, **paths.stage_args(SECTION))


if __name__ == "__main__":
    stage_main(main)
