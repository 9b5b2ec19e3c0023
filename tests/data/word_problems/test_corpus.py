"""Records, combination-held-out splits and the Unigram tokenizer."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from data.word_problems.corpus import (
    RECORD_FIELDS,
    DelexicalizeError,
    combination,
    dedupe,
    make_record,
    read_jsonl,
    real_records,
    request_subsets,
    save_tokenizer,
    split_by_combination,
    template_records,
    train_unigram_tokenizer,
    unk_rate,
    write_jsonl,
)
from serving.arithmetic import evaluate
from serving.consistency import check_consistency
from serving.keywords import keyword_present
from serving.numbers import NUM_TOKEN
from serving.prompt import TARGET_SEP, format_prompt, join_target, render_slots
from serving.realize import SLOT_TOKENS, delexicalize, render_output

_SLOT = re.compile(r"<k\d+s?>")
_ADDED = re.compile(r"<k\d+s?>|<num>")


@pytest.fixture(scope="module")
def records():
    return template_records(n=600, seed=4)


@pytest.fixture(scope="module")
def splits(records):
    return split_by_combination(records, val_frac=0.15, test_frac=0.15, seed=9)


@pytest.fixture(scope="module")
def tokenizer(splits):
    train = splits["train"]
    every = [r[k] for v in splits.values() for r in v for k in ("prompt", "target")]
    return train_unigram_tokenizer(
        [r["prompt"] for r in train] + [r["target"] for r in train],
        vocab_size=400,
        alphabet="".join(sorted({c for t in every for c in t})),
    )


def test_records_have_every_field_and_derived_text(records) -> None:
    for rec in records[:200]:
        # template records carry their number-slot skeleton (typed-role records also their
        # nouns and skeleton id: test_typed_corpus)
        assert set(rec) == {*RECORD_FIELDS, "skeleton", "slot_equation"}
        assert rec["prompt"] == format_prompt(rec["topic"], rec["keywords"], rec["prompt_prefix"])
        slotted = delexicalize(rec["skeleton"], rec["keywords"])
        assert rec["target"] == join_target(slotted, rec["slot_equation"])
        problem_part = rec["target"].partition(TARGET_SEP)[0]
        # every requested keyword travels as a slot, none as a word; every quantity as <num>
        assert _SLOT.search(problem_part)
        assert not any(keyword_present(k, problem_part) for k in rec["keywords"])
        assert NUM_TOKEN in problem_part
        # the lexical problem's own numbers in the skeleton's places give the record's answer
        assert evaluate(render_slots(rec["problem"], rec["slot_equation"])) == pytest.approx(
            rec["answer"]
        )
        rendered = render_output(
            rec["target"], rec["keywords"], topic=rec["topic"], prompt_prefix=rec["prompt_prefix"]
        )
        assert rendered.equation_text is not None
        assert check_consistency(rendered.problem_text, rendered.equation_text).ok
        assert all(keyword_present(k, rendered.problem_text) for k in rec["keywords"])
    assert len({r["id"] for r in records}) == len(records)


def test_a_keyword_missing_from_the_text_cannot_become_a_slot() -> None:
    with pytest.raises(DelexicalizeError, match="kites"):
        make_record(
            rec_id="x",
            topic="addition",
            keywords=["apples", "kites"],
            prompt_prefix="",
            problem="Tom has 3 apples and 2 more. How many apples?",
            equation="3 + 2",
            answer=5.0,
            source="t",
        )


def test_request_subsets_ask_for_fewer_keywords_with_the_rest_literal(records) -> None:
    out, changed = request_subsets(records, share=1.0, seed=2)
    assert changed == sum(len(r["keywords"]) >= 2 for r in records) and len(out) == len(records)
    for old, new in zip(records[:100], out[:100], strict=True):
        assert 1 <= len(new["keywords"]) < len(old["keywords"])
        assert set(new["keywords"]) < set(old["keywords"]) and new["problem"] == old["problem"]
        problem_part = new["target"].partition(TARGET_SEP)[0]
        for k in set(old["keywords"]) - set(new["keywords"]):
            assert keyword_present(k, problem_part)  # not requested: stays a word
        n_slots = len(set(re.findall(r"<k(\d+)", problem_part)))
        assert n_slots == len(new["keywords"])
    again, _ = request_subsets(records, share=0.5, seed=2)
    assert again == request_subsets(records, share=0.5, seed=2)[0]
    blocked = {combination(r) for r in out}
    kept, n = request_subsets(records, share=1.0, seed=2, avoid=blocked)
    assert n == 0 and kept == list(records)


def test_keyword_order_is_shuffled_but_seeded(records) -> None:
    again = template_records(n=600, seed=4)
    assert again == records
    from data.word_problems.templates import generate_templates

    raw = generate_templates(n=600, seed=4)
    assert any(list(p.keywords) != r["keywords"] for p, r in zip(raw, records, strict=True))


def test_split_holds_out_combinations(records, splits) -> None:
    train_combos = {combination(r) for r in splits["train"]}
    for name in ("val", "test"):
        assert splits[name], name
        assert not train_combos & {combination(r) for r in splits[name]}
    assert not {combination(r) for r in splits["val"]} & {combination(r) for r in splits["test"]}
    train_words = {(t, k) for t, kws in train_combos for k in kws}
    for name in ("val", "test"):
        for topic, kws in {combination(r) for r in splits[name]}:
            # new combinations of keywords known *for that topic*
            assert {(topic, k) for k in kws} <= train_words, (topic, kws)
    assert sum(len(v) for v in splits.values()) == len(records)
    assert 0.1 * len(records) <= len(splits["test"]) <= 0.3 * len(records)


def test_split_plural_variants_are_one_combination() -> None:
    base = dict(topic="t", prompt_prefix="", equation="1 + 2", answer=3.0, source="x")
    a = make_record(rec_id="a", keywords=["apples", "box"], problem="1 apples 2 box?", **base)
    b = make_record(rec_id="b", keywords=["Boxes", "apple"], problem="2 apple 1 boxes?", **base)
    assert combination(a) == combination(b)


def test_split_is_seeded(records, splits) -> None:
    again = split_by_combination(records, val_frac=0.15, test_frac=0.15, seed=9)
    assert [r["id"] for r in again["test"]] == [r["id"] for r in splits["test"]]
    other = split_by_combination(records, val_frac=0.15, test_frac=0.15, seed=10)
    assert [r["id"] for r in other["test"]] != [r["id"] for r in splits["test"]]


def test_dedupe_keeps_first() -> None:
    base = dict(topic="t", keywords=["k"], prompt_prefix="", equation="1", answer=1.0, source="s")
    recs = [
        make_record(rec_id=i, problem=p, **base)
        for i, p in (("a", "P1 k?"), ("b", "P1 k?"), ("c", "P2 k?"))
    ]
    assert [r["id"] for r in dedupe(recs)] == ["a", "c"]


def test_jsonl_round_trip(tmp_path: Path, records) -> None:
    path = tmp_path / "train.jsonl"
    write_jsonl(path, records[:5])
    assert read_jsonl(path) == records[:5]
    first = json.loads(path.read_text().splitlines()[0])
    assert list(first) == [*RECORD_FIELDS, "skeleton", "slot_equation"]
    path.write_text('{"id": "x"}\n')
    with pytest.raises(ValueError, match=r"train\.jsonl:1: missing field"):
        read_jsonl(path)


def test_tokenizer_special_ids_and_no_unk(tokenizer, splits) -> None:
    assert [tokenizer.token_to_id(t) for t in ("<pad>", "</s>", "<unk>")] == [0, 1, 2]
    for name in ("train", "test"):
        texts = [r[k] for r in splits[name] for k in ("prompt", "target")]
        assert unk_rate(tokenizer, texts) == 0.0
    assert tokenizer.encode("How many apples?").ids[-1] == 1  # eos appended


@pytest.mark.parametrize(
    "text",
    ["Maya has 1234567 apples.", "It costs $0.05 or $12.50?", "3/4 of 96 ||| 96 * 3 / 4", "10^2"],
)
def test_tokenizer_numbers_round_trip(tokenizer, text: str) -> None:
    enc = tokenizer.encode(text)
    assert tokenizer.decode(enc.ids) == text
    assert "<unk>" not in enc.tokens
    # A number is its own pre-token: pieces never mix digits with letters or punctuation.
    digits = [t.lstrip("▁") for t in enc.tokens if any(c.isdigit() for c in t)]
    assert all(t.isdigit() for t in digits)
    assert "".join(digits) == "".join(c for c in text if c.isdigit())


def test_frequent_numbers_are_single_pieces(tokenizer) -> None:
    """Whole-number pieces: the model copies "12" as one token instead of counting digits."""
    assert any(len(t.lstrip("▁")) >= 2 for t in tokenizer.encode("He has 12 pens.").tokens)


def test_tokenizer_whole_word_pieces(tokenizer) -> None:
    toks = tokenizer.encode("How many apples does Maya have?").tokens
    assert "▁How" in toks and "▁many" in toks


def _slot_spacing(text: str) -> str:
    """Decoding drops the space before an added token and puts one after it: compare texts
    with one space on each side of every slot (the realizer fixes the spacing)."""
    spaced = _ADDED.sub(lambda m: f" {m.group(0)} ", text)
    return " ".join(re.sub(r"\s*([/%])\s*", r" \1 ", spaced).split())


def test_tokenizer_round_trips_the_corpus(tokenizer, splits) -> None:
    texts = [r[k] for v in splits.values() for r in v for k in ("prompt", "target")]
    decoded = [tokenizer.decode(e.ids) for e in tokenizer.encode_batch(texts)]
    assert [_slot_spacing(t) for t in decoded] == [_slot_spacing(t) for t in texts]
    plain = [t for t in texts if not _ADDED.search(t)] + ["How many apples does Maya have?"]
    assert [tokenizer.decode(tokenizer.encode(t).ids) for t in plain] == plain


def test_keyword_slots_are_single_ordinary_tokens(tokenizer, splits) -> None:
    """One id per slot, in prompt and target; not special, so decode keeps them for the
    realizer (skip_special_tokens=True is what training, export and serving decode with)."""
    ids = [tokenizer.token_to_id(t) for t in SLOT_TOKENS]
    assert None not in ids and len(set(ids)) == 16
    for rec in splits["train"][:50]:
        for key in ("prompt", "target"):
            enc = tokenizer.encode(rec[key])
            assert [t for t in enc.tokens if "<k" in t] == _SLOT.findall(rec[key])
    text = "A <k1> held 12 <k1s>. How many <k2s> are left? ||| n1 - 3"
    enc = tokenizer.encode(text)
    assert enc.tokens.count("<k1s>") == 1 and "<" not in enc.tokens
    decoded = tokenizer.decode(enc.ids, skip_special_tokens=True)
    assert _SLOT.findall(decoded) == ["<k1>", "<k1s>", "<k2s>"]
    assert render_output(decoded, ["box", "apples"]).problem_text == (
        "A box held 12 boxes. How many apples are left?"
    )


def test_tokenizer_splits_punctuation_from_words(tokenizer) -> None:
    toks = tokenizer.encode("keywords apples, baskets: How many apples?").tokens
    assert {",", ":", "?"} <= set(toks) and "▁keywords" in toks
    assert not any(len(t) > 1 and t[-1] in ",.:?" for t in toks)


def test_saved_tokenizer_loads_in_transformers(tmp_path: Path, tokenizer) -> None:
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    save_tokenizer(tokenizer, tmp_path, model_max_length=128)
    assert (tmp_path / "tokenizer.json").is_file()
    for cls in (AutoTokenizer, PreTrainedTokenizerFast):
        tok = cls.from_pretrained(str(tmp_path))
        assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
        ids = tok("Tom has 305 pens ||| 305 - 5")["input_ids"]
        assert ids[-1] == 1
        assert tok.decode(ids, skip_special_tokens=True) == "Tom has 305 pens ||| 305 - 5"
        slotted = tok.decode(tok("Tom has 3 <k1s>.")["input_ids"], skip_special_tokens=True)
        assert "<k1s>" in slotted and len(tok) == tokenizer.get_vocab_size()


def test_real_records_get_keywords(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    rows = [
        {
            "question": f"Ann has {n} kites and buys 2 more kites. How many kites now?",
            "answer": f"<<{n}+2={n + 2}>>\n#### {n + 2}",
        }
        for n in (3, 4, 5)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    recs, report = real_records("gsm8k", path, max_rows=None, n_keywords=2)
    assert len(recs) == 3 and report.kept == 3
    assert recs[0]["id"] == "gsm8k-g-1" and recs[0]["prompt_prefix"] == ""
    assert "kites" in recs[0]["keywords"] and recs[0]["topic"] == "addition"
    with pytest.raises(ValueError, match="unknown source"):
        real_records("nope", path, max_rows=None, n_keywords=2)


def test_tokenizer_training_is_reproducible(splits) -> None:
    """Same corpus -> byte-identical tokenizer (ids included), so generator runs can repeat."""
    texts = [r[k] for r in splits["train"] for k in ("prompt", "target")]
    runs = {train_unigram_tokenizer(texts, vocab_size=400).to_str() for _ in range(3)}
    assert len(runs) == 1
