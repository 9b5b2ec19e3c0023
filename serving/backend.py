"""The seed backend's two functions, served from an ``export-backend`` directory.

``predict_user_weakness(WeaknessPredictionInput) -> WeaknessPredictionOutput`` and
``generate_ai_word_problem(WordProblemInput) -> WordProblemOutput`` keep the seed's names and
schemas; ``practice_set(PracticeSetInput) -> PracticeSetOutput`` and
``generate_question(topic_id, ...) -> QuestionOutput`` answer the HTTP app's practice-set and
question endpoints from the same directory. All read only the exported directory
(``LUDORA_BACKEND_DIR``, default the seed's ``onnx_placeholder_models``):
``lightgbm_weakness_predictor.onnx`` (calibration in-graph), ``t5_small_word_problem.onnx``
(generation loop in-graph), ``tokenizer/`` and ``manifest.json``
(every file's sha256 checked once, when the directory is first opened).

The request -> features path is the HTTP app's own (``serving.weakness``: history, views,
``core.online.request_features`` with the feature spec stored in the graph's metadata), so
both answer the same probability. Generation is greedy inside the graph (deterministic): one
run per request, its output rendered by ``serving.realize.render_output`` and checked by the HTTP
app's own consistency and keyword checks.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.io import read_json
from serving.onnx_files import ONE_FILE_NAME
from serving.schemas import (
    PracticeSetInput,
    PracticeSetOutput,
    QuestionOutput,
    WeaknessPredictionInput,
    WeaknessPredictionOutput,
    WordProblemInput,
    WordProblemOutput,
)

logger = logging.getLogger(__name__)

DIR_ENV = "LUDORA_BACKEND_DIR"
DEFAULT_DIR = "onnx_placeholder_models"
FORMAT = "ludora-backend-export"
MANIFEST = "manifest.json"
WEAKNESS_FILE = "lightgbm_weakness_predictor.onnx"
GENERATOR_FILE = ONE_FILE_NAME
TOKENIZER_DIR = "tokenizer"


class BackendDirError(RuntimeError):
    """The exported directory is missing, altered since the export, or not an export."""


def verify_backend_dir(root: Path) -> dict[str, Any]:
    """``manifest.json`` of an export, after checking every listed file's size and sha256."""
    from serving.manifest import sha256_file

    path = root / MANIFEST
    missing = f"not found (run `ludora-ml export-backend --to {root}`)"
    manifest = read_json(path, missing=missing, error=BackendDirError)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackendDirError(f"{path}: not an export-backend manifest")
    for rel, entry in manifest.get("files", {}).items():
        f = root / rel
        if not f.is_file() or f.stat().st_size != entry["size"]:
            raise BackendDirError(f"{f}: missing or resized since the export")
        if sha256_file(f) != entry["sha256"]:
            raise BackendDirError(f"{f}: sha256 differs from {MANIFEST}")
    return manifest


def _session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # the optional inputs' defaults trigger an "initializer" warning
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def _weakness_model(root: Path, manifest: Mapping[str, Any], threads: int) -> Any:
    """A ``serving.weakness.WeaknessModel`` whose session is the calibrated backend graph."""
    from serving.settings import ServingSettings
    from serving.weakness import WeaknessModel

    session = _session(root / WEAKNESS_FILE, threads)
    meta = session.get_modelmeta().custom_metadata_map
    views = json.loads(meta.get("calibration_views", "[]"))
    index = {v: i for i, v in enumerate(views)}

    class _InGraph(WeaknessModel):
        # The graph already calibrates (per view through its view_index input) and clips.
        def predict_features(self, rows: np.ndarray, views: Sequence[str] | None = None) -> Any:
            feeds: dict[str, Any] = {self.input_name: np.ascontiguousarray(rows, np.float32)}
            if index and views is not None:
                feeds["view_index"] = np.asarray([index.get(v, -1) for v in views], np.int64)
            (p,) = self.session.run(["weakness_probability"], feeds)
            return np.asarray(p, dtype=np.float64)

    source = manifest["weakness"]["source"]
    return _InGraph(
        artifact_dir=root,
        manifest={
            "name": "weakness",
            "version": source.get("version"),
            "variant": source.get("variant"),
            "topics": json.loads(meta.get("topics", "null")),
            "topic_aliases": json.loads(meta.get("topic_aliases", "null")),
        },
        session=session,
        spec=json.loads(meta["feature_spec"]),
        calibration={"method": "identity"},
        thresholds=json.loads(meta["action_thresholds"]),
        labels=json.loads(meta["action_labels"]),
        settings=ServingSettings.from_env(),
    )


