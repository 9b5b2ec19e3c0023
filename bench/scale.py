"""Benchmark of the two engines (not a test): events/s, peak memory per worker, scaling, scoring.

For each size: learner shards are simulated on a Dask LocalCluster straight to Parquet
(`data.simulator.simulate_shard`, as `engine: dask` does), then

- dask: the whole `features` stage on the cluster (`pipelines.features.run` on a `DaskEngine`:
  split plan, peer aggregation, shuffle by learner, kernel per partition, splits streamed to
  Parquet), with each worker's peak RSS sampled every 0.2 s;
- local: the shards read into one frame, the kernel alone (`features.build.compute_features`)
  and the whole stage's pure part (`pipelines.features.make_features`), peak RSS of this process;
- Polars peer (bench/polars_features.py, checked equal) on the smallest size, same events;
- scoring (sizes up to ``--score-max-events``): a small model exported to ONNX,
  `pipelines.score.run` on both engines, learner-topics/s.

Above ``--local-max-events`` the local engine is skipped (its one process would need ~0.4 GB
per 1M events) and the events are never read into one frame; the dask path streams.

The scaling exponent is log(t_big / t_small) / log(n_big / n_small) (1 = linear).

    nice -n 10 .venv/bin/python bench/scale.py --sizes 1000000,10000000 --workers 2
    nice -n 19 .venv/bin/python bench/scale.py --sizes 1e6,1e7,1e8 --learners-per-partition 5000 \
        --data-dir BIG_DISK_DIR --out scale.json   # local engine skipped above 20M events
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.report import add_out, emit  # noqa: E402  (after the repo is on sys.path)

logger = logging.getLogger("bench.scale")
EVENTS_PER_LEARNER = 240  # default simulator params: 961,610 events from 4,000 learners


class WorkerPeakRSS:
    """Polls every worker's RSS (``client.run``) in a thread; ``peak`` maps address -> bytes."""

    def __init__(self, client: Any, every_s: float = 0.2) -> None:
        self.client = client
        self.every_s = every_s
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _rss() -> int:
        import psutil

        return int(psutil.Process().memory_info().rss)

    def _sample(self) -> None:
        for addr, rss in self.client.run(self._rss).items():
            self.peak[addr] = max(self.peak.get(addr, 0), int(rss))

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._sample()
            except Exception:  # a worker restarting between polls: keep sampling
                logger.debug("rss poll failed", exc_info=True)
            time.sleep(self.every_s)

    @staticmethod
    def _cpu() -> float:
        import psutil

        t = psutil.Process().cpu_times()
        return float(t.user + t.system)

    def _cpu_total(self) -> float:
        return sum(self.client.run(self._cpu).values()) + time.process_time()

    def __enter__(self) -> WorkerPeakRSS:
        self._cpu0 = self._cpu_total()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        # CPU seconds of the workers and of this process (client + in-process scheduler): on a
        # shared machine the wall time follows the other jobs, the CPU time much less
        self.cpu_s = self._cpu_total() - self._cpu0


def simulate_shards(client: Any, n_events: int, root: Path, per_shard: int) -> dict[str, Any]:
    """~``n_events`` events as learner shards under ``root/{events,oracle}`` (on the cluster)."""
    from data.simulator import SimulatorConfig, shard_count
    from pipelines.common import load_section
    from pipelines.dask_data import write_shard

    sim = dict(load_section("data")["simulator"])
    n_learners = max(10, math.ceil(n_events / EVENTS_PER_LEARNER))
    cfg = SimulatorConfig(**{**sim, "n_learners": n_learners})
    (root / "events").mkdir(parents=True)
    (root / "oracle").mkdir()
    t0 = time.perf_counter()
    futures = client.map(
        write_shard,
        range(shard_count(cfg, per_shard)),
        sim=cfg,
        pass_mark=0.6,
        learners_per_shard=per_shard,
        events_dir=str(root / "events"),
        oracle_dir=str(root / "oracle"),
        pure=False,
    )
    parts = client.gather(futures)
    return {
        "n_events": sum(p["n_events"] for p in parts),
        "n_learners": n_learners,
        "n_shards": len(parts),
        "simulate_s": time.perf_counter() - t0,
    }


def compare_engines(
    splits: dict[str, Any], local_spec: dict[str, Any], dask_spec: dict[str, Any], out: Path
) -> dict[str, Any]:
    """Are the dask stage's split files the local splits (sorted by keys), bit for bit?"""
    import pandas as pd

    keys = ["user_id", "timestamp", "topic_id"]
    equal = True
    for name, local in splits.items():
        a = local.sort_values(keys).reset_index(drop=True)
        b = pd.read_parquet(out / f"{name}.parquet").sort_values(keys).reset_index(drop=True)
        equal = equal and a.equals(b)
    lp, dp = local_spec["peer"], dask_spec["peer"]
    return {
        "splits_identical": bool(equal),
        "peer_topics_identical": lp["topics"] == dp["topics"],
        "prior_mean_ulps": float(
            abs(lp["prior_mean"] - dp["prior_mean"]) / np.spacing(lp["prior_mean"])
        ),
    }


