"""Every bound a request must respect, in one place.

The pydantic schemas, the ASGI body-size guard and the docs read these constants, so tightening a
bound here tightens it everywhere. The numbers keep the worst request cheap: at most
``MAX_TOTAL_EVENTS`` history events reach the vectorised numpy feature kernel
(``core.kernel``, ~0.14 ms per 1,000 events) and at most ``MAX_LENGTH_RANGE[1]`` tokens are
decoded per generation attempt.
"""

from __future__ import annotations

from typing import Final

# --- transport
MAX_BODY_BYTES: Final = 256 * 1024  # larger bodies get 413 before any parsing

# --- identifiers
MAX_USER_ID_LEN: Final = 128
MAX_TOPIC_LEN: Final = 64
# Topic ids starting with this prefix are reserved for internal pseudo-topics.
RESERVED_TOPIC_PREFIX: Final = "__"

# --- weakness request
MAX_TOPICS: Final = 64  # distinct topics across all fields of one request
MAX_SCORES_PER_TOPIC: Final = 100  # recent_quiz_scores per topic (or in the flat list)
MAX_ATTEMPTS_PER_TOPIC: Final = 200  # recent_attempts per topic
MAX_TOTAL_EVENTS: Final = 4000  # all events built from one request
MAX_MINUTES_PER_TOPIC: Final = 1_000_000.0  # time_spent_per_topic_minutes
MAX_TIME_SPENT_S: Final = 86_400.0  # one attempt's time_spent_s
MAX_HINTS: Final = 1_000
# Epoch seconds accepted for `now` and attempt timestamps: 2000-01-01 .. 2100-01-01 UTC.
TIMESTAMP_RANGE: Final = (946_684_800, 4_102_444_800)

# --- word-problem request
MAX_KEYWORDS: Final = 8
MAX_KEYWORD_LEN: Final = 40
MAX_PREFIX_LEN: Final = 200
# Fewest new tokens that can hold a complete problem (statement, question, ' ||| ', equation,
# end token). Measured with the scratch 2,000-piece tokenizer of prepare_text, keyword slots
# added (2026-12-02): shortest complete target 30 tokens over 13,393 template records, 28 over
# the MAWPS/SVAMP/GSM8K problems ("Each <k1> costs $5. How much do 4 <k1s> cost? ||| n1 * n2");
# with <num> number slots (2026-12-02) 29 over the 8,000 default records ("<num> <k1s> are packed
# into <k2s> of <num>. How many <k2s> are needed? ||| n1 / n2").
# 24 leaves a margin for other tokenizers (a pretrained T5's pieces are longer). A smaller
# max_length is a 422; a larger one may still cut a longer problem (then complete=false).
MIN_COMPLETE_LENGTH: Final = 24
MAX_LENGTH_RANGE: Final = (MIN_COMPLETE_LENGTH, 128)  # max_length: new tokens per attempt
# The generator's one generation-length knob: what a request decodes when it names no max_length.
# The pipeline measures what a request gets, so every deployed-model check derives its length
# from this constant, never from a params key of its own: export_generator's parity check
# (pipelines.export_generator.run), quantize_generator's calibration, variant evaluation and
# served metrics (QuantizeConfig.max_new_tokens), package's evaluation-sample hash and promotion's
# re-evaluation (pipelines.package, pipelines.ci). Training writes at most
# train_generator.max_target_len tokens (the longest target it is taught): its greedy evaluation
# and the checkpoint's generation_config default are that number (TrainGeneratorConfig.
# max_new_tokens). serving.decoding.MAX_NEW_TOKENS_LIMIT is a hard cap, not a setting.
DEFAULT_MAX_LENGTH: Final = 64
SEED_RANGE: Final = (0, 2**31 - 1)
TEMPERATURE_RANGE: Final = (0.05, 2.0)

# --- practice-set request (weakest topics, each with generated problems)
# A practice set generates up to n_topics x problems_per_topic problems inside one request's
# time budget (settings.request_timeout_s): these bounds keep the worst one at 5 x 5 problems.
PRACTICE_TOPICS_RANGE: Final = (1, 5)
PRACTICE_PROBLEMS_RANGE: Final = (1, 5)
DEFAULT_PRACTICE_TOPICS: Final = 3
DEFAULT_PRACTICE_PROBLEMS: Final = 2
# School grades a problem's numbers can be fitted to (serving.numbers caps the level at grade 5)
GRADE_RANGE: Final = (1, 8)
