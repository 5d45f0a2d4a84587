"""People as the labeler (`labeler=human`), through the labelling page (`harness-label serve`).

When a run needs labels for its samples, the comparisons nobody has answered yet are added to
the queue (`<dir>/queue.jsonl`) and the run stops with AwaitingLabels (exit 3, its MLflow run
KILLED: resumable), printing the command that serves the page. People answer on the page, which
appends to `<dir>/labels.jsonl`; the same command run again finds the answers and goes on from
where it stopped (the samples are cached artifacts: nothing is drawn again).

A comparison is an item whose id is a hash of its prompt and responses (so runs that sample the
same texts share answers, and other texts are other items). It is answered once someone chose
a response or called it a tie; a skip leaves it pending. Its label is the majority of the
choices (a tie between choices, or only ties, is broken at random with the stage's seed, as the
panel breaks its ties); its votes are every person's choice, so the labels' agreement is the
people's. Humans give no gold reward: a run names a panel (or the LLM judge) as
labeler@judge for its evaluation.

Binary labels (labels.kind=binary): every response is an item of its own (`kind: rating`, one
response), which the page asks a thumbs up or down on. A response's rating is the majority of
the people's (a tie at random, as above); each row's agreement is the share of pairs of people
who rated one of its responses alike (1 where nobody was second).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from harness.errors import AwaitingLabels, InputError
from harness.labelers.base import Labeler
from harness.labelers.panel import PanelLabels
from harness.tasks.base import Example

QUEUE, LABELS = "queue.jsonl", "labels.jsonl"


def item_id(prompt: str, responses: Sequence[str]) -> str:
    return hashlib.sha256(json.dumps([prompt, list(responses)], ensure_ascii=False).encode()).hexdigest()[:16]


def _alike(votes: Sequence[int]) -> float:
    """The share of pairs of people who answered one item alike."""
    return float(np.mean([votes[i] == votes[j] for i in range(len(votes)) for j in range(i + 1, len(votes))]))


def read_answers(path: Path, asked: dict[str, dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """item → the answers recorded for it, each checked against the item `asked` (the queue):
    an answer to an item never asked, a choice outside the item's responses or a rating other
    than 0 or 1 is an InputError naming the line (a hand-edited or foreign file). A torn last
    line of a killed writer is not an answer."""
    found: dict[str, list[dict[str, Any]]] = {}
    if not path.exists():
        return found
    for lineno, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        try:
            answer = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            continue
        if not isinstance(answer, dict):
            continue
        where, item = f"{path}:{lineno}", asked.get(answer.get("item"))  # type: ignore[arg-type]
        if item is None:
            raise InputError(f"{where}: item: an answer to {answer.get('item')!r}, which was never asked (no such id "
                             f"in the queue, {path.parent / QUEUE})")
        k, outcome = len(item["responses"]), answer.get("outcome")
        if outcome == "choice" and not (isinstance(answer.get("choice"), int) and 0 <= answer["choice"] < k):
            raise InputError(f"{where}: choice: expected an index 0..{k - 1} into the item's responses, found "
                             f"{answer.get('choice')!r}")
        if outcome == "rating" and answer.get("rating") not in (0, 1):
            raise InputError(f"{where}: rating: expected 1 (good) or 0 (not good), found {answer.get('rating')!r}")
        found.setdefault(answer["item"], []).append(answer)
    return found


@dataclass
class HumanLabeler(Labeler):
    dir: str
    name: str = "human"
    version: str = "1"
    host: str = "127.0.0.1"
    port: int = 8765

    @property
    def queue(self) -> Path:
        return Path(self.dir).expanduser() / QUEUE

    @property
    def labels(self) -> Path:
        return Path(self.dir).expanduser() / LABELS

    def label(self, examples: Sequence[Example], candidates: Sequence[Sequence[str]],
              rng: np.random.Generator) -> PanelLabels:
        items = [{"id": item_id(e.prompt, c), "prompt": e.prompt, "responses": list(c)}
                 for e, c in zip(examples, candidates)]
        answers = read_answers(self.labels, self._asked())
        choices, votes, pending = [], [], []
        for item in items:
            given = answers.get(item["id"], [])
            picked = [int(a["choice"]) for a in given if a.get("outcome") == "choice" and a.get("choice") is not None]
            ties = sum(1 for a in given if a.get("outcome") == "tie")
            if not picked and not ties:
                pending.append(item)
                continue
            k = len(item["responses"])
            counts = np.bincount(picked, minlength=k) if picked else np.zeros(k, dtype=int)
            top = np.flatnonzero(counts == counts.max())
            choices.append(int(top[rng.integers(len(top))]))
            votes.append(picked)
        if pending:
            added = self._enqueue(pending)
            raise AwaitingLabels(self.queue, self.labels, len(pending), added, self.host, self.port)
        agreement = [_alike(v) for v in votes if len(v) > 1]
        return PanelLabels(choice=np.array(choices), votes=votes,  # type: ignore[arg-type]
                           agreement=float(np.mean(agreement)) if agreement else 1.0)

    def rate(self, examples: Sequence[Example], candidates: Sequence[Sequence[str]],
             rng: np.random.Generator) -> PanelLabels:
        """Binary labels: each of the k responses to examples[i] rated alone on the page; `choice`
        (N, k) of 0/1, `votes` per prompt the people's ratings of each response, `row_agreement`
        per prompt."""
        answers = read_answers(self.labels, self._asked())
        ratings, votes, alike, pending = [], [], [], []
        for e, group in zip(examples, candidates):
            row, row_votes = [], []
            for response in group:
                item = {"id": item_id(e.prompt, [response]), "kind": "rating", "prompt": e.prompt,
                        "responses": [response]}
                given = [a["rating"] for a in answers.get(item["id"], []) if a.get("outcome") == "rating"]
                if not given:
                    pending.append(item)
                    continue
                ups = sum(given)
                row.append(int(rng.integers(2)) if 2 * ups == len(given) else int(2 * ups > len(given)))
                row_votes.append(given)
            ratings.append(row)
            votes.append(row_votes)
            rated_twice = [v for v in row_votes if len(v) > 1]
            alike.append(float(np.mean([_alike(v) for v in rated_twice])) if rated_twice else 1.0)
        if pending:
            pending = list({item["id"]: item for item in pending}.values())  # one response sampled twice: one item
            added = self._enqueue(pending)
            raise AwaitingLabels(self.queue, self.labels, len(pending), added, self.host, self.port)
        return PanelLabels(choice=np.array(ratings, dtype=np.int64), votes=votes,  # type: ignore[arg-type]
                           agreement=float(np.mean(alike)) if alike else 1.0, row_agreement=alike)

    def _asked(self) -> dict[str, dict[str, Any]]:
        """The items of the queue (every item ever asked: the queue only grows), by id."""
        asked: dict[str, dict[str, Any]] = {}
        if self.queue.exists():
            for line in self.queue.read_text(encoding="utf-8").split("\n"):
                try:
                    item = json.loads(line) if line.strip() else None
                except json.JSONDecodeError:
                    continue
                if isinstance(item, dict) and isinstance(item.get("id"), str):
                    asked[item["id"]] = item
        return asked

    def _enqueue(self, items: list[dict[str, Any]]) -> int:
        """Append the items the queue does not hold yet; the number added."""
        self.queue.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.queue) + ".lock"):
            held = set(self._asked())
            new = [i for i in items if i["id"] not in held]
            if new:
                fd = os.open(self.queue, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, "".join(json.dumps(i, ensure_ascii=False) + "\n" for i in new).encode("utf-8"))
                    os.fsync(fd)
                finally:
                    os.close(fd)
        return len(new)
