"""Continue a passage with physically descriptive language (Ziegler et al., 2019, §4.1).

The paper continued BookCorpus excerpts; offline, the embedded default is a corpus of
narrative openings generated here from a seeded grammar. Each opening stops where a writer
would describe something physical (a room, a street, the weather, food, a person's looks, a
landscape, an object, an animal, a building), so the continuation, not the prompt, carries
the description. Embedded examples carry `meta['subject']`, the kind of thing to describe.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import InputError
from harness.tasks.continuation import ContinuationTask

# Slot conventions: {Name} is the viewpoint character as written at the start of a clause,
# {sub}/{Sub} their subject pronoun, {pos} possessive, {obj} object; {oName}/{oSub}/{oPos}
# are a second person (a stranger or relative being described).
SCENES: dict[str, list[str]] = {
    "room": [
        "When {sub} opened the door to {pos} {relative}'s {room}, {sub} saw",
        "{Name} had not been inside the {room} since {time_ago}. {Sub} switched on the light "
        "and looked around. The room was",
        "The {room} at the back of the {building} had been locked for years. When {name} finally "
        "stepped inside, the first thing {sub} noticed was",
        "{Name} stood in the doorway of the {room} for a long moment, taking it all in:",
        "The estate agent unlocked the {room} and stood aside so that {name} could see it. "
        "{Sub} stepped in and found",
        "It was {clock} when {name} crept down to the {room}. In the thin light from the "
        "hallway, {sub} could make out",
    ],
    "street": [
        "{Name} got off the {vehicle} in {town} {time_of_day} and walked slowly down the main "
        "street. It was",
        "The market in {town} was already busy when {name} arrived {time_of_day}. Everywhere "
        "{sub} looked there were",
        "{Sub} turned the corner onto {street} and stopped to look. The street",
        "Nothing in {town} had changed since {time_ago}. {Name} walked past the {shop} and "
        "saw",
        "From the window of the {vehicle}, {name} watched the streets of {town} go by:",
    ],
    "weather": [
        "{Name} woke {wake} to the sound of {weather_sound}. {Sub} pulled back the "
        "curtains and saw that outside",
        "By the time {name} reached the {outdoor}, the weather had turned. The sky",
        "The storm arrived {time_of_day}. From the window of {pos} {room}, {name} watched as",
        "It had been snowing since {since}, and when {name} finally stepped outside, the "
        "{outdoor} was",
        "The heat that summer was like nothing {name} had known. On the walk to the "
        "{outdoor}, {sub} felt",
    ],
    "food": [
        "{Name}'s {relative} set a plate down and said it was an old family recipe. The "
        "{dish} was",
        "At the {meal} table, {name} lifted the lid off the pot and leaned in. The {dish}",
        "{Name} had never tasted anything like the {dish} at {eatery}. When it arrived, {sub} "
        "saw that it",
        "{Name} had heard that {eatery} was famous for its {dish}, and when {sub} finally ordered "
        "it {time_of_day}, {sub} found it",
        "For {name}'s birthday, {pos} {relative} baked {pos} favourite {dish}. When it came out of "
        "the oven, it",
    ],
    "appearance": [
        "The {stranger} who sat down across from {name} on the {vehicle} was hard to ignore. "
        "{oSub} had",
        "{Name} barely recognised {pos} {relative} at the station after {years} years. {oSub} "
        "looked",
        "The person who answered the door of the {building} was a {build} {stranger} with",
        "Everyone at the {gathering} turned when the {stranger} walked in. {oSub} was wearing",
        "{Name} studied the face of the {stranger} in the photograph {sub} had found in "
        "the {furniture}. {oSub} had",
    ],
    "landscape": [
        "From the top of the {hill}, {name} could see the whole {terrain} spread out below:",
        "{Name} stopped the car at the edge of the {terrain} and got out. In every direction "
        "there",
        "After {days} days of walking, the path finally opened onto the {terrain}. {Name} saw",
        "The road climbed for hours, and when {name} woke up on the {vehicle}, the view from the "
        "window had changed completely. Now there",
        "{Name} had seen the {terrain} in paintings, but standing there {time_of_day}, {sub} "
        "saw that it was",
    ],
    "object": [
        "Inside the box that {name} found in {pos} {relative}'s {furniture}, wrapped in "
        "{wrapping}, was",
        "The {thing} on the mantelpiece had belonged to {name}'s {relative}. It was",
        "{Name} picked up the {thing} from the {surface} and turned it over in {pos} hands. It",
        "At the back of the {shop}, under a pile of old newspapers, {name} found a {thing} that",
        "The {thing} that {name}'s {relative} left {obj} arrived in the post {time_of_day}. "
        "{Sub} opened the parcel and saw",
    ],
    "animal": [
        "Something moved under the {furniture}, and when {name} crouched down to look, {sub} "
        "saw",
        "The dog that followed {name} home from the {outdoor} {time_of_day} was",
        "On the fence at the bottom of the garden sat a bird {name} had never seen before. It",
        "The horse that {name}'s {relative} bought at the fair in {town} was",
    ],
    "building": [
        "The house at the end of {street} had stood empty for {years} years. From the gate, "
        "{name} could see that",
        "When {name} arrived at the {building} {time_of_day}, {sub} stopped on the path to look "
        "up at it. It was",
        "{Name} had walked past the {building} every day since {time_ago} without once "
        "looking at it properly. Now {sub} noticed",
        "The {building} where {name}'s {relative} grew up was still standing at the edge of "
        "{town}. It",
    ],
    "shore": [
        "The tide was out when {name} walked down to the beach {time_of_day}. The sand",
        "{Name} sat on the harbour wall and watched the fishing boats come in. The water",
        "At the end of the pier, {name} leaned over the railing and looked down at",
    ],
}
ROOM = ["attic", "kitchen", "cellar", "study", "spare bedroom", "parlour", "workshop",
        "classroom", "waiting room", "greenhouse", "boathouse", "laundry room", "pantry",
        "hotel room", "dressing room", "basement", "sewing room", "music room", "garage",
        "library"]
BUILDING = ["farmhouse", "old hotel", "village school", "rectory", "lighthouse", "bakery",
            "apartment block", "cottage hospital", "mill", "chapel", "boarding house",
            "manor house", "railway station", "inn", "theatre", "post office"]
RELATIVE = ["grandmother", "grandfather", "aunt", "uncle", "mother", "father", "cousin",
            "great-aunt", "godmother", "older brother", "older sister", "neighbour"]
TIME_AGO = ["the funeral", "the war", "childhood", "the flood", "the summer of 1987",
            "the divorce", "the last family wedding", "the accident", "the winter before",
            "they sold the shop", "early November", "the day of the fire"]
CLOCK = ["nearly midnight", "just after three in the morning", "barely dawn",
         "almost four o'clock", "a little after two", "late in the evening"]
VEHICLE = ["bus", "night train", "tram", "coach", "early train", "minibus", "overnight bus",
           "taxi"]
WAKE = ["early", "before dawn", "at six", "late on Sunday", "in the night", "at first light"]
SINCE = ["the night before", "Tuesday", "before dawn", "the weekend", "Christmas Eve",
         "the day after the funeral"]
TOWN = ["Lisbon", "Whitby", "the old quarter", "Marrakesh", "Hobart", "Bergen", "Trieste",
        "the harbour town", "Naples", "Kyoto", "Valparaiso", "Oaxaca", "Cusco", "Glasgow",
        "Tbilisi", "the county town"]
TIME_OF_DAY = ["early in the morning", "at dusk", "late in the afternoon", "just before dawn",
               "around noon", "that evening", "on a Sunday morning", "in the middle of the night",
               "one grey afternoon", "on the first day of spring", "in late October"]
STREET = ["Harbour Road", "Mill Lane", "Canal Street", "the high street", "Church Row",
          "Station Road", "a narrow side street", "Orchard Lane", "Foundry Street",
          "the avenue"]
SHOP = ["bakery", "pawnshop", "fish market", "hardware store", "second-hand bookshop",
        "butcher's", "junk shop", "barber's", "antique shop", "flower stall"]
WEATHER_SOUND = ["rain on the roof", "wind in the chimney", "distant thunder",
                 "hail against the glass", "gulls and a rising wind", "dripping gutters",
                 "a foghorn out in the bay", "snow sliding off the eaves"]
OUTDOOR = ["bus stop", "park", "allotments", "harbour", "village green", "railway bridge",
           "cemetery", "playing fields", "riverbank", "car park", "orchard", "crossroads"]
DISH = ["stew", "fish soup", "bread", "apple pie", "curry", "chocolate cake", "pot roast",
        "roast chicken", "paella", "lemon tart", "porridge", "noodle soup", "plum cake",
        "shepherd's pie", "gumbo", "flatbread"]
MEAL = ["breakfast", "lunch", "dinner", "supper", "kitchen", "wedding", "Christmas"]
EATERY = ["the roadside diner", "the little café by the station", "the night market",
          "a family restaurant in {town}", "the inn", "the food stall by the harbour",
          "the bakery on {street}", "the canteen at work"]
STRANGER = ["woman", "man", "old woman", "old man", "young woman", "young man", "girl", "boy"]
TRADE = ["fisherman", "baker", "clockmaker", "caretaker", "schoolteacher", "blacksmith",
         "housekeeper", "gardener", "tailor", "ferryman"]
BUILD = ["tall", "short", "stooped", "broad-shouldered", "thin", "heavy-set", "wiry", "small"]
GATHERING = ["party", "wedding", "funeral", "village fete", "dinner", "auction", "meeting",
             "christening"]
FURNITURE = ["wardrobe", "desk", "sideboard", "chest of drawers", "sofa", "bed", "dresser",
             "bureau", "piano", "kitchen table"]
HILL = ["hill", "ridge", "bell tower", "lighthouse", "dunes", "cliff path", "old quarry",
        "fire lookout"]
TERRAIN = ["valley", "moor", "desert", "salt pan", "pine forest", "coastline", "marsh",
           "glacier", "prairie", "canyon", "lake", "heath", "plain", "estuary",
           "tundra", "river delta"]
DAYS = ["two", "three", "four", "five", "six", "ten"]
YEARS = ["five", "ten", "twelve", "fifteen", "twenty", "thirty", "forty"]
WRAPPING = ["newspaper", "an old scarf", "tissue paper", "brown paper", "a linen napkin",
            "oilcloth", "a tea towel", "faded silk"]
THING = ["pocket watch", "music box", "teapot", "compass", "jewellery box", "lantern",
         "typewriter", "porcelain doll", "vase", "pocket knife", "clock", "hand mirror",
         "toy train", "sewing tin", "camera", "fountain pen"]
SURFACE = ["shelf", "windowsill", "workbench", "counter", "mantelpiece", "floor", "table",
           "bedside table"]
SLOTS = {"relative": RELATIVE, "room": ROOM, "building": BUILDING, "time_ago": TIME_AGO,
         "clock": CLOCK, "since": SINCE, "wake": WAKE, "vehicle": VEHICLE, "town": TOWN,
         "time_of_day": TIME_OF_DAY, "street": STREET, "shop": SHOP,
         "weather_sound": WEATHER_SOUND, "outdoor": OUTDOOR,
         "dish": DISH, "meal": MEAL, "eatery": EATERY, "trade": TRADE, "build": BUILD,
         "gathering": GATHERING, "furniture": FURNITURE, "hill": HILL, "terrain": TERRAIN,
         "days": DAYS, "years": YEARS, "wrapping": WRAPPING, "thing": THING, "surface": SURFACE}
# (name, subject, object, possessive); "I" gives first-person openings.
NARRATORS = [
    ("I", "I", "me", "my"),
    ("Maria", "she", "her", "her"), ("Tomas", "he", "him", "his"), ("Aiko", "she", "her", "her"),
    ("Daniel", "he", "him", "his"), ("Grace", "she", "her", "her"), ("Samuel", "he", "him", "his"),
    ("Nadia", "she", "her", "her"), ("Oliver", "he", "him", "his"), ("Fatima", "she", "her", "her"),
    ("Jonah", "he", "him", "his"), ("Elena", "she", "her", "her"), ("Kwame", "he", "him", "his"),
    ("Ruth", "she", "her", "her"), ("Mateo", "he", "him", "his"), ("Ingrid", "she", "her", "her"),
    ("Arjun", "he", "him", "his"), ("Lucy", "she", "her", "her"), ("Finn", "he", "him", "his"),
]
FEMALE = {"woman", "old woman", "young woman", "girl", "grandmother", "aunt", "mother",
          "great-aunt", "godmother", "older sister", "housekeeper"}
# Leads set the time, so they only go before openings that do not set it themselves.
LEADS = ["", "", "", "Late that autumn, ", "Years later, ", "On the last day of the holidays, ",
         "That winter, ", "The next morning, ", "A week after the letter came, "]
MIN_WORDS, MAX_WORDS = 12, 40


def _fill(template: str, values: Mapping[str, str], rng: random.Random) -> str:
    while "{" in template:
        start = template.index("{")
        end = template.index("}", start)
        slot = template[start + 1 : end]
        value = values[slot] if slot in values else rng.choice(SLOTS[slot])
        template = template[:start] + value + template[end + 1 :]
    return template


def _opening(template: str, rng: random.Random) -> str:
    """One filled-in opening: a narrator, the pronouns that agree with them, maybe a lead."""
    name, sub, obj, pos = rng.choice(NARRATORS)
    other = rng.choice(STRANGER) if "{stranger}" in template else rng.choice(RELATIVE)
    values = {
        "Name": name, "name": name, "Sub": sub.capitalize(), "sub": sub, "obj": obj, "pos": pos,
        "stranger": other, "oSub": "She" if other in FEMALE else "He",
    }
    if "{stranger}" not in template and "{oSub}" in template:
        # The described relative is the {relative} slot: fix it so the pronoun agrees.
        values["relative"] = other
    text = _fill(template, values, rng)
    if name == "I":
        text = text.replace(" I's ", " my ").replace("I's ", "My ")
    lead = "" if "{time_of_day}" in template else rng.choice(LEADS)
    first = text.split()[0]
    if lead and first not in {name, f"{name}'s", "My"}:
        text = text[0].lower() + text[1:]
    elif lead and first == "My":
        text = "my" + text[2:]
    return " ".join((lead + text).split())


def generate_prompts(n: int, seed: int) -> list[tuple[str, str]]:
    """`n` distinct (opening, subject) pairs, the same for the same seed on every machine."""
    rng = random.Random(seed)
    kinds = sorted(SCENES)
    seen: set[str] = set()
    prompts: list[tuple[str, str]] = []
    for _ in range(100 * n + 1000):  # bounded: the grammar has finitely many openings
        if len(prompts) == n:
            break
        kind = rng.choice(kinds)
        text = _opening(rng.choice(SCENES[kind]), rng)
        if MIN_WORDS <= len(text.split()) <= MAX_WORDS and text not in seen:
            seen.add(text)
            prompts.append((text, kind))
    if len(prompts) < n:
        raise InputError(f"the descriptive grammar cannot make {n} distinct prompts; ask for fewer")
    return prompts


@dataclass
class DescriptiveTask(ContinuationTask):
    """Prompts to continue; the labeler rewards physically descriptive continuations.

    Embedded examples carry `meta["subject"]`, the kind of scene the opening leads to.
    """

    name: str = "descriptive"

    def generate(self, n: int, seed: int) -> list[tuple[str, Mapping[str, Any]]]:
        return [(p, {"subject": kind}) for p, kind in generate_prompts(n, seed)]
