"""Continue a prompt with positive sentiment (Ziegler et al., 2019, §4.1).

The paper continued BookCorpus excerpts; offline, the embedded default is a corpus of review
and diary openings generated here from a seeded grammar. Each opening stops where the writer
is about to give a verdict, so the continuation, not the prompt, carries the sentiment.
The grammar's phrase tables are data, in harness/tasks/data/sentiment.json.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.tasks.continuation import ContinuationTask
from harness.tasks.phrases import phrase_tables

_TABLES = phrase_tables("sentiment")
# What is reviewed, by kind: noun phrases with {slot}s.
SUBJECTS: dict[str, list[str]] = _TABLES["subjects"]
# Slot name -> the values it is filled from.
SLOTS: dict[str, list[str]] = _TABLES["slots"]
# Who the writer went with, e.g. "with my {person}".
WHO: list[str] = _TABLES["who"]
# Review openings that stop before the verdict, around {subject} and {who}.
OPENERS: list[str] = _TABLES["openers"]


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
