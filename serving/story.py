"""One coherent story: render a decoded typed-role skeleton for a request.

The model writes a skeleton (``serving.roles``): ``A <cont> held <num> <food:pl>. <name> took
out <num> of them. How many <food:pl> are left in the <cont>?``. :func:`bind` decides which
requested keyword plays which role, only where the keyword's class (``serving.lexicon``) fits;
a keyword the text already names literally ("profit", "change") is used as written; every other
role gets an everyday noun from its pool, names a person drawn once, pronouns agree. A keyword
with no fitting role is reported with why (``unused``), never forced. Stdlib + inflect only.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from serving.lexicon import NounInfo
from serving.measures import SENTENCE_END
from serving.realize import (
    RenderedProblem,
    _capitalize_sentences,
    _count_cue,
    _fix_articles,
    _fix_unit_counts,
    _prev_token,
    article_for,
    fix_spacing,
    leftover_tokens,
    noun_forms,
    render_output,
    split_decoded,
    unresolved_slots,
)
from serving.roles import (
    DRINKS,
    NAME_PRONOUNS,
    NAME_TOKEN,
    NAMES,
    PRONOUN_TOKEN,
    ROLE_BY_NAME,
    ROLE_TOKEN,
    Instance,
    contents_of,
    fill_pool,
    fits,
    instances,
    names_used,
    paired_pools,
    scene_pools,
)
from serving.scenes import SETTING, allows_setting, literal_text, open_with, setting_phrase


@dataclass(frozen=True)
class Binding:
    """A keyword bound to a role instance (``role`` ``literal`` when the text names it)."""

    keyword: str
    role: str
    index: int


@dataclass(frozen=True)
class Story:
    """A rendered problem text, who plays what, and the keywords that found no role."""

    text: str
    bindings: tuple[Binding, ...]
    unused: tuple[tuple[str, str], ...]  # (keyword, reason)


def names_literally(skeleton: str, keyword: str) -> bool:
    """Whether the skeleton's own words contain ``keyword`` (any inflection, any case)."""
    text = literal_text(skeleton).lower()
    sing, plural = noun_forms(keyword)
    for form in {sing.lower(), plural.lower(), keyword.lower()}:
        if re.search(rf"(?<![\w-]){re.escape(form)}(?![\w-])", text):
            return True
    return False


_DETERMINERS = frozenset(
    {"a", "an", "the", "this", "that", "each", "every", "his", "her", "their", "its", "my"}
    | {"our", "one", "<num>", "<his>", "<his2>", "<his3>"}
)


def _head_site(skeleton: str, keyword: str) -> re.Match[str] | None:
    """Where the skeleton's own words name the head of a multi-word keyword right after a
    determiner ("A recipe needs ..." for "cake recipe"), so the keyword can be written there
    whole ("A cake recipe needs ..."); None for a one-word keyword or no such place."""
    sing, plural = noun_forms(keyword)
    if " " not in sing:
        return None
    if _words_in_one_sentence(skeleton, sing):
        return None  # "the election for school captain" already says "school election"
    from serving.units import is_unit_word

    if is_unit_word(sing.rsplit(" ", 1)[-1]):
        return None  # "7 days in a week" is not "7 school days in a week"
    if sing.rsplit(" ", 1)[-1].lower() in _SHAPE_WORDS | _GENERIC_HEADS:
        # "A square has 4 equal sides" is geometry, not "A fabric square has ..."; "the piece
        # he cuts off" of a ribbon is no "chess piece"
        return None
    heads = {sing.rsplit(" ", 1)[-1], plural.rsplit(" ", 1)[-1]}
    alternatives = "|".join(re.escape(h) for h in sorted(heads, key=len, reverse=True))
    site = None
    for m in re.finditer(rf"(?<![\w<:'-])(?:{alternatives})(?![\w>:'-])", skeleton, re.I):
        prev = re.search(r"(\S+)\s+$", skeleton[: m.start()])
        word = prev.group(1).lower() if prev else ""
        if not word or word in _DETERMINERS or word.endswith("'s") or word[:1].isdigit():
            site = site or m
        elif word not in _ADJECTIVES or (
            len(re.findall(rf"\b{re.escape(word)}\s+(?:{alternatives})\b", skeleton, re.I)) > 1
        ):
            # the skeleton names its own kind ("The kitchen floor is ... The floor", "piano
            # practice ... Each practice"): "The bedroom floor" or "Each soccer practice" at
            # the other site would make two of one (rated unsolvable)
            return None
    return site


