import collections
import csv
import json
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from harness.cli.run import CONFIG_DIR
from harness.errors import InputError
from harness.tasks.cnndm import CnnDmTask, generate_articles
from harness.tasks.summarization import (
    KEYWORD_STOPWORDS,
    Document,
    GeneratorFn,
    SummarizationTask,
    find_entities,
)
from harness.tasks.tldr import TldrTask, generate_posts
from harness.text import split_sentences, words

META_KEYS = {"source", "facts", "preamble", "entities", "first_sentence"}


@pytest.fixture(scope="module")
def tldr() -> TldrTask:
    return TldrTask()


@pytest.fixture(scope="module")
def cnndm() -> CnnDmTask:
    return CnnDmTask()


def _n_words(text: str) -> int:
    return len(text.split())


def _covers(keywords: list[str], text: str) -> bool:
    """The labelers' rule: more than half of a fact's keywords occur in the text."""
    tokens = set(words(text))
    return sum(k in tokens for k in keywords) > len(keywords) / 2


def _signature(docs: list[Document]) -> list[tuple]:
    return [(d.source, d.reference, d.facts, d.entities, d.extra) for d in docs]


@pytest.mark.parametrize("generate", [generate_posts, generate_articles])
def test_generators_are_deterministic_and_seeded(generate: GeneratorFn) -> None:
    assert _signature(generate(60, 1)) == _signature(generate(60, 1))
    assert not {d.source for d in generate(60, 1)} & {d.source for d in generate(60, 2)}
    # A longer draw starts with the shorter one, so n_train does not reshuffle the corpus.
    assert _signature(generate(80, 3))[:40] == _signature(generate(40, 3))


def test_default_sizes_and_disjoint_splits(tldr: TldrTask, cnndm: CnnDmTask) -> None:
    for task, n_train, n_eval in ((tldr, 5000, 500), (cnndm, 3000, 300)):
        train, evals = task.examples("train"), task.examples("eval")
        assert (len(train), len(evals)) == (n_train, n_eval)
        assert {e.meta["source"] for e in train}.isdisjoint(e.meta["source"] for e in evals)
        assert len({e.id for e in train + evals}) == n_train + n_eval
        assert [e.prompt for e in train[:50]] == [e.prompt for e in type(task)().examples("train")[:50]]
    assert TldrTask(seed=1).examples("eval")[0].prompt != tldr.examples("eval")[0].prompt


@pytest.mark.parametrize("generate,n", [(generate_posts, 5500), (generate_articles, 3300)])
def test_generating_default_sizes(generate: GeneratorFn, n: int) -> None:
    # No time bound: on a shared machine it failed under load (speed belongs in bench/).
    assert len(generate(n, 7)) == n


def test_word_counts(tldr: TldrTask, cnndm: CnnDmTask) -> None:
    posts = tldr.examples("train")
    assert all(75 <= _n_words(e.meta["source"]) <= 190 for e in posts)
    assert all(15 <= _n_words(e.reference) <= 40 for e in posts)
    articles = cnndm.examples("train")
    assert all(90 <= _n_words(e.meta["source"]) <= 190 for e in articles)
    assert all(2 <= len(e.reference.splitlines()) <= 4 for e in articles)
    assert all(all(3 <= _n_words(h) <= 20 for h in e.reference.splitlines()) for e in articles)


@pytest.mark.parametrize("which", ["tldr", "cnndm"])
def test_meta_schema_is_consistent(which: str, tldr: TldrTask, cnndm: CnnDmTask) -> None:
    task = tldr if which == "tldr" else cnndm
    for e in task.examples("eval"):
        meta, source = e.meta, e.meta["source"]
        assert META_KEYS <= meta.keys()
        assert isinstance(source, str) and source in e.prompt
        assert isinstance(meta["preamble"], str) and source.startswith(meta["preamble"])
        assert meta["first_sentence"] == split_sentences(source)[0]
        source_tokens = set(words(source))
        assert meta["facts"]
        for fact in meta["facts"]:
            assert set(fact) == {"text", "keywords"} and fact["text"] in source
            assert 2 <= len(fact["keywords"]) <= 4
            assert all(k == k.lower() and k in source_tokens for k in fact["keywords"])
            assert _covers(fact["keywords"], e.reference)
        assert all(isinstance(x, str) and x in source for x in meta["entities"])
        numbers = {n.replace(",", "") for n in re.findall(r"\d+(?:[.,]\d+)*", source)}
        assert numbers <= {x.replace(",", "") for x in meta["entities"]}
        # The reference mentions no number the source lacks.
        assert {n.replace(",", "") for n in re.findall(r"\d+(?:[.,]\d+)*", e.reference)} <= numbers
        assert "{" not in source + e.reference and "[" not in source + e.reference
        assert not re.search(r"\b[Aa] [aeiAEI]", source + e.reference)  # article agreement
        if which == "tldr":
            assert meta["subreddit"] and e.prompt.startswith(f"SUBREDDIT: r/{meta['subreddit']}\n\nPOST: ")
            assert e.prompt.endswith("\n\nTL;DR:")
        else:
            assert e.prompt.endswith("\n\nSummary:")


