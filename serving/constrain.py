"""Constrained decoding over the skeleton bank: the model writes one of the skeletons that can
host the request's keywords.

A typed-role artifact ships ``skeletons.json`` (topic -> the decoder targets of the authored
skeletons, ``data/word_problems/skeletons``). For a request, the skeletons whose roles can take
every keyword (``serving.story.bind``: each keyword's class fits a role, or the text writes it)
are tokenised once and put in a prefix trie; at each decoding step only the tokens that continue
some allowed skeleton may be drawn (GENRE-style constrained generation: De Cao et al., ICLR 2021).
The model's own probabilities still choose the skeleton, token by token, and sampling still
varies it; what it cannot do is write a half of one skeleton and a half of another, or one that
has no place for a keyword. Stdlib + numpy only.
"""

from __future__ import annotations

import json
import re
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from serving.prompt import TARGET_SEP
from serving.roles import SKELETONS_FILE

TRIE_TOKENS = "trie_tokens"
TRIE_NEXT = "trie_next"
TRIE_DRAFT = "trie_draft"
TRIE_DRAFT_NEXT = "trie_draft_next"
"""The one-file graph's optional trie inputs (``export.generation_graph``; a typed-role model's
drop-in takes the request's trie there, so it decodes the bank's skeletons as the app does),
and the drafts a graph with the draft loop reads from it (:meth:`Trie.draft_tables`)."""


_TAKES_TRIE: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def takes_trie(session: Any) -> bool:
    """Whether a one-file graph has the optional trie inputs (a typed-role model's). Asked once
    per session: a session's inputs never change, and listing them costs more than a small
    request's trie tables."""
    known = _TAKES_TRIE.get(session)
    if known is None:
        names = {i.name for i in session.get_overridable_initializers()}
        names.update(i.name for i in session.get_inputs())
        known = _TAKES_TRIE[session] = TRIE_TOKENS in names
    return known


_DRAFT_WIDTH: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


def draft_width(session: Any) -> int:
    """How many tokens a step of a one-file graph's draft loop drafts from the trie (the width
    of its ``trie_draft`` input); 0 for a graph without one. Asked once per session."""
    known = _DRAFT_WIDTH.get(session)
    if known is None:
        inputs = {i.name: i for i in session.get_inputs()}
        inputs.update({i.name: i for i in session.get_overridable_initializers()})
        shape = inputs[TRIE_DRAFT].shape if TRIE_DRAFT in inputs else [0, 0]
        known = _DRAFT_WIDTH[session] = int(shape[1]) if isinstance(shape[1], int) else 0
    return known


def trie_feeds(session: Any, trie: Trie | None) -> dict[str, np.ndarray]:
    """The trie inputs of a graph that takes them (:meth:`Trie.tables`, and
    :meth:`Trie.draft_tables` for a graph with the draft loop); empty for a graph without them
    or no trie (the graph then decodes unconstrained)."""
    if trie is None or not takes_trie(session):
        return {}
    tokens, nxt = trie.tables()
    feeds = {TRIE_TOKENS: tokens, TRIE_NEXT: nxt}
    width = draft_width(session)
    if width:
        feeds[TRIE_DRAFT], feeds[TRIE_DRAFT_NEXT] = trie.draft_tables(width)
    return feeds


