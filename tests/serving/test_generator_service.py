"""The generator service: retries with derived seeds until consistent, bounded attempts and time,
reproducible with a seed, request errors naming the field; and a real tiny ONNX artifact."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from serving.errors import ArtifactError, RequestError
from serving.generator import GeneratorModel, derive_seed, load_generator
from serving.settings import ServingSettings

GOOD = "Tom has 3 apples and gets 4 more. How many apples does Tom have? ||| 3 + 4"
BAD = "Tom has 3 apples. How many apples? ||| 3 + 5"


class ScriptedEngine:
    """Returns scripted texts in order and records the sampling arguments."""

    def __init__(self, texts: list[str], delay_s: float = 0.0) -> None:
        self.texts = texts
        self.calls: list[dict[str, Any]] = []
        self.delay_s = delay_s

    def generate_text(self, prompt: str, **kwargs: Any) -> str:
        self.calls.append({"prompt": prompt, **kwargs})
        time.sleep(self.delay_s)
        return self.texts[min(len(self.calls) - 1, len(self.texts) - 1)]


def _model(engine: ScriptedEngine, attempts: int = 3) -> GeneratorModel:
    settings = ServingSettings(generator_max_attempts=attempts)
    return GeneratorModel(
        artifact_dir=Path("."), manifest={"version": 4}, engine=engine, settings=settings
    )


def test_consistent_first_try_returns_equation_and_answer() -> None:
    eng = ScriptedEngine([GOOD])
    res = _model(eng).generate(topic="addition", keywords=["apples"], seed=11, max_length=40)
    assert res.consistent and res.attempts == 1 and res.seed == 11
    assert res.equation == "3 + 4" and res.answer == 7.0
    assert res.generated_problem_text.endswith("Tom have?")
    call = eng.calls[0]
    assert call["prompt"] == "generate word problem about addition using keywords <k1> apples:"
    assert call["seed"] == 11 and call["do_sample"] and call["max_new_tokens"] == 40


def test_retries_with_distinct_derived_seeds_until_consistent() -> None:
    eng = ScriptedEngine([BAD, "no separator here", GOOD])
    res = _model(eng).generate(topic="addition", keywords=["apples"], seed=5)
    assert res.consistent and res.attempts == 3
    seeds = [c["seed"] for c in eng.calls]
    assert seeds == [derive_seed(5, i) for i in range(3)] and len(set(seeds)) == 3


def test_gives_up_after_max_attempts_without_equation() -> None:
    eng = ScriptedEngine([BAD])
    res = _model(eng, attempts=2).generate(topic="addition", keywords=["apples"], seed=1)
    assert not res.consistent and res.attempts == 2 and len(eng.calls) == 2
    assert res.equation is None and res.answer is None
    assert res.generated_problem_text == "Tom has 3 apples. How many apples?"
    assert res.reason.startswith("numbers_")


PEARS = "Tom has 3 pears and gets 4 more. How many pears does Tom have? ||| 3 + 4"


def test_retries_a_consistent_sample_that_misses_a_keyword() -> None:
    eng = ScriptedEngine([PEARS, GOOD])
    res = _model(eng).generate(topic="addition", keywords=["apples", "Tom"], seed=2)
    assert res.consistent and res.attempts == 2 and res.missing_keywords == ()
    assert res.reason == "ok" and "apples" in res.generated_problem_text


def test_keeps_the_consistent_sample_with_fewest_missing_keywords() -> None:
    eng = ScriptedEngine([PEARS, BAD])
    res = _model(eng, attempts=3).generate(topic="addition", keywords=["apples", "Tom"], seed=2)
    assert res.consistent and res.attempts == 3 and len(eng.calls) == 3
    assert res.equation == "3 + 4" and res.missing_keywords == ("apples",)
    assert res.reason == "missing_keywords"


SLOTTED = "Tom has 3 <k1s> and gets 4 more. How many <k1s> does Tom have? ||| n1 + n2"
DOUBLED = "Tom has 3 <k1s> <k1s> and gets 4 more. How many <k1s> does Tom have? ||| n1 + n2"


def test_keyword_slots_are_rendered_with_the_requested_noun() -> None:
    res = _model(ScriptedEngine([SLOTTED])).generate(topic="addition", keywords=["goose"], seed=1)
    assert (
        res.generated_problem_text
        == "Tom has 3 geese and gets 4 more. How many geese does Tom have?"
    )
    assert res.equation == "3 + 4" and res.answer == 7.0 and res.reason == "ok"


def test_retries_a_sample_with_a_grammar_defect() -> None:
    eng = ScriptedEngine([DOUBLED, SLOTTED])
    res = _model(eng).generate(topic="addition", keywords=["igloos"], seed=2)
    assert res.attempts == 2 and res.grammar_defects == () and res.reason == "ok"
    assert "igloos igloos" not in res.generated_problem_text


def test_keeps_the_defective_sample_when_nothing_better_comes() -> None:
    res = _model(ScriptedEngine([DOUBLED]), attempts=2).generate(
        topic="addition", keywords=["igloos"], seed=2
    )
    assert res.consistent and res.attempts == 2 and res.reason == "grammar_defects"
    assert res.grammar_defects == ("doubled_word",)


def test_inconsistent_result_names_missing_keywords() -> None:
    res = _model(ScriptedEngine([BAD]), attempts=1).generate(
        topic="addition", keywords=["apples", "pears"], seed=1
    )
    assert not res.consistent and res.missing_keywords == ("pears",)


def test_deadline_stops_retries_but_first_attempt_runs() -> None:
    eng = ScriptedEngine([BAD], delay_s=0.05)
    res = _model(eng, attempts=5).generate(
        topic="addition", keywords=["apples"], seed=1, deadline=time.monotonic() + 0.01
    )
    assert res.attempts == 1 and len(eng.calls) == 1


def test_temperature_override_and_default() -> None:
    eng = ScriptedEngine([GOOD])
    m = _model(eng)
    m.generate(topic="a", keywords=["apples"], seed=1)
    m.generate(topic="a", keywords=["apples"], seed=1, temperature=1.5)
    assert eng.calls[0]["temperature"] == m.settings.temperature
    assert eng.calls[1]["temperature"] == 1.5


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"topic": "a,b", "keywords": ["x"]}, "topic"),
        ({"topic": "a", "keywords": ["x:y"]}, "keywords[0]"),
        ({"topic": "a", "keywords": []}, "keywords"),
    ],
)
def test_prompt_errors_name_the_field(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(RequestError) as err:
        _model(ScriptedEngine([GOOD])).generate(**kwargs)
    assert err.value.field == field


def test_derive_seed_in_range_and_deterministic() -> None:
    for base in (0, 1, 2**31 - 1):
        for i in range(5):
            s = derive_seed(base, i)
            assert 0 <= s <= 2**31 - 1 and s == derive_seed(base, i)


def test_real_tiny_artifact_seed_reproducible(store: Path) -> None:
    m = load_generator("latest", ServingSettings(artifact_root=store, generator_max_attempts=2))
    a = m.generate(topic="fractions", keywords=["apples", "baskets"], seed=3, max_length=16)
    b = m.generate(topic="fractions", keywords=["apples", "baskets"], seed=3, max_length=16)
    c = m.generate(topic="fractions", keywords=["apples", "baskets"], seed=4, max_length=16)
    assert a == b
    assert 1 <= a.attempts <= 2
    texts = {a.generated_problem_text, c.generated_problem_text}
    assert len(texts) == 2  # a different seed samples a different text
    assert m.info()["name"] == "generator" and m.version == "1"


def test_weakness_artifact_is_not_a_generator(store: Path) -> None:
    with pytest.raises(ArtifactError, match="not a generator model"):
        load_generator(str(store / "weakness" / "1"), ServingSettings(artifact_root=store))


# ----------------------------------------------------------------------------- typed roles

TYPED_GOOD = (
    "A <cont> held <num> <food:pl>. <name> took out <num> of them. "
    "How many <food:pl> are left in the <cont>? ||| n1 - n2"
)
TYPED_NO_CONT = (
    "<name> has <num> <food:pl> and eats <num>. How many <food:pl> are left? ||| n1 - n2"
)
TYPED_DRIFT = (
    "<name> has <num> <food:pl>. <name> eats <num>. How many <thing:pl> does <name2> have? "
    "||| n1 - n2"
)


def _typed_model(engine: ScriptedEngine, tmp_path: Path, attempts: int = 3) -> GeneratorModel:
    from serving.lexicon import Lexicon

    lex = tmp_path / "nouns.tsv"
    lex.write_text("cookie\tfood\tfood\tc\njar\tcontainer\tcontainer\tc\n", encoding="utf-8")
    return GeneratorModel(
        artifact_dir=tmp_path,
        manifest={"version": 5},
        engine=engine,
        settings=ServingSettings(generator_max_attempts=attempts),
        lexicon=Lexicon.load(lex),
    )


def test_typed_prompt_names_classes_and_roles_bind_by_class(tmp_path: Path) -> None:
    eng = ScriptedEngine([TYPED_GOOD])
    res = _typed_model(eng, tmp_path).generate(
        topic="subtraction", keywords=["cookies", "jar"], seed=3, prompt_prefix="Grade 2:"
    )
    assert eng.calls[0]["prompt"] == (
        "generate word problem about subtraction using keywords cookies (food), jar (cont): "
        "For a grade 2 class:"
    )
    assert res.consistent and res.reason == "ok" and res.keywords_unused == ()
    text = res.generated_problem_text
    assert text.startswith("A jar held ") and text.endswith("cookies are left in the jar?")


def test_typed_retries_until_every_keyword_has_a_role(tmp_path: Path) -> None:
    eng = ScriptedEngine([TYPED_NO_CONT, TYPED_GOOD])
    res = _typed_model(eng, tmp_path).generate(
        topic="subtraction", keywords=["cookies", "jar"], seed=3
    )
    assert res.attempts == 2 and res.keywords_unused == () and "jar" in res.generated_problem_text


def test_typed_reports_a_keyword_no_role_can_take(tmp_path: Path) -> None:
    eng = ScriptedEngine([TYPED_NO_CONT])
    res = _typed_model(eng, tmp_path, attempts=2).generate(
        topic="subtraction", keywords=["cookies", "jar"], seed=3
    )
    assert res.consistent and [k for k, _ in res.keywords_unused] == ["jar"]
    assert "jar" not in res.generated_problem_text  # said, not forced


def test_typed_rejects_a_question_about_people_and_items_never_introduced(tmp_path: Path) -> None:
    eng = ScriptedEngine([TYPED_DRIFT, TYPED_GOOD])
    res = _typed_model(eng, tmp_path).generate(topic="subtraction", keywords=["cookies"], seed=4)
    assert res.attempts == 2 and res.story_defects == ()


def test_typed_inconsistent_fallback_names_the_unused_keyword(tmp_path: Path) -> None:
    """No consistent sample: the last one says which keyword its story could not use, and
    counts missing keywords among the others (the drop-in's answer too)."""
    eng = ScriptedEngine([TYPED_NO_CONT.split(" |||")[0]])  # no equation
    res = _typed_model(eng, tmp_path, attempts=1).generate(
        topic="subtraction", keywords=["cookies", "jar"], seed=3
    )
    assert not res.consistent and res.equation is None
    assert [k for k, _ in res.keywords_unused] == ["jar"] and res.missing_keywords == ()


def test_greedy_policy_passes_no_sampling_arguments() -> None:
    """``sample=False`` (the drop-in's one-file graph): the decoder is asked for greedy ids."""
    eng = ScriptedEngine([GOOD])
    model = GeneratorModel(
        artifact_dir=Path("."),
        manifest={"version": 4},
        engine=eng,
        settings=ServingSettings(generator_max_attempts=1),
        sample=False,
    )
    res = model.generate(topic="addition", keywords=["apples"], seed=1, max_length=32)
    assert res.consistent and eng.calls == [
        {"prompt": eng.calls[0]["prompt"], "max_new_tokens": 32}
    ]
