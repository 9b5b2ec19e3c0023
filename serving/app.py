"""FastAPI app: the backend's contract over the two models, bounded and never a 500 by design.

Wiring only: models are loaded once in the lifespan (verified artifacts, one session each), CPU
work runs in a small thread pool behind a semaphore (``max_concurrency``), waiting for a slot is
bounded (503) and so is the inference itself (504). Bad input is a 422 naming the field.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

from fastapi import FastAPI, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving import limits
from serving.errors import InferenceTimeout, RequestError, ServerBusy
from serving.numbers import format_answer
from serving.schemas import (
    KeywordUnused,
    ModelInfo,
    ModelsOutput,
    PracticeSetInput,
    PracticeSetOutput,
    QuestionOutput,
    QuestionQuery,
    WeaknessPredictionInput,
    WeaknessPredictionOutput,
    WordProblemInput,
    WordProblemOutput,
)
from serving.settings import ServingSettings
from serving.topics import (
    SUPPORTED_TOPICS,
    artifact_topics,
    request_topic,
    synonyms_for,
    topic_pattern,
    unknown_topic_message,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
API = "/api/v1/ai"
QUESTIONS_API = "/api/v1/q/questions"  # the backend's question service (seed's path)


class Limiter:
    """Bounded concurrency for CPU-bound inference; a slot is held until the thread finishes."""

    def __init__(self, settings: ServingSettings) -> None:
        self._settings = settings
        self._sem = asyncio.Semaphore(settings.max_concurrency)
        self._executor = ThreadPoolExecutor(
            max_workers=settings.max_concurrency, thread_name_prefix="ludora-infer"
        )

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run ``fn`` in the pool; ServerBusy if no slot in time, InferenceTimeout if too slow."""
        try:
            await asyncio.wait_for(self._sem.acquire(), self._settings.queue_timeout_s)
        except TimeoutError as exc:
            raise ServerBusy("all inference slots busy") from exc
        loop = asyncio.get_running_loop()
        try:
            fut = loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))
        except BaseException:
            self._sem.release()
            raise

        def _done(f: asyncio.Future[Any]) -> None:
            # Release only when the work really ended: a timed-out thread still holds its slot.
            self._sem.release()
            if not f.cancelled():
                f.exception()  # retrieved, so an abandoned failure is not logged as unhandled

        fut.add_done_callback(_done)
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self._settings.request_timeout_s)
        except TimeoutError as exc:
            raise InferenceTimeout(
                f"inference exceeded {self._settings.request_timeout_s:g} s"
            ) from exc

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


@dataclass
class Runtime:
    """What the app holds between requests."""

    settings: ServingSettings
    weakness_ref: str | None = None
    generator_ref: str | None = None
    weakness: Any = None
    generator: Any = None
    errors: dict[str, str] = field(default_factory=dict)
    limiter: Limiter | None = None

    def ready(self) -> bool:
        want_w = self.weakness_ref is not None or self.weakness is not None
        want_g = self.generator_ref is not None or self.generator is not None
        return (
            not self.errors
            and (want_w or want_g)
            and (not want_w or self.weakness is not None)
            and (not want_g or self.generator is not None)
        )


def _keys_must_match(node: Any) -> None:
    """Publish what the server enforces on mapping keys (topic ids): every key must match.

    pydantic writes a constrained key type as ``patternProperties`` (which only says how to
    validate the keys that match) beside ``propertyNames`` without the pattern, so a key the
    server refuses looked valid. Rewritten in place: the pattern goes into ``propertyNames``
    and the value schema into ``additionalProperties``.
    """
    if isinstance(node, dict):
        pattern_props = node.get("patternProperties")
        if isinstance(pattern_props, dict) and len(pattern_props) == 1:
            ((pattern, value_schema),) = pattern_props.items()
            names = dict(node.get("propertyNames") or {})
            names["pattern"] = pattern
            node["propertyNames"] = names
            node["additionalProperties"] = value_schema
            del node["patternProperties"]
        for child in node.values():
            _keys_must_match(child)
    elif isinstance(node, list):
        for child in node:
            _keys_must_match(child)