def run_size(
    client: Any,
    n_events: int,
    root: Path,
    per_partition: int,
    check: bool = False,
    local: bool = True,
) -> dict[str, Any]:
    """Dask stage, then (``local``) the local kernel and local stage on the same ~n_events
    events; without ``local`` the events are never held in one process."""
    import pandas as pd

    from bench.features import PeakRSS
    from features.build import compute_features
    from features.config import FeatureConfig
    from features.engine import DaskConfig
    from pipelines.engines import DaskEngine
    from pipelines.features import make_features, run

    sim = simulate_shards(client, n_events, root, per_shard=per_partition)
    n = sim["n_events"]
    logger.info("%d events in %d shards (%.1fs)", n, sim["n_shards"], sim["simulate_s"])
    cfg = FeatureConfig()
    dask_cfg = DaskConfig(
        scheduler_address=client.scheduler.address, learners_per_partition=per_partition
    )
    with WorkerPeakRSS(client) as rss:
        t0 = time.perf_counter()
        run(
            cfg,
            engine=DaskEngine(dask_cfg),
            events_file=root / "events",
            oracle_file=root / "oracle",
            out_dir=root / "features",
            metrics_file=root / "features.json",
        )
        t_dask = time.perf_counter() - t0
    client.run(__import__("gc").collect)
    spec = json.loads((root / "features" / "feature_spec.json").read_text())
    out: dict[str, Any] = {
        **sim,
        "dask_stage_s": t_dask,
        "dask_stage_events_per_s": n / t_dask,
        "dask_peak_rss_mb_per_worker": sorted(v / 2**20 for v in rss.peak.values()),
        "dask_stage_cpu_s": rss.cpu_s,
        "dask_stage_events_per_cpu_s": n / rss.cpu_s,
        "spec": spec,
        "events": None,
    }
    if not local:
        out["local"] = "skipped: the events do not fit one process on this machine"
        return out
    files = sorted((root / "events").glob("*.parquet"))
    events = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    oracle = pd.concat([pd.read_parquet(root / "oracle" / f.name) for f in files])
    with PeakRSS() as local_rss:
        t0, c0 = time.perf_counter(), time.process_time()
        compute_features(events, spec)
        t_kernel, c_kernel = time.perf_counter() - t0, time.process_time() - c0
    with PeakRSS() as stage_rss:
        t0, c0 = time.perf_counter(), time.process_time()
        splits, local_spec, _ = make_features(events, oracle.reset_index(drop=True), cfg)
        t_stage, c_stage = time.perf_counter() - t0, time.process_time() - c0
    same = compare_engines(splits, local_spec, spec, root / "features") if check else None
    del splits, oracle
    out.update(
        {
            "local_kernel_s": t_kernel,
            "local_kernel_events_per_s": n / t_kernel,
            "local_kernel_cpu_s": c_kernel,
            "local_kernel_peak_rss_mb": local_rss.peak / 2**20,
            "local_stage_s": t_stage,
            "local_stage_events_per_s": n / t_stage,
            "local_stage_cpu_s": c_stage,
            "local_stage_peak_rss_mb": stage_rss.peak / 2**20,
            "engines_equal": same,
            "events": events,
        }
    )
    return out


