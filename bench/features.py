"""Benchmark of the `features` stage (not a test): throughput, scaling, memory, pandas baseline.

Peers: pandas (below) and Polars (bench/polars_features.py: the whole feature matrix, checked
equal). For each size the stage's pure part (`pipelines.features.make_features`: split plan,
peer table, batch features, splits) runs in a fresh subprocess on events from
`data.simulator.simulate`, so peak RSS is per size. The smallest size is also run through a
straightforward pandas `groupby().rolling()` / `ewm()` implementation of the per-(learner,
topic) features, checked
against ours (rolling means within 1e-9), and timed.

    nice .venv/bin/python bench/features.py                 # 1M and 10M events
    nice .venv/bin/python bench/features.py --sizes 100000,1000000
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.report import add_out, emit  # noqa: E402  (after the repo is on sys.path)

logger = logging.getLogger("bench.features")


def simulated_events(n_events: int, seed: int) -> tuple[Any, Any]:
    """About ``n_events`` simulator events (default params, learners scaled), cut to exactly n."""
    from data.simulator import SimulatorConfig, simulate
    from pipelines.common import load_section

    sim = dict(load_section("data")["simulator"])
    pilot = SimulatorConfig(**{**sim, "seed": seed, "n_learners": 200})
    per_learner = len(simulate(pilot, pass_mark=0.6)[0]) / 200
    n_learners = max(10, math.ceil(1.15 * n_events / per_learner))
    cfg = SimulatorConfig(**{**sim, "seed": seed, "n_learners": n_learners})
    events, oracle = simulate(cfg, pass_mark=0.6)
    return events.iloc[:n_events].reset_index(drop=True), oracle.iloc[:n_events].reset_index(
        drop=True
    )


class PeakRSS:
    """Samples this process's RSS every 10 ms in a thread; `peak` in bytes."""

    def __init__(self) -> None:
        import psutil

        self._proc = psutil.Process()
        self.peak = self._proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(0.01)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def naive_topic_features(events: Any, windows: tuple[int, ...], half_life_s: float) -> Any:
    """The same features the obvious pandas way (vectorised, no tie handling).

    groupby + cumsum for counts and running means, groupby().rolling() for the last-k means,
    groupby().ewm(times=...) for the decayed mean, each shifted by one row so a row sees only
    the rows before it.
    """
    import pandas as pd

    keys = ["user_id", "topic_id"]
    df = events.sort_values([*keys, "timestamp"], kind="stable")
    by = [df[k] for k in keys]
    g = df.groupby(keys, sort=False)
    out = pd.DataFrame(index=df.index)
    n = g.cumcount().astype(float)
    out["n_attempts"] = n
    fail = (df["score"] < 0.6).astype(float)
    out["n_fails"] = fail.groupby(by, sort=False).cumsum() - fail
    out["n_successes"] = n - out["n_fails"]
    for col, name in (
        ("score", "mean_score"),
        ("time_spent_s", "mean_time_spent_s"),
        ("hints_used", "mean_hints"),
    ):
        x = df[col].astype(float)
        out[name] = (x.groupby(by, sort=False).cumsum() - x) / n.where(n > 0)
    for k in windows:
        r = g["score"].rolling(k, min_periods=1).mean().reset_index(level=[0, 1], drop=True)
        out[f"last{k}_mean"] = r.groupby(by, sort=False).shift(1)
    times = pd.to_datetime(df["timestamp"], unit="s")
    ewm = (
        g["score"]
        .ewm(halflife=pd.Timedelta(seconds=half_life_s), times=times)
        .mean()
        .reset_index(level=[0, 1], drop=True)
    )
    out["decayed_mean"] = ewm.groupby(by, sort=False).shift(1)
    out["decayed_weight"] = np.nan  # not computed: no direct pandas equivalent
    out["last_score"] = g["score"].shift(1)
    out["prev_ts"] = g["timestamp"].shift(1)
    out["hours_since_last"] = (df["timestamp"] - out["prev_ts"]) / 3600.0
    rev = df["is_revisit"].astype(float)
    out["n_revisits"] = rev.groupby(by, sort=False).cumsum() - rev
    out["revisit_share"] = out["n_revisits"] / n.where(n > 0)
    out = out.sort_index()

    # the learner's level across topics, same way with the learner as the group
    lf = events.sort_values(["user_id", "timestamp"], kind="stable")
    lg = lf.groupby("user_id", sort=False)
    ln = lg.cumcount().astype(float)
    out["learner_n_attempts"] = ln
    x = lf["score"]
    out["learner_mean_score"] = (x.groupby(lf["user_id"], sort=False).cumsum() - x) / ln.where(
        ln > 0
    )
    lewm = (
        lg["score"]
        .ewm(
            halflife=pd.Timedelta(seconds=half_life_s),
            times=pd.to_datetime(lf["timestamp"], unit="s"),
        )
        .mean()
        .reset_index(level=0, drop=True)
    )
    out["learner_decayed_mean"] = lewm.groupby(lf["user_id"], sort=False).shift(1)
    # peer comparison from a per-topic table
    peer_mean = events.groupby("topic_id")["score"].mean()
    out["peer_topic_mean"] = events["topic_id"].map(peer_mean).to_numpy()
    out["topic_mean_minus_peer"] = out["mean_score"] - out["peer_topic_mean"]
    return out


