"""Summarise a Reddit post in a TL;DR (Ziegler et al., 2019, §4.2; Völske et al., 2017).

The embedded default is a corpus of Reddit-style advice posts generated here from a seeded
grammar, each with an explicit latent structure:

- an optional preamble (greetings, apologies for formatting or mobile, throwaway accounts,
  "long time lurker"), which opens the post and is no part of the story, so lead-3 is weak;
- the key facts, in order: who (the poster and the other person, "I (24F)", names,
  relationship, how long), what happened, the problem it causes, and the question asked;
- distractors between them (hobbies, pets, weather, unrelated people and numbers) and
  closing lines ("Thanks in advance.");
- a reference TL;DR written from the key facts only.

The grammar's phrase tables (topics, the phrasings of each fact, names, pools of slot
values) are data, in harness/tasks/data/tldr.json.

Each fact is realised from several phrasings, slots drawn per post (names, ages, sums, places,
what exactly happened) and many topics, so the TL;DR depends on the post's content, not on a
template. Keywords of a fact are the content tokens its post sentence shares with its
TL;DR sentence, so the reference covers every fact.

Real data: the default columns read the trl-lib/tldr schema ({"prompt", "completion"}), whose
prompt is already "SUBREDDIT: r/…\\n\\nTITLE: …\\n\\nPOST: …\\n\\nTL;DR:"; such prompts are
split into subreddit, title and post (meta "subreddit", "title"; the post is the source). For
the OpenAI jsonl files (id, subreddit, title, post, summary) map
columns={source: post, reference: summary, subreddit: subreddit, title: title}; for
webis/tldr-17 columns={source: content, reference: summary, subreddit: subreddit}. Add
"TITLE: {title}\\n\\n" to prompt_template to show titles to the policy.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

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

MIN_WORDS, MAX_WORDS = 75, 190  # ≈ 100–250 tokens
MIN_REF_WORDS, MAX_REF_WORDS = 15, 40

# The other person of a post: (relation, gender 'M'/'F'/'' for either, lowest and highest
# age offset from the poster).
OtherPerson = tuple[str, str, int, int]


class Issue(NamedTuple):
    """What happened and the problem it causes; `others` overrides the topic's other person,
    `questions` are questions (verb phrases) that fit this issue."""

    event: FactPhrasings
    problem: FactPhrasings
    others: tuple[OtherPerson, ...] | None = None
    questions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Topic:
    """A kind of advice post. `others` are the candidates for the other person; `questions`
    are verb phrases for "How do I …?"."""

    name: str
    subreddits: tuple[str, ...]
    others: tuple[OtherPerson, ...]
    setups: tuple[FactPhrasings, ...]
    issues: tuple[Issue, ...]
    questions: tuple[str, ...]
    slots: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    distractors: tuple[str, ...] = ()


def _others(entries: Sequence[Sequence[Any]]) -> tuple[OtherPerson, ...]:
    return tuple((rel, gender, lo, hi) for rel, gender, lo, hi in entries)


def _issue(entry: Mapping[str, Any]) -> Issue:
    others = _others(entry["others"]) if "others" in entry else None
    return Issue(phrasings(entry["event"]), phrasings(entry["problem"]), others, tuple(entry.get("questions", ())))


def _topic(entry: Mapping[str, Any]) -> Topic:
    return Topic(
        name=entry["name"],
        subreddits=tuple(entry["subreddits"]),
        others=_others(entry["others"]),
        setups=tuple(phrasings(setup) for setup in entry["setups"]),
        issues=tuple(_issue(issue) for issue in entry["issues"]),
        questions=tuple(entry["questions"]),
        slots={slot: tuple(values) for slot, values in entry.get("slots", {}).items()},
        distractors=tuple(entry.get("distractors", ())),
    )


_TABLES = phrase_tables("tldr")
# Several topics may share a name (e.g. work with a manager, work with a coworker).
TOPICS: tuple[Topic, ...] = tuple(_topic(topic) for topic in _TABLES["topics"])
# The last key fact of every post: what the poster asks ({q}).
QUESTION = phrasings(_TABLES["question"])
# Kinds of preamble (greetings, formatting apologies, throwaways, other asides), each a tuple
# of templates; a post opens with one or two kinds.
PREAMBLES: tuple[tuple[str, ...], ...] = tuple(tuple(kind) for kind in _TABLES["preambles"])
# Asides that pad a post between its key facts; topics add their own.
DISTRACTORS: tuple[str, ...] = tuple(_TABLES["distractors"])
CLOSINGS: tuple[str, ...] = tuple(_TABLES["closings"])

F_NAMES: tuple[str, ...] = tuple(_TABLES["female_names"])
M_NAMES: tuple[str, ...] = tuple(_TABLES["male_names"])
ALL_NAMES = F_NAMES + M_NAMES
SURNAMES: tuple[str, ...] = tuple(_TABLES["surnames"])
CITIES: tuple[str, ...] = tuple(_TABLES["cities"])
DAYS: tuple[str, ...] = tuple(_TABLES["days"])
MONTHS: tuple[str, ...] = tuple(_TABLES["months"])
JOBS: tuple[str, ...] = tuple(_TABLES["jobs"])

# Slot name -> values, for the slots every topic shares (a topic's own slots override them).
POOLS: dict[str, tuple[str, ...]] = {
    "dur": tuple(f"{n} years" for n in range(2, 10)) + tuple(f"{n} months" for n in range(4, 12))
    + ("about a year", "almost a year", "a year and a half"),
    "yrs": tuple(str(n) for n in range(2, 15)),
    "nmonths": tuple(str(n) for n in range(2, 11)),
    "day": DAYS, "day2": DAYS, "month": MONTHS, "month2": MONTHS,
    "city": CITIES, "city2": CITIES, "city3": CITIES,
    "surname": SURNAMES,
    "job": JOBS,
    **{slot: tuple(values) for slot, values in _TABLES["pools"].items()},
}

# Slots whose values are names of people, places, products or days: the post's entities.
PROPER = frozenset({"name", "dname", "exname", "lname", "fname", "mname", "surname", "pet", "pet2", "city", "city2",
                    "city3", "month2", "holiday", "app", "social", "cuisine", "store", "day", "day2", "month", "show",
                    "car"})
GAP_CHOICES = (0, 1, 1, 1, 2, 2, 2, 3, 3, 3)  # distractors open the post less often than they interrupt it
AGE_FORMATS = ("({a}{g})", "({a}{g})", "({a}{g})", "({g}{a})", "({a} {g})", "({a}/{g})")


@functools.cache
def _topic_groups() -> list[list[int]]:
    """Indices of TOPICS by topic name, so each topic is drawn equally often."""
    groups: dict[str, list[int]] = {}
    for i, t in enumerate(TOPICS):
        groups.setdefault(t.name, []).append(i)
    return list(groups.values())


@functools.cache
def _topic_distractors() -> list[tuple[str, ...]]:
    return [DISTRACTORS + t.distractors for t in TOPICS]


@functools.cache
def _topic_pools() -> list[dict[str, tuple[str, ...]]]:
    return [{**POOLS, **t.slots} for t in TOPICS]


def _count_words(text: str) -> int:
    return len(text.split())


def _person(fill: SlotFiller, others: Sequence[tuple[str, str, int, int]], my_age: int, fmt: str) -> None:
    """The other person of the story: relation, name, age tag and pronouns; bystanders' names."""
    pick, rng = fill.pick, fill.rng
    rel, gender, lo, hi = pick(others)
    gender = gender or pick("MF")
    name = pick(M_NAMES if gender == "M" else F_NAMES)
    fill.set("rel", rel)
    fill.set("name", name, proper=True)
    fill.set("otag", fmt.format(a=max(16, my_age + lo + int(rng.random() * (hi - lo + 1))), g=gender))
    male = gender == "M"
    fill.set("he", "he" if male else "she")
    fill.set("him", "him" if male else "her")
    fill.set("his", "his" if male else "her")
    fill.set("guy", "guy" if male else "girl")
    # Bystanders' names: consecutive names from a random start (distinct, one draw), minus the other person's.
    start = int(rng.random() * len(ALL_NAMES))
    bystanders = [n for n in (ALL_NAMES * 2)[start : start + 6] if n != name]
    for slot, other in zip(("dname", "exname", "lname", "fname", "mname"), bystanders):
        fill.set(slot, other, proper=True)


