"""Reading the JSON files stages and the serving runtime hand each other (stdlib only).

One reader, so every missing or malformed file is reported the same way, in one line naming the
path. Each caller passes its own exception class (serving's ``ArtifactError``, the backend
export's error, or the defaults ``FileNotFoundError`` / ``ValueError`` in the pipeline), so a
layer keeps raising what its own callers catch. Pure Python: serving imports it without pandas,
like :mod:`core.schema`. (The text splits' JSONL reader is
:func:`data.word_problems.corpus.read_jsonl`.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_json(
    path: Path | str,
    *,
    missing: str = "required input not found",
    error: type[Exception] | None = None,
) -> Any:
    """The JSON value stored in ``path``.

    A missing file raises ``error`` (default ``FileNotFoundError``) with ``"<path>: <missing>"``;
    text that is not JSON raises ``error`` (default ``ValueError``) with ``"<path>: not valid
    JSON (<reason>)"``.
    """
    path = Path(path)
    if not path.is_file():
        raise (error or FileNotFoundError)(f"{path}: {missing}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise (error or ValueError)(f"{path}: not valid JSON ({exc})") from exc