def run_one(n_events: int, seed: int) -> dict[str, Any]:
    """Build features for n events in this process; timings and peak RSS as a dict."""
    from features.build import build_examples
    from features.config import FeatureConfig
    from pipelines.common import build_config, load_section
    from pipelines.features import make_features

    cfg = build_config(FeatureConfig, load_section("features"), "features")
    t0 = time.perf_counter()
    events, oracle = simulated_events(n_events, seed)
    t_sim = time.perf_counter() - t0
    t0 = time.perf_counter()
    tiny = events.iloc[:1000]  # warm-up outside the timed region: imports, first calls
    build_examples(tiny, None, cfg=cfg, peer={"prior_mean": 0.5, "prior_weight": 1.0, "topics": {}})
    t_warmup = time.perf_counter() - t0
    import psutil

    rss_before = psutil.Process().memory_info().rss
    # The first build in a process is what `dvc repro` runs ("cold": fresh pages for every
    # array); later repeats reuse freed memory, which helps small sizes far more than 10M
    # (glibc returns blocks > 32 MB to the OS). Report both; the best of is for noise.
    walls, cpus = [], []
    with PeakRSS() as mem:
        for _ in range(3 if n_events <= 2_000_000 else 2):
            t0, c0 = time.perf_counter(), time.process_time()
            splits, _spec, _ = make_features(events, oracle, cfg)
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
            n_examples = sum(len(p) for p in splits.values())
            del splits, _spec  # free before the next repeat so the peak is one build's
    t_build, cpu_build = min(walls), min(cpus)
    result: dict[str, Any] = {
        "n_events": len(events),
        "n_examples": n_examples,
        "simulate_s": t_sim,
        "warmup_s": t_warmup,
        "build_s": t_build,
        "build_cpu_s": cpu_build,
        "build_cold_s": walls[0],
        "build_cold_cpu_s": cpus[0],
        "events_per_s": len(events) / t_build,
        "rss_before_build_gb": rss_before / 1e9,
        "peak_rss_build_gb": mem.peak / 1e9,
    }
    return result


def run_baseline(n_events: int, seed: int) -> dict[str, Any]:
    """Time the pandas baseline on n events and compare it with ours."""
    from features.build import build_examples
    from features.config import FeatureConfig
    from pipelines.common import build_config, load_section

    cfg = build_config(FeatureConfig, load_section("features"), "features")
    events, _ = simulated_events(n_events, seed)
    peer = {"prior_mean": 0.5, "prior_weight": 1.0, "topics": {}}
    build_examples(events.iloc[:1000], None, cfg=cfg, peer=peer)  # warm-up
    # best of 3 for each side: the machine is shared, the minimum is the least disturbed run
    t_ours = t_naive = c_ours = c_naive = math.inf
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        ours = build_examples(events, None, cfg=cfg, peer=peer)
        t_ours = min(t_ours, time.perf_counter() - t0)
        c_ours = min(c_ours, time.process_time() - c0)
        t0, c0 = time.perf_counter(), time.process_time()
        naive = naive_topic_features(events, cfg.rolling_windows, cfg.half_life_s)
        t_naive = min(t_naive, time.perf_counter() - t0)
        c_naive = min(c_naive, time.process_time() - c0)

    quiz = events["activity"].isin(cfg.assessment_activities).to_numpy()
    nv = naive.loc[quiz].reset_index(drop=True)
    # the naive version has no tie blocks: compare rows not tied with their previous event
    ok = (nv["prev_ts"] != events.loc[quiz, "timestamp"].to_numpy()).to_numpy()
    diffs: dict[str, float] = {}
    pairs = [(f"last{k}_mean", f"topic_last{k}_mean") for k in cfg.rolling_windows]
    pairs += [("n_attempts", "topic_n_attempts"), ("decayed_mean", "topic_decayed_mean")]
    # our table holds float32: compare the float64 kernel values behind it
    from features import build as build_mod

    full64 = _float64_topic_features(build_mod, events, cfg, peer)
    for naive_col, our_col in pairs:
        a = nv[naive_col].to_numpy(dtype=np.float64)[ok]
        b = full64[our_col][ok]
        both_nan = np.isnan(a) & np.isnan(b)
        d = np.abs(a - b)
        d[both_nan] = 0.0
        diffs[our_col] = float(np.nanmax(d)) if np.isnan(d).sum() == 0 else math.inf
    polars = run_polars_peer(events, build_mod.spec_from_config(cfg, peer))
    return {
        "polars": polars,
        "n_events": len(events),
        "ours_build_examples_s": t_ours,
        "pandas_s": t_naive,
        "speedup": t_naive / t_ours,
        "ours_cpu_s": c_ours,
        "pandas_cpu_s": c_naive,
        "speedup_cpu": c_naive / c_ours,
        "rows_compared": int(ok.sum()),
        "rows_tied_skipped": int((~ok).sum()),
        "max_abs_diff": diffs,
        "ours_columns": len(ours.columns),
    }


