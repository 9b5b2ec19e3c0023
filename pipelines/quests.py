"""Stage `quests`: nightly practice sets from a per-(topic, grade) bank of verified problems.

Reads the nightly scores (`outputs/scores/part-*.parquet`, whole learners per part) and the
generator variant `quantize_generator` shipped (`outputs/onnx/generator_variants/<shipped>`,
named in `metrics/quantize.json`); writes `outputs/quests/bank.parquet` (columns
`training.quests.BANK_COLUMNS`), `outputs/quests/part-*.parquet` (one per score part, columns
`training.quests.QUEST_COLUMNS`), `metrics/quests.json` (bank per topic, timings, throughput)
and `plots/quests/topics.csv` (learners whose quest holds each topic).

The bank is generated once, in this process, on both engines (one ONNX session; generation is
the cost, ~40 ms a problem). Drawing runs per score part: here (local) or on the Dask cluster,
the same function on the same parts, so both engines write the same rows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipelines import paths
from pipelines.common import atomic_outputs, atomic_write_csv, stage_main, write_json
from pipelines.engines import Engine, LocalEngine, engine_stage
from serving.onnx_files import ENCODER_FILE
from training.quests import (
    QuestsConfig,
    Timer,
    bank_index,
    build_bank,
    draw_quests,
    merge_topic_counts,
    topic_learners,
)

logger = logging.getLogger(__name__)

SECTION = "quests"
VARIANTS_DIR = paths.at(paths.VARIANTS)
QUANTIZE_METRICS = paths.at(paths.QUANTIZE_METRICS)
BANK_FILE = "bank.parquet"
SCORE_READ_COLUMNS = ["user_id", "topic_id", "weakness_probability", "action_level"]


class QuestsError(RuntimeError):
    """An input of the stage is missing or unusable."""


def shipped_variant(variants_dir: Path, quantize_metrics: Path) -> Path:
    """The generator variant directory ``quantize_generator`` shipped."""
    try:
        shipped = json.loads(quantize_metrics.read_text())["shipped"]
    except (OSError, ValueError, KeyError) as exc:
        raise QuestsError(f"{quantize_metrics}: no 'shipped' variant ({exc})") from exc
    model_dir = variants_dir / str(shipped)
    if not (model_dir / ENCODER_FILE).is_file():
        raise QuestsError(f"{model_dir}: shipped variant {shipped!r} has no {ENCODER_FILE}")
    return model_dir


def open_source(model_dir: Path, threads: int = 1) -> tuple[Any, tuple[str, ...]]:
    """A ``serving.practice.ProblemSource`` over the variant (the HTTP endpoint's generation
    policy, default serving settings) and the topics it serves."""
    from serving.decode_loop import OnnxSeq2SeqGenerator
    from serving.generator import GeneratorModel, typed_parts
    from serving.practice import service_source
    from serving.settings import ServingSettings
    from serving.topics import SUPPORTED_TOPICS

    engine = OnnxSeq2SeqGenerator(model_dir, intra_op_num_threads=threads)
    model = GeneratorModel(
        artifact_dir=model_dir,
        manifest={},
        engine=engine,
        settings=ServingSettings.from_env({}),
        **typed_parts(model_dir, engine),
    )
    return service_source(model), SUPPORTED_TOPICS


def score_parts(scores_dir: Path) -> list[Path]:
    """The score stage's parts, in name order (each holds whole learners)."""
    parts = sorted(scores_dir.glob("part-*.parquet"))
    if not parts:
        raise QuestsError(f"{scores_dir}: no part-*.parquet (run `dvc repro score`)")
    return parts


def _draw_part(
    job: tuple[str, str],
    *,
    index: dict[tuple[str, int], list[str]],
    cfg: QuestsConfig,
) -> tuple[int, int, dict[str, int]]:
    """One score part (in, out file): draw its learners' quests, write them; (learners, rows,
    topic counts)."""
    import pandas as pd

    part, out_file = job
    scores = pd.read_parquet(part, columns=SCORE_READ_COLUMNS)
    quests = draw_quests(scores, index, cfg)
    quests.to_parquet(out_file, index=False)
    return int(scores["user_id"].nunique()), len(quests), topic_learners(quests)


