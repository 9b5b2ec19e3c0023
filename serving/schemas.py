"""Request and response models of the HTTP API (the backend's contract).

Every field is bounded by a constant of :mod:`serving.limits`; pydantic turns a violation into a
422 whose ``loc`` names the field. Cross-field rules (topic count, timestamps after ``now``) are
checked in model validators whose messages name the offending field path.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Strict,
    StrictBool,
    StringConstraints,
    Tag,
    model_validator,
)
from pydantic.config import JsonDict

from core.schema import ACTIVITIES
from serving import ids, limits
from serving.topics import SUPPORTED_TOPICS, request_topic, topic_pattern, unknown_topic_message

# Largest attempts_per_topic value accepted; the features count at most
# core.summary.MAX_SUMMARY_COUNT of them (docs/serving.md).
MAX_ATTEMPTS_COUNT = 1_000_000

# Printable text without control characters; topic ids must not use the reserved prefix.
_TEXT_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
# Prompt words: printable, not blank, without ',' or ':' (they delimit the prompt format) nor
# '<' or '>' (special tokens; serving.prompt refuses them too), and without invisible or
# bidirectional formatting characters (a word that reads differently).
_NOT_WORD = rf"\x00-\x1f\x7f-\x9f{ids.INVISIBLE_CHARS},:<>"
_WORD_PATTERN = rf"^[^{_NOT_WORD}]*[^{_NOT_WORD}\s][^{_NOT_WORD}]*$"


def _not_reserved(topic: str) -> str:
    if topic.startswith(limits.RESERVED_TOPIC_PREFIX):
        raise ValueError(f"topic ids starting with {limits.RESERVED_TOPIC_PREFIX!r} are reserved")
    return topic


# Id and time rules are serving.ids's, which the data stage applies to training events too.
TopicId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=ids.MAX_LEN["topic_id"], pattern=ids.ID_PATTERN),
    AfterValidator(_not_reserved),
]
Score = Annotated[float, Strict(), Field(ge=0.0, le=1.0, allow_inf_nan=False)]


def _json_integer(value: object) -> object:
    # JSON Schema's "integer" is any number with a zero fractional part (4102444799.0 too).
    # Booleans and fractions are left for the strict int check to refuse.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# An integer as JSON Schema means it (beside Strict(), which alone would refuse 7.0). Written
# after the field's bounds, so the published schema keeps them as minimum / maximum.
JSON_INT = BeforeValidator(_json_integer)
Timestamp = Annotated[int, Strict(), Field(ge=ids.TIMESTAMP_MIN, le=ids.TIMESTAMP_MAX), JSON_INT]
Activity = Literal[ACTIVITIES]  # type: ignore[valid-type]


def _quiz_scores_shape(value: object) -> str:
    # A JSON list is the flat (topic-less) form; anything else is validated as the mapping.
    return "flat" if isinstance(value, list) else "by_topic"


class _Strict(BaseModel):
    # Unknown fields are refused so a typo in a field name is a 422, not a silent default.
    # Numbers and booleans are strict (Strict() on each): false is not the number 0, nor 0 a
    # boolean, as the published schema says; containers stay lax for Python callers (tuples).
    model_config = ConfigDict(extra="forbid")


class Attempt(_Strict):
    """One graded activity of the learner in a topic (an event of the shared schema)."""

    score: Score
    timestamp: Timestamp = Field(description="UTC seconds since the epoch")
    time_spent_s: (
        Annotated[float, Strict(), Field(ge=0.0, le=limits.MAX_TIME_SPENT_S, allow_inf_nan=False)]
        | None
    ) = None
    hints_used: Annotated[int, Strict(), Field(ge=0, le=limits.MAX_HINTS), JSON_INT] | None = None
    # strict: JSON true/false only (0 / 1 / "yes" were accepted, unlike the published schema)
    is_revisit: StrictBool = False
    activity: Activity = "quiz"


# Rules across fields (checked in _check_totals), published as far as JSON Schema can say them so
# that a request valid against the OpenAPI document is not refused. "At least one topic": one of
# the per-topic fields names a topic. "A count goes beside its average": counts need averages
# (that each count's topic has an average, JSON Schema cannot say: keys of two objects).
_CROSS_FIELD_SCHEMA: JsonDict = {
    "anyOf": [
        {"required": [name], "properties": {name: {"type": "object", "minProperties": 1}}}
        for name in (
            "average_score_per_topic",
            "recent_quiz_scores",
            "time_spent_per_topic_minutes",
            "recent_attempts",
        )
    ],
    "if": {
        "required": ["attempts_per_topic"],
        "properties": {"attempts_per_topic": {"type": "object", "minProperties": 1}},
    },
    "then": {
        "required": ["average_score_per_topic"],
        "properties": {"average_score_per_topic": {"minProperties": 1}},
    },
}
# What the schema cannot say; the server answers 422 naming the field (docs/errors.md).
_CROSS_FIELD_RULES = (
    "Rules across fields that JSON Schema cannot state, checked by the server (422): at most "
    f"{limits.MAX_TOPICS} distinct topics across the per-topic fields; at most "
    f"{limits.MAX_TOTAL_EVENTS} events (recent_attempts + recent_quiz_scores + "
    "average_score_per_topic entries); every attempts_per_topic key is also an "
    "average_score_per_topic key; no recent_attempts timestamp after now (without now: the "
    "server's clock)."
)


def _input_schema(summary: str) -> JsonDict:
    return {**_CROSS_FIELD_SCHEMA, "description": f"{summary} {_CROSS_FIELD_RULES}"}


class WeaknessPredictionInput(_Strict):
    """A learner's summary and (optionally) recent attempts; docs/serving.md maps each field."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=_input_schema(
            "A learner's summary and (optionally) recent attempts; docs/serving.md maps each field."
        ),
    )

    user_id: Annotated[
        str,
        StringConstraints(min_length=1, max_length=ids.MAX_LEN["user_id"], pattern=ids.ID_PATTERN),
    ]
    average_score_per_topic: Annotated[
        dict[TopicId, Score], Field(max_length=limits.MAX_TOPICS)
    ] = Field(default_factory=dict)
    recent_quiz_scores: Annotated[
        Annotated[
            dict[TopicId, Annotated[list[Score], Field(max_length=limits.MAX_SCORES_PER_TOPIC)]],
            Field(max_length=limits.MAX_TOPICS),
            Tag("by_topic"),
        ]
        | Annotated[list[Score], Field(max_length=limits.MAX_SCORES_PER_TOPIC), Tag("flat")],
        Discriminator(_quiz_scores_shape),
    ] = Field(default_factory=dict)
    time_spent_per_topic_minutes: Annotated[
        dict[
            TopicId,
            Annotated[
                float,
                Strict(),
                Field(ge=0.0, le=limits.MAX_MINUTES_PER_TOPIC, allow_inf_nan=False),
            ],
        ],
        Field(max_length=limits.MAX_TOPICS),
    ] = Field(default_factory=dict)
    attempts_per_topic: (
        Annotated[
            dict[TopicId, Annotated[int, Strict(), Field(ge=1, le=MAX_ATTEMPTS_COUNT), JSON_INT]],
            Field(max_length=limits.MAX_TOPICS),
        ]
        | None
    ) = Field(
        default=None,
        description="number of graded attempts behind each average_score_per_topic entry",
    )
    recent_attempts: (
        Annotated[
            dict[
                TopicId,
                Annotated[list[Attempt], Field(max_length=limits.MAX_ATTEMPTS_PER_TOPIC)],
            ],
            Field(max_length=limits.MAX_TOPICS),
        ]
        | None
    ) = None
    now: Timestamp | None = Field(
        default=None, description="UTC seconds since the epoch; default: the server's clock"
    )

    @model_validator(mode="after")
    def _check_totals(self) -> WeaknessPredictionInput:
        topics = self.topics()
        if not topics:
            raise ValueError(
                "no topic given: average_score_per_topic, recent_quiz_scores, "
                "time_spent_per_topic_minutes or recent_attempts must name at least one topic"
            )
        if len(topics) > limits.MAX_TOPICS:
            raise ValueError(
                f"{len(topics)} distinct topics across fields; allowed at most {limits.MAX_TOPICS}"
            )
        n_events = sum(len(v) for v in (self.recent_attempts or {}).values())
        if isinstance(self.recent_quiz_scores, dict):
            n_events += sum(len(v) for v in self.recent_quiz_scores.values())
        else:
            n_events += len(self.recent_quiz_scores)
        n_events += len(self.average_score_per_topic)
        if n_events > limits.MAX_TOTAL_EVENTS:
            raise ValueError(
                f"recent_attempts + recent_quiz_scores + average_score_per_topic make {n_events} "
                f"events; allowed at most {limits.MAX_TOTAL_EVENTS}"
            )
        orphans = sorted(set(self.attempts_per_topic or {}) - set(self.average_score_per_topic))
        if orphans:
            raise ValueError(
                f"attempts_per_topic[{orphans[0]!r}]: no average_score_per_topic entry for this "
                "topic; a count goes beside the average it was computed over"
            )
        if self.now is not None and self.recent_attempts:
            for topic, attempts in self.recent_attempts.items():
                for i, attempt in enumerate(attempts):
                    if attempt.timestamp > self.now:
                        raise ValueError(
                            f"recent_attempts[{topic!r}][{i}].timestamp={attempt.timestamp} is "
                            f"after now={self.now}; attempts must precede the prediction time"
                        )
        return self

    def topics(self) -> list[str]:
        """Distinct topics named by any field, sorted (the topics a prediction is made for)."""
        names: set[str] = set(self.average_score_per_topic) | set(self.time_spent_per_topic_minutes)
        if isinstance(self.recent_quiz_scores, dict):
            names |= set(self.recent_quiz_scores)
        names |= set(self.recent_attempts or {})
        return sorted(names)


