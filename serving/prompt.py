"""The generator's text contract: the encoder prompt and the decoder target, one definition.

Training (``prepare_text`` / ``train_generator``) and serving build prompts with these functions,
so a served request is worded exactly like the training examples. Stdlib only (serving-reachable).

Prompt: ``generate word problem about <topic> using keywords <k1>, <k2>: <prefix>``
Target: ``<problem> ||| <equation>``
"""

from __future__ import annotations

import re
from collections.abc import Sequence

TARGET_SEP = "|||"
PROMPT_TEMPLATE = "generate word problem about {topic} using keywords {keywords}: {prefix}"

_SPACES = re.compile(r"\s+")


class PromptError(ValueError):
    """A topic, keyword, prefix or target that cannot be put into the text format."""


def _clean(text: str, what: str) -> str:
    """Collapse whitespace so equal requests give byte-identical prompts."""
    if not isinstance(text, str):
        raise PromptError(f"{what}: expected a string, got {type(text).__name__}")
    return _SPACES.sub(" ", text).strip()


def format_prompt(topic: str, keywords: Sequence[str], prompt_prefix: str = "") -> str:
    """Encoder input for (topic, keywords, prefix).

    Keywords keep their order (the caller's choice); commas and colons inside a keyword or topic
    are rejected because they would make the prompt ambiguous to the model.
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
        kws.append(kw_c)
    if not kws:
        raise PromptError("keywords: at least one keyword is required")
    prefix_c = _clean(prompt_prefix, "prompt_prefix")
    text = PROMPT_TEMPLATE.format(topic=topic_c, keywords=", ".join(kws), prefix=prefix_c)
    return text.rstrip()


def format_target(problem: str, equation: str) -> str:
    """Decoder target: the problem text, the separator, then the equation that answers it."""
    problem_c = _clean(problem, "problem")
    equation_c = _clean(equation, "equation")
    if not problem_c:
        raise PromptError("problem: must not be empty")
    if TARGET_SEP in problem_c or TARGET_SEP in equation_c:
        raise PromptError(f"problem/equation: must not contain the separator {TARGET_SEP!r}")
    return f"{problem_c} {TARGET_SEP} {equation_c}"


def parse_target(text: str) -> tuple[str, str | None]:
    """Split generated text into (problem, equation); equation is None when absent or empty.

    Generated text is untrusted: a missing separator just means no equation, never an error.
    Text after a second separator is ignored.
    """
    if not isinstance(text, str):
        raise PromptError(f"text: expected a string, got {type(text).__name__}")
    problem, sep, rest = text.partition(TARGET_SEP)
    problem_c = _SPACES.sub(" ", problem).strip()
    if not sep:
        return problem_c, None
    equation = _SPACES.sub(" ", rest.partition(TARGET_SEP)[0]).strip()
    return problem_c, (equation or None)
