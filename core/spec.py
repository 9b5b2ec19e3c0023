"""The feature spec (`feature_spec.json`): names, order, dtypes and the constants behind them.

Export, quantize and serving read the features' order and parameters from this file (copied into
every artifact), never from params.yaml. Format documented in docs/design.md.

stdlib + numpy only: reachable from serving.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from core.kernel import feature_names

SPEC_VERSION = 1
INPUT_NAME = "features"
SPEC_FILENAME = "feature_spec.json"


class SpecError(ValueError):
    """The feature spec is malformed; the message names the field and the allowed values."""


def build_spec(
    *,
    pass_mark: float,
    rolling_windows: Sequence[int],
    half_life_s: float,
    assessment_activities: Sequence[str],
    peer: Mapping[str, Any],
) -> dict[str, Any]:
    """Assemble and validate the spec dict from the feature params and a peer table."""
    names = feature_names(rolling_windows)
    spec = {
        "version": SPEC_VERSION,
        "input_name": INPUT_NAME,
        "names": names,
        "dtypes": ["float32"] * len(names),
        "pass_mark": float(pass_mark),
        "rolling_windows": [int(k) for k in rolling_windows],
        "half_life_s": float(half_life_s),
        "assessment_activities": list(assessment_activities),
        "peer": {
            "prior_mean": float(peer["prior_mean"]),
            "prior_weight": float(peer["prior_weight"]),
            "topics": {
                str(t): [float(v[0]), float(v[1])] for t, v in sorted(peer["topics"].items())
            },
        },
    }
    return validate_spec(spec)


def _number(value: Any, where: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SpecError(f"feature spec: {where} must be a finite number, got {value!r}")
    if not lo <= value <= hi:
        raise SpecError(f"feature spec: {where} must be in [{lo}, {hi}], got {value!r}")
    return float(value)


def validate_spec(spec: Any) -> dict[str, Any]:
    """Check every field (types, ranges, names consistent with the windows); return the spec."""
    if not isinstance(spec, dict):
        raise SpecError(f"feature spec: top level must be an object, got {type(spec).__name__}")
    required = (
        "version",
        "input_name",
        "names",
        "dtypes",
        "pass_mark",
        "rolling_windows",
        "half_life_s",
        "assessment_activities",
        "peer",
    )
    missing = [k for k in required if k not in spec]
    if missing:
        raise SpecError(f"feature spec: missing field(s) {missing}")
    if spec["version"] != SPEC_VERSION:
        raise SpecError(f"feature spec: version must be {SPEC_VERSION}, got {spec['version']!r}")
    if not isinstance(spec["input_name"], str) or not spec["input_name"]:
        raise SpecError(
            f"feature spec: input_name must be a non-empty string, got {spec['input_name']!r}"
        )
    windows = spec["rolling_windows"]
    if (
        not isinstance(windows, list)
        or not windows
        or not all(
            isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= 1000 for k in windows
        )
    ):
        raise SpecError(
            f"feature spec: rolling_windows must be integers in [1, 1000], got {windows!r}"
        )
    expected = feature_names(windows)
    if spec["names"] != expected:
        raise SpecError(
            f"feature spec: names do not match rolling_windows {windows}: "
            f"expected {expected}, got {spec['names']!r}"
        )
    dtypes = spec["dtypes"]
    if not isinstance(dtypes, list) or dtypes != ["float32"] * len(expected):
        raise SpecError(f"feature spec: dtypes must be {len(expected)} x 'float32', got {dtypes!r}")
    _number(spec["pass_mark"], "pass_mark", 1e-9, 1.0)
    _number(spec["half_life_s"], "half_life_s", 1e-9, 1e12)
    acts = spec["assessment_activities"]
    if not isinstance(acts, list) or not acts or not all(isinstance(a, str) and a for a in acts):
        raise SpecError(
            f"feature spec: assessment_activities must be a non-empty list of strings, got {acts!r}"
        )
    peer = spec["peer"]
    if not isinstance(peer, dict) or not {"prior_mean", "prior_weight", "topics"} <= set(peer):
        raise SpecError(
            "feature spec: peer must be an object with prior_mean, prior_weight, topics"
        )
    _number(peer["prior_mean"], "peer.prior_mean", 0.0, 1.0)
    _number(peer["prior_weight"], "peer.prior_weight", 0.0, 1e6)
    topics = peer["topics"]
    if not isinstance(topics, dict):
        raise SpecError(f"feature spec: peer.topics must be an object, got {type(topics).__name__}")
    for topic, entry in topics.items():
        where = f"peer.topics[{topic!r}]"
        if not isinstance(entry, list | tuple) or len(entry) != 2:
            raise SpecError(f"feature spec: {where} must be [sum_score, count], got {entry!r}")
        count = _number(entry[1], f"{where}[1] (count)", 0.0, 1e12)
        _number(entry[0], f"{where}[0] (sum_score)", 0.0, count)
    return spec


def write_spec_text(spec: Mapping[str, Any]) -> str:
    """Serialise a validated spec (sorted keys; floats round-trip exactly through JSON)."""
    return json.dumps(validate_spec(dict(spec)), indent=2, sort_keys=True, allow_nan=False) + "\n"


def read_spec(path: Path | str) -> dict[str, Any]:
    """Read and validate a spec file; errors name the file."""
    path = Path(path)
    if path.is_dir():
        path = path / SPEC_FILENAME
    try:
        spec = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise SpecError(f"{path}: feature spec not found") from exc
    except json.JSONDecodeError as exc:
        raise SpecError(f"{path}: not valid JSON ({exc})") from exc
    try:
        return validate_spec(spec)
    except SpecError as exc:
        raise SpecError(f"{path}: {exc}") from exc