class TopicWeakness(BaseModel):
    """One topic's calibrated probability of failing the next assessment, and what to do."""

    topic_id: str
    weakness_probability: float
    suggested_action_level: str
    topic_known: bool = Field(
        default=True,
        description="false when the model was not trained on this topic (nor an alias of it): "
        "its probability then uses the all-topic peer prior instead of the topic's peer mean",
    )


class WeaknessPredictionOutput(BaseModel):
    """Predictions for every requested topic, most likely failure first."""

    user_id: str
    predicted_weaknesses: list[TopicWeakness]
    model_version: str


def _canonical_topic(name: str) -> str:
    # A synonym ("sums", "percent") becomes its canonical topic before prompting.
    topic = request_topic(name, SUPPORTED_TOPICS)
    if topic is None:
        raise ValueError(unknown_topic_message(name, SUPPORTED_TOPICS))
    return topic


def _known_topic(name: str) -> str:
    # The name itself is kept (the answer echoes it); only its topic is checked here.
    _canonical_topic(name)
    return name


# Exactly the names _canonical_topic accepts (any case, '-'/'_' between words, '&' for "and",
# plurals): published as the topic fields' pattern. The served app narrows it to the loaded
# generator's topics (serving.app).
TOPIC_NAME_PATTERN = topic_pattern(SUPPORTED_TOPICS)
# A topic field's length and published pattern; each field adds its own validator (a synonym
# becomes its topic, or the name is checked and kept) and description.
_TopicName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=limits.MAX_TOPIC_LEN),
    Field(json_schema_extra={"pattern": TOPIC_NAME_PATTERN}),
]


