"""Runtime settings of the serving module: thread counts, concurrency, timeouts, retries.

A frozen pydantic-settings model: built from keyword arguments, or by
:meth:`ServingSettings.from_env` from ``LUDORA_SERVE_<FIELD>`` environment variables (keyword
overrides win). Direct construction reads keywords only, so a test or ``create_app`` caller gets
exactly what it passes. Values are range checked at construction so a bad deployment fails at
start-up with one line naming the setting (and the variable), not on the first request.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict

ENV_PREFIX = "LUDORA_SERVE_"
GRAPH_OPTIMIZATIONS = ("disable", "basic", "extended", "all")
_REPO_ROOT = Path(__file__).resolve().parent.parent
# The environment from_env() reads (None: keyword arguments only).
_ENVIRON: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "ludora_serve_environ", default=None
)


class SettingsError(ValueError):
    """A serving setting is out of range or malformed; the message names the setting."""


def _base_dir() -> Path:
    """The checkout when running from one; else (an installed ``ludora_serving`` wheel, whose
    parent is site-packages) the working directory the backend starts in."""
    return _REPO_ROOT if (_REPO_ROOT / "pyproject.toml").is_file() else Path.cwd()


def _default_artifact_root() -> Path:
    return _base_dir() / "artifacts"


def _default_tracking_uri() -> str:
    # Same default as pipelines.common.default_tracking_uri, without importing the pipeline code.
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{_base_dir() / 'mlflow.db'}"


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' env source over the mapping given to from_env (os.environ by default)."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        from pydantic_settings.sources.utils import parse_env_vars

        environ = _ENVIRON.get()
        return parse_env_vars(environ or {}, self.case_sensitive, self.env_ignore_empty, None)


# allowed-range text per field, for the one-line error (docs/serving.md lists the same)
_ALLOWED = {
    "intra_op_threads": "an integer in [1, 64]",
    "inter_op_threads": "an integer in [1, 64]",
    "graph_optimization": f"one of {list(GRAPH_OPTIMIZATIONS)}",
    "max_concurrency": "an integer in [1, 256]",
    "queue_timeout_s": "seconds in (0, 600]",
    "request_timeout_s": "seconds in (0, 600]",
    "generator_max_attempts": "an integer in [1, 10]",
    "temperature": "in [0.05, 2.0]",
    "top_k": "an integer in [0, 1000] (0 = off)",
    "top_p": "in (0, 1]",
    "quiz_spacing_s": "an integer in [1, 2592000]",
    "http_timeout_s": "seconds in (0, 120]",
    "artifact_root": "a folder path",
    "tracking_uri": "an MLflow tracking URI",
}


class ServingSettings(BaseSettings):
    """How the runtime opens sessions and bounds work; see docs/serving.md for each field."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="forbid")

    artifact_root: Path = Field(default_factory=_default_artifact_root)
    tracking_uri: str = Field(default_factory=_default_tracking_uri)
    intra_op_threads: Annotated[int, Field(ge=1, le=64)] = 1
    inter_op_threads: Annotated[int, Field(ge=1, le=64)] = 1
    graph_optimization: Literal["disable", "basic", "extended", "all"] = "all"
    max_concurrency: Annotated[int, Field(ge=1, le=256)] = 2
    queue_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0
    request_timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    generator_max_attempts: Annotated[int, Field(ge=1, le=10)] = 3
    temperature: Annotated[float, Field(ge=0.05, le=2.0)] = 0.8
    top_k: Annotated[int, Field(ge=0, le=1000)] = 50
    top_p: Annotated[float, Field(gt=0, le=1.0)] = 0.95
    quiz_spacing_s: Annotated[int, Field(ge=1, le=30 * 86_400)] = 86_400
    http_timeout_s: Annotated[float, Field(gt=0, le=120)] = 5.0

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError(_one_line(exc)) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: Any,
        env_settings: Any,
        dotenv_settings: Any,
        file_secret_settings: Any,
    ) -> tuple[Any, ...]:
        """Keywords first; the environment only inside from_env (never a .env file)."""
        if _ENVIRON.get() is None:
            return (init_settings,)
        return (init_settings, _MappingEnvSource(settings_cls))

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> ServingSettings:
        """Build settings from ``LUDORA_SERVE_<FIELD>`` variables; keyword overrides win."""
        token = _ENVIRON.set(dict(os.environ if environ is None else environ))
        try:
            return cls(**{k: v for k, v in overrides.items() if v is not None})
        finally:
            _ENVIRON.reset(token)

    def ort_session_options(self) -> Any:
        """onnxruntime SessionOptions with these thread counts and graph optimisation level."""
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.intra_op_threads
        opts.inter_op_num_threads = self.inter_op_threads
        opts.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.graph_optimization]
        return opts


def _one_line(exc: ValidationError) -> str:
    """``serving setting 'top_p' (LUDORA_SERVE_TOP_P) must be in (0, 1], got '2'``."""
    err = exc.errors()[0]
    name = str(err["loc"][0]) if err["loc"] else "?"
    if err["type"] in ("extra_forbidden", "unexpected_keyword_argument"):
        return f"unknown serving setting '{name}'; allowed: {sorted(_ALLOWED)}"
    allowed = _ALLOWED.get(name, err["msg"])
    env = ENV_PREFIX + name.upper()
    return f"serving setting '{name}' ({env}) must be {allowed}, got {err.get('input')!r}"
