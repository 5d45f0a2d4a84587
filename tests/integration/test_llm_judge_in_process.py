"""A run with an LLM judge (against the local fake endpoint) labelling the samples and judging the
evaluation, on model=tiny: labels from the judge's two orders, win rates without gold, the
judge's requests and tokens logged; a second run asks nothing again."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fake_openai import KEY, serve
from tests.integration.in_process import run_in_process


def test_an_llm_judge_labels_and_judges_a_run(tiny_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with serve() as (url, fake):
        overrides = ["experiment=smoke", "labeler=llm_judge", "labeler@judge=llm_judge", f"labeler.base_url={url}",
                     f"judge.base_url={url}", "labeler.model=fake", "judge.model=fake", "labels.n=16",
                     "eval.n_prompts=8", "sampling.chunk=16", f"paths.cache_dir={tiny_cache}",
                     "logger.log_model=false"]
        metrics, _, run, _ = run_in_process("llm-judge", overrides, tmp_path / "run", monkeypatch)
        asked = len(fake.requests)
        # 16 labelled pairs and 8 eval comparisons, each in both orders (identical texts may share an answer).
        assert 0 < asked <= 2 * (16 + 8)
        assert "eval/winrate_vs_init" in metrics and "eval/gold_reward" not in metrics
        logged = run.data.metrics
        assert logged["judge/requests"] == asked and logged["judge/prompt_tokens"] == 50 * asked
        assert "labels/agreement" in logged
        run_in_process("llm-judge-again", overrides + ["seed=0", "loss.beta=0.2"], tmp_path / "again", monkeypatch)
        # The same samples and eval texts of the initial policy: only the new policy's eval is asked.
        assert len(fake.requests) - asked <= 2 * 8


def test_an_llm_judge_labels_online_rounds_and_its_labels_are_scored_against_the_gold(
        tiny_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with serve() as (url, fake):
        overrides = ["experiment=smoke", "labeler=llm_judge", "labeler@judge=lexicon_panel", f"labeler.base_url={url}",
                     "labeler.model=fake", "labels.n=16", "labels.rounds=2", "eval.n_prompts=8", "sampling.chunk=8",
                     f"paths.cache_dir={tiny_cache}", "logger.log_model=false"]
        metrics, _, run, client = run_in_process("llm-judge-online", overrides, tmp_path / "run", monkeypatch)
        assert fake.requests and "eval/gold_reward" in metrics  # the panel judges; the LLM labelled
    history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "online/gold_agreement"))
    assert [s for s, _ in history] == [0, 1] and all(0.0 <= v <= 1.0 for _, v in history)
