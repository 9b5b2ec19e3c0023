"""Corpus assembly: records from templates and real corpora, combination-held-out splits,
the generator's tokenizer.

A record is a plain dict (the JSONL line format in docs/design.md): ``id, topic, keywords,
prompt_prefix, problem, equation, answer, source, prompt, target``. ``prompt``/``target`` are
derived with ``serving.prompt`` so training and serving word requests identically. ``problem`` is
the lexical text; ``target`` writes each requested keyword as its slot (``<k1s>``, so the model
never spells a noun it was not trained on): ``serving.realize.delexicalize`` of the problem, with
the equation's number slots counted on the lexical text (what ``serving.realize.render_output``
gives back before rendering them).
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from data.word_problems.adapters import READERS, RawProblem, ReadReport, json_object, jsonl_lines
from data.word_problems.keywords import document_frequency, extract_keywords, singular
from data.word_problems.templates import generate_templates
from serving.numbers import NUM_TOKEN
from serving.prompt import format_prompt, format_target, join_target
from serving.realize import SLOT_TOKENS, delexicalize
from serving.roles import role_tokens

# Added (non-special) tokens: the keyword slots, the number slot and the typed-role tokens
# (serving.roles: <food:pl>, <name2>, <he>...).
ADDED_TOKENS: tuple[str, ...] = (*SLOT_TOKENS, NUM_TOKEN, *role_tokens())

logger = logging.getLogger(__name__)

RECORD_FIELDS = (
    "id",
    "topic",
    "keywords",
    "prompt_prefix",
    "problem",
    "equation",
    "answer",
    "source",
    "prompt",
    "target",
)
# Template records also carry the problem with <num> number slots and its equation over n<i>.
OPTIONAL_FIELDS = ("skeleton", "slot_equation", "nouns", "roles", "skeleton_id")
SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")  # ids 0, 1, 2: the T5 convention
# Always in the tokenizer alphabet, so digits and arithmetic never become <unk> at serving time.
BASE_ALPHABET = "0123456789+-*/^().,?!$%:'\"|"
# Word boundaries of the tokenizer's pre-tokenizer (whitespace, punctuation, digits).
_PUNCT_SPLIT = re.compile(r"[\s\d\W]+")
_KEYWORD_SLOT = re.compile(r"<k\d+s?>|<num>")


class DelexicalizeError(ValueError):
    """A requested keyword does not occur in the problem text, so it cannot become a slot."""


def slotted_target(
    problem: str,
    equation: str,
    keywords: Sequence[str],
    *,
    skeleton: str | None = None,
    slot_equation: str | None = None,
) -> str:
    """The decoder target: keyword slots in the problem text, number slots in the equation.

    With a ``skeleton`` (the problem with ``<num>`` number slots, templates) and its
    ``slot_equation``, the target is the skeleton with keyword slots and that equation; without,
    the lexical problem with keyword slots and the equation's numbers matched to the text's.
    Raises DelexicalizeError when some keyword does not occur in the text (any inflection).
    """
    text = problem if skeleton is None else skeleton
    slotted = delexicalize(text, list(keywords))
    if slotted is None:
        raise DelexicalizeError(f"a keyword of {list(keywords)} does not occur in {text!r}")
    if skeleton is None or slot_equation is None:
        return format_target(problem, equation, slotted_problem=slotted)
    return join_target(slotted, slot_equation)


def make_record(
    *,
    rec_id: str,
    topic: str,
    keywords: Sequence[str],
    prompt_prefix: str,
    problem: str,
    equation: str,
    answer: float,
    source: str,
    skeleton: str | None = None,
    slot_equation: str | None = None,
) -> dict[str, Any]:
    """One corpus line, with the derived prompt and slotted target (DelexicalizeError when a
    keyword is absent from ``problem``). ``skeleton``/``slot_equation`` (templates: the problem
    with ``<num>`` number slots, and its equation over ``n<i>``) are kept in the record, so
    rebuilt records (subsets, swaps) keep them."""
    extra: dict[str, Any] = {}
    if skeleton is not None and slot_equation is not None:
        extra = {"skeleton": skeleton, "slot_equation": slot_equation}
    return {
        "id": rec_id,
        "topic": topic,
        "keywords": list(keywords),
        "prompt_prefix": prompt_prefix,
        "problem": problem,
        "equation": equation,
        "answer": float(answer),
        "source": source,
        "prompt": format_prompt(topic, keywords, prompt_prefix),
        "target": slotted_target(
            problem, equation, keywords, skeleton=skeleton, slot_equation=slot_equation
        ),
        **extra,
    }


def template_records(
    *, n: int, seed: int, topics: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """``n`` template problems as records; keyword order shuffled so prompts do not fix it."""
    kwargs: dict[str, Any] = {"n": n, "seed": seed}
    if topics:
        kwargs["topics"] = tuple(topics)
    rng = random.Random(seed + 1)
    out = []
    for i, p in enumerate(generate_templates(**kwargs)):
        kws = list(p.keywords)
        rng.shuffle(kws)
        out.append(
            make_record(
                rec_id=f"templates-{i:06d}",
                topic=p.topic,
                keywords=kws,
                prompt_prefix=p.prompt_prefix,
                problem=p.problem,
                equation=p.equation,
                answer=p.answer,
                source="templates",
                skeleton=p.skeleton or None,
                slot_equation=p.slot_equation or None,
            )
        )
    return out


def real_records(
    source: str,
    path: Path | str,
    *,
    max_rows: int | None,
    n_keywords: int,
    max_words: int | None = None,
    topics: Sequence[str] | None = None,
    reject: Callable[[str], str | None] | None = None,
) -> tuple[list[dict[str, Any]], ReadReport]:
    """Records from one real corpus file; keywords extracted with the file's document frequency.

    Rows are skipped (and counted in the report by reason) when the problem is longer than
    ``max_words`` words (``too_long``: the budget trains on short problems), its topic is not in
    ``topics`` (``unsupported_topic``), ``reject`` names a reason (e.g. a grammar defect of the
    source text, which the model would learn), no keyword is found, or a keyword cannot become a
    slot (``keyword_not_delexicalized``).
    """
    if source not in READERS:
        raise ValueError(f"unknown source {source!r}; allowed: {sorted(READERS)}")
    raw: list[RawProblem]
    raw, report = READERS[source](path, max_rows=max_rows)
    df, n_docs = document_frequency(r.problem for r in raw)
    out = []
    stem = Path(path).stem
    allowed = None if topics is None else set(topics)
    for r in raw:
        if max_words is not None and len(r.problem.split()) > max_words:
            report.skip(r.row, "too_long")
            continue
        if allowed is not None and r.topic not in allowed:
            report.skip(r.row, "unsupported_topic", r.topic)
            continue
        why = reject(r.problem) if reject is not None else None
        if why:
            report.skip(r.row, why)
            continue
        kws = extract_keywords(r.problem, n_keywords, doc_freq=df, n_docs=n_docs)
        if not kws:
            report.skip(r.row, "no_keywords")
            continue
        try:
            rec = make_record(
                rec_id=f"{source}-{stem}-{r.row}",
                topic=r.topic,
                keywords=kws,
                prompt_prefix="",
                problem=r.problem,
                equation=r.equation,
                answer=r.answer,
                source=source,
            )
        except DelexicalizeError as exc:
            report.skip(r.row, "keyword_not_delexicalized", str(exc))
            continue
        out.append(rec)
    report.kept = len(out)
    return out, report


def dedupe(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop records whose problem text was already seen (first one wins)."""
    seen: set[str] = set()
    out = []
    for rec in records:
        if rec["problem"] not in seen:
            seen.add(rec["problem"])
            out.append(rec)
    return out


