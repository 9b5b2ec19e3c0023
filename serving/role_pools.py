"""The nouns a typed role is filled with when no keyword plays it (declared data).

What a container a teacher names usually holds (seed trays hold seeds), where a thing is kept
(eggs go in egg boxes), and the pools a scene word sets (a toy shop sells toys, a park's
movers are cyclists and runners, not cars). ``serving.roles`` reads them; stdlib only.
"""

from __future__ import annotations


# Pools hold the most neutral nouns of a role: a pool noun meets a teacher's noun it was never
# chosen for, so "a tin of robots", "robots at the bakery" and "a train trip to the school
# hall" (each rated unusable) came from pools with specific nouns.
def pool(*words: str) -> tuple[tuple[str, str], ...]:
    out = []
    for w in words:
        one, _, many = w.partition("/")
        out.append((one, many or one + "s"))
    return tuple(out)


# What a container a teacher names usually holds, and where a thing a teacher names is usually
# kept: a pool noun beside it is drawn from here, so seed trays hold seeds, not sandwiches, and
# cookies go into jars, not egg boxes. Keys are singular heads or whole phrases.
CONTENTS: dict[str, tuple[tuple[str, str], ...]] = {
    # a container named for what it holds holds that: "6 water bottles of juice" is no bottle
    "water bottle": pool("water/water"),
    "milk bottle": pool("milk/milk"),
    "juice bottle": pool("juice/juice"),
    "goody bag": pool("sweet", "sticker"),
    "egg box": pool("egg"),
    "egg carton": pool("egg"),
    "carton": pool("egg"),
    "seed tray": pool("seed", "seedling"),
    "flower pot": pool("seed", "bulb"),
    "plant pot": pool("seed", "bulb"),
    "pot": pool("seed", "bulb"),
    "pencil case": pool("pencil", "pen", "crayon"),
    "pencil pot": pool("pencil", "pen"),
    "pencil box": pool("pencil", "crayon"),
    "crayon box": pool("crayon"),
    "lunch box": pool("sandwich/sandwiches", "apple"),
    "lunchbox": pool("sandwich/sandwiches", "apple"),
    "lunch bag": pool("sandwich/sandwiches", "apple"),
    "picnic basket": pool("sandwich/sandwiches", "apple"),
    "vase": pool("flower", "rose", "tulip"),
    "fish tank": pool("fish/fish"),
    "tank": pool("fish/fish"),
    "bookshelf": pool("book"),
    "bookcase": pool("book"),
    "shelf": pool("book"),
    "school bag": pool("book", "notebook"),
    "schoolbag": pool("book", "notebook"),
    "backpack": pool("book", "notebook"),
    "piggy bank": pool("coin"),
    "money box": pool("coin"),
    "purse": pool("coin"),
    "wallet": pool("coin"),
    "treasure chest": pool("coin", "jewel"),
    "album": pool("sticker", "photo"),
    "sticker album": pool("sticker"),
    "photo album": pool("photo"),
    "cookie jar": pool("cookie"),
    "sweet jar": pool("sweet"),
    "jar": pool("cookie", "sweet", "marble"),
    "biscuit tin": pool("biscuit"),
    "tin": pool("biscuit", "button"),
    "button tin": pool("button"),
    "sewing box": pool("button", "reel of thread/reels of thread"),
    "fruit bowl": pool("apple", "orange"),
    "bowl": pool("apple", "orange"),
    "basket": pool("apple", "egg"),
    "toy box": pool("toy", "teddy bear"),
    "baking tray": pool("cookie", "bun"),
    "tray": pool("cookie", "bun"),
    "muffin tray": pool("muffin"),
    "muffin tin": pool("muffin"),
    "cupcake tray": pool("cupcake"),
    "goodie bag": pool("sweet", "sticker"),
    "party bag": pool("sweet", "sticker"),
    "gift bag": pool("sweet", "sticker"),
    "bucket": pool("shell", "pebble"),
    "sack": pool("potato/potatoes"),
    "crate": pool("apple", "orange", "bottle"),
    "suitcase": pool("shirt", "T-shirt"),
    "drawer": pool("sock", "T-shirt"),
    "wardrobe": pool("shirt", "dress/dresses"),
    "jewellery box": pool("ring", "bead"),
    "envelope": pool("stamp", "card"),
    "quiver": pool("arrow"),
    "fridge": pool("yogurt", "bottle"),
    "freezer": pool("ice lolly/ice lollies"),
    "cool box": pool("bottle of water/bottles of water", "can of juice/cans of juice"),
    "beehive": pool("bee"),
    "hive": pool("bee"),
    "nest": pool("egg"),
    "trophy cabinet": pool("trophy/trophies", "medal"),
    "display case": pool("medal", "trophy/trophies"),
}
HOLDERS: dict[str, tuple[tuple[str, str], ...]] = {
    "egg": pool("egg box/egg boxes", "carton", "basket"),
    "cookie": pool("jar", "tin", "box/boxes"),
    "biscuit": pool("tin", "packet"),
    "muffin": pool("box/boxes", "tray"),
    "cupcake": pool("box/boxes", "tray"),
    "sweet": pool("jar", "bag"),
    "marble": pool("jar", "bag"),
    "pencil": pool("pencil case", "box/boxes", "pot"),
    "crayon": pool("box/boxes", "pot"),
    "book": pool("shelf/shelves", "box/boxes", "bag"),
    "sticker": pool("album", "sheet"),
    "photo": pool("album", "frame"),
    "coin": pool("piggy bank", "jar", "purse"),
    "seed": pool("packet", "seed tray", "pot"),
    "flower": pool("vase", "bunch/bunches"),
    "fish": pool("tank", "bowl"),
    "apple": pool("basket", "bag", "crate"),
    "orange": pool("basket", "bag", "crate"),
    "sandwich": pool("lunch box/lunch boxes", "plate"),
    "shell": pool("bucket", "jar"),
    "toy": pool("toy box/toy boxes", "box/boxes"),
    "sock": pool("drawer", "bag"),
    "bottle": pool("crate", "box/boxes"),
}