_SHAPE_WORDS = frozenset({"square", "circle", "rectangle", "triangle", "hexagon", "pentagon"})
_GENERIC_HEADS = frozenset({"piece", "part", "side", "end", "half", "bit", "row", "line", "way"})
# words before a head that describe it rather than name its kind ("the same floor", "a new box")
_ADJECTIVES = frozenset(
    {"same", "other", "first", "second", "third", "last", "next", "new", "old", "big", "small"}
    | {"large", "little", "long", "short", "wide", "empty", "full", "whole", "rectangular"}
    | {"square", "round", "red", "blue", "green", "yellow", "white", "black", "brown", "pink"}
    | {"purple", "orange", "grey", "gray", "equal", "different", "favourite", "favorite"}
    | {"more", "fewer", "many", "few", "all", "both", "some", "two", "three", "four", "five"}
)


def _words_in_one_sentence(skeleton: str, phrase: str) -> bool:
    words = set(re.findall(r"[a-z]+", phrase.lower()))
    return any(
        words <= set(re.findall(r"[a-z]+", literal_text(sentence).lower()))
        for sentence in SENTENCE_END.split(skeleton)
    )


def _widen_heads(
    skeleton: str,
    bindings: Sequence[Binding],
    forms: Mapping[str, tuple[str, str]] | None = None,
) -> str:
    """The skeleton with each multi-word keyword bound by its head written whole there."""
    for b in bindings:
        if b.role != "literal" or names_literally(skeleton, b.keyword):
            continue
        m = _head_site(skeleton, b.keyword)
        if m is None:
            continue
        sing, plural = noun_forms(b.keyword)
        whole = plural if m.group(0).lower() == plural.rsplit(" ", 1)[-1].lower() else sing
        if m.group(0)[:1].isupper():
            whole = whole[:1].upper() + whole[1:]
        end = m.end()
        of_role = re.match(r" of <([a-z]+\d?)(?::pl)?>", skeleton[end:])
        if of_role and (
            _named_for_contents(sing) or _says_contents(sing, of_role.group(1), forms or {})
        ):
            # "8 bottles of <liquid>" for "water bottles", "trays of <food>" for "muffin
            # trays": the keyword says what they hold, never "8 water bottles of water"
            end += of_role.end()
        skeleton = skeleton[: m.start()] + whole + skeleton[end:]
    return skeleton


def _says_contents(container: str, inner: str, forms: Mapping[str, tuple[str, str]]) -> bool:
    """Whether a multi-word container's modifier is the noun cast as role ``inner`` (what the
    skeleton writes it holds): "muffin trays" of muffins, "egg boxes" of eggs."""
    modifier = noun_forms(container)[0].lower().rsplit(" ", 1)[0]
    return forms.get(inner, ("", ""))[0].lower() == modifier


def _holds_drinks(container: str) -> bool:
    """Whether ``container``'s everyday contents are drinks only (a water bottle, a jug)."""
    inside = contents_of(noun_forms(container)[0])
    return bool(inside) and {p[0] for p in inside} <= DRINKS


def _named_for_contents(container: str) -> bool:
    """Whether a multi-word container is named for what it holds ("water bottle", "egg box"):
    one of its everyday contents is its modifier."""
    modifier = container.lower().rsplit(" ", 1)[0]
    return " " in container.strip() and any(
        noun_forms(one)[0].lower() == modifier for one, _many in contents_of(container)
    )


def _specificity(role: str) -> int:
    return -len(ROLE_BY_NAME[role].accepts)


