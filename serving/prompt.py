"""The generator's text contract: the encoder prompt and the decoder target, one definition.

Training (``prepare_text`` / ``train_generator``) and serving build prompts with these functions,
so a served request is worded exactly like the training examples. Stdlib only (serving-reachable).

Prompt: ``generate word problem about <topic> using keywords <k1> boxes, <k2> garden: <prefix>``
Target: ``<problem with keyword slots> ||| <equation with number slots>``

Keyword slots (docs/design.md): the prompt names each requested keyword after its slot
marker ``<ki>`` (i = 1-based request order), so the model learns to write the slot wherever the
keyword goes and the realizer (``serving.realize``) renders the real word, any noun a teacher types,
correctly inflected. The keyword text itself stays in the prompt, so a pretrained base can use its
meaning and the scratch model its role (``perimeter``, ``discount`` select a sentence shape).

Number slots: in the target, each equation number that the problem states is written as a slot
``n<i>``, the i-th number of the problem text (1-based, ``serving.arithmetic.numbers_in`` order),
and :func:`parse_target` renders the slots back into numbers. ``Maya has 164 shells and finds 4
more...`` is trained as ``... ||| n1 + n2``, not ``... ||| 164 + 4``: the decoder learns which
stated quantity goes where (the equation's structure) instead of copying multi-digit numbers
token by token, which a small model does poorly (it wrote ``164 + 164``). This is the "number
mapping" of the math-word-problem literature (SVAMP / MAWPS publish their equations this way).
Numbers the text does not state (the implicit 2 and 100, or a corpus' extra constants) stay
literal. Serving and every metric see rendered equations, so the output contract is unchanged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from serving.arithmetic import NUMBER_LITERAL, numbers_in

TARGET_SEP = "|||"
PROMPT_TEMPLATE = "generate word problem about {topic} using keywords {keywords}: {prefix}"
# Keyword slot markers: `<k1>`..`<k8>` (serving.realize.SLOT_TOKENS holds them with the plurals).
MAX_KEYWORD_SLOTS = 8
KEYWORD_MARKER = "<k{index}>"

_SPACES = re.compile(r"\s+")
# A grade named anywhere in the prefix ("For my grade 4 students:", "Grade 3 pupils, easy",
# "Year 5 homework"): the prompt says it the one way training does, so the wording a teacher
# picks is not a prompt the model never saw. The rest of such a prefix carries nothing the
# model learnt. A school year (England's "Year 5", ages 9-10) is one above the US grade of the
# same pupils.
_GRADE = re.compile(r"\b(grade|year)\s*(\d{1,2})\b", re.IGNORECASE)
CANONICAL_GRADE_PREFIX = "For a grade {grade} class:"
SLOT_PREFIX = "n"
# An equation number literal standing alone (not inside a word or a longer number), and a slot.
_EQ_NUMBER = re.compile(rf"(?<![\w.])({NUMBER_LITERAL})(?![\w.])")
_SLOT = re.compile(rf"(?<![\w.]){SLOT_PREFIX}\s?(\d+)(?![\w.])")


class PromptError(ValueError):
    """A topic, keyword, prefix or target that cannot be put into the text format."""


def _clean(text: str, what: str) -> str:
    """Collapse whitespace so equal requests give byte-identical prompts."""
    if not isinstance(text, str):
        raise PromptError(f"{what}: expected a string, got {type(text).__name__}")
    return _SPACES.sub(" ", text).strip()


def format_prompt(
    topic: str,
    keywords: Sequence[str],
    prompt_prefix: str = "",
    *,
    roles: Sequence[str] | None = None,
) -> str:
    """Encoder input for (topic, keywords, prefix).

    A prefix naming a grade is written the canonical way (:func:`canonical_prefix`).
    Keywords keep their order (the caller's choice) and each follows its slot marker
    (``<k1> boxes, <k2> garden``), or, for a typed-role model, is followed by the role it is to
    play (``boxes (cont), bakery (store), profit (word)``: ``roles``, ``serving.planner``);
    commas and colons inside a keyword or topic, and angle brackets inside a keyword, are
    rejected because they would make the prompt ambiguous to the model.
    """
    topic_c = _clean(topic, "topic")
    if not topic_c:
        raise PromptError("topic: must not be empty")
    if any(c in topic_c for c in ",:"):
        raise PromptError(f"topic: {topic!r} must not contain ',' or ':'")
    if isinstance(keywords, str):
        raise PromptError("keywords: expected a sequence of strings, got one string")
    kws = []
    for i, kw in enumerate(keywords):
        kw_c = _clean(kw, f"keywords[{i}]")
        if not kw_c:
            raise PromptError(f"keywords[{i}]: must not be empty")
        if any(c in kw_c for c in ",:"):
            raise PromptError(f"keywords[{i}]: {kw!r} must not contain ',' or ':'")
        if any(c in kw_c for c in "<>"):
            raise PromptError(f"keywords[{i}]: {kw!r} must not contain '<' or '>'")
        kws.append(kw_c)
    if not kws:
        raise PromptError("keywords: at least one keyword is required")
    if len(kws) > MAX_KEYWORD_SLOTS:
        raise PromptError(f"keywords: at most {MAX_KEYWORD_SLOTS} keywords, got {len(kws)}")
    prefix_c = canonical_prefix(_clean(prompt_prefix, "prompt_prefix"))
    if roles is not None:
        # typed roles (serving.roles): each keyword with the role it is to play, no slot
        # marker; the realizer binds the keywords to the decoded roles by class
        if len(roles) != len(kws):
            raise PromptError(f"roles: {len(roles)} for {len(kws)} keywords")
        marked = ", ".join(f"{kw} ({role})" for kw, role in zip(kws, roles, strict=True))
    else:
        marked = ", ".join(f"{KEYWORD_MARKER.format(index=i)} {kw}" for i, kw in enumerate(kws, 1))
    text = PROMPT_TEMPLATE.format(topic=topic_c, keywords=marked, prefix=prefix_c)
    return text.rstrip()


def grade_of(prefix: str) -> int | None:
    """The school grade a prefix names ("grade 4" -> 4, "Year 5" -> 4), None when it names none."""
    m = _GRADE.search(prefix or "")
    if m is None:
        return None
    n = int(m.group(2))
    return max(1, n - 1) if m.group(1).lower() == "year" else n


def canonical_prefix(prefix: str) -> str:
    """``"For a grade N class:"`` when the prefix names grade N (or school year N+1), else the
    prefix as given."""
    grade = grade_of(prefix)
    return prefix if grade is None else CANONICAL_GRADE_PREFIX.format(grade=grade)


def _number_text(value: float) -> str:
    """A problem number as an equation literal: ``12`` not ``12.0``; no exponent notation."""
    if value == int(value):
        return str(int(value))
    return repr(value)


def equation_to_slots(problem: str, equation: str) -> str:
    """Write each equation number the problem states as its slot ``n<i>`` (see module doc).

    Equal numbers are matched to the problem's occurrences in order, each used once, so
    ``3 + 3 + 4`` over ``... 3 ... 3 ... 4 ...`` becomes ``n1 + n2 + n3``; a number with no
    unused occurrence left stays literal.
    """
    stated = numbers_in(problem)
    used = [False] * len(stated)

    def to_slot(m: re.Match[str]) -> str:
        value = float(m.group(1))
        for i, (x, taken) in enumerate(zip(stated, used, strict=True)):
            if not taken and x == value:
                used[i] = True
                return f"{SLOT_PREFIX}{i + 1}"
        return m.group(1)

    return _EQ_NUMBER.sub(to_slot, equation)


def render_slots(problem: str, equation: str) -> str:
    """Replace every slot ``n<i>`` by the problem's i-th number; an out-of-range slot (or one
    naming a number too large for a float) stays as written, so the arithmetic parser rejects
    the equation (letters are not arithmetic)."""
    stated = numbers_in(problem)

    def to_number(m: re.Match[str]) -> str:
        i = int(m.group(1)) - 1
        if not 0 <= i < len(stated) or not math.isfinite(stated[i]):
            return m.group(0)  # e.g. a degenerate 400-digit run that overflows a float
        return _number_text(stated[i])

    return _SLOT.sub(to_number, equation)


def format_target(problem: str, equation: str, *, slotted_problem: str | None = None) -> str:
    """Decoder target: the problem text, the separator, then the equation in slot form.

    ``slotted_problem`` (the problem with keyword slots, from ``serving.realize.delexicalize``)
    is the text written when given; the number slots are always counted on the lexical
    ``problem``, because that is the text the realizer gives back before rendering them (a
    keyword slot's digit, as in ``<k2s>``, is not a number of the problem).
    """
    problem_c = _clean(problem, "problem")
    equation_c = _clean(equation, "equation")
    if not problem_c:
        raise PromptError("problem: must not be empty")
    if TARGET_SEP in problem_c or TARGET_SEP in equation_c:
        raise PromptError(f"problem/equation: must not contain the separator {TARGET_SEP!r}")
    if _SLOT.search(equation_c):
        raise PromptError(
            f"equation: {equation_c!r} already holds a slot ({SLOT_PREFIX}<digits>); "
            "pass the equation with numbers"
        )
    shown = problem_c if slotted_problem is None else _clean(slotted_problem, "slotted_problem")
    return join_target(shown, equation_to_slots(problem_c, equation_c))


def join_target(slotted_problem: str, slot_equation: str) -> str:
    """Decoder target from a problem text already in slot form and an equation over ``n<i>``
    (templates build both from the shape: ``data.word_problems.templates.render_skeleton``)."""
    shown = _clean(slotted_problem, "slotted_problem")
    equation_c = _clean(slot_equation, "slot_equation")
    if not shown or TARGET_SEP in shown:
        raise PromptError(f"slotted_problem: must be non-empty and free of {TARGET_SEP!r}")
    if TARGET_SEP in equation_c:
        raise PromptError(f"slot_equation: must not contain the separator {TARGET_SEP!r}")
    return f"{shown} {TARGET_SEP} {equation_c}"


def parse_target(text: str) -> tuple[str, str | None]:
    """Split generated text into (problem, rendered equation); equation None when absent/empty.

    Slots are rendered with the problem's numbers (:func:`render_slots`). Generated text is
    untrusted: a missing separator just means no equation, never an error. Text after a second
    separator is ignored.
    """
    if not isinstance(text, str):
        raise PromptError(f"text: expected a string, got {type(text).__name__}")
    problem, sep, rest = text.partition(TARGET_SEP)
    problem_c = _SPACES.sub(" ", problem).strip()
    if not sep:
        return problem_c, None
    equation = _SPACES.sub(" ", rest.partition(TARGET_SEP)[0]).strip()
    return problem_c, (render_slots(problem_c, equation) if equation else None)
