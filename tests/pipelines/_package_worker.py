"""A real packaging process for the concurrency and crash tests (run with ``python -m``).

``python -m tests.pipelines._package_worker SPEC.json``: SPEC holds ``artifacts_root``,
``experiment``, ``sources`` (export dirs, packaged in order), ``start_file`` (wait until it
exists, so two workers start together) and ``log_runs`` (extra MLflow runs logged between
packages, as a concurrent training stage would). Prints one JSON result line per source.
With ``"action": "promote"`` (``version``, ``test_file``) or ``"rollback"`` it runs that command
of :mod:`training.packaging.promotion` instead.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    import mlflow

    from pipelines.common import setup_mlflow
    from pipelines.package import package_and_register, weakness_candidate

    setup_mlflow(spec["experiment"])
    root = Path(spec["artifacts_root"])
    if spec.get("action") in ("promote", "rollback"):
        from training.packaging import promotion as pr

        if spec["action"] == "rollback":
            print(json.dumps(pr.rollback("weakness", artifacts_root=root)), flush=True)
            return
        decision = pr.promote(
            "weakness",
            artifacts_root=root,
            rules={"auc": pr.MetricRule(threshold=0.5, min_relative_change=0.0)},
            evaluate=pr.weakness_evaluator(Path(spec["test_file"])),
            version=spec.get("version"),
        )
        print(json.dumps({"promoted": decision.promoted, "reasons": decision.reasons}))
        return
    start = Path(spec["start_file"]) if spec.get("start_file") else None
    while start is not None and not start.exists():
        time.sleep(0.01)
    for i, src in enumerate(spec["sources"]):
        cand = weakness_candidate(Path(src), auc_floor=0.5)
        result = package_and_register(cand, root, register=True)
        print(json.dumps({"source": src, **result}), flush=True)
        for j in range(int(spec.get("log_runs", 0))):
            with mlflow.start_run(run_name=f"train-like-{i}-{j}"):
                mlflow.log_metrics({f"m{k}": float(k) for k in range(20)})


if __name__ == "__main__":
    main(sys.argv[1])
