"""Readers for real word-problem corpora: GSM8K JSONL, SVAMP JSON, MAWPS CSV.

Each reader returns :class:`RawProblem` rows with one infix equation (parsed by
``serving.arithmetic``) and its answer. Policy for bad input:
- a file that is missing, unreadable or of the wrong shape (not JSONL / not a JSON list / missing
  columns) raises :class:`CorpusError` naming the file (and the row for JSON syntax errors);
- a row whose content cannot become a consistent record (missing field, equation that does not
  parse or does not evaluate to the stated answer) is skipped, counted by reason in
  :class:`ReadReport`, and logged once per file with the first few row numbers.
Topics come from the equation's operations (and SVAMP's ``Type``).
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import re
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from serving.arithmetic import EquationError, equation_numbers, evaluate, numbers_in

logger = logging.getLogger(__name__)

_ANNOTATION = re.compile(r"<<([^<>]*)=([^<>]*)>>")
_NUMBER_TOKEN = re.compile(r"\d+(?:\.\d*)?|\.\d+")
SVAMP_TYPES = {
    "Addition": "addition",
    "Subtraction": "subtraction",
    "Multiplication": "multiplication",
    "Common-Division": "division",
    "Common-Divison": "division",  # a typo present in the published file
}
MAX_EXAMPLES_LOGGED = 5


class AnswerMismatch(EquationError):
    """The equation parses but its value is not the corpus's answer."""


class CorpusError(ValueError):
    """A corpus file that cannot be read at all (missing, wrong format, missing columns)."""


@dataclass(frozen=True)
class RawProblem:
    """A problem read from a corpus, before keywords and ids are attached."""

    problem: str
    equation: str
    answer: float
    topic: str
    source: str
    row: int


@dataclass
class ReadReport:
    """Rows read and rows skipped (by reason) for one file."""

    path: str
    rows: int = 0
    kept: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def skip(self, row: int, reason: str, detail: str = "") -> None:
        """Count a skipped row under ``reason``; keep the first few as examples for the log."""
        self.skipped[reason] += 1
        if len(self.examples) < MAX_EXAMPLES_LOGGED:
            self.examples.append(f"row {row}: {reason}" + (f" ({detail})" if detail else ""))

    def log(self) -> None:
        """One warning per file for skipped rows, one info line for what was kept."""
        if self.skipped:
            logger.warning(
                "%s: skipped %d of %d rows (%s); e.g. %s",
                self.path,
                sum(self.skipped.values()),
                self.rows,
                dict(self.skipped),
                "; ".join(self.examples),
            )
        logger.info("%s: kept %d of %d rows", self.path, self.kept, self.rows)


def fmt_number(x: float) -> str:
    """``8.0`` -> ``8``, ``28.3`` -> ``28.3``: numbers as written in the problem text."""
    if float(x).is_integer():
        return str(int(x))
    return repr(float(x))


def _normalise_numbers(expr: str) -> str:
    """Rewrite number literals in an equation the way the text writes them (``76.0`` -> ``76``)."""
    return _NUMBER_TOKEN.sub(lambda m: fmt_number(float(m.group(0))), expr)


def _clean_spaces(expr: str) -> str:
    """One space around binary operators, none inside parentheses: ``( 4 - 3 )`` -> ``(4 - 3)``."""
    expr = re.sub(r"\s+", "", expr)
    expr = re.sub(r"(?<=[\d)])([-+*/^])", r" \1 ", expr)
    return expr


def topic_from_equation(equation: str, text: str = "") -> str:
    """Topic name from the operations used (``%`` in the text makes it ``percentages``)."""
    if "%" in text or "percent" in text.lower():
        return "percentages"
    ops = {c for c in _clean_spaces(equation).split() if c in "+-*/^"}
    if ops == {"+"}:
        return "addition"
    if ops == {"-"}:
        return "subtraction"
    if ops == {"*"} or ops == {"^"} or ops == {"*", "^"}:
        return "multiplication"
    if ops == {"/"}:
        return "division"
    if ops <= {"+", "-"}:
        return "addition and subtraction"
    if ops <= {"*", "/"}:
        return "multiplication and division"
    return "mixed operations"


