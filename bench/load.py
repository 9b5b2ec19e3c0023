"""Bounded load run against the HTTP app on 127.0.0.1: throughput, latency, errors, memory.

Starts ``ludora-ml serve`` in a subprocess (the pipeline's champion artifacts when
``artifacts/{weakness,generator}`` exist, else tiny ones built in a temp dir), then for each
endpoint and each client concurrency (default 1, 8, 32) sends requests from that many concurrent
clients until ``--requests`` are done or ``--max-seconds`` pass (the run always stops by itself).
Prints requests/s, p50/p99 latency and the error count per (endpoint, concurrency), and the server's
RSS after warm-up and at the end. Exit code 1 if any request failed.

    .venv/bin/python bench/load.py [--requests 200] [--max-seconds 20] [--concurrency 1,8,32]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.report import add_out, emit  # noqa: E402  (after the repo is on sys.path)

API = "/api/v1/ai"
NOW = 1_767_225_600


def weakness_body(i: int) -> dict[str, Any]:
    """A mid-sized learner: 8 topics x 20 attempts plus the summary fields."""
    rng = random.Random(i)
    topics = [f"topic_{t}" for t in range(8)]
    return {
        "user_id": f"learner-{i}",
        "average_score_per_topic": {t: round(rng.random(), 3) for t in topics},
        "time_spent_per_topic_minutes": {t: round(rng.uniform(1, 90), 1) for t in topics},
        "recent_attempts": {
            t: [
                {
                    "score": round(rng.random(), 3),
                    "timestamp": NOW - rng.randint(60, 60 * 86_400),
                    "time_spent_s": round(rng.uniform(10, 300), 1),
                    "hints_used": rng.randint(0, 3),
                }
                for _ in range(20)
            ]
            for t in topics
        },
        "now": NOW,
    }


def word_body(i: int) -> dict[str, Any]:
    rng = random.Random(i)
    topic = rng.choice(["addition", "subtraction", "fractions", "money", "division"])
    keywords = rng.sample(["apples", "coins", "baskets", "pencils", "trains", "cookies"], 2)
    return {"topic": topic, "keywords": keywords, "max_length": 48, "seed": i}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _artifacts(tmp: Path) -> tuple[Path, str, str, str]:
    root = REPO / "artifacts"
    if (root / "weakness").is_dir() and (root / "generator").is_dir():
        return root, "champion", "champion", "pipeline artifacts (champion)"
    from tests.fixtures.generator import make_generator_artifact
    from tests.fixtures.weakness import make_weakness_artifact

    make_weakness_artifact(tmp, version=1)
    make_generator_artifact(tmp, version=1)
    return tmp, "1", "1", "tiny artifacts built by the bench (random 1-layer T5)"


async def _level(
    base: str, path: str, make: Any, concurrency: int, n_requests: int, max_s: float
) -> dict[str, Any]:
    """``concurrency`` clients share ``n_requests``; stop early at ``max_s`` seconds."""
    import httpx

    lat: list[float] = []
    errors: dict[str, int] = {}
    counter = iter(range(n_requests))
    deadline = time.monotonic() + max_s
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:

        async def worker() -> None:
            for i in counter:
                if time.monotonic() > deadline:
                    return
                t0 = time.perf_counter()
                try:
                    r = await client.post(path, json=make(i))
                    code = str(r.status_code)
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                lat.append((time.perf_counter() - t0) * 1000)
                if code != "200":
                    errors[code] = errors.get(code, 0) + 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t0
    lat.sort()
    n = len(lat)
    return {
        "concurrency": concurrency,
        "requests": n,
        "seconds": round(elapsed, 2),
        "rps": round(n / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(lat[n // 2], 1) if n else None,
        "p99_ms": round(lat[min(n - 1, int(0.99 * n))], 1) if n else None,
        "errors": errors,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=200, help="per endpoint and concurrency")
    ap.add_argument("--max-seconds", type=float, default=20.0, help="per endpoint and concurrency")
    ap.add_argument("--concurrency", default="1,8,32")
    ap.add_argument("--server-concurrency", type=int, default=2, help="inference slots")
    ap.add_argument(
        "--generator",
        default=None,
        help="generator version or alias to serve (default: the champion); a before / after pair",
    )
    add_out(ap)
    args = ap.parse_args()
    import httpx
    import psutil

    levels = [int(c) for c in args.concurrency.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        root, wref, gref, source = _artifacts(Path(tmp))
        gref = args.generator or gref
        port = _free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "LUDORA_SERVE_MAX_CONCURRENCY": str(args.server_concurrency),
            "LUDORA_SERVE_QUEUE_TIMEOUT_S": "60",
            "LUDORA_SERVE_REQUEST_TIMEOUT_S": "60",
        }
        server = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from pipelines.cli import app; app()",
                "serve",
                "--port",
                str(port),
                "--weakness",
                wref,
                "--generator",
                gref,
                "--artifact-root",
                str(root),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 180
            while True:
                try:
                    if httpx.get(base + "/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("server did not become ready")
                time.sleep(0.2)
            proc = psutil.Process(server.pid)
            # warm-up at the highest concurrency: sessions, thread pool, allocator arenas
            for path, make in (
                (f"{API}/predict-weakness", weakness_body),
                (f"{API}/word-problem", word_body),
            ):
                asyncio.run(_level(base, path, make, max(levels), 2 * max(levels), 30.0))
            rss_start = proc.memory_info().rss
            results: dict[str, list[dict[str, Any]]] = {}
            rss_trace = []
            for name, path, make in (
                ("predict-weakness", f"{API}/predict-weakness", weakness_body),
                ("word-problem", f"{API}/word-problem", word_body),
            ):
                results[name] = []
                for c in levels:
                    res = asyncio.run(_level(base, path, make, c, args.requests, args.max_seconds))
                    results[name].append(res)
                    rss_trace.append(round(proc.memory_info().rss / 2**20, 1))
            rss_end = proc.memory_info().rss
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
    n_errors = sum(sum(r["errors"].values()) for rs in results.values() for r in rs)
    report = {
        "source": source,
        "server_inference_slots": args.server_concurrency,
        "results": results,
        "rss_mb_after_warmup": round(rss_start / 2**20, 1),
        "rss_mb_after_each_level": rss_trace,
        "rss_mb_end": round(rss_end / 2**20, 1),
        "rss_growth_pct": round(100 * (rss_end - rss_start) / rss_start, 1),
        "errors_total": n_errors,
    }
    emit(report, args.out)
    if n_errors:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
