"""Stage ``prepare_text``: the word-problem corpus, its splits and the generator's tokenizer.

Reads params ``prepare_text`` (and ``train_generator.base_model``, to decide between training a
Unigram tokenizer and saving the pretrained model's own, both with the keyword slots added).
Writes ``outputs/text/`` (splits as JSONL, the open-vocabulary requests ``test_unseen.jsonl``
and ``tokenizer/``) as one directory swapped in atomically, then ``metrics/text.json`` (sizes,
sources used and missing with their sha256, skipped rows by reason, the unseen split's report).
The real corpora beside the repo are optional (``missing_sources: skip``): a fresh clone without
``../shared/data`` trains on the templates alone and says so.
Everything that can fail (params, corpus files, splits, tokenizer) fails before anything is
written.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator

from data.params import FieldProblem, OneOf, Range
from pipelines import paths
from pipelines.common import (
    PARAMS_FILE,
    REPO_ROOT,
    ConfigError,
    atomic_path,
    atomic_write_json,
    build_config,
    load_params,
    load_section,
    require,
    resolve_input_path,
    stage_main,
)

logger = logging.getLogger(__name__)

SOURCES = ("skeletons", "templates", "gsm8k", "svamp", "mawps")
SPLITS = ("train", "val", "test")
UNSEEN_FILE = paths.UNSEEN_FILE
UNSEEN_FIELDS = ("id", "topic", "keywords", "prompt_prefix", "prompt", "keyword_sources")


# Nested defaults (paths, unseen) equal params.yaml's values (tests/pipelines/
# test_params_defaults.py keeps them so): a test may override one corpus path alone. Every
# top-level key is required: params.yaml is where the values live.
_Share = Annotated[float, Range(0.0, 1.0)]


@dataclass(frozen=True)
class CorpusPaths:
    """Real corpus files, relative to the repository root (read only when selected)."""

    gsm8k: str = "../shared/data/word_problems/gsm8k/train.jsonl"
    svamp: str = "../shared/data/word_problems/svamp/SVAMP.json"
    mawps: str = "../shared/data/word_problems/mawps/fold0_train.csv"


@dataclass(frozen=True)
class UnseenConfig:
    """``prepare_text.unseen``: the open-vocabulary test split ``test_unseen.jsonl``."""

    n_requests: Annotated[int, Range(1, 100_000, integer=True)] = 300
    seed: Annotated[int, Range(0, integer=True)] = 23
    corpus_share: _Share = 0.5  # share of keywords drawn from the held-out corpus files
    paths: dict[str, str] = field(
        default_factory=lambda: {
            "gsm8k": "../shared/data/word_problems/gsm8k/test.jsonl",
            "mawps": "../shared/data/word_problems/mawps/fold0_dev.csv",
        }
    )

    def __post_init__(self) -> None:
        bad = [k for k in self.paths if k not in ("gsm8k", "mawps", "svamp")]
        require(
            not bad,
            "prepare_text.unseen.paths",
            f"unknown corpus {bad}; allowed: ['gsm8k', 'mawps', 'svamp']",
        )


def _known_topics(topics: tuple[str, ...]) -> tuple[str, ...]:
    from data.word_problems.templates import TOPIC_NAMES

    bad = [t for t in topics if t not in TOPIC_NAMES]
    if bad:
        raise FieldProblem(f"unknown {bad}; allowed: {list(TOPIC_NAMES)}")
    return topics


_Frac = Annotated[float, Range(0.0, 0.5, lo_open=True, hi_open=True)]


@dataclass(frozen=True)
class PrepareTextConfig:
    """The ``prepare_text`` params section."""

    seed: Annotated[int, Range(0, integer=True)]
    sources: Annotated[tuple[str, ...], OneOf(SOURCES, each=True)]
    missing_sources: Literal["error", "skip"]  # a selected real corpus whose file is absent
    n_templates: Annotated[int, Range(1, 200_000, integer=True)]
    n_skeleton_records: Annotated[int, Range(1, 500_000, integer=True)]  # from the skeleton bank
    skeleton_literal_share: _Share  # ... that also ask for a word the skeleton writes
    template_topics: Annotated[tuple[str, ...], AfterValidator(_known_topics)]
    max_rows: Annotated[int, Range(1, integer=True, note="or null = all")] | None
    # longer real problems are skipped (training budget)
    max_problem_words: Annotated[int, Range(5, integer=True, note="or null = all")] | None
    keywords_per_problem: Annotated[int, Range(1, 5, integer=True)]
    val_frac: _Frac
    test_frac: _Frac
    vocab_size: Annotated[int, Range(100, 64_000, integer=True)]
    model_max_length: Annotated[int, Range(16, 4096, integer=True)]
    request_subsets: _Share  # share of train records asking for a subset of their keywords
    keyword_swap: _Share  # share of train records asking for pseudo-words (augment.py)
    context_keywords: _Share  # share of train records asking for 1-2 extra nouns (augment.py)
    context_max_keywords: Annotated[int, Range(2, 8, integer=True)]  # ... at most this many
    context_two_share: _Share  # ... two extra nouns (not one) in this share of them
    copy_augment: _Share
    paths: CorpusPaths = field(default_factory=CorpusPaths)
    unseen: UnseenConfig = field(default_factory=UnseenConfig)

    @property
    def typed(self) -> bool:
        """A typed-role model (the skeleton bank): prompts carry each keyword's classes."""
        return "skeletons" in self.sources

    def __post_init__(self) -> None:
        # cross-field rules only (each value's own range is its field's validator)
        w = "prepare_text"
        require(
            self.val_frac + self.test_frac <= 0.6,
            f"{w}.val_frac+test_frac",
            f"must be <= 0.6, got {self.val_frac + self.test_frac}",
        )
        require(
            not self.typed or len(self.sources) == 1,
            f"{w}.sources",
            "'skeletons' (typed roles) trains alone: its prompts name keyword classes and its "
            f"targets write role tokens; got {list(self.sources)}",
        )


