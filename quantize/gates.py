"""Gates: absolute floors and maximum drops against a reference, as plain records.

Every gate is recorded with its threshold, the measured value and pass/fail, so a failed variant
keeps its numbers in ``metrics/quantize.json`` and a manifest shows why it was shipped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

GateKind = Literal["floor", "ceiling", "max_drop"]

SHIP_RULES = ("fastest_passing", "smallest_passing", "fp32")


def gate(name: str, kind: GateKind, threshold: float, value: float | None) -> dict[str, Any]:
    """One gate record; a missing or NaN value fails (we never pass what was not measured)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        passed = False
        value = None
    elif kind == "floor":
        passed = value >= threshold
    else:  # ceiling and max_drop: the value must not exceed the threshold
        passed = value <= threshold
    return {
        "name": name,
        "kind": kind,
        "threshold": float(threshold),
        "value": None if value is None else float(value),
        "passed": bool(passed),
    }


def drop_gates(
    reference: Mapping[str, float],
    candidate: Mapping[str, float],
    max_drop: Mapping[str, float],
) -> list[dict[str, Any]]:
    """``max_drop`` gates: reference minus candidate for each named metric (higher is better)."""
    out = []
    for metric, threshold in max_drop.items():
        ref, cand = reference.get(metric), candidate.get(metric)
        value = None if ref is None or cand is None else float(ref) - float(cand)
        out.append(gate(f"{metric}_drop", "max_drop", threshold, value))
    return out


def changed_share(reference: Sequence[str], candidate: Sequence[str]) -> float:
    """Share of prompts whose greedy output differs from the reference's."""
    if len(reference) != len(candidate):
        raise ValueError(
            f"output counts differ: reference {len(reference)}, candidate {len(candidate)}"
        )
    if not reference:
        raise ValueError("no outputs to compare")
    return sum(r != c for r, c in zip(reference, candidate, strict=True)) / len(reference)


def all_passed(gates: Sequence[Mapping[str, Any]]) -> bool:
    """True when every gate passed (and there is at least one)."""
    return bool(gates) and all(g["passed"] for g in gates)


def choose_shipped(
    variants: Mapping[str, Mapping[str, Any]],
    rule: str,
    speed_tolerance: float = 0.0,
    latency: str = "latency_ms_median",
) -> str | None:
    """Pick the shipped variant among those whose ``passed`` is true, by ``rule``.

    ``fastest_passing``: lowest ``latency`` (a key of each variant's record: the Python loop's
    ``latency_ms_median`` or the drop-in's ``drop_in_latency_ms_median``; missing or None:
    never the fastest), where latencies
    within ``speed_tolerance``
    (relative) of the fastest count as a tie, because timing noise on a shared machine must not
    decide; ties go to the smaller model, then to the name. ``smallest_passing``: lowest
    ``size_mb``; ``fp32``: fp32 if it passed. Returns None when nothing passed.
    """
    if rule not in SHIP_RULES:
        raise ValueError(f"unknown ship rule {rule!r}, expected one of {list(SHIP_RULES)}")
    passing = {k: v for k, v in variants.items() if v.get("passed")}
    if not passing:
        return None
    if rule == "fp32":
        return "fp32" if "fp32" in passing else None
    if rule == "fastest_passing":
        # a variant without that latency (no drop-in graph) is never the fastest
        ms = {k: v.get(latency) or float("inf") for k, v in passing.items()}
        best = min(ms.values())
        tied = [k for k in passing if ms[k] <= best * (1 + speed_tolerance)]
        return min(tied, key=lambda k: (passing[k]["size_mb"], ms[k], k))
    return min(passing, key=lambda k: (passing[k]["size_mb"], passing[k]["latency_ms_median"], k))
