"""Stage ``train_generator``: fine-tune (or train from scratch) the T5 word-problem generator.

Reads ``outputs/text/{train,val,test}.jsonl`` and ``outputs/text/tokenizer/`` (from
``prepare_text``), trains with the loop in :mod:`training.generator`, keeps the best validation
epoch, evaluates greedy generations on test with :func:`training.text_metrics.generation_metrics`
and writes the checkpoint, ``metrics/generator.json`` and ``plots/generator/loss.csv``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator

from data.params import FieldProblem, Range, range_problem
from pipelines import paths, tracking
from pipelines.common import (
    REPO_ROOT,
    atomic_path,
    atomic_write_json,
    atomic_write_text,
    build_config,
    git_commit,
    load_section,
    params_hash,
    require,
    setup_mlflow,
    stage_main,
)

logger = logging.getLogger(__name__)

UNSEEN_FILE = paths.UNSEEN_FILE

# T5Config keys a scratch model may set from params (anything else is a typo) and the ranges
# of those that have one: one table, checked by the `model` field's validator.
_MODEL_RANGES: dict[str, dict[str, Any] | None] = {
    "d_model": {"lo": 1, "hi": 4096, "integer": True},
    "d_ff": {"lo": 1, "hi": 4096, "integer": True},
    "d_kv": {"lo": 1, "hi": 4096, "integer": True},
    "num_layers": {"lo": 1, "hi": 4096, "integer": True},
    "num_decoder_layers": {"lo": 1, "hi": 4096, "integer": True},
    "num_heads": {"lo": 1, "hi": 4096, "integer": True},
    "dropout_rate": {"lo": 0.0, "hi": 1.0, "hi_open": True},
    "feed_forward_proj": None,
    "relative_attention_num_buckets": None,
    "relative_attention_max_distance": None,
    "tie_word_embeddings": None,
}


def _check_model(model: Any) -> Any:
    """``train_generator.model``: known T5Config keys, each in its range."""
    if not isinstance(model, Mapping):
        raise FieldProblem(f"must be a mapping of T5Config keys, got {model!r}")
    unknown = sorted(set(model) - set(_MODEL_RANGES))
    if unknown:
        raise FieldProblem(f"unknown key(s) {unknown}; allowed {sorted(_MODEL_RANGES)}")
    for key, value in model.items():
        bounds = _MODEL_RANGES[key]
        problem = bounds and range_problem(value, **bounds)
        if problem:
            raise FieldProblem(problem, at=(key,))
    # transformers 4.57 generate() sizes the decoder KV cache by num_layers: a deeper decoder
    # trains but fails at generation (IndexError in cache_utils) after the whole run.
    n_enc, n_dec = model.get("num_layers", 6), model.get("num_decoder_layers")
    if n_dec is not None and n_dec > n_enc:
        raise FieldProblem(
            f"must be <= model.num_layers ({n_enc}), got {n_dec!r}", at=("num_decoder_layers",)
        )
    return model


_Threads = Annotated[int, Range(1, 64, integer=True)]
_Batch = Annotated[int, Range(1, 4096, integer=True)]
_Tokens = Annotated[int, Range(4, 2048, integer=True)]
_Samples = Annotated[int, Range(0, 1000, integer=True)]
_Cap = Annotated[int, Range(0, integer=True, note="0 = all")]


@dataclass(frozen=True)
class TrainGeneratorConfig:
    """The ``train_generator`` params section, validated once (every key is required: the
    values live in params.yaml)."""

    base_model: str
    model: Annotated[dict[str, Any], BeforeValidator(_check_model)]
    seed: int
    num_threads: _Threads
    epochs: Annotated[int, Range(1, 1000, integer=True)]
    batch_size: _Batch
    learning_rate: Annotated[float, Range(0, 1.0, lo_open=True)]
    weight_decay: Annotated[float, Range(0, 1.0)]
    warmup_ratio: Annotated[float, Range(0, 1.0, hi_open=True)]
    max_grad_norm: Annotated[float, Range(0, lo_open=True)]
    patience: Annotated[int, Range(0, 1000, integer=True, note="0 = off")]
    max_source_len: _Tokens
    max_target_len: _Tokens
    eval_batch_size: _Batch
    max_train_examples: _Cap
    max_eval_examples: _Cap
    n_samples_logged: _Samples
    n_unseen_samples: _Samples  # greedy open-vocabulary outputs logged to MLflow
    samples_seed: Annotated[int, Range(0, integer=True)]

    def __post_init__(self) -> None:
        require(
            bool(self.base_model.strip()),
            "train_generator.base_model",
            "must be 'scratch' or a model id/path",
        )

    @property
    def max_new_tokens(self) -> int:
        """New tokens of the greedy evaluation and the checkpoint's generation_config default.

        Derived, not a knob: the model is taught targets of at most ``max_target_len`` tokens
        (eos included), so that is as long as its evaluation may write. What a request decodes
        is serving's own bound (``serving.limits.DEFAULT_MAX_LENGTH``; see there).
        """
        return self.max_target_len


def read_pairs(path: Path, limit: int = 0) -> list[dict[str, Any]]:
    """Records of a text split for training (first ``limit`` when > 0): prompt and target set."""
    from data.word_problems.corpus import read_jsonl as read_split

    return read_split(path, required=(), nonempty=("prompt", "target"), limit=limit)


def loss_csv(rows: list[dict[str, Any]]) -> str:
    """The loss curve as CSV text (step, train_loss, val_loss; empty val between epochs)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["step", "train_loss", "val_loss"], lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