def draw_all(
    parts: Sequence[Path],
    out_dir: Path,
    index: dict[tuple[str, int], list[str]],
    cfg: QuestsConfig,
    *,
    engine: Engine,
) -> tuple[int, int, dict[str, int]]:
    """Draw every part, one engine task a part; (learners, rows, learners per topic)."""
    import functools

    jobs = [(str(p), str(out_dir / p.name)) for p in parts]
    draw = functools.partial(_draw_part, index=index, cfg=cfg)
    results = engine.map(draw, jobs, desc="quests")
    learners = sum(r[0] for r in results)
    rows = sum(r[1] for r in results)
    counts: dict[str, int] = {}
    for r in results:
        merge_topic_counts(counts, r[2])
    return learners, rows, dict(sorted(counts.items()))


def run(
    cfg: QuestsConfig,
    *,
    source: Any,
    generator_topics: Sequence[str],
    engine: Engine | None = None,
    scores_dir: Path,
    out_dir: Path,
    metrics_file: Path,
    plot_file: Path,
) -> dict[str, Any]:
    """Build the bank for the scored topics the generator serves, draw every learner's quest,
    write bank, parts, metrics and plot (atomically); ``engine`` (default local) draws."""
    import pandas as pd
    from tqdm import tqdm

    from serving.topics import canonical_topic

    engine = engine or LocalEngine()
    parts = score_parts(scores_dir)
    scored = sorted(pd.read_parquet(parts[0], columns=["topic_id"])["topic_id"].unique())
    # scored topics the generator serves under the same name (the simulator's are Ludora's; a
    # real log's other ids are listed in the metrics, never given another topic's problems)
    topics = [t for t in scored if canonical_topic(t, generator_topics) == t]
    skipped = [t for t in scored if t not in topics]
    if skipped:
        logger.warning("quests: no generator topic for scored topics %s", skipped)
    with atomic_outputs(out_dir, metrics_file) as (tmp, metrics_tmp):
        tmp.mkdir()
        with Timer() as bank_t:
            bank = build_bank(
                source,
                topics,
                cfg,
                progress=lambda it: tqdm(list(it), desc="bank", unit="topic-grade"),
            )
        bank.to_parquet(tmp / BANK_FILE, index=False)
        index = bank_index(bank)
        with Timer() as draw_t:
            n_learners, n_rows, counts = draw_all(parts, tmp, index, cfg, engine=engine)
        per_topic = {t: {str(g): len(index.get((t, g), [])) for g in cfg.grades} for t in topics}
        short = sorted(
            t for t in topics if len(index.get((t, cfg.default_grade), [])) < cfg.bank_size
        )
        metrics = {
            "engine": engine.name,
            "n_learners": n_learners,
            "n_rows": n_rows,
            "n_bank_problems": len(bank),
            "bank_per_topic": per_topic,
            "bank_short_topics": short,
            "topics_without_generator": skipped,
            "learners_per_topic": counts,
            "bank_seconds": round(bank_t.seconds, 3),
            "bank_problems_per_s": round(len(bank) / max(bank_t.seconds, 1e-9), 2),
            "draw_seconds": round(draw_t.seconds, 3),
            "draw_learners_per_s": round(n_learners / max(draw_t.seconds, 1e-9), 1),
            "params": {
                "topics_per_learner": cfg.topics_per_learner,
                "problems_per_topic": cfg.problems_per_topic,
                "bank_size": cfg.bank_size,
                "grades": list(cfg.grades),
                "default_grade": cfg.default_grade,
            },
        }
        write_json(metrics_tmp, metrics)
        atomic_write_csv(plot_file, sorted(counts.items()), ["topic_id", "learners"])
    logger.info(
        "quests: %d learners, %d rows from a %d-problem bank (bank %.1f s, draw %.1f s, %s)",
        n_learners,
        n_rows,
        len(bank),
        bank_t.seconds,
        draw_t.seconds,
        engine.name,
    )
    return metrics


def main() -> None:
    """Entry point of `python -m pipelines.quests` (paths declared in paths.py)."""
    cfg, engine = engine_stage(QuestsConfig, SECTION)
    source, topics = open_source(shipped_variant(VARIANTS_DIR, QUANTIZE_METRICS))
    run(
        cfg,
        source=source,
        generator_topics=topics,
        engine=engine,
        **paths.stage_args(SECTION),
    )


if __name__ == "__main__":
    stage_main(main)