def bind(skeleton: str, nouns: Sequence[NounInfo]) -> tuple[list[Binding], list[tuple[str, str]]]:
    """(bindings, unused) of ``keywords`` on ``skeleton`` (see the module doc).

    Among all assignments the one binding the most keywords wins, then the one using the most
    specific roles (a bakery as a store rather than a place), then the keywords' order.
    """
    insts = list(instances(skeleton))
    n_names = len(names_used(skeleton))
    bindings: list[Binding] = []
    pending: list[tuple[str, NounInfo]] = []
    unused: list[tuple[str, str]] = []
    name_slots = list(range(1, n_names + 1))
    for info in nouns:
        kw = info.keyword
        if (
            names_literally(skeleton, kw)
            or _head_site(skeleton, kw) is not None
            or (" " in kw.strip() and _words_in_one_sentence(skeleton, noun_forms(kw)[0]))
        ):
            bindings.append(Binding(kw, "literal", 0))
        elif info.proper:
            if name_slots:
                bindings.append(Binding(kw, "name", name_slots.pop(0)))
            else:
                unused.append((kw, "a person's name, and this problem has no person to name"))
        elif not info.known:
            unused.append((kw, "not a noun the lexicon knows"))
        else:
            pending.append((kw, info))
    best: tuple[tuple[int, int], list[Binding]] = ((0, 0), [])
    options: list[list[Instance | None]] = []
    dry = not re.search(r"<liquid\d?>", skeleton)
    for kw, info in pending:
        # "5 water bottles of stickers": a container for drinks holds only a liquid
        no_cont = dry and _holds_drinks(kw)
        ok: list[Instance | None] = [
            i
            for i in insts
            if fits(info.classes, None if info.proper else not info.mass, i.role)
            and not (i.role == "cont" and no_cont)
        ]
        options.append([*ok, None])
    for choice in itertools.product(*options) if pending else [()]:
        chosen = [c for c in choice if c is not None]
        if len({c.key for c in chosen}) < len(chosen):
            continue
        score = (len(chosen), sum(_specificity(c.role) for c in chosen))
        if score > best[0] or (not best[1] and chosen):
            best = (
                score,
                [
                    Binding(kw, c.role, c.index)
                    for (kw, _i), c in zip(pending, choice, strict=True)
                    if c is not None
                ],
            )
    bound = {b.keyword for b in best[1]}
    setting: list[Binding] = []
    for kw, info in pending:
        if kw in bound:
            continue
        if not setting and setting_phrase(info) and allows_setting(skeleton, info):
            setting.append(Binding(kw, SETTING, 0))
            continue
        kind = info.primary.replace("_", " ")
        unused.append(
            (kw, f"{article_for(kind)} {kind} noun, and no role of this problem takes one")
        )
    return bindings + best[1] + setting, unused


_SCENE_FILLED = ("thing", "food", "stuff", "liquid", "animal", "mover")


# places whose animals or goods are their own: farm animals do not live in a nature reserve
_HABITATS = ("nature reserve", "zoo", "safari park", "farm", "pet shop", "aquarium", "jungle")
# keywords that name a kind of their role rather than one noun ("farm animals", "pets")
_KIND_HEADS = frozenset({"animals", "pets", "toys", "vegetables", "birds", "sweets", "snacks"})


def scene_misfits(
    skeleton: str, scene: Mapping[str, Sequence[tuple[str, str]]], bindings: Sequence[Binding]
) -> int:
    """How many nouns nobody asked for this skeleton would draw from a pool that does not
    belong to the request's ``scene`` (``serving.roles.scene_pools`` of its keywords): a toy
    shop's keyword with a ``<stuff>`` left to fill ("A toy shop has 600 kg of flour") counts
    one. Only scenes with pools of their own count; so does a place of the skeleton's own
    words the scene's places exclude (farm animals in a nature reserve), and, whatever the
    scene, a pool noun beside a keyword naming a kind of its role ("farm animals and 18 cows").
    The bank prefers the skeletons with the fewest."""
    bound = {Instance(b.role, b.index).key for b in bindings}
    skeleton_instances = instances(skeleton)
    # "120 farm animals and 18 cows": a keyword naming a kind of its role beside a pool noun
    # of the same role counts the pool noun twice
    kinds = {b.role for b in bindings if b.keyword.lower().split()[-1] in _KIND_HEADS}
    out = sum(1 for i in skeleton_instances if i.role in kinds and i.key not in bound)
    if not scene:
        return out
    places = {one for one, _many in scene.get("place", ())}
    if places:  # "A nature reserve had 120 farm animals": a place of the scene's own
        words = literal_text(skeleton).lower()
        out += sum(1 for h in _HABITATS if h not in places and re.search(rf"\b{h}\b", words))
    return out + sum(
        1
        for inst in skeleton_instances
        if inst.key not in bound and inst.role in _SCENE_FILLED and inst.role not in scene
    )