def read_unseen(path: Path, limit: int = 0) -> list[dict[str, Any]]:
    """The open-vocabulary requests (``prepare_text``'s ``test_unseen.jsonl``)."""
    from data.word_problems.corpus import read_jsonl as read_split

    return read_split(
        path, required=("id", "topic", "keywords", "prompt"), nonempty=("prompt",), limit=limit
    )


def compute_metrics(
    preds: list[str], test: list[dict[str, Any]], train_records: list[dict[str, Any]]
) -> dict[str, float]:
    """Text metrics of greedy generations against the test references (rendered outputs)."""
    from training.text_metrics import generation_metrics

    refs = [r["target"] for r in test]
    keywords = [list(r.get("keywords", [])) for r in test]
    train_problems = {str(r["problem"]) for r in train_records if r.get("problem")}
    return dict(generation_metrics(preds, refs, keywords, train_problems, test))


def sample_rows(
    preds: list[str], unseen: list[dict[str, Any]], *, n: int, seed: int
) -> list[dict[str, Any]]:
    """``n`` seeded random open-vocabulary requests with their rendered output and its checks."""
    import random

    from serving.lexicon import nouns_from_record
    from training.text_metrics import judge_unseen, render_one

    idx = sorted(random.Random(seed).sample(range(len(unseen)), min(n, len(unseen))))
    rows = []
    for i in idx:
        rec = unseen[i]
        rendered = render_one(preds[i], rec, i)  # the numbers unseen_metrics judged
        rows.append(
            {
                "id": rec["id"],
                "request": {
                    "topic": rec["topic"],
                    "keywords": list(rec["keywords"]),
                    "prompt_prefix": rec.get("prompt_prefix", ""),
                },
                "raw": preds[i],
                "problem": rendered.problem_text,
                "equation": rendered.equation_text,
                **judge_unseen(
                    rendered, str(rec["topic"]), list(rec["keywords"]), nouns_from_record(rec)
                ),
            }
        )
    return rows


