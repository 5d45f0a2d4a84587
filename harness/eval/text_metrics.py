"""Pure text metrics for summaries: ROUGE and copying from the source.

Sentences and words come from `harness.text`, shared with the tasks and the summary gold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.errors import InputError
from harness.text import normalise, split_sentences, starts_with_first_sentence

def copy_fraction(summary: str, source: str) -> float:
    """Fraction of the summary's sentences found verbatim in the source (after `normalise`).

    An empty summary copies nothing: 0.
    """
    sentences = split_sentences(summary)
    if not sentences:
        return 0.0
    src = normalise(source)
    return sum(normalise(s) in src for s in sentences) / len(sentences)


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
