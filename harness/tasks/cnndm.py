"""Summarise a news article in highlights (Ziegler et al., 2019, §4.2; CNN/Daily Mail).

The embedded default is a corpus of short news articles generated here from a seeded grammar,
each with an explicit latent structure:

- an optional byline preamble ("By Jane Smith for MailOnline."), in about one article in five;
- the key facts: the main event (who, what, where, when) and one to three of its details
  (numbers, consequences, what happens next);
- quotes from named officials and witnesses, background paragraphs and a scene-setting
  opener, none of them key;
- reference highlights (two to four short sentences, one per key fact, newline-separated as
  in the dataset's `highlights` column) written from the key facts only.

The grammar's phrase tables (stories, the phrasings of each fact, names, pools of slot
values) are data, in harness/tasks/data/cnndm.json.

As in real news, the lead paragraph usually states the main event (about four articles in
five; the rest open with a scene), so lead-3 is a strong baseline, as in the literature.
Keywords of a fact are the content tokens its article sentence shares with its highlight.

Real data: the default columns read the hub's cnn_dailymail schema (`article`, `highlights`,
`id`; source "cnn_dailymail:3.0.0" or "abisee/cnn_dailymail:3.0.0", splits train /
validation / test). For XSum-like sets map columns={source: document, reference: summary}.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.errors import InputError
from harness.tasks.phrases import FactPhrasings, phrasings, phrase_tables
from harness.tasks.summarization import (
    Document,
    distinct_documents,
    Fact,
    GeneratorFn,
    SlotFiller,
    SummarizationTask,
    entities_in,
    grounded,
    make_document,
    shared_keywords,
)

MIN_WORDS, MAX_WORDS = 90, 190  # ≈ 120–250 tokens


@dataclass(frozen=True)
class Story:
    """A kind of news story: the main fact, its optional details, and what surrounds them.

    `ages` bounds the age of the story's person ({pname}, {page}, {person}, {he}, …).
    """

    name: str
    main: FactPhrasings
    details: tuple[FactPhrasings, ...]
    quotes: tuple[str, ...]
    background: tuple[str, ...]
    scenes: tuple[str, ...]
    slots: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ages: tuple[int, int] = (20, 70)


def _story(entry: Mapping[str, Any]) -> Story:
    lo, hi = entry.get("ages", Story.ages)
    return Story(
        name=entry["name"],
        main=phrasings(entry["main"]),
        details=tuple(phrasings(detail) for detail in entry["details"]),
        quotes=tuple(entry["quotes"]),
        background=tuple(entry["background"]),
        scenes=tuple(entry["scenes"]),
        slots={slot: tuple(values) for slot, values in entry.get("slots", {}).items()},
        ages=(lo, hi),
    )


_TABLES = phrase_tables("cnndm")
STORIES: tuple[Story, ...] = tuple(_story(story) for story in _TABLES["stories"])
# Quotes and background any story can use as filler.
GENERIC_BACKGROUND: tuple[str, ...] = tuple(_TABLES["generic_background"])
BYLINES: tuple[str, ...] = tuple(_TABLES["bylines"])

F_FIRST: tuple[str, ...] = tuple(_TABLES["female_first_names"])
M_FIRST: tuple[str, ...] = tuple(_TABLES["male_first_names"])
SURNAMES: tuple[str, ...] = tuple(_TABLES["surnames"])
CITIES: tuple[str, ...] = tuple(_TABLES["cities"])
DAYS: tuple[str, ...] = tuple(_TABLES["days"])
MONTHS: tuple[str, ...] = tuple(_TABLES["months"])

# Slot name -> values, for the slots every story shares (a story's own slots override them).
POOLS: dict[str, tuple[str, ...]] = {
    "city": CITIES, "city2": CITIES, "city3": CITIES,
    "day": DAYS, "day2": DAYS, "day3": DAYS, "month": MONTHS,
    "year": tuple(str(y) for y in range(1962, 2021, 3)), "year2": tuple(str(y) for y in range(1990, 2023, 2)),
    "date": tuple(str(d) for d in range(1, 29)),
    **{slot: tuple(values) for slot, values in _TABLES["pools"].items()},
}

# Slots whose values are names of people, places, organisations or days: the article's entities.
PROPER = frozenset({"city", "city2", "city3", "day", "day2", "day3", "month", "outlet", "stormname", "company", "team",
                    "team2", "team3", "stadium", "uni", "journal", "althosp", "school", "school2", "zoo", "aname",
                    "festival", "mountain", "pname", "psur", "oname", "osur", "wname", "wname2", "rname", "rname2"})


@functools.cache
def _story_groups() -> list[list[int]]:
    """Indices of STORIES by story name, so each kind of story is drawn equally often."""
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(STORIES):
        groups.setdefault(s.name, []).append(i)
    return list(groups.values())


@functools.cache
def _story_pools() -> list[dict[str, tuple[str, ...]]]:
    return [{**POOLS, **s.slots} for s in STORIES]


def _people(fill: SlotFiller, ages: tuple[int, int]) -> None:
    """The story's person, an official, a witness and the reporters, with distinct surnames."""
    rng, pick = fill.rng, fill.pick
    start = int(rng.random() * len(SURNAMES))
    surnames = (SURNAMES * 2)[start : start + 6]
    gender = pick("MF")
    first = pick(M_FIRST if gender == "M" else F_FIRST)
    fill.set("pname", f"{first} {surnames[0]}", proper=True)
    fill.set("psur", surnames[0], proper=True)
    fill.set("page", str(ages[0] + int(rng.random() * (ages[1] - ages[0] + 1))))
    male = gender == "M"
    fill.set("person", "man" if male else "woman")
    fill.set("he", "he" if male else "she")
    fill.set("him", "him" if male else "her")
    fill.set("his", "his" if male else "her")
    for slot, surname in zip(("oname", "wname", "wname2", "rname", "rname2"), surnames[1:]):
        fill.set(slot, f"{pick(F_FIRST + M_FIRST)} {surname}", proper=True)
    fill.set("osur", surnames[1], proper=True)
    fill.set("wage", str(19 + int(rng.random() * 60)))
    fill.set("wage2", str(19 + int(rng.random() * 60)))


