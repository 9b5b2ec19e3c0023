"""The one way a bench hands over its result: a JSON report on stdout and, with ``--out``, the
same report in a file (written atomically, its folder made), so a dated entry in
docs/benchmarks.md can cite the file a run left rather than a copy from a terminal.

Every bench takes ``--out`` under that one name (``--repeats``, ``--threads`` and ``--seed``
likewise mean the same thing in each bench that has them).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_out(parser: argparse.ArgumentParser) -> None:
    """The ``--out`` option: where the JSON report is also written."""
    parser.add_argument(
        "--out", type=Path, default=None, help="also write the JSON report to this file"
    )


def write_report(report: Any, out: Path | None) -> None:
    """Write ``report`` as indented JSON to ``out`` (nothing when ``out`` is None)."""
    if out is None:
        return
    from core.atomic import atomic_write_text

    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(report, indent=2) + "\n")


def emit(report: Any, out: Path | None) -> None:
    """Print ``report`` as indented JSON and write it to ``out`` too (when given)."""
    print(json.dumps(report, indent=2), flush=True)
    write_report(report, out)