def _publish_topics(schema: dict[str, Any], topics: tuple[str, ...]) -> None:
    """Narrow the topic fields of ``schema`` to the names the server answers for ``topics``.

    The word-problem ``topic`` and the question ``topic_id`` get the pattern of exactly those
    names (serving.topics.topic_pattern: any case, '-'/'_' between words, '&', plurals): an
    ``enum`` of the synonyms as written would call "Fractions" invalid, which the server takes.
    Only topics the request schema knows are published (it refuses the others).
    """
    served = [t for t in topics if t in SUPPORTED_TOPICS]
    if not served:
        return
    fields = []
    word = schema.get("components", {}).get("schemas", {}).get("WordProblemInput", {})
    fields.append(word.get("properties", {}).get("topic"))
    question = schema.get("paths", {}).get(f"{QUESTIONS_API}/generate", {}).get("get", {})
    for param in question.get("parameters", []):
        if param.get("name") == "topic_id" and param.get("in") == "query":
            fields.append(param.get("schema"))
    description = (
        "a supported topic or a synonym (any case, singular or plural, '-' or '_' between "
        f"words, '&' for 'and'): {', '.join(served)} (GET /api/v1/ai/models lists the synonyms)"
    )
    for field_schema in fields:
        if field_schema is None:
            continue
        field_schema["pattern"] = topic_pattern(served)
        field_schema["examples"] = [*served, *synonyms_for(served)]
        field_schema["description"] = description


