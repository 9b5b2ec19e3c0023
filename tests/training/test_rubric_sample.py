"""The blind rubric sample: request files checked, ratings summarised."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.rubric_sample import load_requests, summarize


def test_requests_need_topic_and_keywords(tmp_path: Path) -> None:
    f = tmp_path / "r.json"
    f.write_text(json.dumps([{"topic": "addition", "keywords": ["shells"]}]))
    assert load_requests([f])[0]["prompt_prefix"] == ""
    f.write_text(json.dumps([{"keywords": ["shells"]}]))
    with pytest.raises(ValueError, match="item 0: needs 'topic' and 'keywords'"):
        load_requests([f])


def test_summarize_counts_every_rating_file(tmp_path: Path) -> None:
    ok = dict.fromkeys(
        ("solvable", "accurate", "sensible", "keywords_natural", "on_topic", "grade_ok"), True
    )
    (tmp_path / "ratings_0.json").write_text(json.dumps([{**ok, "meets_all": True}]))
    (tmp_path / "ratings_1.json").write_text(
        json.dumps([{**ok, "sensible": False, "meets_all": False}])
    )
    out = summarize(tmp_path)
    assert out["n"] == 2 and out["meets_all"] == 0.5 and out["sensible"] == 0.5
    with pytest.raises(ValueError, match="no ratings"):
        summarize(tmp_path / "missing")