def combination(rec: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """The (topic, keyword set) a request asks for; plural/case variants count as one."""
    return rec["topic"], tuple(sorted({singular(k) for k in rec["keywords"]}))


def split_by_combination(
    records: Sequence[dict[str, Any]], *, val_frac: float, test_frac: float, seed: int
) -> dict[str, list[dict[str, Any]]]:
    """Train / val / test where val and test combinations never occur in train.

    Whole combinations are drawn (seeded) into test, then val, until each holds its share of
    records; the rest is train. A combination is held out only if each of its keywords stays in
    some training combination *of the same topic*: the held-out sets test new combinations of
    words the model knows for that topic. (Counting a keyword across topics let every
    measurement problem about "pieces" land in test while "pieces" stayed only in division: 15%
    of test keywords were then unseen for their topic, a whole sentence shape the model never
    saw, which measures shape invention rather than keyword use.)
    Record order inside a split follows the input order.
    """
    combos = sorted({combination(r) for r in records})
    random.Random(seed).shuffle(combos)
    sizes = Counter(combination(r) for r in records)
    # records per (topic, keyword) still assigned to train
    in_train: Counter[tuple[str, str]] = Counter()
    for combo, size in sizes.items():
        for kw in combo[1]:
            in_train[combo[0], kw] += size
    n = len(records)
    assign: dict[tuple[str, tuple[str, ...]], str] = {}
    filled = {"test": 0, "val": 0}
    targets = {"test": test_frac * n, "val": val_frac * n}
    for combo in combos:
        split = "train"
        size = sizes[combo]
        if all(in_train[combo[0], kw] > size for kw in combo[1]):
            for name in ("test", "val"):
                if filled[name] < targets[name]:
                    split = name
                    filled[name] += size
                    for kw in combo[1]:
                        in_train[combo[0], kw] -= size
                    break
        assign[combo] = split
    out: dict[str, list[dict[str, Any]]] = {"train": [], "val": [], "test": []}
    for rec in records:
        out[assign[combination(rec)]].append(rec)
    return out


def request_subsets(
    records: Sequence[dict[str, Any]],
    *,
    share: float,
    seed: int,
    avoid: Iterable[tuple[str, tuple[str, ...]]] = (),
) -> tuple[list[dict[str, Any]], int]:
    """Records where about ``share`` of those with 2+ keywords request only a random subset.

    Why: templates always ask for 2-3 keywords, but a teacher often types one ("boxes"). A
    record rebuilt for a proper subset of its keywords (1 .. n-1 of them, order kept) has slots
    for the requested ones and the others literal, so the model learns to write exactly the
    slots it was given. A subset whose (topic, keyword set) is in ``avoid`` (the held-out
    combinations) is not used. Returns (records in the same order, number rebuilt).
    """
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"request_subsets: share must be in [0, 1], got {share!r}")
    rng = random.Random(seed)
    blocked = set(avoid)
    out: list[dict[str, Any]] = []
    changed = 0
    for rec in records:
        kws = list(rec["keywords"])
        if len(kws) < 2 or rng.random() >= share:
            out.append(rec)
            continue
        size = rng.randint(1, len(kws) - 1)
        keep = sorted(rng.sample(range(len(kws)), size))
        subset = [kws[i] for i in keep]
        new = rebuild_record(rec, keywords=subset)
        if combination(new) in blocked:
            out.append(rec)
            continue
        out.append(new)
        changed += 1
    return out, changed