def _reason(exc: Exception) -> str:
    """Skip-reason category of an exception raised while building a row."""
    if isinstance(exc, AnswerMismatch):
        return "answer_mismatch"
    if isinstance(exc, EquationError):
        return "bad_equation"
    return "bad_value"


def _consistent(equation: str, answer: float) -> float:
    """Value of ``equation``; raises EquationError when it does not equal ``answer``."""
    value = evaluate(equation)
    if not math.isclose(value, answer, rel_tol=1e-4, abs_tol=1e-4):
        raise AnswerMismatch(f"equation gives {value:g}, answer is {answer:g}")
    return value


# ----------------------------------------------------------------------------- GSM8K


def gsm8k_equation(question: str, solution: str, answer: float | None = None) -> str:
    """One infix equation from GSM8K's calculator annotations ``<<48/2=24>>``.

    A number in a later step that equals an earlier step's result (and is not written in the
    question) is replaced by that step's expression in parentheses, so a step expands to one
    equation over the question's numbers. The step returned is the last one whose result is
    ``answer`` (solutions often end with an unannotated remark), else the last step. Raises
    EquationError when there is no annotation.
    """
    steps = _ANNOTATION.findall(solution)
    if not steps:
        raise EquationError("no calculator annotations")
    given = set(numbers_in(question))
    expanded: dict[float, str] = {}
    last = ""
    best: str | None = None
    for expr, result in steps:
        expr = expr.replace(",", "").replace("x", "*").replace("×", "*")

        def sub(m: re.Match[str]) -> str:
            value = float(m.group(0))
            if value in expanded and value not in given:
                return f"({expanded[value]})"
            return fmt_number(value)

        last = _clean_spaces(_NUMBER_TOKEN.sub(sub, expr.strip()))
        try:
            value = float(result.replace(",", "").strip())
        except ValueError:
            continue
        expanded.setdefault(value, last)
        if answer is not None and math.isclose(value, answer, rel_tol=1e-9, abs_tol=1e-9):
            best = last
    return best if best is not None else last


class _Parsed(NamedTuple):
    """One row as a corpus format reads it; ``topic`` None: the equation's (the shared loop
    fills it in, with the source and the row)."""

    problem: str
    equation: str
    answer: float
    topic: str | None = None


class _Skip(Exception):
    """A row the reader passes over, counted under ``reason`` in the report."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason, self.detail = reason, detail


def _read(
    path: Path | str,
    name: str,
    rows: Callable[[Path], Generator[tuple[int, Any], None, None]],
    parse: Callable[[Path, int, Any], _Parsed],
    max_rows: int | None,
) -> tuple[list[RawProblem], ReadReport]:
    """The loop every corpus reader shares: ``rows(path)`` yields (row number, raw row) and
    raises CorpusError for a file it cannot read at all; ``parse`` turns one row into a problem
    or raises: ``_Skip`` or a bad value / equation skips the row (counted by reason, logged),
    CorpusError stops the read. The first ``max_rows`` rows are read. Each problem's source is
    ``name`` in lower case, and its topic the equation's where the corpus names none."""
    path = Path(path)
    if not path.is_file():
        raise CorpusError(f"{path}: {name} file not found")
    report = ReadReport(str(path))
    out: list[RawProblem] = []
    with contextlib.closing(rows(path)) as it:
        for row, raw in it:
            if max_rows is not None and report.rows >= max_rows:
                break
            report.rows += 1
            try:
                parsed = parse(path, row, raw)
                topic = parsed.topic or topic_from_equation(parsed.equation, parsed.problem)
                out.append(
                    RawProblem(
                        parsed.problem, parsed.equation, parsed.answer, topic, name.lower(), row
                    )
                )
            except _Skip as skip:
                report.skip(row, skip.reason, skip.detail)
            except CorpusError:
                raise
            except (TypeError, ValueError, EquationError) as exc:
                report.skip(row, _reason(exc), str(exc))
            else:
                report.kept += 1
    report.log()
    return out, report