def _complete_length(n: int) -> int:
    if n < limits.MIN_COMPLETE_LENGTH:
        raise ValueError(
            f"max_length={n} is too small to hold a complete problem (statement, question and "
            f"equation); the minimum is {limits.MIN_COMPLETE_LENGTH}"
        )
    return n


class WordProblemInput(_Strict):
    """A request for one word problem about ``topic`` using ``keywords``."""

    topic: Annotated[
        _TopicName,
        AfterValidator(_canonical_topic),
        # the served app names the loaded generator's topics here (serving.app)
        Field(description="a supported topic or a synonym (GET /api/v1/ai/models lists them)"),
    ]
    keywords: Annotated[
        list[
            Annotated[
                str,
                StringConstraints(
                    min_length=1, max_length=limits.MAX_KEYWORD_LEN, pattern=_WORD_PATTERN
                ),
            ]
        ],
        Field(min_length=1, max_length=limits.MAX_KEYWORDS),
    ]
    prompt_prefix: Annotated[
        str, StringConstraints(max_length=limits.MAX_PREFIX_LEN, pattern=_TEXT_PATTERN)
    ] = ""
    max_length: Annotated[
        int,
        Strict(),
        Field(
            le=limits.MAX_LENGTH_RANGE[1], json_schema_extra={"minimum": limits.MAX_LENGTH_RANGE[0]}
        ),
        JSON_INT,
        AfterValidator(_complete_length),
    ] = limits.DEFAULT_MAX_LENGTH
    seed: (
        Annotated[int, Strict(), Field(ge=limits.SEED_RANGE[0], le=limits.SEED_RANGE[1]), JSON_INT]
        | None
    ) = None
    temperature: (
        Annotated[
            float,
            Strict(),
            Field(
                ge=limits.TEMPERATURE_RANGE[0],
                le=limits.TEMPERATURE_RANGE[1],
                allow_inf_nan=False,
            ),
        ]
        | None
    ) = None


