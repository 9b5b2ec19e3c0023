"""Gate records, changed-output share and the ship rule."""

from __future__ import annotations

import math

import pytest

from quantize.gates import all_passed, changed_share, choose_shipped, drop_gates, gate


@pytest.mark.parametrize(
    ("kind", "threshold", "value", "passed"),
    [
        ("floor", 0.7, 0.71, True),
        ("floor", 0.7, 0.69, False),
        ("max_drop", 0.02, 0.02, True),
        ("max_drop", 0.02, 0.03, False),
        ("ceiling", 0.1, 0.0, True),
        ("floor", 0.7, None, False),
        ("floor", 0.7, math.nan, False),
    ],
)
def test_gate(kind, threshold, value, passed):
    g = gate("g", kind, threshold, value)
    assert g["passed"] is passed
    assert g["threshold"] == threshold


def test_drop_gates_measure_reference_minus_candidate():
    gates = drop_gates(
        {"rouge_l": 0.5, "kw": 0.9}, {"rouge_l": 0.45, "kw": 0.95}, {"rouge_l": 0.02, "kw": 0.0}
    )
    by = {g["name"]: g for g in gates}
    assert by["rouge_l_drop"]["value"] == pytest.approx(0.05)
    assert not by["rouge_l_drop"]["passed"]
    assert by["kw_drop"]["passed"]  # an improvement is a negative drop
    assert not all_passed(gates)
    assert not all_passed([])


def test_changed_share():
    assert changed_share(["a", "b", "c", "d"], ["a", "x", "c", "y"]) == 0.5
    with pytest.raises(ValueError, match="counts differ"):
        changed_share(["a"], ["a", "b"])


def test_choose_shipped_never_picks_a_failed_variant():
    variants = {
        "fp32": {"passed": True, "latency_ms_median": 10.0, "size_mb": 4.0},
        "dynamic_int8": {"passed": True, "latency_ms_median": 6.0, "size_mb": 1.2},
        "static_int8": {"passed": False, "latency_ms_median": 3.0, "size_mb": 1.1},
    }
    assert choose_shipped(variants, "fastest_passing") == "dynamic_int8"
    assert choose_shipped(variants, "smallest_passing") == "dynamic_int8"
    assert choose_shipped(variants, "fp32") == "fp32"
    near = {**variants, "fp32": {**variants["fp32"], "latency_ms_median": 6.1}}
    assert choose_shipped(near, "fastest_passing") == "dynamic_int8"
    near["dynamic_int8"] = {**near["dynamic_int8"], "latency_ms_median": 6.2}
    assert choose_shipped(near, "fastest_passing") == "fp32"  # strictly fastest
    assert choose_shipped(near, "fastest_passing", 0.05) == "dynamic_int8"  # tie: smaller wins
    none_pass = {k: {**v, "passed": False} for k, v in variants.items()}
    assert choose_shipped(none_pass, "fastest_passing") is None
    with pytest.raises(ValueError, match="unknown ship rule"):
        choose_shipped(variants, "best")


@pytest.mark.parametrize(
    ("text", "looped"),
    [
        ("A shop has 12 apples. How many?", False),
        ("A shop has 100000 apples", False),
        ("A shop has 11111111111111111111", True),
        ("the cat the cat the cat the cat", True),
        ("a b c a b c a b c", True),
    ],
)
def test_degenerate_detects_repetition(text, looped):
    from quantize.generator import degenerate

    assert degenerate(text) is looped


def test_fastest_passing_ranks_by_the_named_latency():
    """The drop-in's latency can rank the variants the other way round from the Python loop's
    (fp32 drafts in the one-file graph; int8 cannot)."""
    variants = {
        "fp32": {
            "passed": True,
            "size_mb": 6.0,
            "latency_ms_median": 9.4,
            "drop_in_latency_ms_median": 2.8,
        },
        "dynamic_int8": {
            "passed": True,
            "size_mb": 3.0,
            "latency_ms_median": 9.1,
            "drop_in_latency_ms_median": 4.2,
        },
    }
    assert choose_shipped(variants, "fastest_passing", 0.15) == "dynamic_int8"  # a tie: smaller
    assert choose_shipped(variants, "fastest_passing", 0.15, "drop_in_latency_ms_median") == "fp32"