def rebuild_record(rec: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``make_record`` of an existing record with some of its inputs changed (``rec_id``,
    ``keywords``, ``problem``, ``skeleton``...): the one way augmenters derive a record, so the
    prompt, the target and the number-slot fields are always rebuilt together."""
    inputs: dict[str, Any] = {
        "rec_id": rec["id"],
        "topic": rec["topic"],
        "keywords": rec["keywords"],
        "prompt_prefix": rec["prompt_prefix"],
        "problem": rec["problem"],
        "equation": rec["equation"],
        "answer": rec["answer"],
        "source": rec["source"],
        **number_slots(rec),
    }
    return make_record(**{**inputs, **changes})


def number_slots(rec: dict[str, Any]) -> dict[str, Any]:
    """A record's ``skeleton``/``slot_equation`` as ``make_record`` keywords ({} when absent)."""
    return {k: rec[k] for k in OPTIONAL_FIELDS if k in rec}


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """One JSON object per line (UTF-8, fields in RECORD_FIELDS order, then the optional
    number-slot fields when a record has them)."""
    with path.open("w", encoding="utf-8") as fh:
        for rec in records:
            keys = (*RECORD_FIELDS, *(k for k in OPTIONAL_FIELDS if k in rec))
            fh.write(json.dumps({k: rec[k] for k in keys}, ensure_ascii=False) + "\n")


def read_jsonl(
    path: Path | str,
    *,
    required: Sequence[str] = RECORD_FIELDS,
    nonempty: Sequence[str] = (),
    limit: int = 0,
) -> list[dict[str, Any]]:
    """Records of a JSONL split (the first ``limit`` when > 0), every line checked.

    The one reader of the text splits for every stage: errors name the file, the line and the
    field (missing ``required`` fields, ``nonempty`` fields that are not non-empty strings).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: text split not found (run the prepare_text stage)")
    out: list[dict[str, Any]] = []
    with contextlib.closing(jsonl_lines(path)) as lines:
        for row, line in lines:
            rec = json_object(line, f"{path}:{row}", ValueError)
            missing = [k for k in required if k not in rec]
            if missing:
                raise ValueError(f"{path}:{row}: missing field(s) {missing}")
            for key in nonempty:
                if not isinstance(rec.get(key), str) or not rec[key].strip():
                    raise ValueError(f"{path}:{row}: field '{key}' must be a non-empty string")
            out.append(rec)
            if limit and len(out) >= limit:
                break
    if not out:
        raise ValueError(f"{path}: no records")
    return out


# ----------------------------------------------------------------------------- tokenizer


def train_unigram_tokenizer(texts: Sequence[str], *, vocab_size: int, alphabet: str = "") -> Any:
    """A SentencePiece-style Unigram tokenizer (HF ``tokenizers``) with T5 special ids.

    A number is one pre-token, so frequent numbers ("12", "100") become single pieces the model
    copies from the text into the equation in one step (one-token-per-digit numbers were the main
    cause of inconsistent equations: 0.57 -> 0.68 answer consistency); rare numbers are spelt
    from smaller digit pieces. Every digit and character of ``alphabet`` (plus arithmetic) is in
    the vocabulary, so any number round-trips and the corpus never maps to ``<unk>``.
    Returns a ``tokenizers.Tokenizer``.

    Punctuation is split off each word (``"▁strawberries:"`` -> ``"▁strawberries", ":"``), so a
    keyword is the same piece in the prompt (``"keywords friend, strawberries:"``) and in the
    problem text: the model can learn to copy it. Without the split the trainer makes pieces
    such as ``"▁strawberries:"`` that never occur in a target. Decoding still restores the text
    exactly (the Metaspace marker carries the spaces; punctuation pieces have none).

    Why the extra "wordword" lines: HF's UnigramTrainer seeds candidate pieces from substrings
    that occur in at least two *distinct* pre-tokenized words, so a frequent word that only ever
    appears in one form ("How") never becomes a piece and is spelt letter by letter. Adding each
    word once more doubled (``"▁HowHow"``, a negligible count for the EM step) gives ``"▁How"`` a
    second occurrence, which restores whole-word pieces.
    """
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Strip()]
    )
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always"),
            pre_tokenizers.Punctuation(behavior="isolated"),
            pre_tokenizers.Digits(individual_digits=False),
        ]
    )
    tok.decoder = slot_decoder()
    chars = sorted(set(BASE_ALPHABET) | set(alphabet) - {" "})
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        unk_token="<unk>",
        initial_alphabet=chars,
        show_progress=False,
    )
    # Keyword slots become whole added tokens below: keep their pieces out of the Unigram model.
    texts = [_KEYWORD_SLOT.sub(" ", t) for t in texts]
    words = sorted({w for t in texts for w in _PUNCT_SPLIT.split(t) if w})
    variants = [" ".join(f"{w}{w}" for w in words[i : i + 64]) for i in range(0, len(words), 64)]
    tok.train_from_iterator([*texts, *variants, *chars], trainer=trainer)
    tok = _canonical_vocab(tok, n_special=len(SPECIAL_TOKENS))
    add_slot_tokens(tok)
    eos_id = tok.token_to_id("</s>")
    tok.post_processor = TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", eos_id)]
    )
    for i, t in enumerate(SPECIAL_TOKENS):
        if tok.token_to_id(t) != i:
            raise RuntimeError(f"tokenizer: {t} got id {tok.token_to_id(t)}, expected {i}")
    return tok


def slot_decoder() -> Any:
    """The Unigram tokenizer's decoder: Metaspace, plus the space before each keyword slot.

    An added token swallows the space before it when encoding ("One <k1> holds" is
    ``▁One, <k1>, ▁holds``), so plain Metaspace decoding writes "One<k1> holds" and the
    realizer would render "Onetray". Each slot is decoded as ``▁<k1>``, i.e. with its space.
    """
    from tokenizers import decoders

    return decoders.Sequence(
        [
            *(decoders.Replace(t, "▁" + t) for t in ADDED_TOKENS),
            decoders.Metaspace(replacement="▁", prepend_scheme="always"),
        ]
    )


def add_slot_tokens(tok: Any) -> int:
    """Add the keyword slots ``<k1>``..``<k8s>`` to a ``tokenizers.Tokenizer`` as ordinary
    (non-special) added tokens; returns how many were new.

    Not special, so ``decode(..., skip_special_tokens=True)`` (training, export parity and the
    serving loop) keeps them for the realizer; added tokens are matched before the
    pre-tokenizer, so a slot is one id and never split at its ``<`` / ``>``.
    """
    from tokenizers import AddedToken

    return int(
        tok.add_tokens(
            [
                AddedToken(t, single_word=False, normalized=False, special=False)
                for t in ADDED_TOKENS
            ]
        )
    )


def _canonical_vocab(tok: Any, *, n_special: int) -> Any:
    """The same tokenizer with piece scores rounded to 1e-9 and pieces ordered by (score, text).

    HF's UnigramTrainer is not bit-reproducible: scores move by ~1e-15 between identical runs
    (even with TOKENIZERS_PARALLELISM=false), so tied pieces swap ids and the whole generator run
    diverges. Rounding and a total order make the ids a function of the corpus alone.
    """
    from tokenizers import Tokenizer

    state = json.loads(tok.to_str())
    vocab = state["model"]["vocab"]
    pieces = [[piece, round(score, 9)] for piece, score in vocab[n_special:]]
    # The trainer appends the required characters it did not keep at the very bottom, with scores
    # stepping down by 1e-4 in hash-map order: give them those scores in character order instead.
    bottom = min((item[1] for item in pieces), default=0.0) + 0.01
    tail = sorted(
        (item for item in pieces if len(item[0]) == 1 and item[1] <= bottom),
        key=lambda item: item[0],
    )
    tail_scores = sorted((item[1] for item in tail), reverse=True)
    for item, score in zip(tail, tail_scores, strict=True):
        item[1] = score
    rest = sorted(pieces, key=lambda item: (-item[1], item[0]))
    state["model"]["vocab"] = vocab[:n_special] + rest
    return Tokenizer.from_str(json.dumps(state))


def save_tokenizer(tok: Any, out_dir: Path, *, model_max_length: int) -> None:
    """Save as a ``T5TokenizerFast`` directory (tokenizer.json + configs) in ``out_dir``."""
    from transformers import T5TokenizerFast

    fast = T5TokenizerFast(
        tokenizer_object=tok,
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        extra_ids=0,
        additional_special_tokens=[],
        model_max_length=model_max_length,
    )
    fast.save_pretrained(str(out_dir))


def copy_pretrained_tokenizer(base_model: str, out_dir: Path) -> int:
    """Save ``base_model``'s own tokenizer plus the keyword slots to ``out_dir``; returns its size.

    Local files only: this machine is offline, and a stage must never download at run time.
    """
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base_model, local_files_only=True)
    # The keyword slots as ordinary added tokens: train_generator resizes the embeddings to
    # len(tokenizer) when the checkpoint's vocabulary is smaller.
    tok.add_tokens(list(ADDED_TOKENS), special_tokens=False)
    tok.save_pretrained(str(out_dir))
    return len(tok)


def unk_rate(tok: Any, texts: Sequence[str]) -> float:
    """Share of tokens that are ``<unk>`` over ``texts`` (0.0 for the corpus it was built on)."""
    unk = tok.token_to_id("<unk>")
    total = bad = 0
    for enc in tok.encode_batch(list(texts)):
        total += len(enc.ids)
        bad += sum(1 for i in enc.ids if i == unk)
    return bad / total if total else 0.0
