"""A small, bounded arithmetic evaluator for generated equations (never ``eval``).

Generated equations are untrusted text, so every resource is bounded: input length, token count,
nesting depth, exponent size and the magnitude of every intermediate value. Anything outside the
grammar raises :class:`EquationError`; nothing can hang or exhaust memory. Stdlib only.

Grammar (usual precedence, ``^`` right-associative and tighter than unary minus)::

    expr  := term (("+" | "-") term)*
    term  := unary (("*" | "/") unary)*
    unary := ("-" | "+") unary | power
    power := atom ("^" unary)?
    atom  := NUMBER | "(" expr ")"

``**`` is accepted as ``^``; ``×``/``x`` between numbers is not (letters are rejected).
"""

from __future__ import annotations

import math
import re
from typing import NamedTuple

MAX_CHARS = 500
MAX_TOKENS = 200
MAX_DEPTH = 32
MAX_EXPONENT = 12.0
MAX_MAGNITUDE = 1e12

# A number literal of an equation; serving.prompt's number slots match the same shape.
NUMBER_LITERAL = r"\d+(?:\.\d*)?|\.\d+"
_TOKEN = re.compile(rf"\s*(?:({NUMBER_LITERAL})|(\*\*|[-+*/^()×÷]))")
# a digit glued to letters is part of a word, not a number of the problem: "3d printers",
# "the 2nd day" (a teacher's keyword "3d printer" shifted every number after it)
_NUMBER_IN_TEXT = re.compile(r"(?<![\d.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?!\d*[A-Za-z])")


class EquationError(ValueError):
    """The equation cannot be evaluated: bad syntax, out of bounds, or undefined (x / 0)."""


ArithmeticError_ = EquationError  # name used in the shared API sketch


def _tokenize(expr: str) -> list[str]:
    """Split into number and operator tokens; reject any other character with its position."""
    tokens: list[str] = []
    pos = 0
    n = len(expr)
    while pos < n:
        m = _TOKEN.match(expr, pos)
        if m is None:
            if expr[pos:].strip() == "":
                break
            bad = expr[pos:].lstrip()[:1]
            raise EquationError(f"unexpected character {bad!r} at position {pos}")
        tok = m.group(1) or m.group(2)
        tok = {"**": "^", "×": "*", "÷": "/"}.get(tok, tok)
        tokens.append(tok)
        if len(tokens) > MAX_TOKENS:
            raise EquationError(f"too many tokens (max {MAX_TOKENS})")
        pos = m.end()
    return tokens


def _check(value: float) -> float:
    if not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
        raise EquationError(f"value out of range (|x| <= {MAX_MAGNITUDE:g})")
    return value


class _Parser:
    """Recursive descent over the token list; depth bounded by MAX_DEPTH."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.i = 0
        self.depth = 0
        self.quotients: list[float] = []

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> str:
        tok = self.peek()
        if tok is None:
            raise EquationError("unexpected end of equation")
        self.i += 1
        return tok

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise EquationError(f"nesting too deep (max {MAX_DEPTH})")

    def expr(self) -> float:
        value = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            rhs = self.term()
            value = _check(value + rhs if op == "+" else value - rhs)
        return value

    def term(self) -> float:
        value = self.unary()
        while self.peek() in ("*", "/"):
            op = self.take()
            rhs = self.unary()
            if op == "*":
                value = _check(value * rhs)
            else:
                if rhs == 0:
                    raise EquationError("division by zero")
                value = _check(value / rhs)
                self.quotients.append(value)
        return value

    def unary(self) -> float:
        if self.peek() in ("-", "+"):
            op = self.take()
            self.enter()
            value = self.unary()
            self.depth -= 1
            return -value if op == "-" else value
        return self.power()

    def power(self) -> float:
        base = self.atom()
        if self.peek() != "^":
            return base
        self.take()
        self.enter()
        exponent = self.unary()
        self.depth -= 1
        if abs(exponent) > MAX_EXPONENT:
            raise EquationError(f"exponent {exponent:g} too large (|exponent| <= {MAX_EXPONENT:g})")
        if base == 0 and exponent < 0:
            raise EquationError("division by zero (0 to a negative power)")
        if base < 0 and exponent != int(exponent):
            raise EquationError("negative base with a fractional exponent")
        try:
            return _check(float(base**exponent))
        except (OverflowError, ZeroDivisionError) as exc:
            raise EquationError(f"power out of range: {exc}") from exc

    def atom(self) -> float:
        tok = self.take()
        if tok == "(":
            self.enter()
            value = self.expr()
            if self.take() != ")":
                raise EquationError("expected ')'")
            self.depth -= 1
            return value
        if tok[0].isdigit() or tok[0] == ".":
            return _check(float(tok))
        raise EquationError(f"unexpected {tok!r}")


def evaluate(expr: str) -> float:
    """Value of an arithmetic expression: ``+ - * / ^``, parentheses, unary minus, decimals.

    Raises EquationError (never anything else) for any input it cannot safely evaluate.
    """
    return _parse(expr).value


def quotients(expr: str) -> list[float]:
    """The result of every division of ``expr``, in evaluation order: a problem whose answer is
    whole can still divide 45 muffins into boxes of 10 on the way ("45 / 10 * 18"), which no
    pupil can do with whole boxes (raises EquationError as :func:`evaluate`)."""
    return _parse(expr).quotients


class _Parsed(NamedTuple):
    value: float
    quotients: list[float]


def _parse(expr: str) -> _Parsed:
    if not isinstance(expr, str):
        raise EquationError(f"expected a string, got {type(expr).__name__}")
    if len(expr) > MAX_CHARS:
        raise EquationError(f"equation too long ({len(expr)} chars, max {MAX_CHARS})")
    tokens = _tokenize(expr)
    if not tokens:
        raise EquationError("empty equation")
    parser = _Parser(tokens)
    value = parser.expr()
    if parser.i != len(tokens):
        raise EquationError(f"unexpected {tokens[parser.i]!r} after a complete expression")
    return _Parsed(value, parser.quotients)


def numbers_in(text: str) -> list[float]:
    """Numbers written with digits in ``text``, in order ("1,200" is 1200; "3/4" is 3 and 4).

    A sign is never part of a number: in prose "-" is a hyphen far more often than a minus.
    """
    out = []
    for m in _NUMBER_IN_TEXT.finditer(text):
        out.append(float(m.group(1).replace(",", "") + (m.group(2) or "")))
    return out


def equation_numbers(expr: str) -> list[float]:
    """The number literals of an equation, in order (raises EquationError on bad characters)."""
    return [float(t) for t in _tokenize(expr) if t[0].isdigit() or t[0] == "."]
