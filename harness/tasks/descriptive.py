"""Continue a passage with physically descriptive language (Ziegler et al., 2019, §4.1).

The paper continued BookCorpus excerpts; offline, the embedded default is a corpus of
narrative openings generated here from a seeded grammar. Each opening stops where a writer
would describe something physical (a room, a street, the weather, food, a person's looks, a
landscape, an object, an animal, a building), so the continuation, not the prompt, carries
the description. Embedded examples carry `meta['subject']`, the kind of thing to describe.
The grammar's phrase tables are data, in harness/tasks/data/descriptive.json.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import InputError
from harness.tasks.continuation import ContinuationTask
from harness.tasks.phrases import phrase_tables

_TABLES = phrase_tables("descriptive")
# Kind of thing to describe -> openings that stop where the description would start.
# Slot conventions: {Name} is the viewpoint character as written at the start of a clause,
# {sub}/{Sub} their subject pronoun, {pos} possessive, {obj} object; {oName}/{oSub}/{oPos}
# are a second person (a stranger or relative being described).
SCENES: dict[str, list[str]] = _TABLES["scenes"]
# Slot name -> the values it is filled from.
SLOTS: dict[str, list[str]] = _TABLES["slots"]
RELATIVE: list[str] = SLOTS["relative"]
STRANGER: list[str] = _TABLES["strangers"]
# (name, subject, object, possessive); "I" gives first-person openings.
NARRATORS: list[tuple[str, str, str, str]] = [(n, s, o, p) for n, s, o, p in _TABLES["narrators"]]
# Strangers and relatives described as "she".
FEMALE: frozenset[str] = frozenset(_TABLES["female_roles"])
# Leads set the time, so they only go before openings that do not set it themselves.
LEADS: list[str] = _TABLES["leads"]
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