@dataclass
class Backend:
    """Sessions and tokenizer of one exported directory, opened once."""

    root: Path
    manifest: dict[str, Any]
    weakness: Any
    generator: Any
    tokenizer: Any
    lexicon: Any = None  # a typed-role generator's noun lexicon (tokenizer/nouns.tsv)
    planner: Any = None  # ... and its trained role plans (tokenizer/plans.json)
    bank: Any = None  # ... and its skeleton bank (tokenizer/skeletons.json), fed as a trie

    @property
    def generator_version(self) -> str:
        return str(self.manifest["generator"]["source"].get("version"))

    def encode(self, prompt: str) -> np.ndarray:
        eos = int(self.manifest["generator"]["generation"]["eos_token_id"])
        ids = list(self.tokenizer.encode(prompt).ids)
        if not ids or ids[-1] != eos:
            ids.append(eos)
        return np.asarray([ids], dtype=np.int64)

    def sequences(self, prompt: str, max_length: int, trie: Any = None) -> list[str]:
        """Decoded greedy text(s) of one generator run (constrained to ``trie``'s skeletons,
        ``serving.constrain``, when given and the graph takes one)."""
        from serving.constrain import trie_feeds

        ids = self.encode(prompt)
        feeds = {
            "input_ids": ids,
            "attention_mask": np.ones_like(ids),
            "max_length": np.array([max_length], np.int64),
            **trie_feeds(self.generator, trie),
        }
        (seq,) = self.generator.run(["sequences"], feeds)
        eos = int(self.manifest["generator"]["generation"]["eos_token_id"])
        texts = []
        for row in seq.tolist():
            # Drop the decoder start token and cut at eos even if the tokenizer does not mark
            # them special: the same ids the Python loop returns.
            ids = row[1:]
            ids = ids[: ids.index(eos)] if eos in ids else ids
            texts.append(str(self.tokenizer.decode(ids, skip_special_tokens=True)).strip())
        return texts


@functools.lru_cache(maxsize=4)
def _open(root: str, threads: int) -> Backend:
    from tokenizers import Tokenizer

    path = Path(root)
    manifest = verify_backend_dir(path)
    backend = Backend(
        root=path,
        manifest=manifest,
        weakness=_weakness_model(path, manifest, threads),
        generator=_session(path / GENERATOR_FILE, threads),
        tokenizer=Tokenizer.from_file(str(path / TOKENIZER_DIR / "tokenizer.json")),
    )
    from serving.lexicon import LEXICON_FILE

    lexicon = path / TOKENIZER_DIR / LEXICON_FILE
    if lexicon.is_file():  # a typed-role generator: prompts name roles, roles bind by class
        from serving.constrain import load_bank
        from serving.lexicon import Lexicon
        from serving.planner import load_planner

        backend.lexicon = Lexicon.load(lexicon)
        backend.planner = load_planner(path / TOKENIZER_DIR)
        backend.bank = load_bank(
            path / TOKENIZER_DIR, lambda text: backend.encode(text)[0].tolist()
        )
    logger.info("opened backend export %s", path)
    return backend


def load_backend(root: Path | str | None = None, *, threads: int = 1) -> Backend:
    """The (cached) backend of ``root``, else ``$LUDORA_BACKEND_DIR``, else the seed's dir."""
    where = root if root is not None else os.environ.get(DIR_ENV, DEFAULT_DIR)
    path = Path(where).expanduser().resolve()
    if not path.is_dir():
        raise BackendDirError(f"{path}: export directory not found (set {DIR_ENV})")
    return _open(str(path), threads)


def predict_user_weakness(
    data: WeaknessPredictionInput, *, backend: Backend | None = None
) -> WeaknessPredictionOutput:
    """The seed's weakness service: one calibrated probability and action level per topic."""
    return (backend or load_backend()).weakness.predict(data)