def _debug() -> bool:
    """LUDORA_DEBUG=1 (the CLI's --debug): log tracebacks, not one line."""
    return os.environ.get("LUDORA_DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}


def _load_models(rt: Runtime) -> None:
    """Load and verify the configured artifacts; a failure is recorded, /readyz reports it."""
    from serving.generator import load_generator
    from serving.weakness import load_weakness

    if rt.weakness is None and rt.weakness_ref is not None:
        rt.weakness = _load_or_record(rt, "weakness", rt.weakness_ref, load_weakness)
    if rt.generator is None and rt.generator_ref is not None:
        rt.generator = _load_or_record(rt, "generator", rt.generator_ref, load_generator)


def _load_or_record(rt: Runtime, name: str, ref: str, load: Callable[..., Any]) -> Any:
    """``load(ref, settings)``, or None with the error in ``rt.errors[name]``: one model that
    fails to load must not keep the app (and the other model) from starting."""
    try:
        return load(ref, rt.settings)
    except Exception as exc:
        logger.error(  # one line; the traceback only when debugging
            "%s model %r failed to load: %s", name, ref, exc, exc_info=_debug()
        )
        rt.errors[name] = str(exc)
        return None


def _safe(value: Any) -> Any:
    """A JSON-encodable copy of a loc part or message (ints kept; strings without surrogates)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


def _error(status: int, detail: Any, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content={"detail": detail}, headers=headers)


class BodyLimitMiddleware:
    """Answer 413 to bodies over ``limits.MAX_BODY_BYTES`` (declared or streamed) before parsing."""

    def __init__(self, app: Any, max_bytes: int = limits.MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = True
                if too_big:
                    await self._reject(scope, receive, send)
                    return
        if any(name == b"content-length" for name, _ in scope.get("headers", [])):
            await self.app(scope, receive, send)  # the server enforces the declared length
            return
        # Streamed (chunked) body: buffer it up to the limit, then replay it to the app.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay([message]), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body]), send)

    async def _reject(self, scope: Any, receive: Any, send: Any) -> None:
        response = _error(413, f"request body larger than {self.max_bytes} bytes")
        await response(scope, receive, send)


def _replay(messages: list[Any]) -> Callable[[], Any]:
    """An ASGI receive() that yields ``messages`` then waits like a client that sent all."""
    pending = list(messages)

    async def receive() -> Any:
        if pending:
            return pending.pop(0)
        return {"type": "http.disconnect"}

    return receive


def create_app(
    *,
    weakness_ref: str | Path | None = None,
    generator_ref: str | Path | None = None,
    settings: ServingSettings | None = None,
    weakness: Any = None,
    generator: Any = None,
) -> FastAPI:
    """Build the app. Refs are loaded at start-up; ready models may be injected (tests, bench)."""
    rt = Runtime(
        settings=settings or ServingSettings.from_env(),
        weakness_ref=None if weakness_ref is None else str(weakness_ref),
        generator_ref=None if generator_ref is None else str(generator_ref),
        weakness=weakness,
        generator=generator,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(_load_models, rt)
        rt.limiter = Limiter(rt.settings)
        logger.info("serving ready=%s errors=%s", rt.ready(), rt.errors or "none")
        try:
            yield
        finally:
            rt.limiter.shutdown()

    app = FastAPI(
        title="ludora-ml serving",
        version="1",
        lifespan=lifespan,
        description="Weakness prediction and word-problem generation (see docs/serving.md).",
    )
    app.state.runtime = rt
    app.add_middleware(BodyLimitMiddleware)
    default_openapi = app.openapi

    def openapi_with_topics() -> dict[str, Any]:
        """The OpenAPI document, naming the loaded generator's topics (they vary by artifact)."""
        schema = default_openapi()
        _keys_must_match(schema)
        if rt.generator is not None:
            _publish_topics(schema, artifact_topics(getattr(rt.generator, "manifest", None)))
        return schema

    app.openapi = openapi_with_topics  # type: ignore[method-assign]

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Never echo the input back: it may hold NaN/inf or lone surrogates, which JSON
        # cannot encode (the default handler would turn a 422 into a 500).
        detail = [
            {
                "loc": [_safe(p) for p in err.get("loc", ())],
                "msg": _safe(err.get("msg", "")),
                "type": _safe(err.get("type", "")),
            }
            for err in exc.errors()
        ]
        return _error(422, detail)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # FastAPI's "error parsing the body": too deep, huge number
            return _error(
                422,
                [
                    {
                        "loc": ["body"],
                        "msg": f"unreadable JSON body: {exc.detail}",
                        "type": "json_invalid",
                    }
                ],
            )
        return await http_exception_handler(request, exc)

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError) -> JSONResponse:
        parts = exc.loc or tuple(p for p in exc.field.split(".") if p and p != "body")
        loc = ["body", *[_safe(p) for p in parts]]
        return _error(422, [{"loc": loc, "msg": exc.message, "type": "value_error"}])

    @app.exception_handler(RecursionError)
    async def _too_deep(request: Request, exc: RecursionError) -> JSONResponse:
        return _error(422, [{"loc": ["body"], "msg": "JSON nested too deeply", "type": "json"}])

    @app.exception_handler(ServerBusy)
    async def _busy(request: Request, exc: ServerBusy) -> JSONResponse:
        return _error(503, str(exc), headers={"Retry-After": "1"})

    @app.exception_handler(InferenceTimeout)
    async def _timeout(request: Request, exc: InferenceTimeout) -> JSONResponse:
        return _error(504, str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        error_id = uuid.uuid4().hex[:12]
        logger.error("unhandled error %s on %s", error_id, request.url.path, exc_info=exc)
        return _error(500, f"internal error (id {error_id})")

    def _limiter() -> Limiter:
        if rt.limiter is None:  # only before start-up completes
            raise ServerBusy("server starting")
        return rt.limiter

    def _model(name: str) -> Any:
        model = getattr(rt, name)
        if model is None:
            reason = rt.errors.get(name, "not configured")
            raise _NotLoaded(f"{name} model not loaded: {reason}")
        return model

    @app.exception_handler(_NotLoaded)
    async def _not_loaded(request: Request, exc: _NotLoaded) -> JSONResponse:
        return _error(503, str(exc))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Readiness: every configured model loaded and verified (503 otherwise)."""
        body = {
            "ready": rt.ready(),
            "models": {
                n: getattr(rt, n).version for n in ("weakness", "generator") if getattr(rt, n)
            },
            "errors": rt.errors,
        }
        return JSONResponse(status_code=200 if body["ready"] else 503, content=body)

    @app.get(f"{API}/models", response_model=ModelsOutput)
    async def models() -> ModelsOutput:
        """Name, version, variant and gates of what is loaded."""
        infos = [getattr(rt, n).info() for n in ("weakness", "generator") if getattr(rt, n)]
        if rt.generator is not None:  # the generator's topics and synonyms (docs/serving.md)
            topics = artifact_topics(getattr(rt.generator, "manifest", None))
            for info in infos:
                if info.get("name") == "generator":
                    info.setdefault("topics", list(topics))
                    info.setdefault("topic_synonyms", synonyms_for(topics))
        return ModelsOutput(models=[ModelInfo(**i) for i in infos])

    @app.post(f"{API}/predict-weakness", response_model=WeaknessPredictionOutput)
    async def predict_weakness(body: WeaknessPredictionInput) -> WeaknessPredictionOutput:
        """Calibrated probability of failing the next assessment, per topic, with action level."""
        model = _model("weakness")
        return await _limiter().run(model.predict, body, now=int(time.time()))

    @app.post(f"{API}/word-problem", response_model=WordProblemOutput)
    async def word_problem(body: WordProblemInput) -> WordProblemOutput:
        """A generated word problem; equation and answer only when they check out."""
        model = _model("generator")
        # The schema mapped synonyms to a canonical topic; this artifact may serve fewer.
        topics = artifact_topics(getattr(model, "manifest", None))
        topic = request_topic(body.topic, topics)
        if topic is None:
            raise RequestError("topic", unknown_topic_message(body.topic, topics))
        deadline = time.monotonic() + 0.8 * rt.settings.request_timeout_s
        res = await _limiter().run(
            model.generate,
            topic=topic,
            keywords=body.keywords,
            prompt_prefix=body.prompt_prefix,
            max_length=body.max_length,
            seed=body.seed,
            temperature=body.temperature,
            deadline=deadline,
        )
        return WordProblemOutput(**_word_problem_fields(res, model.version, body.max_length))

    @app.post(f"{API}/practice-set", response_model=PracticeSetOutput)
    async def practice_set(body: PracticeSetInput) -> PracticeSetOutput:
        """The learner's weakest topics with readable reasons, each with verified problems."""
        from serving.practice import practice_set as build
        from serving.practice import service_source

        weakness, generator = _model("weakness"), _model("generator")
        deadline = time.monotonic() + 0.8 * rt.settings.request_timeout_s
        return await _limiter().run(
            build,
            body,
            weakness=weakness,
            source=service_source(generator),
            generator_topics=artifact_topics(getattr(generator, "manifest", None)),
            generator_version=generator.version,
            now=int(time.time()),
            deadline=deadline,
        )

    @app.get(f"{QUESTIONS_API}/generate", response_model=QuestionOutput)
    async def generate_question(query: Annotated[QuestionQuery, Query()]) -> QuestionOutput:
        """One AI word problem for a backend topic id (mapped through the topic synonyms)."""
        model = _model("generator")
        topics = artifact_topics(getattr(model, "manifest", None))
        topic = request_topic(query.topic_id, topics)
        if topic is None:
            raise RequestValidationError(
                [
                    {
                        "loc": ("query", "topic_id"),
                        "msg": unknown_topic_message(query.topic_id, topics),
                        "type": "value_error",
                    }
                ]
            )
        from serving.practice import grade_prefix, themes_for

        res = await _limiter().run(
            model.generate,
            topic=topic,
            keywords=themes_for(topic, query.keywords),
            prompt_prefix=grade_prefix(query.grade),
            max_length=query.max_length,
            seed=query.seed,
            deadline=time.monotonic() + 0.8 * rt.settings.request_timeout_s,
        )
        return QuestionOutput(
            question_type=query.question_type,
            topic_id=query.topic_id,
            topic=topic,
            **_word_problem_fields(res, model.version, query.max_length),
        )

    return app


def _word_problem_fields(res: Any, version: str, max_length: int) -> dict[str, Any]:
    """``WordProblemOutput`` fields of one ``GeneratorModel.generate`` result."""
    return {
        "generated_problem_text": res.generated_problem_text,
        "equation": res.equation,
        "answer": res.answer,
        "answer_text": None
        if res.answer is None
        else format_answer(res.answer, res.generated_problem_text),
        "consistent": res.consistent,
        "missing_keywords": list(res.missing_keywords),
        "keywords_unused": [
            KeywordUnused(keyword=k, reason=r) for k, r in getattr(res, "keywords_unused", ())
        ],
        "attempts": res.attempts,
        "seed": res.seed,
        "model_version": version,
        **_completeness(res, max_length),
    }


def _completeness(res: Any, max_length: int) -> dict[str, Any]:
    """``complete``/``incomplete_reason``: a text without its final question is never passed
    off as a whole problem (the generator's own verdict wins when it gives one)."""
    complete = getattr(res, "complete", None)
    if complete is None:
        complete = res.generated_problem_text.rstrip().endswith("?")
    if complete:
        return {"complete": True, "incomplete_reason": None}
    reason = getattr(res, "incomplete_reason", None) or (
        f"the text stops before its question (no final '?'): cut at max_length={max_length} "
        "tokens or never asked; raise max_length or retry"
    )
    return {"complete": False, "incomplete_reason": reason}


class _NotLoaded(RuntimeError):
    pass