def _post(rng: random.Random, max_words: int) -> Document | None:
    """One post, or None when this draw misses the length or consistency bounds."""
    groups = _topic_groups()
    group = groups[int(rng.random() * len(groups))]
    k = group[int(rng.random() * len(group))]
    topic = TOPICS[k]
    fill = SlotFiller(rng, _topic_pools()[k], PROPER)
    pick = fill.pick
    issue = pick(topic.issues)
    my_age = 18 + int(rng.random() * 25)
    fmt = pick(AGE_FORMATS)
    fill.set("mytag", fmt.format(a=my_age, g=pick("MF")))
    fill.set("me", "I " + fill.values["mytag"])
    fill.set("myage", str(my_age))
    _person(fill, issue.others or topic.others, my_age, fmt)
    questions = issue.questions if issue.questions and rng.random() < 0.75 else topic.questions
    fill.set("q", fill(pick(questions)))

    specs = (pick(topic.setups), issue.event, issue.problem, QUESTION)
    refs = [fill(pick(s.ref)) for s in specs]
    reference = " ".join(refs)
    if not MIN_REF_WORDS <= _count_words(reference) <= MAX_REF_WORDS:
        return None
    sentences = [fill(pick(s.src)) for s in specs]
    facts = [Fact(s, shared_keywords(s, r)) for s, r in zip(sentences, refs)]
    if any(len(f.keywords) < 2 for f in facts):
        return None

    preamble = ""
    if rng.random() < 0.55:
        first = int(rng.random() * len(PREAMBLES))
        kinds = [PREAMBLES[first]]
        if rng.random() < 0.35:
            kinds.append(PREAMBLES[(first + 1 + int(rng.random() * (len(PREAMBLES) - 1))) % len(PREAMBLES)])
        preamble = " ".join(fill(pick(kind)) for kind in kinds)

    # Distractors go into the gaps before each fact until the post reaches its target length.
    gaps: list[list[str]] = [[] for _ in specs]
    pool = _topic_distractors()[k]
    used: set[int] = set()
    target = rng.triangular(MIN_WORDS + 8, max_words - 10, min(115, max_words - 10))
    closing = fill(pick(CLOSINGS)) if rng.random() < 0.35 else ""
    words = sum(_count_words(t) for t in (preamble, closing, *sentences))
    named = fill.values["name"] in " ".join(sentences)
    while words < target and len(used) < 14:
        j = int(rng.random() * len(pool))
        if j in used:
            continue
        used.add(j)
        if not named and "{name}" in pool[j]:
            continue  # an aside about someone the post never introduced
        text = fill(pool[j])
        gaps[pick(GAP_CHOICES)].append(text)
        words += _count_words(text)
    if not MIN_WORDS <= words <= max_words:
        return None

    paragraphs: list[list[str]] = [[]]
    for i, gap in enumerate(gaps):
        for j, sentence in enumerate([*gap, sentences[i]]):
            is_question = i == 3 and j == len(gap)
            if paragraphs[-1] and (is_question or rng.random() < 0.25):
                paragraphs.append([])
            paragraphs[-1].append(sentence)
    if closing:
        paragraphs[-1].append(closing)
    body = "\n\n".join(" ".join(p) for p in paragraphs)
    source = f"{preamble}\n\n{body}" if preamble else body
    if not grounded(reference, source, fill.names):
        return None
    return make_document(source, reference, facts, preamble, entities_in(source, fill.names), topic.name,
                         {"subreddit": pick(topic.subreddits)})