def samples_markdown(rows: list[dict[str, Any]], *, seed: int, n_requests: int) -> str:
    """The samples as a page docs can link (every output printed as it is)."""
    import json as _json

    lines = [
        "# Greedy samples of the trained model: open-vocabulary requests",
        "",
        f"{len(rows)} of the {n_requests} requests of `outputs/text/test_unseen.jsonl`, drawn with "
        f"seed {seed} (`train_generator.samples_seed`); keywords never occur in any training "
        "record. One free greedy pass of the torch model, rendered by "
        "`serving.realize.render_output`: a diagnostic of what the network learned, NOT what "
        "users get (serving decodes under the skeleton trie, with retries and checks; its "
        "outputs are in `metrics/generator_samples.md`, written by `quantize_generator`).",
        "",
    ]

    def mark(ok: bool) -> str:
        return "yes" if ok else "**no**"

    for k, row in enumerate(rows, start=1):
        req = row["request"]
        lines += [
            f"## {k}. `{_json.dumps(req, ensure_ascii=False)}`",
            "",
            f"> {row['problem']}",
            "",
            f"- equation: `{row['equation']}`; consistent: {mark(row['consistent'])}; "
            f"fits topic: {mark(row['fits_topic'])}",
            f"- grammar defects: {', '.join(row['grammar_defects']) or 'none'}; "
            f"missing keywords: {', '.join(row['missing_keywords']) or 'none'}",
            f"- raw: `{row['raw']}`",
            "",
        ]
    return "\n".join(lines)