class KeywordUnused(BaseModel):
    """A requested keyword the problem does not use, and why."""

    keyword: str
    reason: str


class WordProblemOutput(BaseModel):
    """The generated problem; ``equation``/``answer`` only when they pass the consistency check."""

    generated_problem_text: str
    equation: str | None = None
    answer: float | None = None
    answer_text: str | None = Field(
        default=None,
        description="the answer as a pupil writes it: '9/10' for a 'what fraction' question",
    )
    consistent: bool
    missing_keywords: list[str] = Field(
        default_factory=list,
        description="requested keywords the text lacks (empty when every keyword is used)",
    )
    keywords_unused: list[KeywordUnused] = Field(
        default_factory=list,
        description="requested keywords no role of the problem could take sensibly, with why "
        "(reported, never forced into a role they cannot play)",
    )
    attempts: int
    seed: int
    model_version: str
    complete: bool = Field(
        default=True,
        description="false when the text does not end with its question (cut by max_length)",
    )
    incomplete_reason: str | None = None

    @model_validator(mode="after")
    def _mark_incomplete(self) -> WordProblemOutput:
        # Whoever builds the output, a text without its final '?' is never passed off as whole.
        if self.complete and not self.generated_problem_text.rstrip().endswith("?"):
            self.complete = False
        if not self.complete and not self.incomplete_reason:
            self.incomplete_reason = (
                "the text stops before its question (no final '?'): cut at max_length or "
                "never asked; raise max_length or retry"
            )
        return self


class ModelInfo(BaseModel):
    """What is loaded: identity and the gates the artifact passed when it was packaged."""

    name: str
    version: str
    variant: str | None = None
    path: str
    gates: dict[str, object] | list[object] | None = None
    topics: list[str] | None = Field(
        default=None, description="generator: the topics it serves (canonical names)"
    )
    topic_synonyms: dict[str, str] | None = Field(
        default=None, description="generator: accepted synonym -> canonical topic"
    )


class ModelsOutput(BaseModel):
    models: list[ModelInfo]


# ----------------------------------------------------------------------------- practice sets

Keyword = Annotated[
    str,
    StringConstraints(min_length=1, max_length=limits.MAX_KEYWORD_LEN, pattern=_WORD_PATTERN),
]
Grade = Annotated[int, Field(ge=limits.GRADE_RANGE[0], le=limits.GRADE_RANGE[1])]
# In a JSON body integers are strict like every number (false is not 0); a query string is
# text, so the question query keeps the lax Grade.
StrictGrade = Annotated[
    int, Strict(), Field(ge=limits.GRADE_RANGE[0], le=limits.GRADE_RANGE[1]), JSON_INT
]


