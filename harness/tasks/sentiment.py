"""Continue a prompt with positive sentiment (Ziegler et al., 2019, §4.1).

The paper continued BookCorpus excerpts; offline, the embedded default is a corpus of review
and diary openings generated here from a seeded grammar. Each opening stops where the writer
is about to give a verdict, so the continuation, not the prompt, carries the sentiment.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.tasks.continuation import ContinuationTask

SUBJECTS: dict[str, list[str]] = {
    "film": [
        "the new {adj} thriller", "that {adj} documentary about {topic}", "the remake of {title}",
        "{title}", "the director's cut of {title}", "the animated film {title}",
        "the {adj} indie drama everyone mentions",
    ],
    "book": [
        "{title}", "the {adj} memoir about {topic}", "the sequel to {title}",
        "a {adj} novel my {person} lent me", "the short story collection {title}",
    ],
    "restaurant": [
        "the {adj} {cuisine} place on {street}", "the new {cuisine} restaurant near {place}",
        "the food truck outside {place}", "the {cuisine} buffet my {person} recommended",
    ],
    "product": [
        "the {adj} {gadget} I ordered", "my new {gadget}", "the refurbished {gadget}",
        "the {gadget} from the sale last {day}",
    ],
    "trip": [
        "our weekend in {city}", "the hotel we booked in {city}", "the train ride to {city}",
        "the guided tour of {place}", "the camping trip near {city}",
    ],
    "event": [
        "the concert at {place}", "the {topic} exhibition at {place}", "the school play",
        "last {day}'s match", "the comedy show at {place}", "the wedding in {city}",
    ],
}
ADJ = ["long-awaited", "much-hyped", "low-budget", "quiet", "unusual", "popular", "old",
       "small", "expensive", "cheap", "famous", "strange", "three-hour", "family-run"]
TOPIC = ["climate", "jazz", "chess", "the ocean", "space travel", "old cars", "baking",
         "mountain rescue", "a small town", "robots", "medieval history", "football", "bees"]
TITLE = ["Northern Lights", "The Glass Orchard", "Midnight Harbor", "Paper Kings",
         "A Quiet Year", "The Last Lighthouse", "Salt and Iron", "Borrowed Time",
         "The Clockmaker", "Summer of Wolves", "Blue Static", "The Long Road Home",
         "Copper Sky", "Small Wonders", "The Ninth Door", "River of Names"]
PERSON = ["sister", "brother", "neighbour", "coworker", "aunt", "roommate", "friend", "dad",
          "mom", "grandfather", "boss", "cousin"]
CUISINE = ["Thai", "Italian", "Ethiopian", "Korean", "Mexican", "Greek", "ramen", "vegan",
           "barbecue", "sushi", "Lebanese", "French"]
STREET = ["Main Street", "the corner of 5th and Pine", "Harbor Road", "Elm Avenue",
          "the old market square", "Station Road"]
PLACE = ["the mall", "the university", "the river", "the stadium", "the old theatre",
         "the town hall", "the museum", "the park", "the train station", "the library"]
GADGET = ["headphones", "coffee grinder", "laptop", "phone", "air fryer", "e-reader",
          "electric toothbrush", "vacuum cleaner", "smartwatch", "blender", "desk lamp", "camera"]
CITY = ["Lisbon", "Denver", "Kyoto", "Glasgow", "Austin", "Montreal", "Naples", "Bergen",
        "Tucson", "Krakow", "Hobart", "Valparaiso"]
DAY = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "month",
       "week", "year"]
WHEN = ["last night", "yesterday", "over the weekend", "on Friday", "last month",
        "after work", "this morning", "on my birthday", "during the holidays", "a while ago"]
WHO = ["with my {person}", "on my own", "with a few friends", "with the kids",
       "with my {person} and her dog", "with coworkers", "with my {person}"]
OPENERS = [
    "I finally tried {subject} {when} {who}, and",
    "So I went to {subject} {when} {who}. To be honest,",
    "We spent the evening with {subject} {when}, and I have to say",
    "My {person} kept talking about {subject}, so I gave it a chance {when}. Overall,",
    "I had heard mixed things about {subject}, but {when} I finally saw for myself. It was",
    "Quick review of {subject}: I got around to it {when} {who}, and my first impression was that",
    "Everyone has an opinion about {subject}. Mine, after trying it {when}, is that",
    "I did not expect much from {subject}, but {when} {who} I found that",
    "After waiting for weeks, I finally experienced {subject} {when}. Honestly,",
    "Here is what I think about {subject}, which I tried {when} {who}:",
    "It has been a few days since {subject}, and looking back, I feel",
    "Dear diary, {when} I went to {subject} {who}. The whole thing was",
]
SLOTS = {"adj": ADJ, "topic": TOPIC, "title": TITLE, "person": PERSON, "cuisine": CUISINE,
         "street": STREET, "place": PLACE, "gadget": GADGET, "city": CITY, "day": DAY,
         "when": WHEN}


def _fill(template: str, rng: random.Random) -> str:
    while "{" in template:
        start = template.index("{")
        end = template.index("}", start)
        slot = template[start + 1 : end]
        template = template[:start] + rng.choice(SLOTS[slot]) + template[end + 1 :]
    return template


def generate_prompts(n: int, seed: int) -> list[str]:
    """`n` distinct review openings, the same for the same seed on every machine."""
    rng = random.Random(seed)
    kinds = sorted(SUBJECTS)
    seen: set[str] = set()
    prompts: list[str] = []
    while len(prompts) < n:
        subject = _fill(rng.choice(SUBJECTS[rng.choice(kinds)]), rng)
        who = _fill(rng.choice(WHO), rng)
        opener = rng.choice(OPENERS).replace("{subject}", subject).replace("{who}", who)
        text = " ".join(_fill(opener, rng).split())
        if text not in seen:
            seen.add(text)
            prompts.append(text)
    return prompts


@dataclass
class SentimentTask(ContinuationTask):
    """Prompts to continue; the labeler rewards positive sentiment in the continuation."""

    name: str = "sentiment"

    def generate(self, n: int, seed: int) -> list[tuple[str, Mapping[str, Any]]]:
        return [(p, {}) for p in generate_prompts(n, seed)]
