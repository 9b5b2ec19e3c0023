"""Everyday nouns a teacher might ask for, held out from training (the open-vocabulary test).

Why a written list: the open-vocabulary split must exist in a fresh clone without the real
corpora, and its keywords must be words the generator never saw. ``data.word_problems.unseen``
drops every noun here that occurs (any inflection) in some training record, so the list may
overlap the corpora; what is left is, by construction, unseen. Singular forms; the split asks for
some of them in the plural. Chosen to exercise the realizer too: vowel-initial words ("an igloo",
"an owl"), "a unicorn"/"an hourglass"-style article traps, irregular plurals ("goose" / "geese",
"cactus", "knife", "mouse", "wolf", "tooth"), -y / -ch / -sh / -x plurals.
"""

from __future__ import annotations

HELDOUT_NOUNS: tuple[str, ...] = (
    # animals
    "alpaca", "armadillo", "badger", "beaver", "bumblebee", "camel", "caterpillar", "cheetah",
    "chipmunk", "cricket", "dolphin", "donkey", "eagle", "eel", "elephant", "falcon", "ferret",
    "flamingo", "gecko", "giraffe", "goose", "gorilla", "hamster", "hedgehog", "heron", "iguana",
    "jellyfish", "kangaroo", "koala", "ladybug", "lemur", "lizard", "llama", "lobster", "meerkat",
    "mole", "moose", "mouse", "octopus", "ostrich", "otter", "owl", "panda", "peacock", "pelican",
    "penguin", "porcupine", "puffin", "raccoon", "reindeer", "rhino", "salamander", "seahorse",
    "seal", "skunk", "sloth", "snail", "squid", "starfish", "swan", "tadpole", "toad", "tortoise",
    "toucan", "turtle", "walrus", "wasp", "weasel", "wolf", "wombat", "yak", "zebra",
    # food
    "apricot", "avocado", "bagel", "baguette", "biscuit", "blueberry", "brownie", "burrito",
    "cashew", "cherry", "chestnut", "coconut", "croissant", "cucumber", "dumpling", "eggplant",
    "fig", "grapefruit", "hazelnut", "kiwi", "lollipop", "mango", "meatball", "melon", "nacho",
    "noodle", "olive", "omelette", "onion", "papaya", "peach", "peanut", "pear", "pickle",
    "pineapple", "plum", "pretzel", "pumpkin", "radish", "raisin", "raspberry", "taco", "tangerine",
    "turnip", "waffle", "watermelon", "zucchini",
    # school and stationery
    "backpack", "binder", "calculator", "chalkboard", "clipboard", "crayon", "eraser",
    "folder", "glue stick", "highlighter", "locker", "microscope", "protractor", "sharpener",
    "stapler", "textbook", "whiteboard", "worksheet",
    # toys, games, music
    "accordion", "banjo", "boomerang", "cello", "domino", "frisbee", "harmonica", "jigsaw",
    "kazoo", "keyboard", "lego brick", "maraca", "ocarina", "pinwheel", "rattle", "skateboard",
    "sled", "slinky", "spinning top", "tambourine", "teddy bear", "trampoline", "ukulele",
    "xylophone",
    # household and things
    "alarm clock", "armchair", "bathtub", "bracelet", "broom", "bucket", "cactus", "candlestick",
    "chandelier", "comb", "cushion", "doorknob", "drawer", "envelope", "faucet", "flashlight",
    "fridge", "hairbrush", "hammer", "hanger", "hourglass", "igloo", "jacket", "key", "knife",
    "lamp", "lampshade", "lantern", "mirror", "mitten", "mug", "necklace", "needle", "oven",
    "padlock", "paintbrush", "pillowcase", "postcard", "quilt", "saucer", "screwdriver",
    "shovel", "sock", "sofa", "spatula", "spoon", "sweater", "teacup", "telescope", "toaster",
    "toothbrush", "towel", "umbrella", "vase", "wallet", "wheelbarrow", "wrench",
    # places, nature, vehicles, people
    "acorn", "anthill", "beehive", "boulder", "canoe", "castle", "cave", "cloud", "comet",
    "cottage", "daisy", "dandelion", "firefly", "fountain", "glacier", "greenhouse", "hammock",
    "helicopter", "iceberg", "island", "kayak", "lighthouse", "mushroom", "orchard", "pinecone",
    "planet", "raft", "rainbow", "sailboat", "scooter", "snowflake", "snowman", "spaceship",
    "submarine", "sunflower", "tooth", "tulip bulb", "unicorn", "volcano", "windmill",
    "astronaut", "baker", "boss", "dentist", "farmer", "firefighter", "gardener", "janitor",
    "librarian", "lifeguard", "mechanic", "nurse", "pilot", "plumber", "referee", "sailor",
    "scientist", "tourist", "volunteer", "waiter",
)  # fmt: skip
