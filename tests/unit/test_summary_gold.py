"""The summary gold on hand-made posts: key facts beat lead-3, hallucination, rambling, empty."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from harness.errors import InputError
from harness.text import lead_k
from harness.labelers.panel import Panel
from harness.labelers.summary import (
    Brevity,
    FactRecall,
    Faithfulness,
    NoPreamble,
    ReferenceSimilarity,
    WeightedSum,
)
from harness.tasks.base import Example

CONF = str(Path(__file__).resolve().parents[2] / "harness" / "conf")

PREAMBLE = "Hi everyone, long time lurker, first time poster. Sorry for the formatting, I'm on mobile."
POST = PREAMBLE + (
    " My boyfriend Jake (27M) and I (25F) have been together for 4 years and we moved in together last March."
    " Last week he told me he accepted a job offer in Denver without asking me first."
    " The job pays $85,000, almost double what he makes now, and he starts in 6 weeks."
    " I have a stable nursing job here in Ohio and my whole family lives nearby."
    " He says I can find work in Denver easily, but he never even asked if I wanted to move."
    " I feel hurt that he made such a big decision alone."
    " How do I talk to him about this without starting a fight?"
)
REDDIT = Example(
    id="reddit-1",
    prompt=POST + "\n\nTL;DR:",
    reference=(
        "My boyfriend of 4 years accepted a job in Denver without asking me; I'm hurt and don't know "
        "how to bring it up without a fight."
    ),
    meta={
        "source": POST,
        "preamble": PREAMBLE,
        "first_sentence": "Hi everyone, long time lurker, first time poster.",
        "entities": ["Jake", "27", "25", "4", "March", "Denver", "85,000", "6", "Ohio"],
        "facts": [
            {"text": "Her boyfriend took a job in Denver without asking her.", "keywords": ["job", "denver", "asking"]},
            {"text": "They have been together for 4 years.", "keywords": ["boyfriend", "4", "years"]},
            {"text": "Her nursing job and family are in Ohio.", "keywords": ["nursing", "family", "ohio"]},
            {"text": "She is hurt and wants to talk without a fight.", "keywords": ["hurt", "talk", "fight"]},
        ],
    },
)
ARTICLE = (
    "The city council of Springfield voted 7 to 2 on Tuesday to approve a $12 million budget for a new"
    " public library. The library will be built on the site of the old train station on Main Street."
    " Construction is expected to begin in April and take about 18 months."
    " Mayor Linda Torres said the project would create 150 jobs."
    " Critics argued the money should go to road repairs instead."
    " The current library, built in 1962, has been closed since a flood damaged it last year."
)
NEWS = Example(
    id="news-1",
    prompt=ARTICLE + "\n\nTL;DR:",
    reference=(
        "Springfield approved a $12 million library on the old train station site; building starts in "
        "April and will create 150 jobs."
    ),
    meta={
        "source": ARTICLE,
        "preamble": "",
        "first_sentence": (
            "The city council of Springfield voted 7 to 2 on Tuesday to approve a $12 million budget for a "
            "new public library."
        ),
        "entities": ["Springfield", "7", "2", "Tuesday", "12 million", "Main Street", "April", "18",
                     "Linda Torres", "150", "1962"],
        "facts": [
            {"text": "Springfield approved a $12 million library.", "keywords": ["12", "million", "library"]},
            {"text": "It will stand on the old train station site.", "keywords": ["train", "station", "site"]},
            {"text": "Work starts in April and takes 18 months.", "keywords": ["april", "18", "months"]},
            {"text": "The mayor says it creates 150 jobs.", "keywords": ["150", "jobs"]},
            {"text": "Critics wanted road repairs instead.", "keywords": ["critics", "road", "repairs"]},
        ],
    },
)

REDDIT_SUMMARIES = {
    "facts": (
        "My boyfriend of 4 years took a job in Denver without asking me, but my nursing job and family "
        "are in Ohio. I feel hurt and want to talk to him without a fight."
    ),
    # The same summary with an invented name (Mike) and number (7).
    "hallucinated": (
        "My boyfriend Mike of 7 years took a job in Denver without asking me, but my nursing job and "
        "family are in Ohio. I feel hurt and want to talk to him without a fight."
    ),
    "rambling": (
        "So basically my boyfriend of 4 years took a job in Denver without asking me, and I really do not "
        "know what to do about it, because my nursing job and my family are in Ohio and I have always lived "
        "here and I like it here a lot, and I keep thinking about it over and over again every single day "
        "and every night, and I feel hurt, really really hurt, and I want to talk to him without a fight "
        "but every time I try to bring it up I just freeze and I do not say anything and then I feel even "
        "worse about the whole thing and I just keep going around in circles and I do not know what to do "
        "or who to ask or where to go from here at all."
    ),
    "lead3": lead_k(POST, 3),  # the two preamble sentences + "My boyfriend Jake (27M) and I ..."
    "empty": "",
}
NEWS_SUMMARIES = {
    "facts": (
        "Springfield approved a $12 million library on the old train station site. Construction starts in "
        "April and takes 18 months, creating 150 jobs, though critics wanted road repairs."
    ),
    # Invented: 20 (million), 300 (jobs), John Smith.
    "hallucinated": (
        "Springfield approved a $20 million library on the old train station site. Construction starts in "
        "April and takes 18 months, creating 300 jobs, Mayor John Smith said."
    ),
    "lead3": lead_k(ARTICLE, 3),
    "empty": "",
}
CASES = {"reddit": (REDDIT, REDDIT_SUMMARIES), "news": (NEWS, NEWS_SUMMARIES)}


def load_panel(name: str) -> Panel:
    with initialize_config_dir(config_dir=CONF, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"labeler={name}"])
    return instantiate(cfg.labeler)


@pytest.fixture(scope="module")
def panel() -> Panel:
    return load_panel("summary_panel")


@pytest.fixture(scope="module")
def lexical_panel() -> Panel:
    return load_panel("summary_lexical_panel")


@pytest.fixture(scope="module")
def similarity(panel: Panel) -> ReferenceSimilarity:
    return panel.annotators[2].scorer  # type: ignore[return-value]


def gold(panel: Panel, case: str) -> dict[str, float]:
    example, summaries = CASES[case]
    values = panel.gold([example] * len(summaries), list(summaries.values()))
    return dict(zip(summaries, values.tolist()))


def score(scorer, case: str, *names: str) -> list[float]:  # noqa: ANN001 - any scorer
    example, summaries = CASES[case]
    return scorer([example] * len(names), [summaries[n] for n in names]).tolist()


# -- configs -----------------------------------------------------------------------------


def test_panels_compose_and_instantiate(panel: Panel, lexical_panel: Panel) -> None:
    assert (panel.name, panel.version) == ("summary_panel", "1")
    assert [a.name for a in panel.annotators] == ["fact_checker", "skimmer", "semantic"]
    assert [a.scale for a in panel.annotators] == [0.25, 0.2, 0.2]
    assert all((a.temperature, a.flip_rate) == (0.25, 0.05) for a in panel.annotators)
    checker = panel.annotators[0].scorer
    assert isinstance(checker, WeightedSum) and checker.weights == [0.5, 0.5]
    assert [type(p) for p in checker.parts] == [FactRecall, Faithfulness]
    assert isinstance(panel.annotators[2].scorer, ReferenceSimilarity)
    assert lexical_panel.name == "summary_lexical_panel" and lexical_panel.version == "1"
    assert [a.name for a in lexical_panel.annotators] == ["fact_checker", "skimmer"]


# -- gold: key facts vs lead-3 of a post that opens with preamble --------------------------


@pytest.mark.parametrize("which", ["panel", "lexical_panel"])
def test_facts_summary_clearly_beats_lead3(which: str, request: pytest.FixtureRequest) -> None:
    p: Panel = request.getfixturevalue(which)
    g = gold(p, "reddit")
    assert g["facts"] - g["lead3"] > 1.5  # utility units, ≈ 1.5 std of a plausible summary
    example = CASES["reddit"][0]
    assert p.compare([example], [REDDIT_SUMMARIES["facts"]], [REDDIT_SUMMARIES["lead3"]]).tolist() == [1.0]
    # every annotator, not only the mean, prefers the key facts
    u = p.utilities([example] * 2, [REDDIT_SUMMARIES["facts"], REDDIT_SUMMARIES["lead3"]])
    assert (u[:, 0] > u[:, 1] + 0.5).all()


def test_facts_beat_lead3_by_each_relevant_scorer(similarity: ReferenceSimilarity) -> None:
    # Lead-3 covers one fact of four ("boyfriend … 4 years").
    assert score(FactRecall(), "reddit", "facts", "lead3") == [1.0, 0.25]
    # Lead-3's 38 tokens have 36 trigrams, the 14 inside the 16-token preamble copied, and it opens
    # with the preamble's first sentence: 1 − 14/36 − 0.5 = 1/9.
    assert score(NoPreamble(), "reddit", "facts", "lead3") == pytest.approx([1.0, 1 / 9])
    facts, lead3 = score(similarity, "reddit", "facts", "lead3")
    assert facts > lead3 + 0.2
    # Lead-3 copies the source, so it invents nothing: faithfulness does not separate them.
    assert score(Faithfulness(), "reddit", "facts", "lead3") == [1.0, 1.0]


def test_news_lead3_has_no_preamble_penalty_but_fewer_facts(panel: Panel) -> None:
    assert score(NoPreamble(), "news", "facts", "lead3") == [1.0, 1.0]
    assert score(FactRecall(), "news", "facts", "lead3") == [1.0, 0.6]  # lead-3: $12m, site, April
    g = gold(panel, "news")
    assert g["facts"] > g["lead3"]


# -- faithful vs hallucinated, concise vs rambling, something vs empty -------------------


@pytest.mark.parametrize("case", ["reddit", "news"])
def test_faithful_beats_hallucinated(case: str, panel: Panel, lexical_panel: Panel) -> None:
    faith = score(Faithfulness(), case, "facts", "hallucinated")
    # reddit: Mike, 7 invented of {Mike, 7, Denver, Ohio}; news: 20, 300, John, Smith invented of
    # {20, 18, 300, April, Mayor, John, Smith} (Springfield opens a sentence alone: not counted).
    assert faith == pytest.approx([1.0, 0.5] if case == "reddit" else [1.0, 1 - 4 / 7])
    for p in (panel, lexical_panel):
        g = gold(p, case)
        assert g["facts"] - g["hallucinated"] > 0.3


def test_concise_beats_rambling(panel: Panel, lexical_panel: Panel) -> None:
    n_words = len(REDDIT_SUMMARIES["rambling"].split())
    assert n_words >= 100  # past twice the 50-word upper bound
    assert score(Brevity(), "reddit", "facts", "rambling") == [1.0, 0.0]
    # Both cover all four facts: only length separates them for the fact checker's recall.
    assert score(FactRecall(), "reddit", "facts", "rambling") == [1.0, 1.0]
    for p in (panel, lexical_panel):
        g = gold(p, "reddit")
        assert g["facts"] - g["rambling"] > 0.5


@pytest.mark.parametrize("case", ["reddit", "news"])
def test_something_beats_empty(case: str, panel: Panel, similarity: ReferenceSimilarity) -> None:
    assert score(FactRecall(), case, "facts", "empty") == [1.0, 0.0]
    assert score(Brevity(), case, "facts", "empty") == [1.0, 0.0]
    assert score(similarity, case, "empty") == [0.0]
    g = gold(panel, case)
    assert g["facts"] - g["empty"] > 2.0
    assert min(g.values()) == g["empty"]


def test_facts_summary_is_the_panels_favourite(panel: Panel) -> None:
    for case in CASES:
        g = gold(panel, case)
        assert max(g, key=g.get) == "facts", (case, g)


# -- real datasets: no facts, no preamble ------------------------------------------------


def bare(example: Example) -> Example:
    return replace(example, meta={**example.meta, "facts": [], "preamble": ""})


def test_fallback_without_facts_or_preamble(lexical_panel: Panel) -> None:
    ex = bare(REDDIT)
    summaries = [REDDIT_SUMMARIES["facts"], REDDIT_SUMMARIES["lead3"], ""]
    recall = FactRecall()([ex] * 3, summaries)
    assert recall[0] > recall[1] > recall[2] == 0.0
    assert NoPreamble()([ex] * 3, summaries).tolist() == [1.0, 1.0, 1.0]  # nothing to skip
    g = lexical_panel.gold([ex] * 3, summaries)
    assert np.isfinite(g).all() and g[0] > g[1] > g[2]


def test_fallback_recall_is_reference_content_word_recall() -> None:
    # Reference content words (stemmed, stopwords dropped): jake, took, job, denver → 2 of 4 here.
    ex = Example("x", "prompt", reference="Jake took a job in Denver.", meta={"facts": []})
    assert FactRecall()([ex], ["Jake got a new job."]).tolist() == [0.5]


def test_fact_needs_more_than_half_its_keywords() -> None:
    facts = [{"text": "t", "keywords": ["alpha", "beta"]}, {"text": "t", "keywords": ["gamma", "delta", "omega"]}]
    ex = Example("x", "p", meta={"facts": facts})
    # 1 of 2 keywords is not enough; 2 of 3 is.
    assert FactRecall()([ex] * 2, ["alpha gamma delta", "alpha beta gamma"]).tolist() == [0.5, 0.5]
    assert FactRecall(min_fraction=0.0)([ex], ["alpha gamma"]).tolist() == [1.0]
    # Multi-word keywords match as phrases, stemmed and case-blind.
    phrase = Example("y", "p", meta={"facts": [{"text": "t", "keywords": ["new york", "moving"]}]})
    assert FactRecall()([phrase] * 2, ["Moved to New York.", "York is new; moved."]).tolist() == [1.0, 0.0]


def test_no_facts_and_no_reference_is_an_input_error() -> None:
    with pytest.raises(InputError, match=r"meta\['facts'\].*or a reference"):
        FactRecall()([Example("x", "p", meta={"facts": []})], ["a summary"])
    with pytest.raises(InputError, match=r"meta\['facts'\]\[0\]"):
        FactRecall()([Example("x", "p", meta={"facts": [{"text": "no keywords"}]})], ["a summary"])
    with pytest.raises(InputError, match=r"meta\['preamble'\] must be a str"):
        NoPreamble()([Example("x", "p", meta={"preamble": None})], ["a summary"])


# -- single scorers ----------------------------------------------------------------------


def test_brevity_shape() -> None:
    b = Brevity(min_words=10, max_words=50)
    lengths = [0, 5, 10, 30, 50, 75, 100, 200]
    got = b([Example("x", "p")] * len(lengths), [" ".join(["w"] * n) for n in lengths])
    assert got.tolist() == pytest.approx([0.0, 0.5, 1.0, 1.0, 1.0, 0.5, 0.0, 0.0])
    with pytest.raises(InputError, match="min_words"):
        Brevity(min_words=20, max_words=10)


def test_faithfulness_rules() -> None:
    ex = Example("x", "p", meta={"source": "Anna paid $1,200 for three nights in Rome.", "entities": ["Bob"]})
    f = Faithfulness()
    got = f([ex] * 6, [
        "Anna paid 1200 for 3 nights.",  # "three" licenses 3; 1,200 ≡ 1200
        "However, the trip was costly.",  # a capitalised sentence opener is not a name
        "1. Anna went to Rome\n2. She paid",  # list markers are not numbers
        "Then Anna met Bob in Paris.",  # entities count as known; Paris is invented: 1 of 3
        "David Cameron joined Anna.",  # a two-word name opening a sentence counts: 2 of 3 invented
        "",
    ])
    assert got.tolist() == pytest.approx([1.0, 1.0, 1.0, 2 / 3, 1 / 3, 1.0])


def test_no_preamble_without_first_sentence_meta_uses_the_source() -> None:
    ex = Example("x", "p", meta={"source": "Hello all, quick one. My cat ran off.", "preamble": "Hello all, quick one."})
    # 2 of the 6 trigrams copied from the preamble, and it opens with it: 1 − 2/6 − 1/2 = 1/6.
    assert NoPreamble()([ex], ["Hello all, quick one. My cat ran off."]).tolist() == pytest.approx([1 / 6])
    assert NoPreamble()([ex], ["My cat ran off."]).tolist() == [1.0]


def test_weighted_sum() -> None:
    one = lambda e, r: np.ones(len(r))  # noqa: E731
    count = lambda e, r: np.array([len(x) for x in r], dtype=float)  # noqa: E731
    s = WeightedSum([one, count], [0.5, 2.0])
    assert s([Example("a", "")] * 2, ["", "abc"]).tolist() == [0.5, 6.5]
    with pytest.raises(InputError, match="weights"):
        WeightedSum([one], [1.0, 2.0])


def test_batch_lengths_must_match() -> None:
    for scorer in (FactRecall(), Faithfulness(), Brevity(), NoPreamble()):
        with pytest.raises(InputError, match="one example per response"):
            scorer([REDDIT], ["a", "b"])


def test_reference_similarity_caches_embeddings(similarity: ReferenceSimilarity) -> None:
    text = REDDIT.reference
    assert similarity([REDDIT], [text]).tolist() == [pytest.approx(1.0, abs=1e-5)]
    before = len(similarity._cache)
    similarity([REDDIT] * 3, [text] * 3)  # nothing new to encode
    assert len(similarity._cache) == before
    no_ref = replace(REDDIT, reference=None)
    assert similarity([no_ref], [POST]).tolist() == [pytest.approx(1.0, abs=1e-5)]  # falls back to source
