"""Training records from the typed-role skeleton bank."""

from __future__ import annotations

from pathlib import Path

import pytest

from data.word_problems.skeletons import load_bank
from data.word_problems.typed_corpus import literal_keywords, skeleton_records
from serving.lexicon import Lexicon, nouns_from_record
from serving.prompt import TARGET_SEP
from serving.story import bind

ROWS = """\
cookie\tfood\tfood\tc
jar\tcontainer\tcontainer\tc
penguin\tanimal\tanimal\tc
bakery\tplace\tplace,store\tc
ferry\tvehicle\tvehicle\tc
student\tperson\tperson\tc
flour\tfood\tfood\tm
juice\tfood\tfood,liquid\tm
party\tevent\tevent\tc
ribbon\tobject\tobject,strip\tc
garden\tplace\tplace,surface\tc
photo\tobject\tobject,panel\tc
homework\tactivity\tactivity\tm
road\tobject\tobject,route\tc
change\tabstract\tabstract\tc
profit\tabstract\tabstract\tc
wheel\tobject\tobject\tc
"""


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    path = tmp_path_factory.mktemp("lex") / "nouns.tsv"
    path.write_text(ROWS, encoding="utf-8")
    return skeleton_records(n=280, seed=3, bank=load_bank(), lexicon=Lexicon.load(path))


def test_records_cover_every_topic_with_typed_prompts(records: list[dict]) -> None:
    assert len({r["topic"] for r in records}) == 14
    for r in records:
        assert r["source"] == "skeletons" and 1 <= len(r["keywords"]) <= 4
        for kw in r["keywords"]:
            assert f"{kw} (" in r["prompt"]  # each keyword with its classes, no slot marker
        assert "<k1>" not in r["prompt"]


def test_targets_are_skeletons_without_the_requested_words(records: list[dict]) -> None:
    for r in records:
        problem = r["target"].partition(TARGET_SEP)[0].strip()
        assert problem == r["skeleton"]
        assert "<" not in r["problem"]  # the rendered example has every role filled


def test_role_keywords_are_ones_the_skeleton_can_host(records: list[dict]) -> None:
    for r in records:
        _bindings, unused = bind(r["skeleton"], nouns_from_record(r))
        assert unused == [], (r["skeleton"], r["keywords"])


def test_literal_keywords_are_words_of_the_text(tmp_path: Path) -> None:
    path = tmp_path / "nouns.tsv"
    path.write_text(ROWS, encoding="utf-8")
    sk = "<name> pays with a $20 note. How much change does <he> get from the <store>?"
    assert literal_keywords(sk, Lexicon.load(path)) == ["change"]


def test_keyword_only_roles_always_get_a_keyword(records: list[dict]) -> None:
    """A skeleton built around a keyword (``serving.roles.KEYWORD_ONLY``) is trained only with
    a keyword in that role, as the bank serves it."""
    from serving.roles import KEYWORD_ONLY, instances

    held = [r for r in records if any(i.role in KEYWORD_ONLY for i in instances(r["skeleton"]))]
    for rec in held:
        only = {i.role for i in instances(rec["skeleton"]) if i.role in KEYWORD_ONLY}
        assert only <= set(rec["roles"]), rec