def load_config(params_file: Path | str = PARAMS_FILE) -> tuple[PrepareTextConfig, str]:
    """The stage config and ``train_generator.base_model`` (``scratch`` when not set)."""
    cfg = build_config(
        PrepareTextConfig, load_section("prepare_text", params_file), f"{params_file}:prepare_text"
    )
    gen = load_params(params_file).get("train_generator") or {}
    base_model = gen.get("base_model", "scratch") if isinstance(gen, dict) else "scratch"
    if not isinstance(base_model, str) or not base_model.strip():
        raise ConfigError(f"{params_file}:train_generator.base_model: must be 'scratch' or a path")
    return cfg, base_model


def _supported_topics() -> tuple[str, ...] | None:
    """The topics serving accepts (``serving.topics``), or None before that module exists."""
    try:
        from serving.topics import SUPPORTED_TOPICS
    except ImportError:  # pragma: no cover - only while serving.topics is being written
        return None
    return tuple(SUPPORTED_TOPICS)


def _real_text_defect(problem: str) -> str | None:
    """Why a real corpus text should not be trained on (a grammar defect it would teach)."""
    try:
        from serving.grammar import grammar_defects
    except ImportError:  # pragma: no cover - only while serving.grammar is being written
        return None
    defects = grammar_defects(problem)
    return f"grammar_{defects[0]}" if defects else None


