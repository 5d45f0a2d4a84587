"""The LLM judge (harness/labelers/llm_judge.py) against a local OpenAI-compatible server made
for the test: both orders asked, position bias cancelled to a tie, answers cached by content,
retries, token use counted, the key read from the environment."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from harness.errors import InputError
from harness.labelers.llm_judge import LLMJudge
from harness.tasks.base import Example
from tests.fake_openai import KEY, Judge, serve

@pytest.fixture
def server() -> Iterator[tuple[str, Judge]]:
    with serve() as running:
        yield running


def make(url: str, tmp_path: Path, **kw: object) -> LLMJudge:
    return LLMJudge(name="llm_judge", version="1", model="judge-model", base_url=url, api_key_env="TEST_JUDGE_KEY",
                    task="sentiment", templates={"sentiment": "Which is more positive?", "default": "Which?"},
                    cache_dir=str(tmp_path / "judgements"), **{"max_retries": 2, "timeout": 10.0} | kw)


def examples(n: int, prompt: str = "The film was") -> list[Example]:
    return [Example(f"e{i}", f"{prompt} {i}") for i in range(n)]


def test_both_orders_asked_position_bias_is_a_tie_and_answers_are_cached(
        server: tuple[str, Judge], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, fake = server
    monkeypatch.setenv("TEST_JUDGE_KEY", KEY)
    judge = make(url, tmp_path)
    pairs = [(" good fun.", " dull."), (" dull.", " good fun."), (" dull.", " flat.")]  # the last: no "good"
    labels = judge.label(examples(3), pairs, np.random.default_rng(0))
    assert len(fake.requests) == 6  # two orders per pair
    assert all(r.startswith("Which is more positive?") for r in fake.requests)  # the task's question
    first = [r for r in fake.requests if "Prompt:\nThe film was 0\n" in r]  # the first pair, both orders
    assert sorted(r.split("Response A:\n")[1].split("\n")[0] for r in first) == [" dull.", " good fun."]
    assert list(labels.choice[:2]) == [0, 1]
    assert labels.votes[:, 2].tolist() == [0, 1]  # "A" both times: a for one order, b for the other
    assert labels.agreement == pytest.approx(2 / 3)
    assert judge.compare(examples(3), [p[0] for p in pairs], [p[1] for p in pairs]).tolist() == [1.0, 0.0, 0.5]
    assert len(fake.requests) == 6  # every answer came from the cache
    usage = judge.usage()
    assert usage["judge/requests"] == 6 and usage["judge/cached"] == 6
    assert usage["judge/prompt_tokens"] == 300 and usage["judge/completion_tokens"] == 12
    # Another judge (another run) over the same texts asks nothing either.
    again = make(url, tmp_path)
    again.compare(examples(3), [p[0] for p in pairs], [p[1] for p in pairs])
    assert len(fake.requests) == 6 and again.usage()["judge/cached"] == 6


def test_a_failed_request_is_retried_and_one_that_keeps_failing_stops_the_run(
        server: tuple[str, Judge], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url, fake = server
    monkeypatch.setenv("TEST_JUDGE_KEY", KEY)
    judge = make(url, tmp_path, concurrency=1)
    assert judge.compare(examples(1, "flaky"), [" good."], [" bad."]).tolist() == [1.0]
    assert len(fake.requests) == 4  # each order failed once, then answered on the retry
    with pytest.raises(InputError, match=r"127\.0\.0\.1.*\(judge-model\) failed after 1 retries: InternalServerError"):
        make(url, tmp_path, max_retries=1).compare(examples(1, "down"), [" good."], [" bad."])
    assert not list((tmp_path / "judgements").glob("*/*down*"))
    with pytest.raises(InputError, match=r"\(judge-model\) sent a malformed reply: expected a chat completion"):
        make(url, tmp_path).compare(examples(1, "garbled"), [" good."], [" bad."])
    assert not [f for f in (tmp_path / "judgements").rglob("*.json") if "garbled" in f.read_text()]  # nor cached


def test_the_key_comes_from_the_environment_and_k_is_two(server: tuple[str, Judge], tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    url, _ = server
    monkeypatch.delenv("TEST_JUDGE_KEY", raising=False)
    with pytest.raises(InputError, match="TEST_JUDGE_KEY holds no API key"):
        make(url, tmp_path).compare(examples(1), [" a"], [" b"])
    monkeypatch.setenv("TEST_JUDGE_KEY", KEY)
    with pytest.raises(InputError, match="labels.k=2"):
        make(url, tmp_path).label(examples(1), [(" a", " b", " c")], np.random.default_rng(0))
    with pytest.raises(InputError, match="a question for task 'sentiment' or a `default` one"):
        LLMJudge(name="j", version="1", model="m", base_url=url, api_key_env="K", task="sentiment",
                 templates={"tldr": "?"}, cache_dir=str(tmp_path))


def test_two_unreadable_replies_are_no_agreement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.stages import row_agreement

    judge = LLMJudge(name="llm_judge", version="1", model="m", base_url="http://127.0.0.1:9/v1", api_key_env="K",
                     task="sentiment", templates={"default": "Which?"}, cache_dir=str(tmp_path))
    # Prompt 0: neither order's reply named a letter; prompt 1: both orders chose the first response.
    monkeypatch.setattr(judge, "_votes", lambda prompts, a, b: np.array([[-1, 0], [-1, 0]]))
    examples = [Example(id=f"e{i}", prompt="p") for i in range(2)]
    labels = judge.label(examples, [["x", "y"], ["x", "y"]], np.random.default_rng(0))
    assert labels.agreement == 0.5 and labels.choice[1] == 0
    assert [row_agreement(v) for v in labels.votes.T.tolist()] == [0.0, 1.0]  # as the labels stage reads them


def test_asked_for_binary_labels_each_response_is_rated_alone(server: tuple[str, Judge], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    url, fake = server
    monkeypatch.setenv("TEST_JUDGE_KEY", KEY)
    judge = make(url, tmp_path, rating_templates={"sentiment": "Is it positive?", "default": "Good?"})
    groups = [(" good fun.", " dull."), (" mumble.", " good, good.")]
    labels = judge.rate(examples(2), groups, np.random.default_rng(0))
    assert len(fake.requests) == 4  # one question per response, no second order
    assert all(r.startswith("Is it positive?") and "Answer Yes or No." in r for r in fake.requests)
    assert labels.choice.shape == (2, 2)
    assert labels.choice[0].tolist() == [1, 0] and labels.choice[1, 1] == 1
    assert labels.choice[1, 0] in (0, 1)  # "Hmm": no rating, drawn at random
    assert labels.votes.tolist() == [[1, 0, 2, 1]] and labels.agreement is None
    assert judge.usage()["judge/unparsed"] == 1
    again = judge.rate(examples(2), groups, np.random.default_rng(0))  # from the cache
    assert len(fake.requests) == 4 and again.votes.tolist() == labels.votes.tolist()