def _article(rng: random.Random, max_words: int) -> Document | None:
    """One article, or None when this draw misses the length or consistency bounds."""
    groups = _story_groups()
    group = groups[int(rng.random() * len(groups))]
    k = group[int(rng.random() * len(group))]
    story = STORIES[k]
    fill = SlotFiller(rng, _story_pools()[k], PROPER)
    pick = fill.pick
    _people(fill, story.ages)

    # The main fact and one to three of its details, in the story's order.
    n_details = min(len(story.details), pick((1, 2, 2, 3)))
    chosen = sorted(rng.sample(range(len(story.details)), n_details))
    specs = (story.main, *(story.details[i] for i in chosen))
    sentences = [fill(pick(s.src)) for s in specs]
    highlights = [fill(pick(s.ref)) for s in specs]
    facts = [Fact(s, shared_keywords(s, h)) for s, h in zip(sentences, highlights)]
    if any(len(f.keywords) < 2 for f in facts):
        return None

    preamble = fill(pick(BYLINES)) if rng.random() < 0.2 else ""
    lead = sentences[0]
    if not preamble and rng.random() < 0.12:
        lead = "(CNN) -- " + lead
        fill.names.append("CNN")
    # Usually the lead paragraph is the main fact (plus the first detail); sometimes a scene.
    paragraphs: list[str] = []
    rest = list(sentences[1:])
    if rng.random() < 0.8:
        paragraphs.append(f"{lead} {rest.pop(0)}" if rest and rng.random() < 0.4 else lead)
    else:
        paragraphs += [fill(pick(story.scenes)), lead]

    extras = list(story.quotes + story.background) + rng.sample(GENERIC_BACKGROUND, 3)
    rng.shuffle(extras)
    target = rng.triangular(MIN_WORDS + 5, max_words - 10, min(135, max_words - 10))
    words = sum(len(t.split()) for t in (preamble, *paragraphs, *rest))
    filler: list[str] = []
    while extras and words < target:
        text = fill(extras.pop())
        filler.append(text)
        words += len(text.split())
    if not MIN_WORDS <= words <= max_words:
        return None
    # Details keep their order; quotes and background go between and after them.
    body = rest + filler
    order = sorted(range(len(body)), key=lambda i: (i if i < len(rest) else rng.random() * len(rest) + 0.5))
    paragraphs += [body[i] for i in order]
    text = "\n\n".join(paragraphs)
    source = f"{preamble}\n\n{text}" if preamble else text
    reference = "\n".join(highlights)
    if not grounded(reference, source, fill.names):
        return None
    return make_document(source, reference, facts, preamble, entities_in(source, fill.names), story.name)


def generate_articles(n: int, seed: int, max_words: int = MAX_WORDS) -> list[Document]:
    """`n` distinct articles, the same for the same seed on every machine.

    `max_words` below the default shortens the longest articles, e.g. to fit a test model's
    context (configs pass it with `_partial_: true`).
    """
    if not MIN_WORDS + 30 <= max_words <= MAX_WORDS:
        raise InputError(f"generate_articles: max_words must be in [{MIN_WORDS + 30}, {MAX_WORDS}], got {max_words}")
    return distinct_documents(lambda rng: _article(rng, max_words), n, seed)


@dataclass
class CnnDmTask(SummarizationTask):
    """News highlights; `source='embedded'` uses `generate_articles`.

    Real data defaults to the hub's cnn_dailymail columns (article -> source, highlights ->
    reference) and splits (train, validation).
    """

    name: str = "cnndm"
    max_new_tokens: int = 64
    n_train: int = 3000
    n_eval: int = 300
    columns: Mapping[str, str] = field(default_factory=lambda: {"source": "article", "reference": "highlights"})
    splits: Mapping[str, str] = field(default_factory=lambda: {"train": "train", "eval": "validation"})
    prompt_template: str = "{source}\n\nSummary:"

    def embedded_generator(self) -> GeneratorFn:
        return self.generator or generate_articles