def test_preambles_names_and_the_question(tldr: TldrTask) -> None:
    posts = tldr.examples("train")[:1000]
    with_preamble = [e for e in posts if e.meta["preamble"]]
    assert 0.4 < len(with_preamble) / len(posts) < 0.7
    for e in with_preamble:
        assert e.meta["first_sentence"] in e.meta["preamble"]
        content = [w for w in words(e.meta["preamble"]) if w not in KEYWORD_STOPWORDS]
        assert not _covers(content, e.reference)  # the TL;DR skips the preamble
    # Ages like "(24F)" and the other person's name are entities; the last fact is the question.
    assert sum(bool(re.search(r"\((\d\d ?/?[MF]|[MF]\d\d)\)", e.meta["source"])) for e in posts) == len(posts)
    assert all(e.meta["facts"][-1]["text"].rstrip().endswith(("?", ".")) for e in posts)
    assert all(e.reference.rstrip().endswith("?") for e in posts)


def test_variety(tldr: TldrTask, cnndm: CnnDmTask) -> None:
    posts = [e.meta for e in tldr.examples("train")[:1000]]
    openings = {" ".join(m["source"].split()[:5]) for m in posts}
    body_openings = {" ".join(m["source"][len(m["preamble"]) :].split()[:5]) for m in posts}
    assert len(openings) >= 400 and len(body_openings) >= 600
    assert len({m["subreddit"] for m in posts}) >= 25
    topics = collections.Counter(d.topic for d in generate_posts(1000, 0))
    assert len(topics) >= 12 and max(topics.values()) < 0.12 * 1000
    fact_sentences = {f["text"] for m in posts for f in m["facts"]}
    assert len(fact_sentences) >= 3000
    references = [e.reference for e in tldr.examples("train")[:1000]]
    assert len(set(references)) >= 990
    articles = generate_articles(1000, 0)
    assert len({a.topic for a in articles}) >= 12
    assert len({" ".join(a.source.split()[:5]) for a in articles}) >= 500
    assert len({f.text for a in articles for f in a.facts}) >= 1500


def test_lead3_is_strong_for_news_and_weak_for_posts(tldr: TldrTask, cnndm: CnnDmTask) -> None:
    def lead_recall(task: SummarizationTask) -> float:
        examples = task.examples("eval")
        baselines = task.baselines(examples)
        assert set(baselines) == {"lead3", "reference"}
        assert baselines["reference"] == [e.reference for e in examples]
        for e, lead in zip(examples, baselines["lead3"]):
            assert lead == " ".join(split_sentences(e.meta["source"])[:3])
        facts = [(f["keywords"], lead) for e, lead in zip(examples, baselines["lead3"]) for f in e.meta["facts"]]
        return sum(_covers(k, lead) for k, lead in facts) / len(facts)

    news, posts = lead_recall(cnndm), lead_recall(tldr)
    assert news > 0.45 and posts < 0.3 and news > posts + 0.2


def test_regex_entities_of_real_text() -> None:
    assert find_entities("The Denver office paid $1,200 to Jake. I said yes.") == ["Denver", "1,200", "Jake"]
    assert find_entities("Hi all. My boyfriend Sam (21M) left on Friday.") == ["Sam", "21", "Friday"]


def test_generator_hook_and_missing_generator() -> None:
    task = SummarizationTask(generator=generate_articles, n_train=4, n_eval=2, prompt_template="{source}\n\nTL;DR:")
    assert [e.meta["source"] for e in task.examples("train")] == [d.source for d in generate_articles(6, 0)[:4]]
    with pytest.raises(InputError, match="generator"):
        SummarizationTask().examples("train")
    assert max(_n_words(d.source) for d in generate_posts(200, 0, max_words=140)) <= 140
    with pytest.raises(InputError, match="max_words"):
        generate_articles(5, 0, max_words=60)


def test_configs_match_the_dataclass_defaults() -> None:
    for option, cls in (("tldr", TldrTask), ("cnndm", CnnDmTask)):
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            task = instantiate(compose(config_name="config", overrides=[f"task={option}"]).task)
            tiny = instantiate(compose(config_name="config", overrides=[f"task={option}_tiny"]).task)
        assert task == cls()
        assert (tiny.n_train, tiny.n_eval, tiny.max_new_tokens) == (64, 16, 16)
        examples = tiny.examples("train") + tiny.examples("eval")
        assert len(examples) == 80 and max(_n_words(e.meta["source"]) for e in examples) <= 150


