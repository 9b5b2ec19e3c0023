"""The embedded template corpus: grammar, consistency, balance, determinism."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from data.word_problems.templates import (
    CONTAINERS,
    COUNTED,
    CUPS,
    ITEMS,
    OBJECTS,
    PREFIXES,
    TOPIC_NAMES,
    TOPICS,
    count,
    generate_templates,
)
from serving.arithmetic import equation_numbers, evaluate, numbers_in
from serving.consistency import check_consistency
from training.text_metrics import keyword_present

N = 1500


@pytest.fixture(scope="module")
def problems():
    return generate_templates(n=N, seed=11)


def test_enough_topics_and_shapes() -> None:
    assert len(TOPICS) >= 10
    for topic in TOPICS:
        assert len(topic.shapes) >= 6, topic.name
        assert len({s.text for s in topic.shapes}) == len(topic.shapes)


def test_count_agrees() -> None:
    strawberry = next(o for o in OBJECTS if o.one == "strawberry")
    assert count(1, strawberry) == "1 strawberry"
    assert count(3, strawberry) == "3 strawberries"
    assert count(2.5, COUNTED["litre"]) == "2.50 litres"


def test_deterministic_and_seeded(problems) -> None:
    assert generate_templates(n=50, seed=11) == problems[:50]
    assert generate_templates(n=50, seed=12) != problems[:50]


def test_distinct_and_balanced(problems) -> None:
    assert len({p.problem for p in problems}) == N
    per_topic = Counter(p.topic for p in problems)
    assert set(per_topic) == set(TOPIC_NAMES)
    assert max(per_topic.values()) - min(per_topic.values()) <= 1
    assert {p.prompt_prefix for p in problems} == set(PREFIXES)


def test_every_shape_is_used(problems) -> None:
    texts = " ".join(p.problem for p in problems)
    for topic in TOPICS:
        for shape in topic.shapes:
            head = shape.text.split("{")[0]
            tail = shape.text.rsplit("}", 1)[-1]
            assert head in texts and tail in texts, shape.text


def test_equations_answer_with_the_texts_numbers(problems) -> None:
    for p in problems:
        assert evaluate(p.equation) == pytest.approx(p.answer)
        res = check_consistency(p.problem, p.equation, p.answer)
        assert res.ok, (p.problem, p.equation, res.reason)
        # the strict multiset rule, apart from the documented constants 2 and 100
        extra = Counter(equation_numbers(p.equation)) - Counter(numbers_in(p.problem))
        assert set(extra) <= {2.0, 100.0}, p


def test_answers_positive(problems) -> None:
    assert all(p.answer > 0 for p in problems)


def test_problems_end_with_a_question(problems) -> None:
    for p in problems:
        assert p.problem.endswith("?"), p.problem
        assert p.problem.count("?") == 1, p.problem
        assert "  " not in p.problem and "{" not in p.problem


def test_grammar_singular_plural(problems) -> None:
    nouns = [*OBJECTS, *CONTAINERS, *ITEMS, *CUPS, *COUNTED.values()]
    text = "\n".join(p.problem for p in problems)
    for noun in nouns:
        if noun.one == noun.many:
            continue
        assert not re.search(rf"(?<![\d./])1 {re.escape(noun.many)}\b", text), noun
        bad = re.search(
            rf"(?<![\d./])(?!1 )\d+(?:\.\d+)? {re.escape(noun.one)}\b(?!-| ticket)", text
        )
        assert bad is None, (noun, bad and text[bad.start() - 40 : bad.end() + 20])
    assert re.search(r"\b1 [a-z]+ies\b", text) is None


def test_keywords_are_in_the_text(problems) -> None:
    for p in problems:
        assert 2 <= len(p.keywords) <= 3, p
        for kw in p.keywords:
            assert keyword_present(kw, p.problem), (kw, p.problem)
            assert "," not in kw and ":" not in kw


def test_unknown_topic_rejected() -> None:
    with pytest.raises(ValueError, match="unknown template topic"):
        generate_templates(n=5, seed=0, topics=("algebra",))


def test_topic_subset() -> None:
    got = generate_templates(n=20, seed=0, topics=("money", "time"))
    assert {p.topic for p in got} == {"money", "time"}


def test_fractions_are_in_lowest_terms(problems) -> None:
    import math

    fracs = [tuple(map(int, m)) for p in problems for m in re.findall(r"(\d+)/(\d+)", p.problem)]
    assert fracs
    assert all(math.gcd(n, d) == 1 and 0 < n < d for n, d in fracs)


def test_skeletons_name_each_quantity_by_its_place(problems) -> None:
    """Every sampled quantity is <num> in the skeleton, literal digits stay, and the slot
    equation over the lexical text's numbers is the record's equation (values drawn at serving)."""
    from serving.numbers import NUM_TOKEN
    from serving.prompt import render_slots

    for p in problems:
        assert NUM_TOKEN in p.skeleton
        assert evaluate(render_slots(p.problem, p.slot_equation)) == pytest.approx(p.answer)
        # the skeleton's numbers (literal and slot) are as many as the problem's
        n_slots = p.skeleton.count(NUM_TOKEN)
        assert n_slots + len(numbers_in(p.skeleton)) == len(numbers_in(p.problem))


def test_equal_values_never_mix_a_quantity_with_a_constant() -> None:
    """'2 m long and 2 m wide', perimeter 2 * (2 + 2): matching values would slot the constant."""
    from data.word_problems.templates import TOPICS, render_skeleton

    area = next(t for t in TOPICS if t.name == "area and perimeter")
    shape = next(s for s in area.shapes if s.equation == "2 * ({l} + {w})")
    numbers = {"l": 2.0, "w": 2.0, "s": 2.0, "A": 4.0}
    from data.word_problems.templates import _slots

    slots = _slots(random.Random(0), numbers)
    skeleton, slot_equation = render_skeleton(shape, slots, numbers)
    assert slot_equation == "2 * (n1 + n2)"
    square = next(s for s in area.shapes if "4 sides" in s.text)
    skeleton, slot_equation = render_skeleton(square, slots, numbers)
    assert "4 sides" in skeleton and slot_equation == "4 * n2"


def _broken_file(tmp_path, edit):
    """A copy of the embedded template file with one edit applied."""
    import yaml

    from data.word_problems.templates import TEMPLATE_FILE

    doc = yaml.safe_load(TEMPLATE_FILE.read_text(encoding="utf-8"))
    edit(doc)
    path = tmp_path / "templates.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["topics"][2]["shapes"][1].pop("equation"), "topics[2].shapes[1]: missing"),
        (lambda d: d["topics"][0]["shapes"][0].update(equation=5), "shapes[0].equation: must be"),
        (lambda d: d["topics"][1].update(sampler="nope"), "topics[1].sampler: unknown sampler"),
        (lambda d: d["topics"][3]["shapes"][0].update(text="{nope} ?"), "shapes[0].text: unknown"),
        (lambda d: d["topics"][0]["shapes"][0].update(colour=1), "shapes[0].colour: unknown key"),
        (lambda d: d.update(grades=[2, 3]), "grades: 4 grades needed"),
        (lambda d: d["objects"].__setitem__(2, 5), "objects[2]: must be a word or a mapping"),
        (lambda d: d["containers"].__setitem__(1, {"one": "box"}), "containers[1]: missing"),
    ],
)
def test_a_bad_template_file_is_one_line_naming_file_entry_and_field(tmp_path, edit, message):
    from data.word_problems.templates import TemplateDataError, load_template_data

    path = _broken_file(tmp_path, edit)
    with pytest.raises(TemplateDataError) as err:
        load_template_data(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text


def test_the_embedded_template_file_loads_as_the_module_uses_it():
    from data.word_problems.templates import DATA, TOPICS, load_template_data

    assert load_template_data() == DATA and DATA.topics == TOPICS