class Trie:
    """Token-id sequences as a prefix tree; ``allowed(prefix)`` lists the next ids."""

    def __init__(self, sequences: Iterable[Sequence[int]]) -> None:
        self.root: dict[int, Any] = {}
        self.n = 0
        self._through: dict[int, int] = {}  # id(node) -> sequences through it (drafts' guide)
        self._tables: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        through = self._through
        for seq in sequences:
            node = self.root
            for t in seq:
                node = node.setdefault(int(t), {})
                through[id(node)] = through.get(id(node), 0) + 1
            self.n += 1

    def tables(self) -> tuple[np.ndarray, np.ndarray]:
        """(tokens, next) int64 [states, branches]: the trie as the one-file graph reads it
        (``export.generation_graph``'s ``trie_tokens`` / ``trie_next`` inputs). State 0 is the
        root; row s lists the ids that may follow state s and the state each leads to, -1
        padded. A state with no row entry (a skeleton's end) constrains nothing, as
        :meth:`allowed` returning None does. Made once per trie."""
        if self._tables is None:
            nodes: list[dict[int, Any]] = [self.root]
            index = {id(self.root): 0}
            for node in nodes:  # breadth first: grows while it is read
                for child in node.values():
                    index[id(child)] = len(nodes)
                    nodes.append(child)
            width = max(1, max(len(n) for n in nodes))
            tokens = np.full((len(nodes), width), -1, np.int64)
            nxt = np.full((len(nodes), width), -1, np.int64)
            for s, node in enumerate(nodes):
                for j, (tok, child) in enumerate(node.items()):
                    tokens[s, j] = tok
                    nxt[s, j] = index[id(child)]
            through = np.array([self._through.get(id(n), 0) for n in nodes], np.int64)
            self._tables = (tokens, nxt, through)
        return self._tables[0], self._tables[1]

    def through(self) -> np.ndarray:
        """int64 [states]: how many sequences pass through each state of :meth:`tables` (0 for
        the root, which is no branch to choose); drafts follow the most travelled branch."""
        self.tables()
        assert self._tables is not None
        return self._tables[2]

    def draft_tables(self, width: int) -> tuple[np.ndarray, np.ndarray]:
        """(tokens, states) int64 [states + 1, width]: row s + 1 is the path of ``width`` tokens
        from state s of :meth:`tables` along the branch most sequences take (ties: the first
        listed), and the state after each; -1 past a skeleton's end, and in row 0, the state
        -1 (no constraint: nothing to draft).

        A draft only saves steps: the graph keeps a drafted token only where the model's own
        constrained argmax is that token."""
        tokens, nxt = self.tables()
        through = self.through()
        n = len(tokens)
        busiest = np.argmax(np.where(nxt >= 0, through[np.maximum(nxt, 0)], -1), axis=1)
        rows = np.arange(n)
        best_tok = np.concatenate([[-1], tokens[rows, busiest]])  # row 0: state -1
        best_next = np.concatenate([[-1], nxt[rows, busiest]])
        out_tok = np.empty((n + 1, width), np.int64)
        out_state = np.empty((n + 1, width), np.int64)
        cur = np.arange(n + 1)  # the row of each path's current state
        for i in range(width):
            out_tok[:, i] = best_tok[cur]
            out_state[:, i] = best_next[cur]
            cur = best_next[cur] + 1  # -1 (past the end) -> row 0, which drafts nothing
        return out_tok, out_state

    def allowed(self, prefix: Sequence[int]) -> np.ndarray | None:
        """Ids that continue ``prefix``; None once ``prefix`` left the trie (no constraint)."""
        node = self.root
        for t in prefix:
            nxt = node.get(int(t))
            if nxt is None:
                return None
            node = nxt
        return np.fromiter(node.keys(), dtype=np.int64, count=len(node)) if node else None


