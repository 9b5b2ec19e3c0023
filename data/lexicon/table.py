"""Write and read the lexicon table file (``nouns.tsv``, format in ``serving.lexicon``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from core.atomic import atomic_write_text
from data.lexicon.classify import NounEntry


def table_text(entries: Iterable[NounEntry]) -> str:
    """The TSV text of ``entries`` (one lemma a line, sorted; a header comment first)."""
    lines = ["# lemma\tprimary\tclasses\tc|m  (WordNet 3.0 nouns; data.lexicon.classify)"]
    for e in sorted(entries, key=lambda e: e.lemma):
        lines.append(f"{e.lemma}\t{e.primary}\t{','.join(e.classes)}\t{'m' if e.mass else 'c'}")
    return "\n".join(lines) + "\n"


def write_table(path: Path, entries: Iterable[NounEntry]) -> None:
    """Write the table atomically."""
    atomic_write_text(Path(path), table_text(entries))