def polars_ratio(events: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """Our kernel vs the Polars peer on the same events (one interleaved pass, checked equal)."""
    from bench.polars_features import polars_features
    from features.build import compute_features

    polars_features(events.iloc[:1000], spec)  # warm-up
    t0 = time.perf_counter()
    ours = compute_features(events, spec)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    theirs = polars_features(events, spec)
    t_pl = time.perf_counter() - t0
    np.testing.assert_allclose(theirs, ours, rtol=1e-6, atol=1e-6, equal_nan=True)
    return {"ours_s": t_ours, "polars_s": t_pl, "ours_speedup_vs_polars": t_pl / t_ours}


def scoring(client: Any, root: Path, per_partition: int) -> dict[str, Any]:
    """Learner-topics/s of the score stage on both engines (a 50-round model, as exported)."""
    import lightgbm as lgb
    import onnx
    import pandas as pd

    from export.weakness_onnx import convert_booster
    from features.engine import DaskConfig
    from pipelines.engines import DaskEngine, LocalEngine
    from pipelines.score import run
    from serving.onnx_files import WEAKNESS_MODEL_FILE
    from training.scoring import ScoreConfig

    spec = json.loads((root / "features" / "feature_spec.json").read_text())
    train = pd.read_parquet(root / "features" / "train.parquet")
    names = spec["names"]
    ds = lgb.Dataset(
        train[names].to_numpy(np.float32), label=train["label"].to_numpy(), feature_name=names
    )
    params = {"objective": "binary", "verbose": -1, "num_threads": 1, "seed": 1}
    booster = lgb.train(params, ds, num_boost_round=50)
    model = root / "onnx"
    model.mkdir()
    onnx.save(convert_booster(booster, spec, target_opset=15), str(model / WEAKNESS_MODEL_FILE))
    (model / "feature_spec.json").write_text(json.dumps(spec))
    (model / "calibration.json").write_text(json.dumps({"method": "platt", "a": 1.0, "b": 0.0}))
    (model / "thresholds.json").write_text(
        json.dumps(
            {"thresholds": [0.3, 0.5, 0.7], "labels": ["none", "review", "practice", "intervene"]}
        )
    )
    out: dict[str, Any] = {}
    cfg = ScoreConfig(active_days=0)
    for engine in ("local", "dask"):
        dask_cfg = DaskConfig(
            scheduler_address=client.scheduler.address, learners_per_partition=per_partition
        )
        t0 = time.perf_counter()
        c0 = sum(client.run(WorkerPeakRSS._cpu).values()) + time.process_time()
        m = run(
            cfg,
            engine=LocalEngine() if engine == "local" else DaskEngine(dask_cfg),
            events_file=root / "events",
            model_dir=model,
            out_dir=root / f"scores_{engine}",
            metrics_file=root / f"score_{engine}.json",
            plot_file=root / f"levels_{engine}.csv",
        )
        dt = time.perf_counter() - t0
        cpu = sum(client.run(WorkerPeakRSS._cpu).values()) + time.process_time() - c0
        out[engine] = {
            "rows": m["n_rows"],
            "s": dt,
            "cpu_s": cpu,
            "learner_topics_per_s": m["n_rows"] / dt,
        }
    a = pd.concat([pd.read_parquet(p) for p in sorted((root / "scores_local").glob("*.parquet"))])
    b = pd.concat([pd.read_parquet(p) for p in sorted((root / "scores_dask").glob("*.parquet"))])
    keys = ["user_id", "topic_id"]
    a = a.sort_values(keys).reset_index(drop=True)
    b = b.sort_values(keys).reset_index(drop=True)
    out["identical"] = bool(a.equals(b))
    return out


def main() -> None:
    """Run the sizes on one LocalCluster; print a JSON summary."""
    from distributed import Client, LocalCluster

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-limit", default="4GiB")
    parser.add_argument("--learners-per-partition", type=int, default=20_000)
    add_out(parser)
    parser.add_argument(
        "--data-dir", default=None, help="where the shards go (default: a temp dir); removed"
    )
    parser.add_argument(
        "--local-max-events",
        type=float,
        default=20e6,
        help="run the local engine only up to this size (100M does not fit 24 GiB)",
    )
    parser.add_argument(
        "--score-max-events", type=float, default=10e6, help="time scoring up to this size"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for name in ("distributed", "bench.features"):
        logging.getLogger(name).setLevel(logging.WARNING)
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    results: dict[str, Any] = {"workers": args.workers, "memory_limit": args.memory_limit}
    cluster = LocalCluster(
        n_workers=args.workers,
        threads_per_worker=1,
        memory_limit=args.memory_limit,
        processes=True,
        dashboard_address=":0",  # any free port: several clusters may run at once
    )
    client = Client(cluster)
    if args.data_dir:
        Path(args.data_dir).mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="ludora-scale-", dir=args.data_dir))
    try:
        # warm-up (not reported): the workers import pandas, pyarrow and the kernel once, so
        # the smallest size is not charged for it (that would flatter the scaling exponent)
        run_size(client, 20_000, tmp / "warmup", 100, local=False)
        shutil.rmtree(tmp / "warmup", ignore_errors=True)
        runs = []
        for i, size in enumerate(sizes):
            res = run_size(
                client,
                size,
                tmp / str(size),
                args.learners_per_partition,
                check=i == 0,
                local=size <= args.local_max_events,
            )
            events, spec = res.pop("events"), res.pop("spec")
            if i == 0 and events is not None:
                res["polars"] = polars_ratio(events, spec)
            del events
            if size <= args.score_max_events:
                res["scoring"] = scoring(client, tmp / str(size), args.learners_per_partition)
            logger.info("%s", json.dumps(res))
            runs.append(res)
            shutil.rmtree(tmp / str(size), ignore_errors=True)
        results["runs"] = runs
        a = runs[0]
        for b in runs[1:]:
            ratio = math.log(b["n_events"] / a["n_events"])
            tag = f"{a['n_events']:.0e}_to_{b['n_events']:.0e}"
            keys = ("dask_stage_s", "dask_stage_cpu_s", "local_kernel_s", "local_kernel_cpu_s")
            for key in (*keys, "local_stage_s", "local_stage_cpu_s"):
                if key in a and key in b:
                    results[f"scaling_exponent_{key}_{tag}"] = math.log(b[key] / a[key]) / ratio
    finally:
        client.close()
        cluster.close()
        shutil.rmtree(tmp, ignore_errors=True)
    emit(results, args.out)


if __name__ == "__main__":
    main()