def render(
    text: str,
    keywords: Sequence[str],
    *,
    topic: str = "",
    prompt_prefix: str = "",
    seed: int = 0,
    nouns: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Output fields of one decoded text: the HTTP app's rendering and checks (``seed`` draws
    the values of the text's ``<num>`` slots)."""
    from serving.consistency import check_consistency
    from serving.keywords import missing_keywords
    from serving.story import render_any

    rendered = render_any(
        text, list(keywords), topic=topic, prompt_prefix=prompt_prefix, seed=seed, nouns=nouns
    )
    problem, equation = rendered.problem_text, rendered.equation_text
    result = check_consistency(problem, equation)
    unused = [{"keyword": k, "reason": r} for k, r in rendered.keywords_unused]
    used = [k for k in keywords if k not in {u["keyword"] for u in unused}]
    return {
        "generated_problem_text": problem,
        "equation": equation if result.ok else None,
        "answer": result.value if result.ok else None,
        "consistent": result.ok,
        "missing_keywords": list(missing_keywords(problem, used)),
        "keywords_unused": unused,
    }


def generate_ai_word_problem(
    data: WordProblemInput, *, backend: Backend | None = None
) -> WordProblemOutput:
    """The seed's word-problem service: one greedy run of the one-file graph (for a typed-role
    model, constrained to the bank's skeletons that host the keywords, as the HTTP app's
    decoding is), rendered."""
    from serving.errors import RequestError
    from serving.prompt import PromptError, format_prompt

    b = backend or load_backend()
    nouns = None
    if b.lexicon is not None:
        from serving.lexicon import describe

        nouns = describe(b.lexicon, list(data.keywords))
    from serving.roles import plan_roles

    try:
        prompt = format_prompt(
            data.topic,
            list(data.keywords),
            data.prompt_prefix,
            roles=None
            if nouns is None
            else b.planner.plan(data.topic, nouns)
            if b.planner is not None
            else plan_roles(nouns),
        )
    except PromptError as exc:
        raise RequestError(str(exc).split(":", 1)[0] or "body", str(exc)) from exc
    seed = int(data.seed or 0)
    # the HTTP app's constraint: only skeletons of the bank that host the keywords
    trie = (
        b.bank.trie(data.topic, nouns, data.max_length, data.prompt_prefix)
        if nouns is not None and b.bank is not None
        else None
    )
    return WordProblemOutput(
        **render(
            b.sequences(prompt, data.max_length, trie)[0],
            data.keywords,
            topic=data.topic,
            prompt_prefix=data.prompt_prefix,
            seed=seed,
            nouns=nouns,
        ),
        attempts=1,
        seed=seed,  # greedy decoding: the seed draws only the number values
        model_version=b.generator_version,
    )


def _topics(b: Backend) -> tuple[str, ...]:
    """The generator topics of an export (its manifest's list, else every supported one)."""
    from serving.topics import SUPPORTED_TOPICS

    listed = b.manifest.get("generator", {}).get("topics")
    if isinstance(listed, list) and listed and all(isinstance(t, str) for t in listed):
        return tuple(listed)
    return SUPPORTED_TOPICS


def _source(b: Backend) -> Any:
    """``serving.practice.ProblemSource`` over the one-file graph (greedy text; the seed draws
    the numbers, so problems of one topic differ by their values)."""
    from serving.practice import Candidate

    def generate(
        *,
        topic: str,
        keywords: Sequence[str],
        prompt_prefix: str,
        seed: int,
        deadline: float | None,
    ) -> Any:
        out = generate_ai_word_problem(
            WordProblemInput(
                topic=topic, keywords=list(keywords), prompt_prefix=prompt_prefix, seed=seed
            ),
            backend=b,
        )
        return Candidate(
            text=out.generated_problem_text, equation=out.equation, answer=out.answer, seed=seed
        )

    return generate


def practice_set(data: PracticeSetInput, *, backend: Backend | None = None) -> PracticeSetOutput:
    """The HTTP app's practice set: the weakest topics, reasons, verified problems."""
    from serving.practice import practice_set as build

    b = backend or load_backend()
    return build(
        data,
        weakness=b.weakness,
        source=_source(b),
        generator_topics=_topics(b),
        generator_version=b.generator_version,
    )


def generate_question(
    topic_id: str,
    *,
    keywords: Sequence[str] = (),
    grade: int | None = None,
    seed: int | None = None,
    backend: Backend | None = None,
) -> QuestionOutput:
    """``GET /api/v1/q/questions/generate?question_type=ai_word_problem&topic_id=...``: one
    word problem for a backend topic id, mapped through the topic synonyms (RequestError
    naming ``topic_id`` for a topic the generator does not serve)."""
    from serving.errors import RequestError
    from serving.practice import grade_prefix, themes_for
    from serving.topics import request_topic, unknown_topic_message

    b = backend or load_backend()
    topics = _topics(b)
    topic = request_topic(topic_id, topics)
    if topic is None:
        raise RequestError("topic_id", unknown_topic_message(topic_id, topics))
    out = generate_ai_word_problem(
        WordProblemInput(
            topic=topic,
            keywords=themes_for(topic, keywords),
            prompt_prefix=grade_prefix(grade),
            seed=seed,
        ),
        backend=b,
    )
    return QuestionOutput(
        **out.model_dump(), question_type="ai_word_problem", topic_id=topic_id, topic=topic
    )
