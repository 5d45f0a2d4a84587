"""An LLM as the labeler (`labeler=llm_judge`) or as the judge of evaluation
(`labeler@judge=llm_judge`): any OpenAI-compatible chat endpoint, through the `openai` client.

Each comparison of two responses is asked twice, in both orders (A = first, then A = second),
with the task's question (`templates`, by task name; `default` otherwise); the reply's first
`A` or `B` is the answer. The two answers are the judgement's two votes, as two annotators of a
panel: when they agree that is the choice; when they disagree (the judge followed the position,
not the text) the comparison is a tie: ½ in evaluation, a random pick among the tied in labels,
as the panel breaks its ties, and the labels' agreement is the share of comparisons whose two
orders agreed. A reply with neither letter counts as no vote for that order.

Every answer is cached on disk by the content it judged (model, endpoint, question, prompt and
both responses in their order, sampling settings): a rerun, another run on the same samples,
or evaluation of the same texts asks again for nothing. Requests run `concurrency` at a time;
the client retries failed ones (`max_retries`, with its backoff) within `timeout` seconds each;
a request that still fails stops the run with the endpoint and the error, and nothing is
cached for it. Token use (prompt, completion, requests, cached answers) is counted and logged
as `judge/*` metrics of the run. The key comes from the environment variable `api_key_env`
(never from the config, so it is in no params, tags or logs). Only comparisons of k = 2
responses: labels.k=2.

Binary labels (labels.kind=binary): each response is asked alone whether it is good
(`rating_templates`, by task), Yes a thumbs up; a reply with neither word counts as no rating
and is drawn at random (counted in judge/unparsed). One judge gives no agreement to measure:
its labels log none.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import InputError
from harness.labelers.base import Labeler
from harness.labelers.panel import PanelLabels
from harness.tasks.base import Example

log = logging.getLogger(__name__)
ANSWER = re.compile(r"\b([AB])\b")
SYSTEM = ("You compare two responses to the same prompt and answer with one letter: A if Response A is "
          "better, B if Response B is better. Answer A or B only.")
TEMPLATE = "{question}\n\nPrompt:\n{prompt}\n\nResponse A:\n{a}\n\nResponse B:\n{b}\n\nAnswer A or B."
RATING = re.compile(r"\b(YES|NO)\b")
RATING_SYSTEM = ("You judge one response to a prompt and answer with one word: Yes if it is a good response, "
                 "No if it is not. Answer Yes or No only.")
RATING_TEMPLATE = "{question}\n\nPrompt:\n{prompt}\n\nResponse:\n{a}\n\nAnswer Yes or No."


@dataclass
class LLMJudge(Labeler):
    name: str
    version: str
    model: str
    base_url: str | None
    api_key_env: str
    task: str
    templates: Mapping[str, str]  # task name → the question asked; `default` for any other task
    cache_dir: str
    max_retries: int = 3
    timeout: float = 60.0
    concurrency: int = 4
    max_tokens: int = 4
    temperature: float = 0.0
    # task name → the question asked of one response (labels.kind=binary); `default` for any other
    rating_templates: Mapping[str, str] = field(default_factory=lambda: {"default": "Is this a good response?"})
    _usage: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if "default" not in self.templates and self.task not in self.templates:
            raise InputError(f"labeler {self.name}: templates: expected a question for task {self.task!r} or a "
                             f"`default` one, found {sorted(self.templates)}")
        for key, value in (("max_retries", self.max_retries), ("concurrency", self.concurrency),
                           ("max_tokens", self.max_tokens)):
            if value < (0 if key == "max_retries" else 1):
                raise InputError(f"labeler.{key}: expected an integer ≥ {0 if key == 'max_retries' else 1}, got {value}")
        if not self.timeout > 0:
            raise InputError(f"labeler.timeout: expected seconds > 0, got {self.timeout}")
        self._usage = {"requests": 0, "cached": 0, "prompt_tokens": 0, "completion_tokens": 0, "unparsed": 0}

    @property
    def question(self) -> str:
        return self.templates.get(self.task, self.templates.get("default", ""))

    # ------------------------------------------------------------ one answer

    def _client(self) -> Any:
        from openai import OpenAI

        key = os.environ.get(self.api_key_env)
        if not key:
            raise InputError(f"labeler {self.name}: the environment variable {self.api_key_env} holds no API key "
                             f"for {self.base_url or 'the OpenAI API'}")
        return OpenAI(api_key=key, base_url=self.base_url, max_retries=self.max_retries, timeout=self.timeout)

    def _key(self, messages: list[dict[str, str]]) -> str:
        spec = {"model": self.model, "base_url": self.base_url, "messages": messages,
                "max_tokens": self.max_tokens, "temperature": self.temperature}
        return hashlib.sha256(json.dumps(spec, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def _ask(self, client: Any, prompt: str, a: str, b: str | None) -> int | None:
        """0 if the judge prefers `a`, 1 if `b`, None if its reply names neither. Without `b`,
        the rating of `a` alone: 1 (Yes, good), 0 (No), None if the reply says neither."""
        if b is None:
            question = self.rating_templates.get(self.task, self.rating_templates.get("default", ""))
            messages = [{"role": "system", "content": RATING_SYSTEM},
                        {"role": "user", "content": RATING_TEMPLATE.format(question=question, prompt=prompt, a=a)}]
        else:
            messages = [{"role": "system", "content": SYSTEM},
                        {"role": "user", "content": TEMPLATE.format(question=self.question, prompt=prompt, a=a, b=b)}]
        key = self._key(messages)
        path = Path(self.cache_dir).expanduser() / key[:2] / f"{key}.json"
        if path.exists():
            reply = json.loads(path.read_text())["reply"]
            self._count(cached=1)
        else:
            from openai import OpenAIError

            try:
                response = client.chat.completions.create(model=self.model, messages=messages,
                                                          max_tokens=self.max_tokens, temperature=self.temperature)
            except OpenAIError as err:
                raise InputError(f"labeler {self.name}: {self.base_url or 'the OpenAI API'} ({self.model}) failed after "
                                 f"{self.max_retries} retries: {type(err).__name__}: {' '.join(str(err).split())[:300]}"
                                 ) from None
            reply = _content(response)
            if reply is None:
                raise InputError(f"labeler {self.name}: {self.base_url or 'the OpenAI API'} ({self.model}) sent a "
                                 "malformed reply: expected a chat completion with choices[0].message.content, "
                                 f"found {' '.join(repr(response).split())[:200]}")
            usage = getattr(response, "usage", None)
            self._count(requests=1, prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                        completion_tokens=getattr(usage, "completion_tokens", 0) or 0)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
            tmp.write_text(json.dumps({"reply": reply, "model": self.model, "messages": messages}))
            tmp.replace(path)
        found = (ANSWER if b is not None else RATING).search(reply.strip().upper())
        if found is None:
            self._count(unparsed=1)
            return None
        return int(found.group(1) in ("B", "YES"))

    def _count(self, **counts: int) -> None:
        with self._lock:
            for key, value in counts.items():
                self._usage[key] += value

    def _votes(self, prompts: Sequence[str], a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        """(2, N): each order's vote for a (0) or b (1), -1 where the reply named neither."""
        client = self._client()
        jobs = [(p, x, y, False) for p, x, y in zip(prompts, a, b)] + [(p, y, x, True) for p, x, y in zip(prompts, a, b)]

        def one(job: tuple[str, str, str, bool]) -> int:
            prompt, first, second, swapped = job
            answer = self._ask(client, prompt, first, second)
            if answer is None:
                return -1
            return 1 - answer if swapped else answer

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            answers = list(pool.map(one, jobs))
        n = len(prompts)
        return np.array([answers[:n], answers[n:]], dtype=np.int64)

    # ------------------------------------------------------------ the Labeler interface

    def label(self, examples: Sequence[Example], candidates: Sequence[Sequence[str]],
              rng: np.random.Generator) -> PanelLabels:
        if any(len(c) != 2 for c in candidates):
            raise InputError(f"labeler {self.name}: compares two responses at a time; set labels.k=2")
        votes = self._votes([e.prompt for e in examples], [c[0] for c in candidates], [c[1] for c in candidates])
        agree = (votes[0] == votes[1]) & (votes[0] >= 0)
        one_vote = (votes.max(0) >= 0) & ((votes[0] < 0) | (votes[1] < 0))
        choice = np.where(agree, votes[0], np.where(one_vote, votes.max(0), rng.integers(0, 2, len(examples))))
        self._log()
        # Votes for the agreement: an unparsed reply (2 in the first order, 3 in the second) agrees
        # with nothing, not even an unparsed reply to the other order.
        return PanelLabels(choice=choice, votes=np.where(votes < 0, np.array([[2], [3]]), votes),
                           agreement=float(agree.mean()))

    def rate(self, examples: Sequence[Example], candidates: Sequence[Sequence[str]],
             rng: np.random.Generator) -> PanelLabels:
        """Binary labels: each of the k responses to examples[i] asked alone; `choice` (N, k) of
        0/1 (an unreadable reply: drawn at random), `votes` (1, N·k) the replies (2: unreadable)."""
        k = len(candidates[0]) if candidates else 0
        if any(len(c) != k for c in candidates):
            raise InputError(f"labeler {self.name}: every prompt needs the same k responses")
        client = self._client()
        jobs = [(e.prompt, r) for e, group in zip(examples, candidates) for r in group]
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            answers = np.array([-1 if a is None else a for a in pool.map(lambda job: self._ask(client, *job, None), jobs)],
                               dtype=np.int64)
        self._log()
        ratings = np.where(answers >= 0, answers, rng.integers(0, 2, answers.shape))
        return PanelLabels(choice=ratings.reshape(len(examples), k), votes=np.where(answers < 0, 2, answers)[None],
                           agreement=None)

    def compare(self, examples: Sequence[Example], a: Sequence[str], b: Sequence[str]) -> np.ndarray:
        """The judge's preference of a over b: 1 when both orders say a, 0 when both say b, ½ otherwise."""
        votes = self._votes([e.prompt for e in examples], a, b)
        out = np.where((votes[0] == 0) & (votes[1] == 0), 1.0, np.where((votes[0] == 1) & (votes[1] == 1), 0.0, 0.5))
        self._log()
        return out

    def usage(self) -> dict[str, float]:
        with self._lock:
            return {f"judge/{k}": float(v) for k, v in self._usage.items()}

    def _log(self) -> None:
        u = self.usage()
        log.info("%s (%s): %d requests, %d answers from the cache, %d prompt and %d completion tokens so far",
                 self.name, self.model, u["judge/requests"], u["judge/cached"], u["judge/prompt_tokens"],
                 u["judge/completion_tokens"])


def _content(response: Any) -> str | None:
    """A chat completion's text ("" for an empty message); None when the reply is not a chat
    completion (no choices, not JSON: a proxy's error page, another API)."""
    try:
        content = response.choices[0].message.content
    except (AttributeError, IndexError, TypeError, KeyError):
        return None
    return content if isinstance(content, str) else "" if content is None else None