def build_corpus(
    cfg: PrepareTextConfig, *, root: Path = REPO_ROOT, lexicon: Any = None
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Any]]:
    """Records from every selected source, deduplicated and split; plus per-file read reports.

    A selected real corpus whose file is absent fails the stage (``missing_sources: error``) or
    is left out and named in ``reports["sources_missing"]`` (``skip``: a fresh clone without
    ``../shared/data`` still runs the pipeline, on templates alone).
    """
    from data.word_problems.corpus import (
        combination,
        dedupe,
        real_records,
        request_subsets,
        split_by_combination,
        template_records,
    )

    records: list[dict[str, Any]] = []
    reports: dict[str, Any] = {"sources_used": [], "sources_missing": []}
    topics = _supported_topics()
    for source in cfg.sources:
        if source == "skeletons":
            from data.word_problems.skeletons import load_bank
            from data.word_problems.typed_corpus import skeleton_records

            records += skeleton_records(
                n=cfg.n_skeleton_records,
                seed=cfg.seed,
                bank=load_bank(),
                lexicon=lexicon,
                topics=cfg.template_topics or None,
                literal_share=cfg.skeleton_literal_share,
            )
            reports["sources_used"].append(source)
            continue
        if source == "templates":
            records += template_records(
                n=cfg.n_templates, seed=cfg.seed, topics=cfg.template_topics or None
            )
            reports["sources_used"].append(source)
            continue
        path = resolve_input_path(getattr(cfg.paths, source), root)
        if not path.is_file() and cfg.missing_sources == "skip":
            logger.warning("%s: %s not found; left out (missing_sources: skip)", source, path)
            reports["sources_missing"].append(source)
            continue
        recs, report = real_records(
            source,
            path,
            max_rows=cfg.max_rows,
            n_keywords=cfg.keywords_per_problem,
            max_words=cfg.max_problem_words,
            topics=topics,
            reject=_real_text_defect,
        )
        records += recs
        reports["sources_used"].append(source)
        reports[source] = {
            "path": str(getattr(cfg.paths, source)),
            "sha256": _sha256(path),
            "rows": report.rows,
            "kept": len(recs),
            "skipped": dict(sorted(report.skipped.items())),
        }
    n_before = len(records)
    records = dedupe(records)
    if len(records) < n_before:
        logger.info("dropped %d duplicate problems", n_before - len(records))
    splits = split_by_combination(
        records, val_frac=cfg.val_frac, test_frac=cfg.test_frac, seed=cfg.seed
    )
    for name in SPLITS:
        if not splits[name]:
            raise ValueError(
                f"split '{name}' is empty: {len(records)} records are too few for "
                f"val_frac={cfg.val_frac}, test_frac={cfg.test_frac}"
            )
    if cfg.typed:
        return splits, reports  # the slot augmentations below rewrite <ki> targets only
    if cfg.request_subsets > 0:
        held_out = {combination(r) for name in ("val", "test") for r in splits[name]}
        splits["train"], changed = request_subsets(
            splits["train"], share=cfg.request_subsets, seed=cfg.seed, avoid=held_out
        )
        reports["request_subsets"] = {"share": cfg.request_subsets, "rebuilt": changed}
    if cfg.keyword_swap > 0:
        from data.word_problems.augment import keyword_swap

        splits["train"], swapped = keyword_swap(
            splits["train"], share=cfg.keyword_swap, seed=cfg.seed + 1
        )
        reports["keyword_swap"] = {"share": cfg.keyword_swap, "rebuilt": swapped}
    if cfg.context_keywords > 0:
        from data.word_problems.augment import context_keywords

        splits["train"], added = context_keywords(
            splits["train"],
            share=cfg.context_keywords,
            seed=cfg.seed + 2,
            max_keywords=cfg.context_max_keywords,
            two_share=cfg.context_two_share,
        )
        reports["context_keywords"] = {"share": cfg.context_keywords, "rebuilt": added}
    if cfg.copy_augment > 0:
        from data.word_problems.augment import copy_augment

        extra = copy_augment(splits["train"], share=cfg.copy_augment, seed=cfg.seed)
        splits["train"] = splits["train"] + extra
        reports["copy_augment"] = {"share": cfg.copy_augment, "added": len(extra)}
        logger.info("copy augmentation: %d extra training records", len(extra))
    return splits, reports


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_unseen(
    cfg: PrepareTextConfig,
    splits: dict[str, list[dict[str, Any]]],
    *,
    root: Path = REPO_ROOT,
    lexicon: Any = None,
    planner: Any = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The open-vocabulary requests (``data.word_problems.unseen``) and their report.

    Topics: every supported topic the training split has (so each request asks for something
    the model was taught); nouns: the held-out files of the real corpora that exist, plus the
    written held-out list.
    """
    from dataclasses import asdict

    from data.word_problems.heldout_nouns import HELDOUT_NOUNS
    from data.word_problems.unseen import (
        build_unseen_requests,
        corpus_nouns,
        heldout_corpus_texts,
        record_words,
    )

    u = cfg.unseen
    trained = sorted({r["topic"] for r in splits["train"]})
    supported = _supported_topics()
    topics = [t for t in (supported or trained) if t in trained]
    vocabulary = record_words(r for recs in splits.values() for r in recs)
    pools: dict[str, list[str]] = {}
    used: dict[str, str] = {}
    missing: list[str] = []
    for source, rel in sorted(u.paths.items()):
        path = resolve_input_path(rel, root)
        if not path.is_file():
            missing.append(source)
            continue
        pools[source] = corpus_nouns(heldout_corpus_texts(source, path))
        used[source] = rel
    requests, report = build_unseen_requests(
        n=u.n_requests,
        seed=u.seed,
        topics=topics,
        vocabulary=vocabulary,
        list_nouns=HELDOUT_NOUNS,
        corpus_pools=pools,
        corpus_share=u.corpus_share,
        lexicon=lexicon,
        planner=planner,
    )
    report.corpus_files = used
    report.missing_files = missing
    out = asdict(report)
    out["untrained_supported_topics"] = sorted(set(supported or ()) - set(trained))
    return requests, out


def build_tokenizer(
    cfg: PrepareTextConfig,
    splits: dict[str, list[dict[str, Any]]],
    base_model: str,
    out_dir: Path,
) -> str:
    """Write the tokenizer directory; returns what it is (``unigram`` or the base model)."""
    from data.word_problems.corpus import (
        copy_pretrained_tokenizer,
        save_tokenizer,
        train_unigram_tokenizer,
    )

    if base_model != "scratch":
        copy_pretrained_tokenizer(base_model, out_dir)
        return base_model
    train = splits["train"]
    # Prompts of augmented records ("+swap", "+context") ask for pseudo-words that stand for
    # nouns the model never saw; left out so the tokenizer splits them into generic pieces, as
    # it splits a teacher's noun, instead of spending ~700 of its pieces on them.
    texts = [r["prompt"] for r in train if "+" not in str(r.get("source", ""))]
    texts += [r["target"] for r in train]
    every = [r[k] for recs in splits.values() for r in recs for k in ("prompt", "target")]
    alphabet = "".join(sorted({c for t in every for c in t}))
    tok = train_unigram_tokenizer(texts, vocab_size=cfg.vocab_size, alphabet=alphabet)
    save_tokenizer(tok, out_dir, model_max_length=cfg.model_max_length)
    return "unigram"


def corpus_metrics(splits: dict[str, list[dict[str, Any]]], tokenizer_dir: Path) -> dict[str, Any]:
    """Sizes, topics, sources, combinations, vocabulary and token lengths for metrics/text.json."""
    from tokenizers import Tokenizer

    from data.word_problems.corpus import combination, unk_rate

    tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    out: dict[str, Any] = {
        "sizes": {k: len(v) for k, v in splits.items()},
        "n_records": sum(len(v) for v in splits.values()),
        "vocab_size": tok.get_vocab_size(),
    }
    all_recs = [r for v in splits.values() for r in v]
    out["topics"] = dict(sorted(Counter(r["topic"] for r in all_recs).items()))
    out["n_topics"] = len(out["topics"])
    out["sources"] = dict(sorted(Counter(r["source"] for r in all_recs).items()))
    out["combinations"] = {k: len({combination(r) for r in v}) for k, v in splits.items()}
    for name in ("train", "test"):
        for key in ("prompt", "target"):
            lens = [len(e.ids) for e in tok.encode_batch([r[key] for r in splits[name]])]
            out[f"{name}_{key}_tokens_max"] = max(lens)
            out[f"{name}_{key}_tokens_mean"] = round(sum(lens) / len(lens), 2)
    out["unk_rate_test"] = unk_rate(tok, [r["target"] for r in splits["test"]])
    return out


def write_unseen_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """The open-vocabulary requests, one JSON object per line (fields in UNSEEN_FIELDS order)."""
    with path.open("w", encoding="utf-8") as fh:
        for rec in records:
            row = {k: rec[k] for k in UNSEEN_FIELDS}
            if "nouns" in rec:  # typed roles: what the lexicon knows of each keyword
                row["nouns"] = rec["nouns"]
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def unseen_token_metrics(unseen: list[dict[str, Any]], tokenizer_dir: Path) -> dict[str, Any]:
    """Prompt lengths and unknown-token share of the open-vocabulary prompts."""
    from tokenizers import Tokenizer

    from data.word_problems.corpus import unk_rate

    tok = Tokenizer.from_file(str(tokenizer_dir / "tokenizer.json"))
    lens = [len(e.ids) for e in tok.encode_batch([r["prompt"] for r in unseen])]
    return {
        "prompt_tokens_max": max(lens),
        "prompt_tokens_mean": round(sum(lens) / len(lens), 2),
        "unk_rate_prompts": unk_rate(tok, [r["prompt"] for r in unseen]),
    }


def prepare_text(
    cfg: PrepareTextConfig,
    *,
    base_model: str,
    text_dir: Path,
    metrics_path: Path,
    root: Path = REPO_ROOT,
    lexicon_path: Path | None = None,
) -> dict[str, Any]:
    """Build everything in a temporary directory, then swap it in and write the metrics.

    ``lexicon_path`` (stage ``prepare_lexicon``'s table) is read only by a typed corpus.
    """
    from data.word_problems.corpus import write_jsonl

    lexicon = None
    if cfg.typed:
        from serving.lexicon import Lexicon

        if lexicon_path is None:
            raise ConfigError("prepare_text: a typed corpus needs the lexicon table (lexicon_path)")
        lexicon = Lexicon.load(lexicon_path)
    splits, reports = build_corpus(cfg, root=root, lexicon=lexicon)
    planner = None
    if cfg.typed:
        from serving.planner import Planner

        planner = Planner.from_records(splits["train"])
    unseen, unseen_report = build_unseen(cfg, splits, root=root, lexicon=lexicon, planner=planner)
    with atomic_path(text_dir) as tmp:
        tmp.mkdir(parents=True)
        for name in SPLITS:
            write_jsonl(tmp / f"{name}.jsonl", splits[name])
        write_unseen_jsonl(tmp / UNSEEN_FILE, unseen)
        tokenizer_kind = build_tokenizer(cfg, splits, base_model, tmp / "tokenizer")
        if planner is not None and lexicon_path is not None:  # (both only for a typed corpus)
            # they travel with the tokenizer into the model and its artifact
            import shutil

            from data.word_problems.skeletons import load_bank, to_target
            from serving.prompt import join_target
            from serving.roles import LEXICON_FILE as LEXICON_NAME
            from serving.roles import PLANS_FILE, SKELETONS_FILE

            shutil.copy2(lexicon_path, tmp / "tokenizer" / LEXICON_NAME)
            atomic_write_json(tmp / "tokenizer" / PLANS_FILE, planner.to_json())
            bank: dict[str, list[str]] = {}
            for sk in load_bank():
                bank.setdefault(sk.topic, []).append(join_target(*to_target(sk)))
            atomic_write_json(tmp / "tokenizer" / SKELETONS_FILE, bank)
        metrics = corpus_metrics(splits, tmp / "tokenizer")
        metrics["unseen"] = {**unseen_report, **unseen_token_metrics(unseen, tmp / "tokenizer")}
    metrics["tokenizer"] = tokenizer_kind
    metrics["sources_used"] = reports.pop("sources_used")
    metrics["sources_missing"] = reports.pop("sources_missing")
    metrics["read_reports"] = reports
    metrics["config"] = dataclasses.asdict(cfg)
    atomic_write_json(metrics_path, metrics)
    logger.info(
        "prepare_text: %s records, vocab %d, written to %s",
        metrics["sizes"],
        metrics["vocab_size"],
        text_dir,
    )
    return metrics


def main(params_file: Path | str = PARAMS_FILE) -> None:
    """Entry point for ``python -m pipelines.prepare_text``."""
    cfg, base_model = load_config(params_file)
    prepare_text(
        cfg,
        base_model=base_model,
        root=Path(params_file).resolve().parent,
        **paths.stage_args("prepare_text"),
    )


if __name__ == "__main__":
    stage_main(main)
