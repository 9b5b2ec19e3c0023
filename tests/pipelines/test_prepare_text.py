"""The prepare_text stage end to end on a tiny params file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from data.word_problems.corpus import ADDED_TOKENS
from pipelines.common import ConfigError
from pipelines.prepare_text import PrepareTextConfig, load_config, prepare_text

TINY = {
    "seed": 3,
    "sources": ["templates"],
    "n_templates": 300,
    "template_topics": [],
    "max_rows": None,
    "keywords_per_problem": 3,
    "val_frac": 0.15,
    "test_frac": 0.15,
    "vocab_size": 300,
    "model_max_length": 128,
    # every key is required (params.yaml holds the values): augmentation off here
    "missing_sources": "error",
    "n_skeleton_records": 12_000,
    "skeleton_literal_share": 0.3,
    "max_problem_words": None,
    "request_subsets": 0.0,
    "keyword_swap": 0.0,
    "context_keywords": 0.0,
    "context_max_keywords": 4,
    "context_two_share": 0.4,
    "copy_augment": 0.0,
    # no held-out corpus files: the tests never depend on ../shared/data being there
    "unseen": {"n_requests": 40, "paths": {}},
}


def _params(tmp_path: Path, section: dict, generator: dict | None = None) -> Path:
    params = {"prepare_text": section}
    if generator is not None:
        params["train_generator"] = generator
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_stage_writes_splits_tokenizer_and_metrics(tmp_path: Path) -> None:
    cfg, base_model = load_config(_params(tmp_path, TINY, {"base_model": "scratch"}))
    assert base_model == "scratch"
    text_dir, metrics_path = tmp_path / "outputs" / "text", tmp_path / "metrics" / "text.json"
    metrics = prepare_text(cfg, base_model=base_model, text_dir=text_dir, metrics_path=metrics_path)
    assert sorted(p.name for p in text_dir.iterdir()) == [
        "test.jsonl",
        "test_unseen.jsonl",
        "tokenizer",
        "train.jsonl",
        "val.jsonl",
    ]
    assert (text_dir / "tokenizer" / "tokenizer.json").is_file()
    written = json.loads(metrics_path.read_text())
    assert written["sizes"] == metrics["sizes"]
    assert sum(written["sizes"].values()) == 300 == written["n_records"]
    assert written["n_topics"] == 14 and written["unk_rate_test"] == 0.0
    assert written["tokenizer"] == "unigram" and written["vocab_size"] <= 300 + len(
        ADDED_TOKENS
    )  # + the keyword slots and the number slot
    lines = (text_dir / "test.jsonl").read_text().splitlines()
    assert len(lines) == written["sizes"]["test"]
    assert {"prompt", "target", "keywords"} <= set(json.loads(lines[0]))
    # no stray temporary directories next to the outputs
    assert sorted(p.name for p in text_dir.parent.iterdir()) == ["text"]
    assert written["sources_used"] == ["templates"] and written["sources_missing"] == []


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_unseen_split_keywords_occur_in_no_training_record(tmp_path: Path) -> None:
    """The open-vocabulary requests ask for nouns no training record holds, in any inflection."""
    from serving.keywords import keyword_present

    cfg, _ = load_config(
        _params(tmp_path, {**TINY, "unseen": {"n_requests": 60, "seed": 4, "paths": {}}})
    )
    text_dir = tmp_path / "t"
    metrics = prepare_text(
        cfg, base_model="scratch", text_dir=text_dir, metrics_path=tmp_path / "m.json"
    )
    unseen = _lines(text_dir / "test_unseen.jsonl")
    assert len(unseen) == 60 == metrics["unseen"]["n_requests"]
    assert metrics["unseen"]["unk_rate_prompts"] == 0.0
    train = _lines(text_dir / "train.jsonl")
    texts = [" ".join([r["problem"], r["prompt"], *r["keywords"]]) for r in train]
    for req in unseen:
        for kw in req["keywords"]:
            assert not any(keyword_present(kw, t) for t in texts), kw
    # every trained topic is asked for (templates only here: all 14 topics have shapes)
    assert set(metrics["unseen"]["topics"]) == {r["topic"] for r in train}
    assert {s for r in unseen for s in r["keyword_sources"]} == {"list"}
    again = tmp_path / "t2"
    prepare_text(cfg, base_model="scratch", text_dir=again, metrics_path=tmp_path / "m2.json")
    assert (again / "test_unseen.jsonl").read_text() == (text_dir / "test_unseen.jsonl").read_text()


def test_absent_real_corpora_are_skipped_and_recorded(tmp_path: Path) -> None:
    """A fresh clone without ../shared/data: the stage runs on templates and says so."""
    section = {
        **TINY,
        "sources": ["templates", "svamp", "gsm8k"],
        "missing_sources": "skip",
        "paths": {"svamp": "nope/SVAMP.json", "gsm8k": "nope/train.jsonl"},
        "unseen": {"n_requests": 20, "paths": {"gsm8k": "nope/test.jsonl"}},
    }
    cfg, _ = load_config(_params(tmp_path, section))
    metrics = prepare_text(
        cfg,
        base_model="scratch",
        text_dir=tmp_path / "t",
        metrics_path=tmp_path / "m.json",
        root=tmp_path,
    )
    assert metrics["sources_used"] == ["templates"]
    assert metrics["sources_missing"] == ["svamp", "gsm8k"]
    assert (
        metrics["unseen"]["missing_files"] == ["gsm8k"] and metrics["unseen"]["corpus_files"] == {}
    )
    assert metrics["sources"] == {"templates": 300}


def test_copy_augment_adds_to_train_only(tmp_path: Path) -> None:
    cfg, _ = load_config(_params(tmp_path, {**TINY, "copy_augment": 0.5}))
    text_dir = tmp_path / "t"
    metrics = prepare_text(
        cfg, base_model="scratch", text_dir=text_dir, metrics_path=tmp_path / "m"
    )
    added = metrics["read_reports"]["copy_augment"]["added"]
    assert added > 0 and sum(metrics["sizes"].values()) == 300 + added

    def sources(split: str) -> list[str]:
        lines = (text_dir / f"{split}.jsonl").read_text().splitlines()
        return [json.loads(line)["source"] for line in lines]

    assert sources("train").count("templates+copy") == added
    assert "templates+copy" not in sources("val") + sources("test")


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("sources", [], "prepare_text.sources"),
        ("sources", ["templates", "wikipedia"], "prepare_text.sources"),
        ("n_templates", 0, "prepare_text.n_templates"),
        ("val_frac", 0.7, "prepare_text.val_frac"),
        ("test_frac", 0.0, "prepare_text.test_frac"),
        ("vocab_size", 10, "prepare_text.vocab_size"),
        ("template_topics", ["algebra"], "prepare_text.template_topics"),
        ("max_rows", 0, "prepare_text.max_rows"),
        ("keywords_per_problem", 9, "prepare_text.keywords_per_problem"),
        ("unknown_key", 1, "unknown key"),
        ("seed", "x", "seed"),
        ("copy_augment", 1.5, "prepare_text.copy_augment"),
        ("missing_sources", "ignore", "prepare_text.missing_sources"),
        ("request_subsets", -0.1, "prepare_text.request_subsets"),
        ("unseen", {"n_requests": 0}, "prepare_text.unseen.n_requests"),
        ("unseen", {"paths": {"wiki": "x"}}, "prepare_text.unseen.paths"),
    ],
)
def test_bad_params_write_nothing(tmp_path: Path, key: str, value, fragment: str) -> None:
    path = _params(tmp_path, {**TINY, key: value})
    with pytest.raises(ConfigError, match=fragment):
        load_config(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_missing_real_corpus_writes_nothing(tmp_path: Path) -> None:
    section = {**TINY, "sources": ["templates", "svamp"], "paths": {"svamp": "nope/SVAMP.json"}}
    cfg, base_model = load_config(_params(tmp_path, section))
    assert base_model == "scratch"  # no train_generator section: default
    with pytest.raises(ValueError, match="SVAMP file not found"):
        prepare_text(
            cfg,
            base_model=base_model,
            text_dir=tmp_path / "out" / "text",
            metrics_path=tmp_path / "m.json",
            root=tmp_path,
        )
    assert not (tmp_path / "out" / "text").exists() and not (tmp_path / "m.json").exists()


def test_too_few_records_for_splits(tmp_path: Path) -> None:
    cfg = PrepareTextConfig(**{**TINY, "n_templates": 1, "sources": ("templates",)})
    with pytest.raises(ValueError, match="is empty"):
        prepare_text(
            cfg, base_model="scratch", text_dir=tmp_path / "t", metrics_path=tmp_path / "m.json"
        )
    assert not (tmp_path / "t").exists()


def test_mixed_real_corpus(tmp_path: Path) -> None:
    svamp = tmp_path / "SVAMP.json"
    svamp.write_text(
        json.dumps(
            [
                {
                    "ID": f"s{i}",
                    "Body": f"Dan had {i + 5} kites and lost {i} kites.",
                    "Question": "How many kites does Dan have now?",
                    "Equation": f"( {i + 5}.0 - {i}.0 )",
                    "Answer": 5.0,
                    "Type": "Subtraction",
                }
                for i in range(1, 40)
            ]
        )
    )
    section = {
        **TINY,
        "n_templates": 400,
        "sources": ["templates", "svamp"],
        "paths": {"svamp": str(svamp)},
    }
    cfg, _ = load_config(_params(tmp_path, section))
    metrics = prepare_text(
        cfg, base_model="scratch", text_dir=tmp_path / "t", metrics_path=tmp_path / "m.json"
    )
    assert metrics["sources"] == {"svamp": 39, "templates": 400}
    assert metrics["read_reports"]["svamp"]["kept"] == 39


def test_pretrained_base_model_tokenizer_is_copied(tmp_path: Path) -> None:
    """A local pretrained path: its own tokenizer is saved instead of training one."""
    cfg, _ = load_config(_params(tmp_path, TINY))
    first = prepare_text(
        cfg, base_model="scratch", text_dir=tmp_path / "a", metrics_path=tmp_path / "a.json"
    )
    model_dir = tmp_path / "a" / "tokenizer"  # stands in for a checkpoint directory
    metrics = prepare_text(
        cfg, base_model=str(model_dir), text_dir=tmp_path / "b", metrics_path=tmp_path / "b.json"
    )
    assert metrics["tokenizer"] == str(model_dir)
    assert metrics["vocab_size"] == first["vocab_size"]  # its slots were there already
    a = json.loads((tmp_path / "a" / "tokenizer" / "tokenizer.json").read_text())["model"]
    b = json.loads((tmp_path / "b" / "tokenizer" / "tokenizer.json").read_text())["model"]
    assert a == b


def test_pretrained_tokenizer_without_slots_gets_them_as_ordinary_tokens(tmp_path: Path) -> None:
    """A base model's own tokenizer (here a WordLevel one saved by the test) gains <k1>..<k8s>
    as non-special added tokens, kept by `tokenizers`' decode with skip_special_tokens=True."""
    from tokenizers import Tokenizer

    from data.word_problems.corpus import ADDED_TOKENS as SLOT_TOKENS  # keyword + number slots
    from tests.fixtures.text import make_records, make_tokenizer

    base = make_tokenizer(make_records(16))
    n_base = len(base)
    base.save_pretrained(str(tmp_path / "base"))
    cfg, _ = load_config(_params(tmp_path, TINY))
    metrics = prepare_text(
        cfg,
        base_model=str(tmp_path / "base"),
        text_dir=tmp_path / "t",
        metrics_path=tmp_path / "m.json",
    )
    assert metrics["vocab_size"] == n_base + len(SLOT_TOKENS)
    tok = Tokenizer.from_file(str(tmp_path / "t" / "tokenizer" / "tokenizer.json"))
    ids = tok.encode("tom has 3 <k1s> and <k2> ?").ids
    assert tok.decode(ids, skip_special_tokens=True).split() == [
        "tom",
        "has",
        "3",
        "<k1s>",
        "and",
        "<k2>",
        "?",
    ]
    added = {t.content: t for t in tok.get_added_tokens_decoder().values()}
    assert all(not added[s].special for s in SLOT_TOKENS)