def _role_forms(word: str, mass: bool) -> tuple[str, str]:
    sing, plural = noun_forms(word)
    return (sing, sing) if mass else (sing, plural)


@dataclass(frozen=True)
class Cast:
    """Who plays what in one problem: keyword bindings, the noun (singular, plural) of every
    role instance, and the people (name, he, him, his) by index. Drawn once per problem."""

    bindings: tuple[Binding, ...]
    unused: tuple[tuple[str, str], ...]
    forms: dict[str, tuple[str, str]]
    people: dict[int, tuple[str, str, str, str]]


def cast_story(skeleton: str, nouns: Sequence[NounInfo], *, seed: int = 0) -> Cast:
    """The cast of ``skeleton`` (numbers filled or still ``<num>``) for a request's ``nouns``:
    keywords in the roles :func:`bind` gives them, pool nouns (seeded) for the other roles,
    names drawn once so a problem's people never change."""
    rng = random.Random(seed)
    keywords = [n.keyword for n in nouns]
    by_kw = {n.keyword: n for n in nouns}
    bindings, unused = bind(skeleton, nouns)
    forms: dict[str, tuple[str, str]] = {}
    used_heads: set[str] = set()
    for b in bindings:
        if b.role in ("literal", "name", SETTING):
            continue
        info = by_kw[b.keyword]
        key = Instance(b.role, b.index).key
        # a place or a festival typed with a capital is named as typed: "Paris", not "Pari"
        named = info.typed_capitalised and " " not in info.keyword
        forms[key] = (info.keyword, info.keyword) if named else _role_forms(b.keyword, info.mass)
        used_heads.add(noun_forms(b.keyword)[0].lower().rsplit(" ", 1)[-1])
    for kw in keywords:
        used_heads.add(noun_forms(kw)[0].lower().rsplit(" ", 1)[-1])
    # a keyword the skeleton names in its own words holds what it is named for, too
    literal = {
        f"literal{i}": noun_forms(b.keyword)
        for i, b in enumerate(bindings)
        if b.role == "literal" and " " in b.keyword.strip()
    }
    paired = paired_pools({**forms, **literal}, skeleton, literal_text(skeleton))
    # the scene's own nouns: the skeleton's words first ("a pet <animal>", "At the zoo"), then
    # the keywords ("toy shop", "motorway")
    words = re.findall(r"[a-z]+", literal_text(skeleton).lower())
    scene = scene_pools([*words, *(" ".join(p) for p in itertools.pairwise(words)), *keywords])
    for inst in instances(skeleton):
        if inst.key in forms:
            continue
        pool = [
            p
            for p in paired.get(inst.role) or scene.get(inst.role) or fill_pool(inst.role)
            if p[0].rsplit(" ", 1)[-1] not in used_heads
        ]
        one, many = rng.choice(pool or list(fill_pool(inst.role)))
        used_heads.add(one.rsplit(" ", 1)[-1])
        forms[inst.key] = (one, many)
    people = list(NAMES)
    rng.shuffle(people)
    given = {b.index: b.keyword for b in bindings if b.role == "name"}
    chosen: dict[int, tuple[str, str, str, str]] = {}
    for idx in names_used(skeleton):
        if idx in given:
            # a teacher's name: pronouns by the pool's gender when the name is in it
            # (a name the pool does not know is repeated: "Alex ... Alex's", never "they has")
            pronouns = NAME_PRONOUNS.get(given[idx].lower())
            name = given[idx]
            chosen[idx] = (name, *(pronouns or (name, name, f"{name}'s")))
        else:
            taken = {c[0] for c in chosen.values()} | set(given.values())
            chosen[idx] = next(p for p in people if p[0] not in taken)
    return Cast(tuple(bindings), tuple(unused), forms, chosen)


_SHARED_UNITS = frozenset({"kg", "$"})