def run(
    cfg: TrainGeneratorConfig,
    *,
    text_dir: Path,
    tokenizer_dir: Path,
    model_dir: Path,
    metrics_file: Path,
    plots_dir: Path,
    params: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Train, evaluate and write every declared output; returns the metrics dict.

    Evaluation: greedy generations on the template test split (the historical metrics) and on
    the open-vocabulary requests (``test_unseen.jsonl``), all rendered by the serving
    post-processing; timings say where the stage's time went.
    """
    import time

    import mlflow
    import torch
    import transformers
    from transformers import AutoTokenizer

    from training import generator as g

    torch.manual_seed(cfg.seed)
    transformers.set_seed(cfg.seed)
    torch.set_num_threads(cfg.num_threads)

    if not tokenizer_dir.is_dir():
        raise FileNotFoundError(f"{tokenizer_dir}: tokenizer dir not found (run prepare_text)")
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    train_rec = read_pairs(text_dir / "train.jsonl", cfg.max_train_examples)
    val_rec = read_pairs(text_dir / "val.jsonl", cfg.max_eval_examples)
    test_rec = read_pairs(text_dir / "test.jsonl", cfg.max_eval_examples)
    unseen_rec = read_unseen(text_dir / UNSEEN_FILE, cfg.max_eval_examples)
    lens = {"max_source_len": cfg.max_source_len, "max_target_len": cfg.max_target_len}
    train_enc = g.encode_records(tokenizer, train_rec, **lens, where=str(text_dir / "train.jsonl"))
    val_enc = g.encode_records(tokenizer, val_rec, **lens, where=str(text_dir / "val.jsonl"))
    test_enc = g.encode_records(tokenizer, test_rec, **lens, where=str(text_dir / "test.jsonl"))
    pad_id = int(tokenizer.pad_token_id)

    model = g.build_model(cfg.base_model, model_config=cfg.model, tokenizer=tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    section = dict(params) if params is not None else asdict(cfg)

    setup_mlflow("generator")
    with mlflow.start_run() as active:
        mlflow.set_tags({"git_commit": git_commit(), "stage": "train_generator"})
        flat = {k: v for k, v in asdict(cfg).items() if k != "model"}
        flat["max_new_tokens"] = cfg.max_new_tokens  # derived (max_target_len), logged as before
        flat.update({f"model.{k}": v for k, v in cfg.model.items()})
        mlflow.log_params({**flat, "n_params": n_params, "n_train": len(train_enc)})

        def on_epoch(epoch: int, train_loss: float, val_loss: float) -> None:
            mlflow.log_metrics({"epoch_train_loss": train_loss, "val_loss": val_loss}, step=epoch)

        schedule = g.Schedule.of(cfg)
        hist = g.train(model, train_enc, val_enc, schedule, pad_id=pad_id, on_epoch=on_epoch)
        test_loss = g.evaluate_loss(model, test_enc, batch_size=cfg.eval_batch_size, pad_id=pad_id)
        t0 = time.perf_counter()
        gen = {
            "max_source_len": cfg.max_source_len,
            "max_new_tokens": cfg.max_new_tokens,
            "batch_size": cfg.eval_batch_size,
        }
        # The template metrics stay comparable across corpora: scored on the template test
        # records (real-corpus test records still count in test_loss).
        gen_test = [r for r in test_rec if r.get("source", "templates") == "templates"] or test_rec
        preds = g.generate_texts(model, tokenizer, [r["prompt"] for r in gen_test], **gen)
        t1 = time.perf_counter()
        unseen_preds = g.generate_texts(model, tokenizer, [r["prompt"] for r in unseen_rec], **gen)
        t2 = time.perf_counter()
        from training.text_metrics import unseen_metrics

        metrics: dict[str, Any] = compute_metrics(preds, gen_test, train_rec)
        metrics.update(unseen_metrics(unseen_preds, unseen_rec))
        metrics.update(
            {
                "val_loss": hist.best_val_loss,
                "test_loss": test_loss,
                "best_epoch": hist.best_epoch,
                "epochs_run": len(hist.val_loss),
                "train_seconds": round(hist.seconds, 1),
                "steps": len(hist.steps),
                "steps_per_s": round(hist.steps_per_s, 2),
                "train_examples_per_s": round(hist.steps_per_s * cfg.batch_size, 1),
                **{f"time_s.{k}": round(v, 1) for k, v in hist.time_s.items()},
                "time_s.generate_test": round(t1 - t0, 1),
                "time_s.generate_unseen": round(t2 - t1, 1),
                "n_params": n_params,
                "n_train": len(train_rec),
                "n_test": len(test_rec),
                "n_test_generated": len(gen_test),
                "n_unseen": len(unseen_rec),
            }
        )
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        tracking.log_generator_training(text_dir, model, root=REPO_ROOT, unseen_file=UNSEEN_FILE)
        rows_unseen = sample_rows(
            unseen_preds, unseen_rec, n=cfg.n_unseen_samples, seed=cfg.samples_seed
        )
        samples_md = samples_markdown(
            rows_unseen, seed=cfg.samples_seed, n_requests=len(unseen_rec)
        )
        mlflow.log_text(samples_md, "greedy_samples.md")

        rows = hist.curve_rows()
        curve = loss_csv(rows)
        samples = [
            {"prompt": r["prompt"], "reference": r["target"], "generated": p}
            for r, p in zip(gen_test[: cfg.n_samples_logged], preds, strict=False)
        ]
        mlflow.log_text(curve, "loss.csv")
        mlflow.log_table(
            {k: [s[k] for s in samples] for k in ("prompt", "reference", "generated")},
            "samples.json",
        )
        training_config = {
            "params": section,
            "params_hash": params_hash(section),
            "git_commit": git_commit(),
            "mlflow_run_id": active.info.run_id,
            "n_params": n_params,
            "best_epoch": hist.best_epoch,
            "max_source_len": cfg.max_source_len,
            "max_new_tokens": cfg.max_new_tokens,
            # what the model was taught: the artifact's manifest["topics"] (serving.topics)
            "topics": sorted({str(r["topic"]) for r in train_rec if r.get("topic")}),
        }
        with atomic_path(model_dir) as tmp:
            g.save_checkpoint(
                model,
                tokenizer,
                tmp,
                max_new_tokens=cfg.max_new_tokens,
                training_config=training_config,
            )
            from serving.roles import TYPED_FILES

            for name in TYPED_FILES:  # a typed-role model reads them at serving
                if (tokenizer_dir / name).is_file():
                    shutil.copy2(tokenizer_dir / name, tmp / name)
            mlflow.log_artifacts(str(tmp), "checkpoint")
    atomic_write_text(plots_dir / "loss.csv", curve)
    atomic_write_json(metrics_file, metrics)
    logger.info("generator metrics: %s", json.dumps(metrics, sort_keys=True))
    return metrics


def main() -> None:
    """DVC entry point: params section -> config -> run with the declared paths."""
    section = load_section("train_generator")
    cfg = build_config(TrainGeneratorConfig, section, "params.yaml:train_generator")
    run(cfg, params=section, **paths.stage_args("train_generator"))


if __name__ == "__main__":
    stage_main(main)
