"""The evaluate stage: generate on held-out prompts and compare with the initial policy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from rich.progress import Progress
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from harness.eval.metrics import distinct_n, mean_ci, win_rate
from harness.labelers.panel import Panel
from harness.rl.rollout import batched_logps
from harness.tasks.base import Example


@dataclass
class EvalResult:
    metrics: dict[str, float]
    table: pd.DataFrame


def evaluate_policy(
    policy: PreTrainedModel,
    reference: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    labeler: Panel,
    examples: Sequence[Example],
    prompt_ids: Sequence[Sequence[int]],
    trained_ids: Sequence[Sequence[int]],
    initial_ids: Sequence[Sequence[int]],
    temperature: float,
    batch_size: int,
    progress: Progress | None = None,
) -> EvalResult:
    """Metrics of the trained policy's samples against the initial policy's on the same prompts.

    KL(π‖π_ref) is the Monte Carlo mean of log π(y|x) − log π_ref(y|x) over the trained
    policy's samples y, both distributions taken at the sampling temperature (the one the
    samples come from).
    """
    decode = lambda ids: [tokenizer.decode(r, skip_special_tokens=True) for r in ids]  # noqa: E731
    trained, initial = decode(trained_ids), decode(initial_ids)
    gold_trained = labeler.gold(examples, trained)
    gold_initial = labeler.gold(examples, initial)
    outcomes = labeler.compare(examples, trained, initial)
    pad = tokenizer.pad_token_id
    logp = batched_logps(policy, prompt_ids, trained_ids, pad, batch_size, temperature, progress, "eval KL: policy")
    logp_ref = batched_logps(reference, prompt_ids, trained_ids, pad, batch_size, temperature, progress, "eval KL: reference")
    kl = np.asarray(logp) - np.asarray(logp_ref)
    metrics: dict[str, float] = {}
    metrics |= mean_ci(gold_trained).as_metrics("eval/gold_reward")
    metrics |= mean_ci(gold_initial).as_metrics("eval/gold_reward_init")
    metrics |= win_rate(outcomes).as_metrics("eval/winrate_vs_init")
    metrics |= mean_ci(kl).as_metrics("eval/kl")
    metrics["eval/length"] = float(np.mean([len(r) for r in trained_ids]))
    metrics["eval/length_init"] = float(np.mean([len(r) for r in initial_ids]))
    metrics["eval/distinct_2"] = distinct_n(trained, 2)
    metrics["eval/distinct_2_init"] = distinct_n(initial, 2)
    metrics["eval/n"] = float(len(examples))
    table = pd.DataFrame({
        "prompt": [e.prompt for e in examples], "initial": initial, "trained": trained,
        "gold_initial": gold_initial, "gold_trained": gold_trained,
        "trained_wins": outcomes, "kl": kl,
    })
    return EvalResult(metrics, table)