def run_polars_peer(events: Any, spec: dict[str, Any]) -> dict[str, Any]:
    """Time our feature matrix against the Polars peer (bench/polars_features.py), interleaved.

    Both compute the full 19-column matrix from the same events and spec; the peer's values are
    checked equal to ours (float32, within 1e-6) before any ratio is reported.
    """
    from bench.polars_features import polars_features
    from features.build import compute_features

    polars_features(events.iloc[:1000], spec)  # warm-up: import, thread pool
    t_ours = t_pl = c_ours = c_pl = math.inf
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        ours = compute_features(events, spec)
        t_ours = min(t_ours, time.perf_counter() - t0)
        c_ours = min(c_ours, time.process_time() - c0)
        t0, c0 = time.perf_counter(), time.process_time()
        theirs = polars_features(events, spec)
        t_pl = min(t_pl, time.perf_counter() - t0)
        c_pl = min(c_pl, time.process_time() - c0)
    np.testing.assert_allclose(theirs, ours, rtol=1e-6, atol=1e-6, equal_nan=True)
    return {
        "ours_compute_features_s": t_ours,
        "polars_s": t_pl,
        "speedup_vs_polars": t_pl / t_ours,
        "speedup_vs_polars_cpu": c_pl / c_ours,
        "columns_equal": int(ours.shape[1]),
    }


def _float64_topic_features(
    build_mod: Any, events: Any, cfg: Any, peer: dict[str, Any]
) -> dict[str, np.ndarray]:
    """Our per-(learner, topic) kernel columns in float64 (before the float32 cast)."""
    import pandas as pd

    from core.kernel import kernel_columns

    spec = build_mod.spec_from_config(cfg, peer)
    user_code, _ = pd.factorize(events["user_id"])
    topic_code, uniq = pd.factorize(events["topic_id"])
    arrays = {
        "score": events["score"].to_numpy(dtype=np.float64),
        "time_spent_s": events["time_spent_s"].to_numpy(dtype=np.float64),
        "hints_used": events["hints_used"].to_numpy(dtype=np.float64),
        "is_revisit": events["is_revisit"].to_numpy(dtype=np.bool_),
    }
    is_query = events["activity"].isin(spec["assessment_activities"]).to_numpy()
    cols = kernel_columns(spec["rolling_windows"])
    pair = user_code.astype(np.int64) * len(uniq) + topic_code
    ts = events["timestamp"].to_numpy(np.int64)
    rows, query_rows = build_mod._grouped_run(
        pair,
        int(user_code.max() + 1) * len(uniq),
        build_mod.time_order_of(ts),
        ts,
        arrays,
        is_query,
        spec,
        len(cols),
    )
    position = np.zeros(len(ts), dtype=np.int64)  # rows come in (learner, topic, time) order
    position[query_rows] = np.arange(len(query_rows))
    out = rows[position[is_query]]
    return {f"topic_{c}": out[:, i] for i, c in enumerate(cols)}


def main() -> None:
    """Run each size in a subprocess, then the baseline; print a JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000000,10000000", help="comma-separated event counts")
    parser.add_argument("--baseline-size", type=int, default=None, help="default: first size")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--baseline", type=int, default=None, help=argparse.SUPPRESS)
    add_out(parser)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.seed)))
        return
    if args.baseline is not None:
        print(json.dumps(run_baseline(args.baseline, args.seed)))
        return

    sizes = [int(s) for s in args.sizes.split(",")]
    results: dict[str, Any] = {"sizes": {}}
    for n in sizes:
        logger.info("features build on %d events (subprocess)", n)
        res = _child(["--one", str(n), "--seed", str(args.seed)])
        results["sizes"][str(n)] = res
        logger.info("%s", res)
    base_n = args.baseline_size or sizes[0]
    logger.info("pandas baseline on %d events", base_n)
    results["baseline"] = _child(["--baseline", str(base_n), "--seed", str(args.seed)])
    if len(sizes) >= 2:
        lo, hi = results["sizes"][str(sizes[0])], results["sizes"][str(sizes[-1])]
        span = math.log(hi["n_events"] / lo["n_events"])
        for key in ("build_s", "build_cpu_s", "build_cold_s", "build_cold_cpu_s"):
            results[f"scaling_exponent[{key}]"] = math.log(hi[key] / lo[key]) / span
    emit(results, args.out)


def _child(extra: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *extra],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"bench child {extra} failed:\n{proc.stderr[-4000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    main()
