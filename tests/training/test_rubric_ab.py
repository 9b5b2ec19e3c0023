"""The blind A/B rating: equal texts pooled once, ratings mapped back to each model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.rubric_ab import pool, score
from training.rubric_sample import CRITERIA


def _sample(d: Path, texts: list[str]) -> Path:
    d.mkdir()
    items = [
        {"id": f"p{i:03d}", "topic": "addition", "keywords": ["shells"], "prefix": "", "text": t}
        for i, t in enumerate(texts)
    ]
    (d / "items.json").write_text(json.dumps(items))
    return d


def test_equal_texts_are_rated_once_for_both_models(tmp_path: Path) -> None:
    a = _sample(tmp_path / "a", ["Same text?", "Only in a?"])
    b = _sample(tmp_path / "b", ["Same text?", "Only in b?"])
    out = tmp_path / "ab"
    assert pool([a, b], out, parts=2) == 3
    pooled = [i for p in sorted(out.glob("part*.json")) for i in json.loads(p.read_text())]
    assert sorted(i["text"] for i in pooled) == ["Only in a?", "Only in b?", "Same text?"]
    verdict = {i["id"]: i["text"] != "Only in b?" for i in pooled}
    ratings = [
        {"id": i, **dict.fromkeys(CRITERIA, "yes" if ok else "no")} for i, ok in verdict.items()
    ]
    (out / "ratings_0.json").write_text(json.dumps(ratings))
    shares = score(out)
    assert shares[str(a)]["meets_all"] == 1.0 and shares[str(a)]["n"] == 2
    assert shares[str(b)]["meets_all"] == 0.5
    assert len(json.loads((b / "ratings_ab.json").read_text())) == 2


def test_parts_must_be_positive(tmp_path: Path) -> None:
    a = _sample(tmp_path / "a", ["A?"])
    with pytest.raises(ValueError, match="parts: 0; allowed: 1 or more"):
        pool([a], tmp_path / "ab", parts=0)