class Reader(Protocol):
    """A corpus reader: the problems of one file (the first ``max_rows`` rows) and its report."""

    def __call__(
        self, path: Path | str, *, max_rows: int | None = None
    ) -> tuple[list[RawProblem], ReadReport]: ...


def _reader(
    name: str,
    rows: Callable[[Path], Generator[tuple[int, Any], None, None]],
    parse: Callable[[Path, int, Any], _Parsed],
    doc: str,
) -> Reader:
    """The public reader of one format: :func:`_read` with the format's rows and row parser
    (``doc`` says what the file holds)."""

    def read(
        path: Path | str, *, max_rows: int | None = None
    ) -> tuple[list[RawProblem], ReadReport]:
        return _read(path, name, rows, parse, max_rows)

    read.__name__ = read.__qualname__ = f"read_{name.lower()}"
    read.__doc__ = doc
    return read


def jsonl_lines(path: Path) -> Generator[tuple[int, str], None, None]:
    """The non-blank lines of a JSONL file, numbered from 1 (a corpus's rows, a text split's
    records)."""
    with path.open(encoding="utf-8") as fh:
        for row, line in enumerate(fh, start=1):
            if line.strip():
                yield row, line


def json_object(line: str, where: str, error: type[Exception]) -> dict[str, Any]:
    """One JSONL line as an object. A line that is not JSON, or not an object, raises
    ``error`` naming ``where`` (the file and row): every JSONL reader reports a bad line alike,
    and each raises the error its own callers catch."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise error(f"{where}: not JSON ({exc.msg})") from exc
    if not isinstance(obj, dict):
        raise error(f"{where}: expected an object")
    return obj


def _gsm8k_problem(path: Path, row: int, line: str) -> _Parsed:
    """One GSM8K line; a line that is not a JSON object stops the read (CorpusError)."""
    obj = json_object(line, f"{path}: row {row}", CorpusError)
    question, solution = obj.get("question"), obj.get("answer")
    if not isinstance(question, str) or not isinstance(solution, str):
        raise _Skip("missing_field", "question/answer")
    final = solution.rpartition("####")[2].strip().replace(",", "")
    answer = float(final)
    equation = gsm8k_equation(question, solution, answer)
    _consistent(equation, answer)
    problem = " ".join(question.split())
    return _Parsed(problem, equation, answer)


read_gsm8k = _reader(
    "GSM8K",
    jsonl_lines,
    _gsm8k_problem,
    "GSM8K JSONL (``question``, ``answer`` with annotations and ``#### 72``).",
)


# ----------------------------------------------------------------------------- SVAMP

_QUESTION_WORDS = ("How", "What", "Which", "Who", "When", "Where", "If")


def _join_body_question(body: str, question: str) -> str:
    """SVAMP's Body often ends mid-sentence; join it to the Question as one readable text."""
    body, question = " ".join(body.split()), " ".join(question.split())
    if not body:
        return question
    if body[-1] in ".?!":
        return f"{body} {question}"
    first = question.split(" ", 1)[0]
    if first in _QUESTION_WORDS:
        return f"{body}, {question[0].lower()}{question[1:]}"
    return f"{body}. {question}"