TLDR_ROWS = [
    {
        "prompt": f"SUBREDDIT: r/relationships\n\nTITLE: My (2{i}F) boyfriend forgot our anniversary\n\n"
        f"POST: Hi all. My boyfriend Sam (2{i}M) forgot our anniversary on Friday. He says it is no big deal.\n\nTL;DR:",
        "completion": f" Boyfriend {i} forgot our anniversary, says no big deal.",
    }
    for i in range(5)
]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def test_tldr_real_schema_from_local_jsonl(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "train.jsonl", TLDR_ROWS)
    _write_jsonl(tmp_path / "validation.jsonl", TLDR_ROWS[:2])
    task = TldrTask(source=str(tmp_path), n_train=4, n_eval=2)
    train = task.examples("train")
    assert len(train) == 4 and len(task.examples("eval")) == 2
    e = train[1]
    post = "Hi all. My boyfriend Sam (21M) forgot our anniversary on Friday. He says it is no big deal."
    assert e.prompt == f"SUBREDDIT: r/relationships\n\nPOST: {post}\n\nTL;DR:"
    assert e.reference == "Boyfriend 1 forgot our anniversary, says no big deal."
    assert e.meta["source"] == post and e.meta["subreddit"] == "relationships"
    assert e.meta["title"] == "My (21F) boyfriend forgot our anniversary"
    assert (e.meta["facts"], e.meta["preamble"], e.meta["first_sentence"]) == ([], "", "Hi all.")
    assert {"Sam", "21", "Friday"} <= set(e.meta["entities"])
    assert TldrTask().baselines(train)["lead3"][1] == "Hi all. My boyfriend Sam (21M) forgot our anniversary on Friday. He says it is no big deal."
    # With a TITLE line the template reproduces the dataset's own prompt.
    titled = TldrTask(source=str(tmp_path), n_train=4, n_eval=2,
                      prompt_template="SUBREDDIT: r/{subreddit}\n\nTITLE: {title}\n\nPOST: {source}\n\nTL;DR:")
    assert [x.prompt for x in titled.examples("train")] == [r["prompt"] for r in TLDR_ROWS[:4]]


def test_tldr_raw_openai_schema_from_csv_and_template_errors(tmp_path: Path) -> None:
    path = tmp_path / "posts.csv"
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "subreddit", "title", "post", "summary"])
        writer.writeheader()
        writer.writerow({"id": "t3_1", "subreddit": "Advice", "title": "Roommate", "post": "My roommate Ana eats my food. What do I do?",
                         "summary": "roommate eats my food"})
    columns = {"source": "post", "reference": "summary", "subreddit": "subreddit"}
    (e,) = TldrTask(source=str(path), n_train=1, columns=columns).examples("train")
    assert e.prompt == "SUBREDDIT: r/Advice\n\nPOST: My roommate Ana eats my food. What do I do?\n\nTL;DR:"
    assert e.meta["first_sentence"] == "My roommate Ana eats my food."
    with pytest.raises(InputError, match=r"prompt_template uses \['subreddit'\]"):
        TldrTask(source=str(path), n_train=1, columns={"source": "post", "reference": "summary"}).examples("train")


def test_cnndm_real_schema_from_local_csv(tmp_path: Path) -> None:
    article = ("LONDON, England (Reuters) -- Harry Potter star Daniel Radcliffe gains access to a reported "
               "$41.1 million fortune as he turns 18 on Monday. Radcliffe said he has no plans to fritter his cash away. "
               "He will be able to gamble in a casino. His latest film opens in July.")
    highlights = "Daniel Radcliffe gets $41.1 million fortune as he turns 18 Monday .\nYoung actor says he has no plans to fritter his cash away ."
    for split in ("train", "validation"):
        with (tmp_path / f"{split}.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["article", "highlights", "id"])
            writer.writeheader()
            for i in range(3):
                writer.writerow({"article": article, "highlights": highlights, "id": f"{split}{i}"})
    task = CnnDmTask(source=str(tmp_path), n_train=3, n_eval=2)
    e = task.examples("eval")[0]
    assert e.prompt == article + "\n\nSummary:" and e.reference == highlights
    assert e.meta["source"] == article and e.meta["facts"] == [] and e.meta["preamble"] == ""
    assert e.meta["first_sentence"].endswith("turns 18 on Monday.")
    assert {"Harry", "Potter", "Daniel", "Radcliffe", "41.1", "18", "Monday", "July"} <= set(e.meta["entities"])
    lead = task.baselines([e])["lead3"][0]
    assert lead.endswith("He will be able to gamble in a casino.") and "July" not in lead


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    path = tmp_path / "news.csv"
    path.write_text("article,summary,id\nSome article text.,A summary.,1\n")
    with pytest.raises(InputError, match=r"news\.csv.*\['highlights'\]"):
        CnnDmTask(source=str(path), n_train=1).examples("train")
    with pytest.raises(InputError, match="n_train asks for 5"):
        CnnDmTask(source=str(path), n_train=5, columns={"source": "article", "reference": "summary"}).examples("train")
    with pytest.raises(InputError, match="must map"):
        CnnDmTask(source=str(path), n_train=1, columns={"reference": "summary"}).examples("train")
