"""Runtime settings of the serving module: thread counts, concurrency, timeouts, retries.

Plain frozen dataclass (no pydantic-settings dependency): built from keyword arguments or from
``LUDORA_SERVE_*`` environment variables by :meth:`ServingSettings.from_env`. Values are range
checked at construction so a bad deployment fails at start-up, not on the first request.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ENV_PREFIX = "LUDORA_SERVE_"
GRAPH_OPTIMIZATIONS = ("disable", "basic", "extended", "all")
_REPO_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """A serving setting is out of range or malformed; the message names the setting."""


def _default_artifact_root() -> Path:
    return _REPO_ROOT / "artifacts"


def _default_tracking_uri() -> str:
    # Same default as pipelines.common.default_tracking_uri, without importing the pipeline code.
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{_REPO_ROOT / 'mlflow.db'}"


@dataclass(frozen=True)
class ServingSettings:
    """How the runtime opens sessions and bounds work; see docs/serving.md for each field."""

    artifact_root: Path = field(default_factory=_default_artifact_root)
    tracking_uri: str = field(default_factory=_default_tracking_uri)
    intra_op_threads: int = 1
    inter_op_threads: int = 1
    graph_optimization: str = "all"
    max_concurrency: int = 2
    queue_timeout_s: float = 10.0
    request_timeout_s: float = 30.0
    generator_max_attempts: int = 3
    temperature: float = 0.8
    top_k: int = 50
    top_p: float = 0.95
    quiz_spacing_s: int = 86_400
    http_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "artifact_root", Path(self.artifact_root))
        _check(1 <= self.intra_op_threads <= 64, "intra_op_threads", "an integer in [1, 64]")
        _check(1 <= self.inter_op_threads <= 64, "inter_op_threads", "an integer in [1, 64]")
        _check(
            self.graph_optimization in GRAPH_OPTIMIZATIONS,
            "graph_optimization",
            f"one of {list(GRAPH_OPTIMIZATIONS)}",
        )
        _check(1 <= self.max_concurrency <= 256, "max_concurrency", "an integer in [1, 256]")
        _check(0 < self.queue_timeout_s <= 600, "queue_timeout_s", "seconds in (0, 600]")
        _check(0 < self.request_timeout_s <= 600, "request_timeout_s", "seconds in (0, 600]")
        _check(1 <= self.generator_max_attempts <= 10, "generator_max_attempts", "in [1, 10]")
        _check(0.05 <= self.temperature <= 2.0, "temperature", "in [0.05, 2.0]")
        _check(0 <= self.top_k <= 1000, "top_k", "an integer in [0, 1000] (0 = off)")
        _check(0 < self.top_p <= 1.0, "top_p", "in (0, 1]")
        _check(1 <= self.quiz_spacing_s <= 30 * 86_400, "quiz_spacing_s", "in [1, 2592000]")
        _check(0 < self.http_timeout_s <= 120, "http_timeout_s", "seconds in (0, 120]")

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> ServingSettings:
        """Build settings from ``LUDORA_SERVE_<FIELD>`` variables; keyword overrides win."""
        env = os.environ if environ is None else environ
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            kwargs[f.name] = _parse(f.name, raw, f.type)
        kwargs.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**kwargs)

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


def _check(cond: bool, name: str, allowed: str) -> None:
    if not cond:
        raise SettingsError(f"serving setting '{name}' out of range: allowed {allowed}")


def _parse(name: str, raw: str, type_name: Any) -> Any:
    """Convert one environment string to the field's type (annotations are strings here)."""
    kind = str(type_name)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "Path":
            return Path(raw)
        return raw
    except ValueError as exc:
        raise SettingsError(
            f"environment variable {ENV_PREFIX}{name.upper()}={raw!r}: expected {kind}"
        ) from exc
