"""GSM8K / SVAMP / MAWPS readers on tiny inline samples in the real formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data.word_problems.adapters import (
    CorpusError,
    gsm8k_equation,
    json_object,
    jsonl_lines,
    prefix_to_infix,
    read_gsm8k,
    read_mawps,
    read_svamp,
    topic_from_equation,
)
from serving.arithmetic import EquationError, evaluate

SHARED = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "word_problems"

GSM8K_ROWS = [
    {
        "question": "Natalia sold clips to 48 of her friends in April, and then she sold half as "
        "many clips in May. How many clips did Natalia sell altogether in April and May?",
        "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
        "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72",
    },
    {
        "question": "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes "
        "of babysitting. How much did she earn?",
        "answer": "Weng earns 12/60 = $<<12/60=0.2>>0.2 per minute.\n"
        "Working 50 minutes, she earned 0.2 x 50 = $<<0.2*50=10>>10.\n#### 10",
    },
    {"question": "No annotations here. How many?", "answer": "It is 5.\n#### 5"},
    {"question": "Wrong answer. How many?", "answer": "<<2+2=4>>4\n#### 5"},
    {"question": "Big one: 1,000 pens. How many?", "answer": "<<1000*2=2000>>2,000\n#### 2,000"},
]

SVAMP_ROWS = [
    {
        "ID": "chal-1",
        "Body": "Each pack of dvds costs 76 dollars. "
        "If there is a discount of 25 dollars on each pack",
        "Question": "How much do you have to pay to buy each pack?",
        "Equation": "( 76.0 - 25.0 )",
        "Answer": 51.0,
        "Type": "Subtraction",
    },
    {
        "ID": "chal-2",
        "Body": "Paco had 26 salty cookies and 17 sweet cookies. He ate 9 salty cookies.",
        "Question": "How many salty cookies did Paco have left?",
        "Equation": "( 26.0 - 9.0 )",
        "Answer": 17.0,
        "Type": "Common-Divison",
    },
    {"ID": "bad-1", "Body": "x", "Question": "y?", "Equation": "( 1.0 + 1.0 )", "Answer": 3.0},
    {"ID": "bad-2", "Body": "x", "Question": "y?", "Answer": 3.0},
]

MAWPS_CSV = (
    "Question,Numbers,Equation,Answer,group_nums,Body,Ques_Statement\n"
    "Mary is baking a cake . The recipe wants number0 cups of flour . She already put in "
    "number1 cups . How many cups does she need to add ?,8.0 2.0,- number0 number1,6,"
    '"[8, 9]",Mary is baking a cake .,How many cups does she need to add ?\n'
    "Zoe found number0 boxes of clothing and inside each box there were number1 scarves and "
    "number2 mittens . How many pieces of winter clothing did Zoe have total ?,8.0 4.0 6.0,"
    '* number0 + number1 number2,80.0,"[1]",Zoe found boxes .,How many ?\n'
    'Bad row uses number3 . How many ?,1.0 2.0,+ number0 number3,3,"[1]",a,b\n'
    'Malformed prefix number0 number1 ?,1.0 2.0,+ number0,3,"[1]",a,b\n'
    "One pencil weighs number0 grams . How much do number1 pencils weigh ?,28.3 5.0,"
    '* number0 number1,141.5,"[2]",a,b\n'
)


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_gsm8k_equation_expands_steps() -> None:
    eq = gsm8k_equation(GSM8K_ROWS[0]["question"], GSM8K_ROWS[0]["answer"])
    assert eq == "48 + (48 / 2)"
    assert evaluate(eq) == 72
    eq = gsm8k_equation(GSM8K_ROWS[1]["question"], GSM8K_ROWS[1]["answer"])
    assert evaluate(eq) == pytest.approx(10)
    with pytest.raises(EquationError):
        gsm8k_equation("q", "no annotation #### 3")


def test_read_gsm8k(tmp_path: Path) -> None:
    rows, report = read_gsm8k(_write_jsonl(tmp_path / "g.jsonl", GSM8K_ROWS))
    assert [r.answer for r in rows] == [72.0, 10.0, 2000.0]
    assert rows[0].source == "gsm8k" and rows[0].row == 1
    assert rows[0].topic == "addition and subtraction" or rows[0].topic == "mixed operations"
    assert report.rows == 5 and report.kept == 3
    assert report.skipped == {"bad_equation": 1, "answer_mismatch": 1}


def test_read_gsm8k_max_rows(tmp_path: Path) -> None:
    rows, report = read_gsm8k(_write_jsonl(tmp_path / "g.jsonl", GSM8K_ROWS), max_rows=1)
    assert len(rows) == 1 and report.rows == 1


def test_gsm8k_bad_file(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="not found"):
        read_gsm8k(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "a"}\nnot json\n')
    with pytest.raises(CorpusError, match=r"bad.jsonl: row 2"):
        read_gsm8k(bad)


@pytest.mark.parametrize(
    ("line", "reason"), [("not json", "not JSON"), ("[1, 2]", "expected an object")]
)
def test_json_object_names_where_with_the_callers_error(line: str, reason: str) -> None:
    with pytest.raises(CorpusError, match=f"^f.jsonl: row 3: {reason}"):
        json_object(line, "f.jsonl: row 3", CorpusError)


def test_jsonl_lines_numbers_from_one_and_skips_blanks(tmp_path: Path) -> None:
    path = tmp_path / "f.jsonl"
    path.write_text('{"a": 1}\n\n  \n{"b": 2}\n')
    assert [(row, json_object(line, "", ValueError)) for row, line in jsonl_lines(path)] == [
        (1, {"a": 1}),
        (4, {"b": 2}),
    ]


def test_read_svamp(tmp_path: Path) -> None:
    path = tmp_path / "SVAMP.json"
    path.write_text(json.dumps(SVAMP_ROWS))
    rows, report = read_svamp(path)
    assert len(rows) == 2
    first = rows[0]
    assert first.problem == (
        "Each pack of dvds costs 76 dollars. If there is a discount of 25 dollars on each pack, "
        "how much do you have to pay to buy each pack?"
    )
    assert first.equation == "(76 - 25)" and first.answer == 51.0 and first.topic == "subtraction"
    assert rows[1].problem.startswith("Paco had 26") and rows[1].problem.endswith("left?")
    assert rows[1].topic == "division"  # the published file's typo maps to its Type
    assert report.skipped == {"answer_mismatch": 1, "missing_field": 1}


def test_svamp_not_a_list(tmp_path: Path) -> None:
    path = tmp_path / "SVAMP.json"
    path.write_text(json.dumps({"Body": "x"}))
    with pytest.raises(CorpusError, match="expected a JSON list"):
        read_svamp(path)


def test_prefix_to_infix() -> None:
    assert prefix_to_infix(["-", "8", "2"]) == "8 - 2"
    assert prefix_to_infix(["*", "8", "+", "4", "6"]) == "8 * (4 + 6)"
    assert prefix_to_infix(["/", "-", "9", "3", "2"]) == "(9 - 3) / 2"
    with pytest.raises(EquationError):
        prefix_to_infix(["+", "1"])
    with pytest.raises(EquationError):
        prefix_to_infix(["1", "2"])


def test_read_mawps(tmp_path: Path) -> None:
    path = tmp_path / "fold0_train.csv"
    path.write_text(MAWPS_CSV)
    rows, report = read_mawps(path)
    assert [r.equation for r in rows] == ["8 - 2", "8 * (4 + 6)", "28.3 * 5"]
    assert rows[0].problem == (
        "Mary is baking a cake. The recipe wants 8 cups of flour. She already put in 2 cups. "
        "How many cups does she need to add?"
    )
    assert [r.topic for r in rows] == ["subtraction", "mixed operations", "multiplication"]
    assert rows[0].row == 2  # file line, header is line 1
    assert report.rows == 5 and sum(report.skipped.values()) == 2


def test_mawps_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("Question,Answer\nq,1\n")
    with pytest.raises(CorpusError, match=r"missing column\(s\) \['Numbers', 'Equation'\]"):
        read_mawps(path)


@pytest.mark.parametrize(
    ("equation", "text", "topic"),
    [
        ("3 + 4", "", "addition"),
        ("3 - 4", "", "subtraction"),
        ("3 * 4", "", "multiplication"),
        ("3 / 4", "", "division"),
        ("3 + 4 - 1", "", "addition and subtraction"),
        ("3 * 4 / 2", "", "multiplication and division"),
        ("3 * 4 + 2", "", "mixed operations"),
        ("30 * 20 / 100", "20% of 30", "percentages"),
    ],
)
def test_topic_from_equation(equation: str, text: str, topic: str) -> None:
    assert topic_from_equation(equation, text) == topic


@pytest.mark.realdata
@pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data not present")
def test_real_corpora_read_mostly_clean() -> None:
    for reader, rel, min_kept in (
        (read_gsm8k, "gsm8k/train.jsonl", 0.9),
        (read_svamp, "svamp/SVAMP.json", 0.95),
        (read_mawps, "mawps/fold0_train.csv", 0.9),
    ):
        rows, report = reader(SHARED / rel, max_rows=400)
        assert report.rows == 400
        assert len(rows) >= min_kept * 400, (rel, report.skipped)
        for r in rows:
            assert evaluate(r.equation) == pytest.approx(r.answer, rel=1e-4, abs=1e-4)
