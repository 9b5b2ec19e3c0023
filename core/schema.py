"""The learner-event table: one row per graded activity (contract in docs/data_schema.md).

Pure Python on purpose: serving imports these names without pulling pandas.
"""

from __future__ import annotations

# column -> logical dtype. `timestamp` is UTC, stored as int64 seconds since the epoch.
EVENT_COLUMNS: dict[str, str] = {
    "user_id": "string",
    "topic_id": "string",
    "item_id": "string",  # optional content: may be empty string when unknown
    "timestamp": "int64",  # seconds since epoch, UTC
    "activity": "string",  # one of ACTIVITIES
    "score": "float64",  # in [0, 1]
    "time_spent_s": "float64",  # >= 0
    "hints_used": "int64",  # >= 0
    "attempt": "int64",  # >= 1; 1 = first try
    "is_revisit": "bool",
}
ACTIVITIES: tuple[str, ...] = ("quiz", "minigame", "exercise")
# A duplicate event is the same learner, topic, item and timestamp twice.
DUPLICATE_KEY: tuple[str, ...] = ("user_id", "topic_id", "item_id", "timestamp")
# Columns of the simulator's side table (aligned row by row with the events file).
ORACLE_COLUMNS: dict[str, str] = {"p_fail_true": "float64", "mastery_true": "float64"}