class PracticeSetInput(WeaknessPredictionInput):
    """A learner's summary (the weakness input) and what the practice set should hold."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra=_input_schema(
            "A learner's summary (the weakness input) and what the practice set should hold."
        ),
    )

    n_topics: Annotated[
        int,
        Strict(),
        Field(ge=limits.PRACTICE_TOPICS_RANGE[0], le=limits.PRACTICE_TOPICS_RANGE[1]),
        JSON_INT,
    ] = Field(default=limits.DEFAULT_PRACTICE_TOPICS, description="weakest topics to practise")
    problems_per_topic: Annotated[
        int,
        Strict(),
        Field(ge=limits.PRACTICE_PROBLEMS_RANGE[0], le=limits.PRACTICE_PROBLEMS_RANGE[1]),
        JSON_INT,
    ] = limits.DEFAULT_PRACTICE_PROBLEMS
    grade: StrictGrade | None = Field(
        default=None, description="the learner's school grade: the problems' numbers fit it"
    )
    keywords: Annotated[list[Keyword], Field(max_length=limits.MAX_KEYWORDS)] = Field(
        default_factory=list,
        description="themes the learner likes, used in the problems where a role fits them",
    )
    seed: (
        Annotated[int, Strict(), Field(ge=limits.SEED_RANGE[0], le=limits.SEED_RANGE[1]), JSON_INT]
        | None
    ) = None


class Reason(BaseModel):
    """Evidence behind a topic's probability, as an educator reads it."""

    text: str
    feature: str = Field(description="the model feature (or group) the text describes")
    effect: float | None = Field(
        default=None,
        description="how much lower the probability is with this evidence set to the typical "
        "learner's (peer mean score, practice a day ago): its share of this prediction",
    )


class PracticeProblem(BaseModel):
    """One generated problem whose equation answers its text and fits the topic."""

    text: str
    equation: str
    answer: float
    answer_text: str
    seed: int


class PracticeTopic(BaseModel):
    """One of the weakest topics: why, and problems to practise it."""

    topic_id: str
    weakness_probability: float
    suggested_action_level: str
    topic_known: bool
    reasons: list[Reason]
    generator_topic: str | None = Field(
        default=None, description="the generator's topic the problems are about (None: none)"
    )
    problems: list[PracticeProblem] = Field(default_factory=list)
    note: str | None = Field(
        default=None, description="why the topic has no or fewer problems than asked"
    )


class PracticeSetOutput(BaseModel):
    """The learner's weakest topics, most likely failure first, each with problems."""

    user_id: str
    grade: int | None
    topics: list[PracticeTopic]
    weakness_model_version: str
    generator_model_version: str


class QuestionOutput(WordProblemOutput):
    """``GET /api/v1/q/questions/generate``: one AI word problem for a topic id."""

    question_type: Literal["ai_word_problem"]
    topic_id: str
    topic: str = Field(description="the generator topic topic_id maps to (through synonyms)")


class QuestionQuery(_Strict):
    """Query of ``GET /api/v1/q/questions/generate`` (the backend's question service)."""

    question_type: Literal["ai_word_problem"] = Field(
        description="the kind of question; only AI word problems are generated here"
    )
    topic_id: Annotated[
        _TopicName,
        AfterValidator(_known_topic),
        Field(description="a generator topic or a synonym (GET /api/v1/ai/models lists them)"),
    ]
    keywords: Annotated[list[Keyword], Field(max_length=limits.MAX_KEYWORDS)] = Field(
        default_factory=list, description="repeat the parameter for several; default: a theme"
    )
    grade: Grade | None = None
    max_length: Annotated[
        int,
        Field(
            le=limits.MAX_LENGTH_RANGE[1], json_schema_extra={"minimum": limits.MAX_LENGTH_RANGE[0]}
        ),
        AfterValidator(_complete_length),
    ] = limits.DEFAULT_MAX_LENGTH
    seed: Annotated[int, Field(ge=limits.SEED_RANGE[0], le=limits.SEED_RANGE[1])] | None = None