# What the nouns nobody asked for are, where a problem's scene or its own words say where it
# happens: a toy shop sells toys, not sneakers; a greenhouse grows seedlings, not sandwiches;
# a pet is a dog or a cat, not a sheep; a motorway carries cars, not horses. Keys are a scene
# keyword (whole phrase, else its head) or a word of the skeleton ("pet", "zoo"); values map a
# role to its pool there. A scene without an entry keeps the role's neutral pool.
_PETS = pool("dog", "cat", "rabbit", "kitten", "puppy/puppies", "tortoise")
_FARM = pool("cow", "sheep/sheep", "pig", "goat", "chicken", "horse")
_ZOO = pool("lion", "zebra", "giraffe", "penguin", "monkey", "elephant")
_ROAD_MOVERS = pool("car", "bus/buses", "coach/coaches", "van", "lorry/lorries")
_TRAIL_MOVERS = pool("cyclist", "runner", "hiker", "horse rider")
_FRUIT = pool("apple", "orange", "pear", "banana", "peach/peaches", "plum")
SCENE_POOLS: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {
    "pet": {"animal": _PETS},
    "pets": {"animal": _PETS},
    "vet": {"animal": _PETS},
    "puppy": {"animal": _PETS},
    "kitten": {"animal": _PETS},
    "pet shop": {"animal": _PETS, "thing": pool("dog toy", "collar", "lead", "bag of pet food")},
    "farm": {"animal": _FARM, "food": pool("egg", "apple", "potato/potatoes", "carrot")},
    "farm animal": {"animal": _FARM, "place": pool("farm", "field")},
    "farm animals": {"animal": _FARM, "place": pool("farm", "field")},
    "barn": {"animal": _FARM},
    "zoo": {"animal": _ZOO},
    "safari": {"animal": _ZOO},
    "safari park": {"animal": _ZOO},
    "motorway": {"mover": _ROAD_MOVERS, "vehicle": _ROAD_MOVERS},
    "highway": {"mover": _ROAD_MOVERS, "vehicle": _ROAD_MOVERS},
    "road": {"mover": _ROAD_MOVERS, "vehicle": _ROAD_MOVERS},
    "trail": {"mover": _TRAIL_MOVERS},
    # a car or a bus does not race a cyclist through a park
    "park": {"mover": pool("cyclist", "runner", "dog", "skateboarder", "jogger")},
    "bike path": {"mover": pool("cyclist")},
    "cycle path": {"mover": pool("cyclist")},
    "greenhouse": {"thing": pool("seedling", "plant pot", "tomato plant", "flower pot")},
    "garden": {"thing": pool("seed", "flower", "plant pot"), "food": pool("tomato/tomatoes")},
    "allotment": {"thing": pool("seed", "seedling"), "food": pool("potato/potatoes", "carrot")},
    "orchard": {"food": _FRUIT, "thing": _FRUIT},
    "toy shop": {"thing": pool("toy car", "teddy bear", "kite", "board game", "yo-yo")},
    "toy store": {"thing": pool("toy car", "teddy bear", "kite", "board game", "yo-yo")},
    "bookshop": {"thing": pool("book", "comic", "notebook")},
    "book shop": {"thing": pool("book", "comic", "notebook")},
    "library": {"thing": pool("book", "comic", "magazine")},
    "bakery": {"food": pool("muffin", "bun", "cupcake", "loaf/loaves", "cookie")},
    "cafe": {"food": pool("muffin", "sandwich/sandwiches", "cookie", "cupcake")},
    "lemonade stand": {"thing": pool("cup of lemonade/cups of lemonade")},
    "bake sale": {"food": pool("cupcake", "cookie", "muffin", "brownie")},
    "cake sale": {"food": pool("cupcake", "cookie", "muffin", "brownie")},
    "cinema": {"thing": pool("ticket", "box of popcorn/boxes of popcorn")},
    "theatre": {"thing": pool("ticket", "programme")},
    "concert": {"thing": pool("ticket", "programme")},
    "stationery shop": {"thing": pool("pencil", "pen", "notebook", "ruler", "eraser")},
    "stationery": {"thing": pool("pencil", "pen", "notebook", "ruler", "eraser")},
    "shoe shop": {
        "thing": pool("pair of shoes/pairs of shoes", "pair of trainers/pairs of trainers")
    },
    "sports shop": {"thing": pool("football", "tennis ball", "pair of trainers/pairs of trainers")},
    "florist": {"thing": pool("rose", "tulip", "bunch of flowers/bunches of flowers")},
    "flower shop": {"thing": pool("rose", "tulip", "bunch of flowers/bunches of flowers")},
    "market": {"food": _FRUIT},
    "fruit stall": {"food": _FRUIT, "thing": _FRUIT},
    "greengrocer": {"food": _FRUIT},
    "supermarket": {"food": pool("apple", "banana", "yogurt", "carton of milk/cartons of milk")},
    "picnic": {
        "food": pool("sandwich/sandwiches", "apple", "sausage roll", "strawberry/strawberries")
    },
    "party": {"food": pool("cupcake", "sandwich/sandwiches", "slice of pizza/slices of pizza")},
    "birthday party": {
        "food": pool("cupcake", "slice of cake/slices of cake"),
        "thing": pool("balloon", "party hat", "party bag"),
    },
    "school fair": {"thing": pool("raffle ticket", "badge", "balloon"), "food": pool("cupcake")},
    "fair": {"thing": pool("ticket", "balloon"), "food": pool("toffee apple", "cupcake")},
    "beach": {"thing": pool("shell", "pebble", "bucket")},
    "seaside": {"thing": pool("shell", "pebble")},
    "camping trip": {"thing": pool("tent peg", "torch/torches", "marshmallow")},
    "campsite": {"thing": pool("tent peg", "torch/torches", "marshmallow")},
    "knitting club": {"thing": pool("ball of wool/balls of wool", "knitting needle")},
    "art class": {
        "thing": pool("paintbrush/paintbrushes", "crayon", "sheet of paper/sheets of paper")
    },
    "art room": {
        "thing": pool("paintbrush/paintbrushes", "crayon", "sheet of paper/sheets of paper")
    },
    "museum": {"thing": pool("postcard", "ticket")},
    "sports day": {"thing": pool("medal", "ribbon", "bean bag")},
    "football match": {"thing": pool("ticket", "flag")},
    "classroom": {"thing": pool("pencil", "crayon", "book", "ruler")},
    "kitchen": {"food": pool("egg", "apple", "potato/potatoes")},
    "aquarium": {"animal": pool("fish/fish", "shark", "turtle", "jellyfish/jellyfish")},
    "pond": {"animal": pool("duck", "frog", "fish/fish")},
}
