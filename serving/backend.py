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
both answer the same probability. Generation is the HTTP app's own too
(``serving.generator.GeneratorModel``: prompt, skeleton constraint, rendering, checks) over the
one-file graph as its ``serving.decoding.TokenDecoder``: greedy inside the graph
(deterministic), one attempt per request, the seed drawing only the rendered values.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.io import read_json
from serving.onnx_files import ONE_FILE_NAME, WEAKNESS_BACKEND_FILE
from serving.schemas import (
    KeywordUnused,
    PracticeSetInput,
    PracticeSetOutput,
    QuestionOutput,
    WeaknessPredictionInput,
    WeaknessPredictionOutput,
    WordProblemInput,
    WordProblemOutput,
)

if TYPE_CHECKING:
    from serving.generator import GeneratorModel

logger = logging.getLogger(__name__)

DIR_ENV = "LUDORA_BACKEND_DIR"
DEFAULT_DIR = "onnx_placeholder_models"
FORMAT = "ludora-backend-export"
MANIFEST = "manifest.json"
WEAKNESS_FILE = WEAKNESS_BACKEND_FILE
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


def _weakness_model(root: Path, manifest: Mapping[str, Any], threads: int) -> Any:
    """A ``serving.weakness.WeaknessModel`` whose session is the calibrated backend graph."""
    from serving.one_file import one_file_session
    from serving.settings import ServingSettings
    from serving.weakness import WeaknessModel

    session = one_file_session(root / WEAKNESS_FILE, threads=threads)
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


def _generator_model(root: Path, manifest: Mapping[str, Any], threads: int) -> GeneratorModel:
    """The HTTP app's generator service over the one-file graph: greedy and one attempt per
    request, as the drop-in has always answered (a greedy retry of a keyword-slot prompt would
    decode the same ids; only the rendered values would change)."""
    from tokenizers import Tokenizer

    from serving.generator import GeneratorModel, typed_parts
    from serving.one_file import OneFileDecoder, one_file_session
    from serving.settings import ServingSettings

    section = manifest["generator"]
    generation = section["generation"]
    decoder = OneFileDecoder(
        one_file_session(root / GENERATOR_FILE, threads=threads),
        Tokenizer.from_file(str(root / TOKENIZER_DIR / "tokenizer.json")),
        eos_token_id=int(generation["eos_token_id"]),
        default_max_new_tokens=int(generation.get("max_new_tokens") or 64),
    )
    source = section["source"]
    return GeneratorModel(
        artifact_dir=root,
        manifest={"name": "generator", **{k: source.get(k) for k in ("version", "variant")}},
        engine=decoder,
        settings=ServingSettings.from_env().model_copy(update={"generator_max_attempts": 1}),
        sample=False,
        # a typed-role generator's lexicon, role plans and skeleton bank sit in tokenizer/
        **typed_parts(root / TOKENIZER_DIR, decoder),
    )


@dataclass
class Backend:
    """The two services of one exported directory, their sessions opened once."""

    root: Path
    manifest: dict[str, Any]
    weakness: Any
    generator: GeneratorModel

    @property
    def generator_version(self) -> str:
        return str(self.manifest["generator"]["source"].get("version"))


@functools.lru_cache(maxsize=4)
def _open(root: str, threads: int) -> Backend:
    path = Path(root)
    manifest = verify_backend_dir(path)
    backend = Backend(
        root=path,
        manifest=manifest,
        weakness=_weakness_model(path, manifest, threads),
        generator=_generator_model(path, manifest, threads),
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


def generate_ai_word_problem(
    data: WordProblemInput, *, backend: Backend | None = None
) -> WordProblemOutput:
    """The seed's word-problem service: the HTTP app's generation (for a typed-role model,
    constrained to the bank's skeletons that host the keywords) over one greedy run of the
    one-file graph, rendered and checked."""
    b = backend or load_backend()
    res = b.generator.generate(
        topic=data.topic,
        keywords=list(data.keywords),
        prompt_prefix=data.prompt_prefix,
        max_length=data.max_length,
        seed=int(data.seed or 0),  # greedy decoding: the seed draws only the number values
    )
    return WordProblemOutput(
        generated_problem_text=res.generated_problem_text,
        equation=res.equation,
        answer=res.answer,
        consistent=res.consistent,
        missing_keywords=list(res.missing_keywords),
        keywords_unused=[KeywordUnused(keyword=k, reason=r) for k, r in res.keywords_unused],
        attempts=res.attempts,
        seed=res.seed,
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
    from serving.practice import Candidate, ProblemRequest

    def generate(request: ProblemRequest) -> Any:
        seed = request.seed
        out = generate_ai_word_problem(
            WordProblemInput(
                topic=request.topic,
                keywords=list(request.keywords),
                prompt_prefix=request.prompt_prefix,
                seed=seed,
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