@dataclass
class SkeletonBank:
    """The decoder targets of the authored skeletons, per topic, and their token ids."""

    targets: Mapping[str, Sequence[str]]
    encode: Callable[[str], list[int]]
    _ids: dict[str, list[int]] | None = None

    @classmethod
    def load(cls, path: Path, encode: Callable[[str], list[int]]) -> SkeletonBank:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls({str(t): [str(x) for x in v] for t, v in doc.items()}, encode)

    def ids(self, target: str) -> list[int]:
        if self._ids is None:
            self._ids = {}
        if target not in self._ids:
            self._ids[target] = self.encode(target)
        return self._ids[target]

    def written_ids(self) -> np.ndarray:
        """Every token id the bank's targets hold (eos included: ``encode`` appends it),
        sorted: the decoder's output vocabulary (:func:`unwritten_ids`)."""
        ids = {t for targets in self.targets.values() for x in targets for t in self.ids(x)}
        return np.asarray(sorted(ids), dtype=np.int64)

    def compatible(
        self,
        topic: str,
        nouns: Sequence[Any],
        max_length: int | None = None,
        prompt_prefix: str = "",
    ) -> list[str]:
        """Targets of ``topic`` whose skeleton gives the most keywords a role (or writes them,
        or opens with them as the scene, ``serving.story.setting_phrase``): every keyword when
        some skeleton can, in a role of the maths before a scene, and skeletons that name a
        keyword in their own words first; else as many as any can, and the response names the
        rest (``keywords_unused``), rather than a free decode that writes a muddle; never one
        with a keyword-only role (``serving.roles.KEYWORD_ONLY``) no keyword plays. Among
        those, a prefix for grade 4 and up keeps to the skeletons of two steps or more when
        there are any, and one for grade 1 (``serving.grade.steps_for``); a prefix that asks for
        a perimeter or an area keeps to the skeletons that measure it, when there are any
        (``serving.grade.asked_measure``)."""
        from serving.grade import asked_measure, measure_asked_by, steps_for
        from serving.roles import KEYWORD_ONLY, Instance, instances, scene_pools
        from serving.story import SETTING, bind, scene_misfits

        targets = list(self.targets.get(topic, ()))
        if max_length is not None:
            # a skeleton longer than the request's max_length would be cut before its
            # equation: decode only those that fit (all of them when none does)
            fit = [t for t in targets if len(self.ids(t)) < max_length]
            targets = fit or targets
        scene = scene_pools([n.keyword for n in nouns])  # the request's, for every skeleton
        scored = []
        for t in targets:
            skeleton = t.partition(TARGET_SEP)[0]
            bindings, unused = bind(skeleton, nouns)
            bound = {Instance(b.role, b.index).key for b in bindings}
            only = [i for i in instances(skeleton) if i.role in KEYWORD_ONLY]
            if only and (
                any(i.key not in bound for i in only)
                # built for a pair ("a delivery van's parcels"): "A car carries 8 rain gauges"
                # was rated nonsense for a request with the cargo alone
                or sum(b.role not in KEYWORD_ONLY for b in bindings) == 0
            ):
                continue  # written around keywords this request does not have
            misfits = scene_misfits(skeleton, scene, bindings)
            # a keyword in a role of the maths beats the same keyword as the scene, and a
            # skeleton written for the keyword ("A spider has 8 legs", "A snail crawls ... cm")
            # beats one that merely has a role it fits
            scenes = sum(b.role == SETTING for b in bindings)
            literal = sum(b.role == "literal" for b in bindings)
            scored.append(((len(unused), misfits, scenes, -literal), t))
        if not scored:
            return []
        fewest = min(n for n, _ in scored)
        best = [t for n, t in scored if n == fewest]
        least, most = steps_for(prompt_prefix)
        fitting = [
            t for t in best if operations(t) >= least and (most is None or operations(t) <= most)
        ] or best
        measure = asked_measure(prompt_prefix)
        if measure is not None:  # "perimeter of rectangles": a fence, not a tiled floor
            fitting = [t for t in fitting if measure_asked_by(t) == measure] or fitting
        return fitting

    def trie(
        self,
        topic: str,
        nouns: Sequence[Any],
        max_length: int | None = None,
        prompt_prefix: str = "",
    ) -> Trie | None:
        """The trie of the compatible targets that fit in ``max_length`` tokens (None for a
        topic the bank lacks: free decoding)."""
        targets = self.compatible(topic, nouns, max_length, prompt_prefix)
        return Trie(self.ids(t) for t in targets) if targets else None


_OPERATOR = re.compile(r"[-+*/]")


def operations(target: str) -> int:
    """How many operations the equation of a decoder target takes ("n1 * n2 - n3": 2)."""
    return len(_OPERATOR.findall(target.partition(TARGET_SEP)[2]))


def unwritten_ids(bank: SkeletonBank | None, vocab: int) -> np.ndarray:
    """The token ids below ``vocab`` a typed-role model's decoder never writes: those no target
    of its bank holds (none without a bank).

    Why: the tokenizer is shared with the prompts, whose topics, keyword classes and prefixes
    hold words that no skeleton writes (with the pad, 1,161 of the pipeline's 2,110 tokens);
    a decoder that wrote one would have left every skeleton. Both runtimes leave them out, so
    their greedy ids agree: the Python loop bans them as it bans a keyword slot the prompt
    lacks, and the one-file graph computes the lm head on the written tokens' columns only (a
    narrower output layer, as CTranslate2's vocabulary map does). A bank without targets bans
    none."""
    written = bank.written_ids() if bank is not None else np.zeros(0, dtype=np.int64)
    if not written.size:  # no targets: nothing is known not to be written
        return written
    return np.setdiff1d(np.arange(vocab, dtype=np.int64), written)


def load_bank(model_dir: Path, encode: Callable[[str], list[int]]) -> SkeletonBank | None:
    """The skeleton bank of a typed-role model directory, None without ``skeletons.json``."""
    path = Path(model_dir) / SKELETONS_FILE
    return SkeletonBank.load(path, encode) if path.is_file() else None
