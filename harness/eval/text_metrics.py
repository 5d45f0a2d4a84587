"""Pure text metrics for summaries: ROUGE, copying from the source, lead-k baselines.

Sentences are split by a regular expression rather than NLTK's punkt, whose data cannot be
downloaded here. The labelers reuse `split_sentences`, `words` and `starts_with_first_sentence`
so that the gold and the logged metrics agree on what a sentence and a copied lead are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from harness.errors import InputError

# Tokens ending in "." that do not end a sentence. Single capital letters (initials such as
# "J. K. Rowling") are handled separately.
ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "etc", "e.g", "i.e", "cf",
    "approx", "fig", "inc", "ltd", "co", "corp", "jan", "feb", "mar", "apr", "jun", "jul",
    "aug", "sep", "sept", "oct", "nov", "dec", "u.s", "u.k", "a.m", "p.m", "gov", "sen", "lt",
    "sgt", "capt",
})

# A run of terminal punctuation, any closing quotes or brackets, then whitespace. Decimals
# ("3.5") never match because no whitespace follows the point.
_BOUNDARY = re.compile(r"[.!?]+[\"'”’)\]]*\s+")
_PARAGRAPH = re.compile(r"\n\s*\n")
_WORD_BEFORE = re.compile(r"([\w.]+)$")
# Numbers keep their decimal point and thousands separators ("3.5", "1,200"); words are
# letter runs, so "don't" → "don", "t" and "27M" → "27", "m".
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+")


def split_sentences(text: str) -> list[str]:
    """Sentences of `text`: split after . ! ? (and closing quotes) followed by whitespace.

    Blank lines always end a sentence. A full stop after a known abbreviation ("Mr.", "e.g.")
    or a single capital letter (an initial) does not.
    """
    sentences: list[str] = []
    for paragraph in _PARAGRAPH.split(text):
        start = 0
        for match in _BOUNDARY.finditer(paragraph):
            stop = match.end()
            if match.group().strip().rstrip("\"'”’)]") == ".":
                before = _WORD_BEFORE.search(paragraph[start : match.start()])
                token = before.group(1) if before else ""
                if token.lower() in ABBREVIATIONS or (len(token) == 1 and token.isupper()):
                    continue
            sentence = paragraph[start:stop].strip()
            if sentence:
                sentences.append(sentence)
            start = stop
        tail = paragraph[start:].strip()
        if tail:
            sentences.append(tail)
    return sentences


def lead_k(text: str, k: int = 3) -> str:
    """The first k sentences of `text`: the lead-k baseline summary."""
    if k < 1:
        raise InputError(f"lead_k: k must be ≥ 1, got {k}")
    return " ".join(split_sentences(text)[:k])


def words(text: str) -> list[str]:
    """Lower-case word and number tokens; thousands separators dropped ("1,200" → "1200")."""
    out = []
    for tok in _TOKEN.findall(text.lower()):
        if tok[0].isdigit():
            tok = tok.replace(",", "")
        out.append(tok)
    return out


def normalise(text: str) -> str:
    """Lower case with runs of whitespace collapsed to one space."""
    return " ".join(text.lower().split())


def copy_fraction(summary: str, source: str) -> float:
    """Fraction of the summary's sentences found verbatim in the source (after `normalise`).

    An empty summary copies nothing: 0.
    """
    sentences = split_sentences(summary)
    if not sentences:
        return 0.0
    src = normalise(source)
    return sum(normalise(s) in src for s in sentences) / len(sentences)


def starts_with_first_sentence(summary: str, first_sentence: str, max_words: int = 8) -> bool:
    """Whether the summary opens with the source's first sentence (a copied lead).

    Compares word tokens (case and punctuation ignored): true when the summary's first
    min(len(first_sentence), max_words) words equal the first sentence's, so a copied lead
    that was cut short still counts. An empty first sentence never matches.
    """
    lead = words(first_sentence)[:max_words]
    return bool(lead) and words(summary)[: len(lead)] == lead


def rouge(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measures (Porter stemming), and rouge_avg = their mean.

    F = 2PR / (P + R) with P, R the n-gram (or longest-common-subsequence) precision and
    recall of a prediction against its reference; each is averaged over the pairs.
    """
    if len(predictions) != len(references):
        raise InputError(
            f"rouge: predictions and references must pair up, got {len(predictions)} and {len(references)}"
        )
    if not predictions:
        raise InputError("rouge: expected at least one prediction/reference pair, got none")
    from rouge_score import rouge_scorer  # loads nltk's stemmer; only needed when called

    keys = ("rouge1", "rouge2", "rougeL")
    scorer = rouge_scorer.RougeScorer(list(keys), use_stemmer=True)
    scores = [scorer.score(ref, pred) for pred, ref in zip(predictions, references)]
    out = {k: float(np.mean([s[k].fmeasure for s in scores])) for k in keys}
    out["rouge_avg"] = float(np.mean([out[k] for k in keys]))
    return out


def mean_copy_fraction(summaries: Sequence[str], sources: Sequence[str]) -> float:
    """Mean `copy_fraction` over paired summaries and sources."""
    _check_pairs("mean_copy_fraction", summaries, sources)
    return float(np.mean([copy_fraction(s, src) for s, src in zip(summaries, sources)]))


def first_sentence_rate(summaries: Sequence[str], first_sentences: Sequence[str]) -> float:
    """Fraction of summaries that open with their source's first sentence."""
    _check_pairs("first_sentence_rate", summaries, first_sentences)
    return float(np.mean([starts_with_first_sentence(s, f) for s, f in zip(summaries, first_sentences)]))


def _check_pairs(what: str, a: Sequence[str], b: Sequence[str]) -> None:
    if len(a) != len(b) or not a:
        raise InputError(f"{what}: expected two non-empty sequences of equal length, got {len(a)} and {len(b)}")