def generate_posts(n: int, seed: int, max_words: int = MAX_WORDS) -> list[Document]:
    """`n` distinct posts, the same for the same seed on every machine.

    `max_words` below the default shortens the longest posts, e.g. to fit a test model's
    context (configs pass it with `_partial_: true`).
    """
    if not MIN_WORDS + 30 <= max_words <= MAX_WORDS:
        raise InputError(f"generate_posts: max_words must be in [{MIN_WORDS + 30}, {MAX_WORDS}], got {max_words}")
    return distinct_documents(lambda rng: _post(rng, max_words), n, seed)


# The prompt format of trl-lib/tldr and CarperAI/openai_summarize_tldr: the post sits between
# "POST:" and "TL;DR:", with the subreddit (and often a title) before it.
_REDDIT_PROMPT = re.compile(
    r"\s*SUBREDDIT:\s*r/(?P<subreddit>\S+)\s*(?:TITLE:\s*(?P<title>.*?)\s*)?POST:\s*(?P<post>.*?)\s*(?:TL;DR:\s*)?\Z",
    re.S,
)


@dataclass
class TldrTask(SummarizationTask):
    """TL;DR summaries of Reddit posts; `source='embedded'` uses `generate_posts`.

    Meta adds "subreddit" (and "title" for real prompts that carry one). Real data: see the
    module docstring for the column mappings of the common TL;DR datasets.
    """

    name: str = "tldr"
    max_new_tokens: int = 48
    n_train: int = 5000
    n_eval: int = 500
    columns: Mapping[str, str] = field(default_factory=lambda: {"source": "prompt", "reference": "completion"})
    splits: Mapping[str, str] = field(default_factory=lambda: {"train": "train", "eval": "validation"})
    prompt_template: str = "SUBREDDIT: r/{subreddit}\n\nPOST: {source}\n\nTL;DR:"

    def embedded_generator(self) -> GeneratorFn:
        return self.generator or generate_posts

    def document_from_record(self, row: Mapping[str, str]) -> Document:
        """A row whose source is a formatted TL;DR prompt is split into subreddit, title and post."""
        match = _REDDIT_PROMPT.match(row["source"])
        if match is None:
            return super().document_from_record(row)
        fields = {k: v.strip() for k, v in match.groupdict().items() if v is not None}
        post = fields.pop("post")
        return super().document_from_record({**row, **fields, "source": post})