def _narrower(kept: tuple[int, int] | None, other: tuple[int, int]) -> tuple[int, int]:
    """Where two ranges of one unit overlap, their overlap; else ``kept`` as it is (``other``
    when there is none yet): two nouns that disagree keep the first one's size."""
    if kept is None:
        return other
    lo, hi = max(kept[0], other[0]), min(kept[1], other[1])
    return (lo, hi) if lo <= hi else kept


def size_hints(skeleton: str, cast: Cast, nouns: Sequence[NounInfo]) -> list[dict[str, Any]]:
    """Per sentence of ``skeleton``, the plausible sizes of what its nouns measure
    (``serving.sizes``): the skeleton's own words ("A football pitch is <num> m wide"), then
    each role's keyword or pool noun."""
    from serving.sizes import OVERRIDES, PER_NOUN, size_of

    classes = {
        Instance(b.role, b.index).key: by.classes
        for b in cast.bindings
        for by in nouns
        if by.keyword == b.keyword and b.role not in ("literal", "name", SETTING)
    }
    out: list[dict[str, Any]] = []
    for sentence in SENTENCE_END.split(" ".join(skeleton.split())):
        sizes: dict[str, Any] = {}
        # the skeleton's own words first: its author wrote them for this number ("at only
        # <num> km per hour because of the traffic", "A football pitch is <num> m wide")
        words = re.findall(r"[a-z]+", literal_text(sentence).lower())
        words_set = {u for w in words for u in size_of(w)}
        overridden: set[str] = set()
        for word in OVERRIDES.intersection(words):
            sizes.update(size_of(word))
            overridden.update(size_of(word))
        for i, word in enumerate(words):
            for phrase in (" ".join(words[i : i + 2]), word):
                for unit, r in size_of(phrase).items():
                    if unit in PER_NOUN:  # "<num> teams", "Each team has <num> players"
                        sizes.setdefault(f"{unit}:{word}", r)
                    elif unit in overridden:
                        continue
                    else:
                        # two of its own words ("the floor of the bedroom"): the narrower
                        sizes[unit] = _narrower(sizes.get(unit), r)
        by_role: dict[str, Any] = {}
        for m in ROLE_TOKEN.finditer(sentence):
            key = m.group("role") + (m.group("inst") or "")
            sing = cast.forms.get(key, ("", ""))[0]
            for unit, r in size_of(
                sing, role=m.group("role"), classes=classes.get(key, ())
            ).items():
                if unit in PER_NOUN:  # "<num> <cont:pl>", "Each <big> has room for <num>"
                    sizes[f"{unit}:{key}"] = r
                    continue
                if unit in _SHARED_UNITS and unit in by_role and unit not in words_set:
                    # two nouns weighed or priced in one sentence ("the puppy weighs <num> kg
                    # and the kitten <num> kg"): the numbers of the sentence fit both
                    sizes[unit] = by_role[unit] = _narrower(by_role[unit], r)
                    continue
                if unit in sizes and unit not in by_role and unit not in overridden:
                    # the skeleton's generic word and the role's own noun ("the floor of
                    # <Ann>'s <room>"): the bedroom's 3-6 m narrows the floor's 3-12 m
                    sizes[unit] = _narrower(sizes[unit], r)
                by_role.setdefault(unit, r)
                sizes.setdefault(unit, r)
        out.append(sizes)
    return out


