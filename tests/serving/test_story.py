"""Typed roles: a keyword fills only a role its class can play; one coherent story."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from serving.lexicon import Lexicon, NounInfo, describe
from serving.roles import instances, role_tokens
from serving.story import bind, render_story

# A tiny inline lexicon: the classes the WordNet table gives these nouns.
ROWS = {
    "cookie": ("food", "food", "c"),
    "jar": ("container", "container", "c"),
    "train": ("vehicle", "vehicle", "c"),
    "station": ("place", "place", "c"),
    "apple": ("food", "food,plant", "c"),
    "bakery": ("place", "place,store", "c"),
    "flour": ("food", "food", "m"),
    "profit": ("abstract", "abstract", "c"),
}
SUBTRACTION = (
    "A <cont> held 18 <food:pl>. <name> took out 8 of them. "
    "How many <food:pl> are left in the <cont>?"
)


@pytest.fixture()
def lexicon(tmp_path: Path) -> Lexicon:
    path = tmp_path / "nouns.tsv"
    path.write_text("".join(f"{k}\t{p}\t{c}\t{m}\n" for k, (p, c, m) in ROWS.items()))
    return Lexicon.load(path)


def test_keywords_go_where_their_class_fits(lexicon: Lexicon) -> None:
    story = render_story(SUBTRACTION, describe(lexicon, ["cookies", "jar"]), seed=1)
    assert story.text.startswith("A jar held 18 cookies.")
    assert story.text.endswith("How many cookies are left in the jar?")
    assert story.unused == ()


def test_a_food_never_holds_and_unfit_keywords_are_reported(lexicon: Lexicon) -> None:
    bindings, unused = bind(SUBTRACTION, describe(lexicon, ["jar", "train", "station"]))
    # the station has no role in the maths, but a place can be the scene
    assert [(b.keyword, b.role) for b in bindings] == [("jar", "cont"), ("station", "setting")]
    assert [kw for kw, _ in unused] == ["train"]
    assert "vehicle" in dict(unused)["train"]


def test_a_place_or_a_time_sets_the_scene_once(lexicon: Lexicon) -> None:
    story = render_story(SUBTRACTION, describe(lexicon, ["cookies", "bakery"]), seed=3)
    assert story.text.startswith("At the bakery, a ")
    assert story.unused == ()
    # one scene per problem: a second place is reported, not stacked
    _b, unused = bind(SUBTRACTION, describe(lexicon, ["bakery", "station"]))
    assert [kw for kw, _ in unused] == ["station"]
    # a skeleton with a scene of its own keeps it
    own = "At the <store>, <name> buys 4 <food:pl>. How many <food:pl> does <name> buy?"
    _b, unused = bind(own, describe(lexicon, ["station", "cookies"]))
    assert [kw for kw, _ in unused] == ["station"]
    # a name that opens the problem keeps its capital
    sk = "<name> has 12 <thing:pl>. How many <thing:pl> does <name> have?"
    assert ", " in render_story(sk, describe(lexicon, ["station"]), seed=0).text
    assert render_story(sk, describe(lexicon, ["station"]), seed=0).text.split(", ")[1][0].isupper()


def test_mass_nouns_do_not_fill_count_roles(lexicon: Lexicon) -> None:
    _bindings, unused = bind(SUBTRACTION, describe(lexicon, ["flour"]))
    assert [kw for kw, _ in unused] == ["flour"]


def test_the_same_person_and_items_throughout(lexicon: Lexicon) -> None:
    sk = "<name> has 12 <thing:pl>. <he> gives 5 to <name2>. How many <thing:pl> does <name> have?"
    for seed in range(20):
        text = render_story(sk, [], seed=seed).text
        first, *_rest, question = text.split(". ")
        name = first.split()[0]
        assert question.endswith(f"does {name} have?")
        item = first.split()[-1]
        assert f"many {item} does" in question
        assert "<" not in text


def test_literal_keywords_and_names(lexicon: Lexicon) -> None:
    sk = "<name> sells <num> <food:pl> at the <store>. What is the profit?"
    bindings, unused = bind(sk, describe(lexicon, ["profit", "Maya", "bakery", "apples"]))
    roles = {b.keyword: b.role for b in bindings}
    assert roles == {"profit": "literal", "Maya": "name", "bakery": "store", "apples": "food"}
    assert unused == []
    assert render_story(sk, describe(lexicon, ["Maya"])).text.startswith("Maya sells")


def test_a_keyword_never_renames_one_of_the_skeletons_own_kinds(lexicon: Lexicon) -> None:
    """ "Liam has piano practice ... Each soccer practice lasts 30 minutes" is two practices of
    one: a multi-word keyword is written at its head's place only where the skeleton names no
    kind of its own there; a described head ("a new recipe") still takes it."""
    own = (
        "<name> has piano practice <num> times a week. Each practice lasts 30 minutes. "
        "How many minutes of piano practice does <name> do in a week?"
    )
    story = render_story(own, describe(lexicon, ["soccer practice"]))
    assert "soccer" not in story.text and [kw for kw, _ in story.unused] == ["soccer practice"]
    described = "A new recipe needs <num> cups of flour. How many cups do 2 recipes need?"
    assert "cake recipe" in render_story(described, describe(lexicon, ["cake recipe"])).text


def test_role_tokens_are_added_tokens() -> None:
    toks = role_tokens()
    assert "<food:pl>" in toks and "<cont2>" in toks and "<he2>" in toks
    assert [i.key for i in instances("<thing2:pl> and <thing> and <thing2>")] == ["thing2", "thing"]


def test_liquids_are_not_dry_stuff(tmp_path: Path) -> None:
    from serving.roles import fits

    assert fits(frozenset({"food"}), False, "stuff")  # flour
    assert not fits(frozenset({"food", "liquid"}), False, "stuff")  # juice


def test_planner_asks_for_trained_role_combinations(lexicon: Lexicon) -> None:
    from serving.planner import Planner

    recs = [
        {"topic": "subtraction", "keywords": ["cookies", "jar"], "roles": ["food", "cont"]},
        {"topic": "subtraction", "keywords": ["apples", "box"], "roles": ["food", "cont"]},
        {"topic": "subtraction", "keywords": ["cookies"], "roles": ["thing"]},
        {"topic": "money", "keywords": ["profit"], "roles": ["word"]},
    ]
    planner = Planner.from_records(recs)
    nouns = describe(lexicon, ["jar", "cookies"])
    assert planner.plans("subtraction", nouns) == [["cont", "food"]]
    assert planner.plan("money", describe(lexicon, ["profit"])) == ["word"]
    # nothing trained fits: each keyword's most specific role
    assert planner.plan("subtraction", describe(lexicon, ["train"])) == ["vehicle"]
    assert Planner.load_json(planner.to_json()).plans("subtraction", nouns) == [["cont", "food"]]


def test_a_teachers_name_outside_the_pool_gets_its_pronouns(lexicon: Lexicon) -> None:
    sk = "<name> has 12 <thing:pl>. <he> gives 3 to <his> friend. How many does <name> have?"
    text = render_story(sk, describe(lexicon, ["Sophie"]), seed=0).text
    assert "She gives 3 to her friend" in text
    # a name neither list knows is repeated, never given a guessed pronoun
    text = render_story(sk, describe(lexicon, ["Zebedee"]), seed=0).text
    assert "Zebedee gives 3 to Zebedee's friend" in text


@pytest.mark.parametrize(
    ("word", "classes", "phrase"),
    [
        ("bakery", ("place", "store"), "At the bakery"),
        ("classroom", ("place", "surface"), "In the classroom"),
        ("football pitch", ("place", "surface"), "On the football pitch"),
        ("school trip", ("event",), "On the school trip"),
        ("birthday party", ("event",), "At the birthday party"),
        ("evening", ("time",), "In the evening"),
        ("school day", ("time",), "During the school day"),
        ("motorway", ("place", "route"), "On the motorway"),
        ("lawn", ("place", "surface"), "On the lawn"),
        ("sunrise", ("time",), "At sunrise"),
        ("newsagent", ("place", "store"), "At the newsagent"),
        ("minutes", ("time", "unit"), None),  # a unit of time is never a scene
        ("jar", ("container",), None),
    ],
)
def test_scene_phrases(word: str, classes: tuple[str, ...], phrase: str | None) -> None:
    from serving.lexicon import NounInfo
    from serving.scenes import setting_phrase

    assert setting_phrase(NounInfo(word, word, classes[0], frozenset(classes), False)) == phrase


def test_a_container_keyword_gets_its_own_contents_and_a_thing_its_own_holder() -> None:
    from serving.lexicon import NounInfo
    from serving.story import cast_story

    sk = "<name> fills <num> <cont:pl> with <thing:pl>. <he> puts <num> <thing:pl> in each <cont>."
    for seed in range(8):
        trays = NounInfo("seed trays", "seed tray", "container", frozenset({"container"}), False)
        assert cast_story(sk, [trays], seed=seed).forms["thing"][0] in ("seed", "seedling")
        eggs = NounInfo("eggs", "egg", "food", frozenset({"food"}), False)
        assert cast_story(sk, [eggs], seed=seed).forms["cont"][0] in ("egg box", "carton", "basket")


def test_a_multi_word_keyword_is_written_whole_where_the_skeleton_names_its_head() -> None:
    from serving.lexicon import NounInfo
    from serving.story import bind, render_story

    recipe = NounInfo("cake recipe", "recipe", "abstract", frozenset({"abstract"}), False)
    sk = "A recipe needs 250 grams of flour. <name> has 50 grams. How many more grams?"
    bindings, unused = bind(sk, [recipe])
    assert [b.role for b in bindings] == ["literal"] and not unused
    assert render_story(sk, [recipe], seed=1).text.startswith("A cake recipe needs 250 grams")
    trees = NounInfo("apple trees", "tree", "plant", frozenset({"plant"}), False)
    assert "has 35 apple trees." in render_story("The farm has 35 trees.", [trees]).text
    # a head behind its own modifier is left alone, and so is a phrase already said in words
    assert bind("The old recipe needs 2 eggs.", [recipe])[1]
    election = NounInfo("school election", "election", "event", frozenset({"event"}), False)
    sk = "40 students vote in the election for school captain. Who wins?"
    assert render_story(sk, [election]).text == sk


def test_a_scene_never_opens_a_problem_written_about_nouns_of_its_own() -> None:
    from serving.lexicon import NounInfo
    from serving.scenes import allows_setting

    stand = NounInfo("lemonade stand", "stand", "store", frozenset({"store"}), False)
    goats = "A bag of food for the goats costs $<num>. <name> buys <num> bags. How much?"
    assert not allows_setting(goats, stand)
    assert allows_setting("<name> buys <num> <thing:pl> for $<num> each. How much?", stand)
    assert allows_setting("A <cont> held <num> <food:pl>. How many are left?", stand)


def test_the_scene_chooses_the_nouns_nobody_asked_for(tmp_path: Path) -> None:
    """A toy shop sells toys, a pet is a dog or a cat, a motorway carries cars; a shop opens
    only a problem whose goods are roles its pool can fill."""
    rows = {**ROWS, "toy shop": ("store", "place,store", "c"), "vet": ("person", "person", "c")}
    path = tmp_path / "nouns.tsv"
    path.write_text("".join(f"{k}\t{p}\t{c}\t{m}\n" for k, (p, c, m) in rows.items()))
    lex = Lexicon.load(path)
    goods = "<name> buys <num> <thing:pl> for $<num>. How much does each <thing> cost?"
    for seed in range(8):
        text = render_story(goods, describe(lex, ["toy shop"]), seed=seed).text
        assert text.startswith("At the toy shop, ")
        assert any(t in text for t in ("toy car", "teddy bear", "kite", "board game", "yo-yo"))
        pets = render_story("<name> has a pet <animal>.", describe(lex, ["cookies"]), seed=seed)
        assert pets.text.split("pet ")[1].rstrip(".") in {
            "dog",
            "cat",
            "rabbit",
            "kitten",
            "puppy",
            "tortoise",
        }
    literal_goods = "<name> buys a pair of sneakers for $<num>. How much change does <name> get?"
    _b, unused = bind(literal_goods, describe(lex, ["toy shop"]))
    assert [kw for kw, _ in unused] == ["toy shop"]


def test_scene_misfits_count_pool_nouns_the_scene_does_not_own(tmp_path: Path) -> None:
    from serving.roles import scene_pools
    from serving.story import scene_misfits

    rows = {**ROWS, "toy shop": ("store", "place,store", "c")}
    path = tmp_path / "nouns.tsv"
    path.write_text("".join(f"{k}\t{p}\t{c}\t{m}\n" for k, (p, c, m) in rows.items()))
    nouns = describe(Lexicon.load(path), ["toy shop"])
    flour = "A <store> has <num> kg of <stuff>. It sells <num> kg. How many kg are left?"
    toys = "A <store> has <num> <thing:pl>. It sells <num>. How many <thing:pl> are left?"
    scene = scene_pools(["toy shop"])
    assert scene_misfits(flour, scene, bind(flour, nouns)[0]) == 1
    assert scene_misfits(toys, scene, bind(toys, nouns)[0]) == 0
    # a scene the table does not know counts nothing
    plain = describe(Lexicon.load(path), ["station"])
    assert scene_misfits(flour, scene_pools(["station"]), bind(flour, plain)[0]) == 0


def test_farm_animals_stay_out_of_a_nature_reserve_and_are_not_counted_twice() -> None:
    from serving.roles import scene_pools
    from serving.story import scene_misfits

    herd = [NounInfo("farm animals", "farm animal", "animal", frozenset({"animal"}), False)]
    scene = scene_pools(["farm animals"])
    reserve = "A nature reserve had <num> <animal:pl> . How many <animal:pl> live there now?"
    field = "There were <num> <animal:pl> at the <place> . How many <animal:pl> are there now?"
    both = "<name> saw <num> <animal:pl> and <num> <animal2:pl> . How many animals did <he> see?"
    assert scene_misfits(reserve, scene, bind(reserve, herd)[0]) == 1
    assert scene_misfits(field, scene, bind(field, herd)[0]) == 0
    # "120 farm animals and 18 cows" counts the cows twice
    assert scene_misfits(both, scene, bind(both, herd)[0]) == 1


def test_large_things_and_stalls_keep_to_roles_they_can_play(tmp_path: Path) -> None:
    """A tent is set up, not packed in crates; a lemonade stand sells, nobody travels to it."""
    from serving.roles import KEYWORD_ONLY, role_options

    rows = {
        "tent": ("object", "object", "c"),
        "toy car": ("toy", "toy", "c"),
        "lemonade stand": ("place", "place,object", "c"),
    }
    path = tmp_path / "nouns.tsv"
    path.write_text("".join(f"{k}\t{p}\t{c}\t{m}\n" for k, (p, c, m) in rows.items()))
    tents, toys, stand = describe(Lexicon.load(path), ["tents", "toy cars", "lemonade stand"])

    def pooled(options: list[str]) -> list[str]:  # keyword-only roles come last, if at all
        return [o for o in options if o not in KEYWORD_ONLY]

    assert pooled(role_options(tents.classes, True)) == ["big"]
    assert role_options(tents.classes, True)[0] == "big"
    assert "thing" in role_options(toys.classes, True)
    assert pooled(role_options(stand.classes, True)) == ["store"]


def test_a_container_keyword_holds_what_it_is_named_for(lexicon: Lexicon) -> None:
    """ "6 water bottles of juice" was rated contradictory, and "6 water bottles of water"
    redundant: a keyword the skeleton names in its own words (a bottle, widened to "water
    bottle") picks the contents it is named for and is not told what it holds twice."""
    from serving.story import cast_story

    sk = "<name> buys <num> bottles of <liquid> for the trip. How many litres of <liquid>?"
    for seed in range(6):
        story = render_story(sk, describe(lexicon, ["water bottles"]), seed=seed)
        assert "buys <num> water bottles for the trip" in story.text, story.text
        assert story.text.endswith("How many litres of water?"), story.text
    assert cast_story(sk, describe(lexicon, ["water bottles"])).forms["liquid"][0] == "water"
    # a container not named for its contents keeps them: "bottles of juice" for "glass bottles"
    story = render_story(sk, describe(lexicon, ["glass bottles"]), seed=0)
    assert "glass bottles of " in story.text, story.text


def test_a_shape_word_stays_geometry_and_a_drinks_container_holds_drinks(
    lexicon: Lexicon,
) -> None:
    """ "A fabric square has 4 equal sides" and "5 water bottles of stickers" were rated
    nonsense: a shape word is not widened to a keyword, a drinks container never holds things."""
    square = "A square has 4 equal sides. Each side of a <panel> is <num> cm. How long is it?"
    story = render_story(square, describe(lexicon, ["fabric squares"]), seed=0)
    assert story.text.startswith("A square has 4 equal sides"), story.text
    dry = "<name> buys <num> <cont:pl> of <thing:pl>. How many <thing:pl> are there?"
    bindings, unused = bind(dry, describe(lexicon, ["water bottles"]))
    assert not [b for b in bindings if b.role == "cont"] and unused


def test_a_festival_typed_with_a_capital_is_no_person(tmp_path: Path) -> None:
    """ "Diwali has 157 diya lamps": a capitalised festival the lexicon knows is an occasion
    ("At Diwali, ..."); a name stays a name even where WordNet has the word ("Grace")."""
    from serving.scenes import setting_phrase

    path = tmp_path / "nouns.tsv"
    path.write_text("diwali\tevent\tevent,time\tc\ngrace\tabstract\tabstract\tc\n")
    diwali, grace = describe(Lexicon.load(path), ["Diwali", "Grace"])
    assert not diwali.proper and setting_phrase(diwali) == "At Diwali"
    assert grace.proper


def test_a_container_bound_as_a_role_is_not_told_what_it_holds_twice(tmp_path: Path) -> None:
    """ "8 egg boxes of eggs" read as padding: a container keyword named for its contents says
    them, whichever role it plays; "lunch boxes of sandwiches" keeps its contents."""
    from dataclasses import replace

    from serving.story import cast_story

    path = tmp_path / "nouns.tsv"
    path.write_text("egg box\tcontainer\tcontainer\tc\nlunch box\tcontainer\tcontainer\tc\n")
    lex = Lexicon.load(path)
    sk = "The shop sells <num> <cont:pl> of <food:pl>, with <num> <food:pl> in each. How many?"
    eggs = render_story(sk, describe(lex, ["egg boxes"]), seed=1).text
    assert "egg boxes, with" in eggs and "of eggs" not in eggs, eggs
    lunch = render_story(sk, describe(lex, ["lunch boxes"]), seed=1).text
    assert "lunch boxes of " in lunch, lunch
    # a keyword widened from the skeleton's own word, whose modifier is what the role holds
    trays = "A baker bakes <num> trays of <food:pl>, <num> on each tray. How many <food:pl>?"
    cast = cast_story(trays, describe(lex, ["muffin trays"]))
    forms = {**cast.forms, "food": ("muffin", "muffins")}
    text = render_story(trays, describe(lex, ["muffin trays"]), cast=replace(cast, forms=forms))
    assert "bakes <num> muffin trays, <num> on each tray" in text.text, text.text


def test_a_town_typed_with_a_capital_is_a_place_named_as_typed(tmp_path: Path) -> None:
    """ "Edinburgh" travelled as a person and "Paris" came out as "the Pari": a capitalised
    place the lexicon knows is a place, opens a problem as "In Edinburgh" and keeps its
    spelling; a child's name that is also a place ("Jordan") stays a name."""
    from serving.scenes import setting_phrase

    path = tmp_path / "nouns.tsv"
    rows = ("edinburgh", "paris", "jordan")
    path.write_text("".join(f"{w}\tplace\tplace\tc\n" for w in rows))
    lex = Lexicon.load(path)
    edinburgh, paris, jordan = describe(lex, ["Edinburgh", "Paris", "Jordan"])
    assert not edinburgh.proper and setting_phrase(edinburgh) == "In Edinburgh"
    assert jordan.proper
    sk = "The trip from the <place> to the beach is <num> km. How far is it?"
    assert render_story(sk, [paris], seed=0).text.startswith("The trip from Paris to"), sk


def test_a_keyword_never_renames_a_kind_the_skeleton_names_or_a_generic_word(
    lexicon: Lexicon,
) -> None:
    """ "covers the kitchen floor ... The bedroom floor is 34 tiles long" and "How long is the
    chess piece he cuts off?" (of a ribbon) were rated unsolvable: a head the skeleton names
    with a kind of its own, or a generic word, is not widened to the keyword."""
    from serving.story import _head_site

    floor = "<name> tiles the kitchen floor. The floor is <num> tiles long. How many tiles?"
    assert _head_site(floor, "bedroom floor") is None
    ribbon = "A ribbon is <num> m long. How long is the piece <he> cuts off?"
    assert _head_site(ribbon, "chess pieces") is None
    assert _head_site("A recipe needs <num> eggs. How many eggs?", "cake recipe") is not None
    same = "The floor is <num> m wide. Is the same floor <num> m long?"
    assert _head_site(same, "bedroom floor") is not None


_PARK = NounInfo("park", "park", "place", frozenset({"place"}), False)
_BANK = NounInfo("piggy bank", "piggy bank", "container", frozenset({"container"}), False)


@pytest.mark.parametrize(
    ("noun", "skeleton", "equation", "topic", "never"),
    [
        (  # a car or a bus does not race a cyclist through a park
            _PARK,
            "At the <place> , a <mover> moves at <num> metres per second for <num> seconds. "
            "How many metres does the <mover> move?",
            "n1 * n2",
            "speed",
            r"\b(?:car|bus|coach|van|lorry)\b",
        ),
        (  # a piggy bank holds coins, and nobody spends its money on coins
            _BANK,
            "<name> had $ <num> in <his> piggy bank. <he> spent $ <num> on <thing:pl> . "
            "How much money is left in <his> piggy bank?",
            "n1 - n2",
            "subtraction",
            r"\bcoins\b",
        ),
    ],
)
def test_a_scene_keeps_out_what_does_not_belong(
    noun: NounInfo, skeleton: str, equation: str, topic: str, never: str
) -> None:
    from serving.story import tell

    for seed in range(10):
        text = tell(skeleton, equation, [noun], topic=topic, seed=seed).text
        assert not re.search(never, text), text


def test_units_of_stuff_are_counted_things(lexicon: Lexicon) -> None:
    """ "10 kg of pots of glue" and "17 bags of bags of flour" were written when the stuff
    alone was read: a bag of flour is a thing a child counts, buys and shares."""
    flour, crayons, cream = describe(lexicon, ["bags of flour", "box of crayons", "cream of jar"])
    assert (flour.primary, flour.classes, flour.mass) == ("object", frozenset({"object"}), False)
    assert flour.lemma == "bag of flour" and crayons.lemma == "box of crayons"
    assert cream.lemma == "jar"  # not a unit of anything: read by its head noun, as before
    shared = "<name> has <num> <thing:pl>. <name> gives <num> of them away. How many are left?"
    story = render_story(shared, [flour], seed=1)
    assert "bags of flour." in story.text and story.unused == ()


def test_festivals_wordnet_lacks_are_occasions_not_children(lexicon: Lexicon) -> None:
    """ "Holi bought 11 balloons" and "Navratri's family" were written when a capitalised word
    the table lacks was read as a child's name."""
    holi, chaturthi, maya = describe(lexicon, ["Holi", "Ganesh Chaturthi", "Maya"])
    assert (holi.primary, holi.classes, holi.proper) == ("event", {"event", "time"}, False)
    assert chaturthi.primary == "event" and maya.proper
    sk = "<name> has 12 <thing:pl>. How many <thing:pl> does <name> have?"
    story = render_story(sk, describe(lexicon, ["Holi"]), seed=0)
    assert story.text.startswith("At Holi, ") and not re.search(r"Holi (?:has|have)", story.text)
