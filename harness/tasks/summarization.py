"""Summarise a post or an article (Ziegler et al., 2019, §4.2: TL;DR and CNN/Daily Mail).

`SummarizationTask` turns documents into examples. A document is either generated (the
embedded corpora of `harness.tasks.tldr` and `harness.tasks.cnndm`, which know their latent
structure) or a row of a real dataset read by `load_records`.

Every example's `meta` follows one schema, shared with the summary labelers:

- "source": str, the post or article alone (no instruction around it);
- "facts": [{"text": str, "keywords": [str, ...]}], the key facts: `text` is the sentence
  of the source that states the fact, `keywords` (2–4) are lower-case `harness.text.words`
  tokens of that sentence which a summary covering the fact uses (names, numbers, content
  words; generated references contain all of them);
- "preamble": str, the opening text that is not part of the story ("" if none); the source
  starts with it;
- "entities": [str, ...], every name and number that occurs in the source;
- "first_sentence": str, the source's first sentence by `harness.text.split_sentences`.

Real datasets give facts=[] and preamble="", with entities found by a capitalised-word and
number regex. Tasks may add keys (TL;DR adds "subreddit"); any string key can be used in the
prompt template.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from string import Formatter
from typing import Any, NamedTuple, TypeVar

from harness.errors import InputError
from harness.tasks.base import Example, Task, check_split, load_records
from harness.text import STOPWORDS, lead_k, split_sentences, words


@dataclass(frozen=True)
class Fact:
    """A key fact: the source sentence stating it and the keywords that show it is covered."""

    text: str
    keywords: tuple[str, ...]


@dataclass(frozen=True)
class Document:
    """One source text with its reference and what is known of its structure.

    `extra` holds task-specific string fields (e.g. the subreddit) that go into `meta` and
    can fill the prompt template; `topic` is the generator's label, kept out of `meta`.
    """

    source: str
    reference: str | None
    facts: tuple[Fact, ...] = ()
    preamble: str = ""
    entities: tuple[str, ...] = ()
    first_sentence: str = ""
    topic: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)

    def meta(self) -> dict[str, Any]:
        """The example meta (fresh lists, so callers cannot alter a cached corpus)."""
        return {
            "source": self.source,
            "facts": [{"text": f.text, "keywords": list(f.keywords)} for f in self.facts],
            "preamble": self.preamble,
            "entities": list(self.entities),
            "first_sentence": self.first_sentence,
            **self.extra,
        }


# (n, seed) -> n distinct documents, the same for the same arguments on every machine.
GeneratorFn = Callable[[int, int], Sequence[Document]]

# --- text utilities --------------------------------------------------------------------------

_ENTITY = re.compile(r"\b[A-Z][\w'’-]*[\w]|\b[A-Z]\b|\d+(?:[.,]\d+)*")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_PARAGRAPH = re.compile(r"\n\s*\n")
# Capitalised words that are not names when they open a sentence or stand alone.
_NOT_NAMES = frozenset(
    "a about after again all also although an and any anyway are as at basically be because "
    "before but by can could did do does don edit even every everyone for from he her here hers "
    "hey hi him his honestly how however i if i'm i've i'd i'll in is it it's its just last "
    "later long maybe me meanwhile my no not now of ok okay on once one or our she since so "
    "some still that the their then there these they this those thanks though to today tl tldr "
    "update us was we well what when where which while who why will with yes yesterday you your "
    "dr mr mrs ms".split()
)


# Words never chosen as keywords: function words and the fillers of informal writing, which
# show nothing about whether a summary covers a fact.
KEYWORD_STOPWORDS = STOPWORDS | frozenset("""
didn doesn isn wasn won wouldn couldn shouldn aren haven hasn ain let make
makes made go goes going went gone come comes came take takes took tell
tells told want wants wanted think thinks thought feel feels felt keep keeps kept
way thing things lot bit kind sort stuff pretty totally completely literally honestly seriously
always never already almost around since last next ago lately recently today yesterday tonight
someone something anything everything nothing everyone anyone ask asked asks asking bring brought put
whole though whether per via
""".split())


def first_sentence(text: str) -> str:
    """The first of `split_sentences(text)`, splitting only the first paragraph that has text
    (a blank line always ends a sentence, so the rest cannot change it)."""
    for paragraph in _PARAGRAPH.split(text):
        sentences = split_sentences(paragraph)
        if sentences:
            return sentences[0]
    return ""


def find_entities(text: str) -> list[str]:
    """Capitalised words and numbers of text, in order, without common sentence openers."""
    found = [m for m in _ENTITY.findall(text) if m.lower() not in _NOT_NAMES]
    return list(dict.fromkeys(found))


def make_document(
    source: str,
    reference: str | None,
    facts: Sequence[Fact] = (),
    preamble: str = "",
    entities: Sequence[str] | None = None,
    topic: str = "",
    extra: Mapping[str, str] | None = None,
) -> Document:
    """A Document with `first_sentence` from the splitter and, by default, regex entities."""
    return Document(
        source=source,
        reference=reference,
        facts=tuple(facts),
        preamble=preamble,
        entities=tuple(find_entities(source) if entities is None else entities),
        first_sentence=first_sentence(source),
        topic=topic,
        extra=dict(extra or {}),
    )


# --- grammar for the embedded generators ------------------------------------------------------

T = TypeVar("T")
_PART = re.compile(r"\[([^\[\]]*)\]|\{(\w+)\}")
# A value that wants "an" before it: the pools decide the article only once a slot is filled.
_VOWEL_SOUND = re.compile(r"[aeiAEI]|[oO](?!ne)|\$?(?:8|1[18](?![\d,]))")


class _Slot(NamedTuple):
    name: str
    capital: bool


_Parts = tuple["str | _Slot | tuple[tuple[str | _Slot, ...], ...]", ...]


@functools.lru_cache(maxsize=None)
def _parse(template: str) -> _Parts:
    """Template as literal strings, slots and alternatives (each a tuple of strings and slots)."""

    def slots(text: str) -> tuple[str | _Slot, ...]:
        out: list[str | _Slot] = []
        pos = 0
        for m in _PART.finditer(text):
            out += [text[pos : m.start()], _Slot(m.group(2)[0].lower() + m.group(2)[1:], m.group(2)[0].isupper())]
            pos = m.end()
        return tuple(p for p in [*out, text[pos:]] if p != "")

    parts: list[str | _Slot | tuple[tuple[str | _Slot, ...], ...]] = []
    pos = 0
    for m in _PART.finditer(template):
        parts.append(template[pos : m.start()])
        if m.group(1) is not None:
            parts.append(tuple(slots(option) for option in m.group(1).split("|")))
        else:
            parts.append(_Slot(m.group(2)[0].lower() + m.group(2)[1:], m.group(2)[0].isupper()))
        pos = m.end()
    parts.append(template[pos:])
    return tuple(p for p in parts if p != "")


class SlotFiller:
    """Fills one document's templates: `[a|b]` picks an alternative at each use, `{slot}` is
    drawn once per document from `pools` (so every mention agrees) or set by the generator.

    `{Slot}` capitalises the value's first letter. Pool values may hold alternatives and
    slots themselves. Values of slots in `proper` (names, places) are remembered in `names`
    so the generator can list the document's entities.
    """

    def __init__(
        self, rng: random.Random, pools: Mapping[str, Sequence[str]], proper: frozenset[str]
    ) -> None:
        self.rng = rng
        self.pools = pools
        self.proper = proper
        self.values: dict[str, str] = {}
        self.names: list[str] = []

    def __call__(self, template: str) -> str:
        return self._fill(template)

    def pick(self, options: Sequence[T]) -> T:
        """A uniform choice (rng.random() is cheaper than rng.choice)."""
        return options[int(self.rng.random() * len(options))]

    def set(self, slot: str, value: str, proper: bool = False) -> None:
        self.values[slot] = value
        if proper:
            self.names.append(value)

    def get(self, slot: str) -> str:
        value = self.values.get(slot)
        if value is None:
            pool = self.pools.get(slot)
            if pool is None:
                raise KeyError(f"template slot {{{slot}}} has no pool")  # a bug in the grammar
            value = self.values[slot] = self._fill(self.pick(pool))
            if slot in self.proper:
                self.names.append(value)
        return value

    def _fill(self, template: str) -> str:
        if "[" not in template and "{" not in template:
            return template
        out: list[str] = []
        for part in _parse(template):
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, _Slot):
                self._slot(part, out)
            else:
                for sub in part[int(self.rng.random() * len(part))]:
                    if isinstance(sub, str):
                        out.append(sub)
                    else:
                        self._slot(sub, out)
        return "".join(out)

    def _slot(self, slot: _Slot, out: list[str]) -> None:
        value = self.get(slot.name)
        if slot.capital:
            value = value[:1].upper() + value[1:]
        if _VOWEL_SOUND.match(value):
            tail = "".join(out[-3:])[-3:]
            if tail.endswith(("a ", "A ")) and not tail[:-2].isalnum():  # a lone "a", not "Hola "
                text = "".join(out)
                out[:] = [text[:-1] + "n "]
        out.append(value)


def entities_in(source: str, names: Sequence[str]) -> tuple[str, ...]:
    """The given names that occur in source plus every number in it, by first occurrence."""
    found = {n: source.find(n) for n in names if n and n in source}
    for m in _NUMBER.finditer(source):
        found.setdefault(m.group(), m.start())
    return tuple(sorted(found, key=lambda n: (found[n], n)))


def grounded(reference: str, source: str, names: Sequence[str]) -> bool:
    """Every one of `names` and every number that the reference mentions occurs in the source."""
    numbers = set(_NUMBER.findall(source))
    return all(n in source for n in names if n in reference) and all(
        m in numbers for m in _NUMBER.findall(reference)
    )


def shared_keywords(sentence: str, reference: str, limit: int = 4) -> tuple[str, ...]:
    """Content tokens a fact's source sentence shares with its reference wording.

    Numbers first (they pin a fact down), then longer words before shorter ones.
    """
    in_reference = set(words(reference))
    shared = [
        t for t in dict.fromkeys(words(sentence))
        if t in in_reference and t not in KEYWORD_STOPWORDS and (len(t) > 1 or t.isdigit())
    ]
    shared.sort(key=lambda t: (not t[0].isdigit(), -len(t)))
    return tuple(shared[:limit])


# --- the task ---------------------------------------------------------------------------------

_REQUIRED_COLUMNS = ("source",)
_RESERVED_COLUMNS = ("facts", "preamble", "entities", "first_sentence")


@functools.lru_cache(maxsize=8)
def _corpus(generator: GeneratorFn, n: int, seed: int) -> tuple[Document, ...]:
    # Both splits come from one draw; caching it spares generating twice per run.
    return tuple(generator(n, seed))


@dataclass
class SummarizationTask(Task):
    """Summarise `source` texts; references are the human (or generated) summaries.

    `source='embedded'` draws `n_train + n_eval` documents from `generator` (called as
    `generator(n, seed)`) and splits them, so train and eval are disjoint; None means the
    task's own generator (subclasses). Anything else is read by `load_records`: a Hugging Face
    name ('name' or 'name:config') or a local JSONL/CSV/Parquet file or directory, with
    `columns` mapping the task's fields to the dataset's columns: 'source' (required),
    'reference' (optional) and any other field, which goes into meta as a string and can be
    used in `prompt_template` (e.g. {subreddit}).
    """

    name: str = "summarization"
    max_new_tokens: int = 48
    stop: str | None = None  # see Task
    stop_after: int = 0
    source: str = "embedded"
    n_train: int = 1000
    n_eval: int = 100
    seed: int = 0
    columns: Mapping[str, str] = field(default_factory=lambda: {"source": "document", "reference": "summary"})
    splits: Mapping[str, str] = field(default_factory=lambda: {"train": "train", "eval": "validation"})
    prompt_template: str = "{source}\n\nTL;DR:"
    generator: GeneratorFn | None = None

    def examples(self, split: str) -> list[Example]:
        check_split(split)
        n = self.n_train if split == "train" else self.n_eval
        if self.source == "embedded":
            corpus = _corpus(self.embedded_generator(), self.n_train + self.n_eval, self.seed)
            docs = list(corpus[: self.n_train] if split == "train" else corpus[self.n_train :])
        else:
            docs = [self.document_from_record(r) for r in self._records(split, n)]
        if len(docs) < n:
            raise InputError(
                f"task {self.name}: {self.source} has {len(docs)} {split} documents, "
                f"n_{split} asks for {n}"
            )
        return [
            Example(id=f"{self.name}-{split}-{i}", prompt=self.render_prompt(d), reference=d.reference, meta=d.meta())
            for i, d in enumerate(docs[:n])
        ]

    def embedded_generator(self) -> GeneratorFn:
        """`generator`, or the task's own; the base task has none."""
        if self.generator is None:
            raise InputError(
                f"task {self.name}: source 'embedded' needs a `generator` ((n, seed) -> documents), "
                "e.g. {_target_: hydra.utils.get_method, path: harness.tasks.tldr.generate_posts}"
            )
        return self.generator

    def document_from_record(self, row: Mapping[str, str]) -> Document:
        """A real dataset row (task field -> text) as a Document without latent structure."""
        source = row["source"].strip()
        reference = row["reference"].strip() if "reference" in row else None
        extra = {k: v.strip() for k, v in row.items() if k not in ("source", "reference")}
        return make_document(source, reference, extra=extra)

    def render_prompt(self, doc: Document) -> str:
        """`prompt_template` filled with the document's source and extra fields."""
        values = {"source": doc.source, **doc.extra}
        try:
            wanted = {f for _, f, _, _ in Formatter().parse(self.prompt_template) if f is not None}
        except ValueError as err:
            raise InputError(f"task {self.name}: prompt_template {self.prompt_template!r} is malformed: {err}") from err
        missing = sorted(wanted - values.keys())
        if missing:
            raise InputError(
                f"task {self.name}: prompt_template uses {missing} but the documents only have "
                f"{sorted(values)}; map a dataset column to it in `columns` or change prompt_template"
            )
        return self.prompt_template.format_map(values)

    def baselines(self, examples: Sequence[Example]) -> dict[str, list[str]]:
        """Texts to score like a policy's summaries: lead-3 and, where every example has one,
        the reference."""
        out = {"lead3": [lead_k(_source(e), 3) for e in examples]}
        if examples and all(e.reference for e in examples):
            out["reference"] = [e.reference or "" for e in examples]
        return out

    def _records(self, split: str, n: int) -> list[dict[str, str]]:
        missing = [c for c in _REQUIRED_COLUMNS if c not in self.columns]
        if missing:
            raise InputError(
                f"task {self.name}: `columns` must map {missing} to a dataset column, got {dict(self.columns)}"
            )
        reserved = [c for c in _RESERVED_COLUMNS if c in self.columns]
        if reserved:
            raise InputError(
                f"task {self.name}: `columns` keys {reserved} are meta fields the task computes; "
                "map dataset columns only to 'source', 'reference' or other names"
            )
        if split not in self.splits:
            raise InputError(
                f"task {self.name}: `splits` has no entry for {split!r}; expected keys 'train' and 'eval'"
            )
        return load_records(self.source, self.splits[split], self.columns, limit=n)


def _source(example: Example) -> str:
    source = example.meta.get("source")
    return source if isinstance(source, str) else example.prompt


def distinct_documents(make: Callable[[random.Random], Document | None], n: int, seed: int) -> list[Document]:
    """`n` documents with distinct sources from a seeded maker that may reject a draw (None)."""
    rng = random.Random(seed)
    seen: set[str] = set()
    docs: list[Document] = []
    while len(docs) < n:
        doc = make(rng)
        if doc is not None and doc.source not in seen:
            seen.add(doc.source)
            docs.append(doc)
    return docs