def _svamp_rows(path: Path) -> Generator[tuple[int, Any], None, None]:
    """The items of SVAMP's JSON list, numbered from 1 (CorpusError for any other file)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CorpusError(f"{path}: not JSON (line {exc.lineno}: {exc.msg})") from exc
    if not isinstance(data, list):
        raise CorpusError(f"{path}: expected a JSON list of problems, got {type(data).__name__}")
    yield from enumerate(data, start=1)


def _svamp_problem(path: Path, row: int, obj: Any) -> _Parsed:
    """One SVAMP item; its ``Type`` names the topic when SVAMP_TYPES knows it."""
    if not isinstance(obj, dict):
        raise _Skip("not_an_object")
    body, question, eq, ans = (obj.get(k) for k in ("Body", "Question", "Equation", "Answer"))
    if not isinstance(body, str) or not isinstance(question, str) or not isinstance(eq, str):
        raise _Skip("missing_field", "Body/Question/Equation")
    answer = float(ans)  # type: ignore[arg-type]
    equation = _clean_spaces(_normalise_numbers(eq))
    _consistent(equation, answer)
    problem = _join_body_question(body, question)
    return _Parsed(problem, equation, answer, SVAMP_TYPES.get(str(obj.get("Type", ""))))


read_svamp = _reader(
    "SVAMP",
    _svamp_rows,
    _svamp_problem,
    "SVAMP JSON list (``Body``, ``Question``, ``Equation``, ``Answer``, ``Type``).",
)


# ----------------------------------------------------------------------------- MAWPS

MAWPS_COLUMNS = ("Question", "Numbers", "Equation", "Answer")
_MASK = re.compile(r"number(\d+)")


def prefix_to_infix(tokens: list[str]) -> str:
    """Prefix (Polish) notation to a parenthesised infix string: ``- a b`` -> ``a - b``.

    Raises EquationError on a malformed expression (too few operands or leftovers).
    """
    pos = 0

    def walk(depth: int) -> tuple[str, bool]:
        nonlocal pos
        if depth > 64:
            raise EquationError("prefix equation nested too deep")
        if pos >= len(tokens):
            raise EquationError("prefix equation ends early")
        tok = tokens[pos]
        pos += 1
        if tok in ("+", "-", "*", "/", "^"):
            left, lc = walk(depth + 1)
            right, rc = walk(depth + 1)
            left = f"({left})" if lc else left
            right = f"({right})" if rc else right
            return f"{left} {tok} {right}", True
        return tok, False

    expr, _ = walk(0)
    if pos != len(tokens):
        raise EquationError(f"prefix equation has leftover tokens {tokens[pos:]}")
    return expr


def _detokenize(text: str) -> str:
    """MAWPS text is space-tokenised ('cake .'): re-attach punctuation."""
    text = " ".join(text.split())
    text = re.sub(r" ([.,?!;:%])", r"\1", text)
    text = re.sub(r"\$ (?=\d)", "$", text)
    return text


def _mawps_rows(path: Path) -> Generator[tuple[int, dict[str, Any]], None, None]:
    """The CSV records, numbered as file lines (row 1 is the header; CorpusError when a
    column of MAWPS_COLUMNS is missing)."""
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in MAWPS_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise CorpusError(f"{path}: missing column(s) {missing}; found {reader.fieldnames}")
        yield from enumerate(reader, start=2)


def _mawps_problem(path: Path, row: int, rec: dict[str, Any]) -> _Parsed:
    """One MAWPS record: ``numberK`` masks filled from ``Numbers``, the prefix equation made
    infix; every number of the equation but 1 and 2 must stand in the text."""
    values = [fmt_number(float(v)) for v in (rec["Numbers"] or "").split()]

    def unmask(m: re.Match[str]) -> str:
        idx = int(m.group(1))
        if idx >= len(values):
            raise EquationError(f"number{idx} has no value in Numbers")
        return values[idx]

    problem = _detokenize(_MASK.sub(unmask, rec["Question"] or ""))
    tokens = [_MASK.sub(unmask, t) for t in (rec["Equation"] or "").split()]
    equation = _clean_spaces(prefix_to_infix(tokens))
    answer = float(rec["Answer"])
    _consistent(equation, answer)
    if not set(equation_numbers(equation)) <= set(numbers_in(problem)) | {1.0, 2.0}:
        raise EquationError("equation uses numbers absent from the text")
    if not problem:
        raise _Skip("empty_question")
    return _Parsed(problem, equation, answer)


read_mawps = _reader(
    "MAWPS",
    _mawps_rows,
    _mawps_problem,
    "MAWPS CSV: masked ``number0..`` in ``Question``, values in ``Numbers``, prefix equation.",
)


READERS: dict[str, Reader] = {"gsm8k": read_gsm8k, "svamp": read_svamp, "mawps": read_mawps}
