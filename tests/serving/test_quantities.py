"""The declared noun ranges: the shipped file loads, a malformed one fails with one line naming
the file, the key and the problem, and nothing is read at import."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from serving import quantities
from serving.quantities import NOUN_RANGES, NounRangesError, load_tables, parse_tables

REPO = Path(__file__).resolve().parents[2]


def _minimal() -> dict[str, Any]:
    """The shipped file's tables, each with one entry (``tray`` or ``ribbon``)."""
    shipped = json.loads(NOUN_RANGES.read_text())
    return {
        "_why": "test",
        "ranges": {name: {"_why": "w", "entries": {"tray": [1, 6]}} for name in shipped["ranges"]},
        "ranges_by_unit": {
            name: {"_why": "w", "entries": {"ribbon": {"cm": [20, 150]}}}
            for name in shipped["ranges_by_unit"]
        },
    }


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """``doc`` with the value at the dotted ``path`` replaced (``None``: deleted)."""
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[key]
    if value is None:
        del node[last]
    else:
        node[last] = value
    return doc


def test_the_shipped_file_loads_and_serves_the_public_tables() -> None:
    tables = load_tables()
    assert quantities.COUNT is tables.ranges["count"]
    assert quantities.HOLDS["tent"] == (2, 8)
    assert quantities.GRAMS["flour"] == (100, 600)
    assert tables.ranges_by_unit["speed"]["horse"] == {"km/h": (8, 16), "m/s": (2, 5)}
    with pytest.raises(AttributeError):
        _ = quantities.NOT_A_TABLE


def test_a_minimal_file_parses() -> None:
    tables = parse_tables(_minimal(), "f.json")
    assert tables.ranges["count"] == {"tray": (1, 6)}
    assert tables.ranges_by_unit["strip"] == {"ribbon": {"cm": (20, 150)}}


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("ranges.count.entries.tray", [6, 1], "f.json: ranges.count.tray: expected [low, high]"),
        ("ranges.count.entries.tray", [0, 5], "ranges.count.tray: expected [low, high]"),
        ("ranges.count.entries.tray", [1.5, 3], "ranges.count.tray: expected [low, high]"),
        ("ranges.count.entries.tray", [True, 3], "ranges.count.tray: expected [low, high]"),
        ("ranges.count.entries.tray", [1, 2, 3], "ranges.count.tray: expected [low, high]"),
        ("ranges.count.entries.Tray", [1, 6], "ranges.count: key 'Tray' must be lower case"),
        ("ranges.count.entries.big  box", [1, 6], "key 'big  box' must be lower case"),
        (
            "ranges_by_unit.strip.entries.ribbon",
            {"km/hr": [1, 2]},
            "ranges_by_unit.strip.ribbon: unit 'km/hr' is none of m, cm",
        ),
        ("ranges_by_unit.strip.entries.ribbon", {}, "strip.ribbon: expected at least one unit"),
        ("ranges_by_unit.strip.entries.ribbon", [1, 2], "strip.ribbon: expected an object"),
        ("ranges.count", None, "f.json: ranges: keys must be"),
        ("ranges.counts", {"_why": "w", "entries": {}}, "f.json: ranges: keys must be"),
        ("ranges.count._why", None, "ranges.count: keys must be ['_why', 'entries']"),
        ("ranges.count._why", " ", "ranges.count._why: say why these ranges"),
        ("_why", 3, "f.json._why: say why"),
        ("extra", {}, "f.json: keys must be ['_why', 'ranges', 'ranges_by_unit']"),
    ],
)
def test_a_malformed_table_names_file_key_and_problem(path: str, value: Any, message: str) -> None:
    with pytest.raises(NounRangesError) as err:
        parse_tables(_set(_minimal(), path, value), "f.json")
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": 1, "a": 2}', "key 'a' appears twice"),
        ("{", "Expecting property name"),
    ],
)
def test_a_file_that_is_not_clean_json_is_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "ranges.json"
    path.write_text(text)
    with pytest.raises(NounRangesError, match=f"^{re.escape(str(path))}: .*{message}"):
        load_tables(path)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(NounRangesError, match=f"^{re.escape(str(path))}: cannot read it"):
        load_tables(path)


def test_nothing_is_read_at_import() -> None:
    """Serving starts without the file: it is read when a problem first needs a range."""
    code = (
        "import serving.sizes, serving.story, serving.quantities as q; "
        "print(q.load_tables.cache_info().currsize)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "0"