def render_story(
    skeleton: str, nouns: Sequence[NounInfo], *, seed: int = 0, cast: Cast | None = None
) -> Story:
    """The skeleton with every role, name and pronoun rendered (numbers already filled);
    ``nouns`` are the request's keywords as the lexicon knows them (``serving.lexicon``);
    ``cast`` the one :func:`cast_story` drew for it (drawn here when not given)."""
    cast = cast if cast is not None else cast_story(skeleton, nouns, seed=seed)
    by_kw = {n.keyword: n for n in nouns}
    bindings, unused, forms, chosen = cast.bindings, cast.unused, cast.forms, cast.people

    def role_sub(m: re.Match[str]) -> str:
        key = m.group("role") + (m.group("inst") or "")
        sing, plural = forms[key]
        cue = _count_cue(_prev_token(m.string, m.start()))
        if cue is None:
            return plural if m.group("pl") else sing
        return sing if cue == "sing" else plural

    text = _widen_heads(" ".join(skeleton.split()), bindings, forms)
    for b in bindings:
        if b.role != "cont" or " " not in b.keyword.strip():
            continue

        # "8 egg boxes" and "4 muffin trays" say what they hold: never "of eggs", "of muffins"
        def says_it(m: re.Match[str], keyword: str = b.keyword) -> str:
            return m.group(1) if _says_contents(keyword, m.group(2), forms) else m.group(0)

        key = Instance(b.role, b.index).key
        text = re.sub(rf"(<{key}(?::pl)?>) of <([a-z]+\d?)(?::pl)?>", says_it, text)
    text = ROLE_TOKEN.sub(role_sub, text)
    text = NAME_TOKEN.sub(lambda m: chosen[int(m.group("inst") or 1)][0], text)
    pron_at = {"he": 1, "him": 2, "his": 3}
    text = PRONOUN_TOKEN.sub(
        lambda m: chosen[int(m.group("inst") or 1)][pron_at[m.group("p")]], text
    )
    text = _capitalize_sentences(_fix_unit_counts(_fix_articles(fix_spacing(text))))
    for b in bindings:
        if b.role not in ("name", "literal") and by_kw[b.keyword].typed_capitalised:
            # a festival is named, not counted: "For Diwali", never "For the Diwali"
            kw = re.escape(b.keyword)
            text = re.sub(rf"\b(?:the|a|an) ({kw})\b", r"\1", text, flags=re.I)
    for b in bindings:
        if b.role == SETTING:
            text = open_with(text, setting_phrase(by_kw[b.keyword]) or "", skeleton)
    return Story(text, tuple(bindings), tuple(unused))


def tell(
    skeleton: str,
    equation: str | None,
    nouns: Sequence[NounInfo],
    *,
    topic: str = "",
    prompt_prefix: str = "",
    seed: int = 0,
) -> Story:
    """A skeleton with ``<num>`` slots told for a request: the cast drawn once, numbers drawn
    for the grade and for the sizes of the cast's nouns (``serving.sizes``), then rendered.
    The one path from a skeleton to a problem text (serving, metrics, the rule baseline)."""
    from serving.numbers import fill_numbers

    cast = cast_story(skeleton, nouns, seed=seed)
    filled = fill_numbers(
        skeleton,
        equation,
        topic=topic,
        prompt_prefix=prompt_prefix,
        seed=seed,
        sizes=size_hints(skeleton, cast, nouns),
    )
    return render_story(filled, nouns, seed=seed, cast=cast)


def render_any(
    decoded: str,
    keywords: Sequence[str],
    *,
    topic: str = "",
    prompt_prefix: str = "",
    seed: int = 0,
    nouns: Sequence[NounInfo] | None = None,
) -> Any:
    """The one post-processing of a decoded string, for evaluation, serving and the drop-in.

    Without ``nouns``, a keyword-slot model's: ``serving.realize.render_output``. With them (a
    typed-role model; the request's keywords as the lexicon knows them, in request order):
    number values first (seeded, for the topic and grade), then roles, names and pronouns
    (:func:`render_story`), then the equation's number slots."""
    from serving.currency import asked_currency, in_currency
    from serving.prompt import parse_target

    if nouns is None:
        return render_output(decoded, keywords, topic=topic, prompt_prefix=prompt_prefix, seed=seed)
    problem_raw, equation_raw, tail = split_decoded(decoded)
    story = tell(
        problem_raw,
        equation_raw,
        nouns,
        topic=topic,
        prompt_prefix=prompt_prefix,
        seed=seed,
    )
    problem_text, equation = parse_target(story.text + tail)
    problem_text = in_currency(problem_text, asked_currency(prompt_prefix))
    return RenderedProblem(
        problem_text=problem_text,
        equation_text=equation,
        complete=problem_text.endswith("?"),
        unresolved_slots=unresolved_slots(problem_text) + leftover_tokens(problem_text),
        bindings=story.bindings,
        keywords_unused=story.unused,
        skeleton=" ".join(problem_raw.split()),
    )
