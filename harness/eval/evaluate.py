"""The evaluate stage: generate on held-out prompts and compare with the initial policy."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from transformers import PreTrainedTokenizerBase

from harness.eval.metrics import distinct_n, mean_ci, win_rate
from harness.eval.text_metrics import copy_fraction, rouge, starts_with_first_sentence
from harness.labelers.panel import Panel
from harness.tasks.base import Example


@dataclass
class EvalResult:
    metrics: dict[str, float]
    table: pd.DataFrame


def evaluate_policy(
    tokenizer: PreTrainedTokenizerBase,
    judge: Panel,
    examples: Sequence[Example],
    trained_ids: Sequence[Sequence[int]],
    initial_ids: Sequence[Sequence[int]],
    kl: np.ndarray,
    baseline_texts: Callable[[Sequence[Example]], dict[str, list[str]]] | None = None,
) -> EvalResult:
    """Metrics of the trained policy's responses against the initial policy's on the same prompts.

    `kl` holds a per-sample estimate of KL(π‖π_ref) (the method's: log-prob differences on
    the policy's own samples, or an analytic value). Tasks with references add ROUGE; tasks
    whose examples carry a `source` add copying statistics; `baseline_texts` (e.g. lead-3
    and the reference) are scored by the same gold and ROUGE, and the trained policy's win
    rate against each.
    """
    decode = lambda ids: [tokenizer.decode(r, skip_special_tokens=True) for r in ids]  # noqa: E731
    trained, initial = decode(trained_ids), decode(initial_ids)
    gold_trained = judge.gold(examples, trained)
    gold_initial = judge.gold(examples, initial)
    outcomes = judge.compare(examples, trained, initial)
    metrics: dict[str, float] = {}
    # A judge without a noise-free reward (an LLM judge) gives no gold: win rates only.
    if gold_trained is not None and gold_initial is not None:
        metrics |= mean_ci(gold_trained).as_metrics("eval/gold_reward")
        metrics |= mean_ci(gold_initial).as_metrics("eval/gold_reward_init")
    metrics |= win_rate(outcomes).as_metrics("eval/winrate_vs_init")
    metrics |= mean_ci(kl).as_metrics("eval/kl")
    metrics["eval/length"] = float(np.mean([len(r) for r in trained_ids]))
    metrics["eval/length_init"] = float(np.mean([len(r) for r in initial_ids]))
    metrics["eval/distinct_2"] = distinct_n(trained, 2)
    metrics["eval/distinct_2_init"] = distinct_n(initial, 2)
    metrics["eval/n"] = float(len(examples))
    metrics |= text_metrics(examples, trained, "")
    metrics |= text_metrics(examples, initial, "_init")
    baselines = baseline_texts(examples) if baseline_texts else {}
    for name, texts in baselines.items():
        gold = judge.gold(examples, texts)
        if gold is not None:
            metrics |= mean_ci(gold).as_metrics(f"eval/{name}_gold_reward")
        metrics |= win_rate(judge.compare(examples, trained, texts)).as_metrics(f"eval/winrate_vs_{name}")
        metrics |= text_metrics(examples, texts, "", prefix=f"eval/{name}_")
    if "reference" in baselines:
        # The summary table's "% preferred over the reference" for the rows that are not the run's
        # policy: the initial policy and every other baseline (lead-3), by the same panel.
        reference = baselines["reference"]
        metrics |= win_rate(judge.compare(examples, initial, reference)).as_metrics("eval/winrate_init_vs_reference")
        for name, texts in baselines.items():
            if name != "reference":
                metrics |= win_rate(judge.compare(examples, texts, reference)).as_metrics(
                    f"eval/{name}_winrate_vs_reference")
    table = pd.DataFrame({
        "prompt": [e.prompt for e in examples], "initial": initial, "trained": trained,
        "gold_initial": gold_initial if gold_initial is not None else np.nan,
        "gold_trained": gold_trained if gold_trained is not None else np.nan,
        "trained_wins": outcomes, "kl": kl,
    })
    return EvalResult(metrics, table)


def text_metrics(
    examples: Sequence[Example], texts: Sequence[str], suffix: str, prefix: str = "eval/"
) -> dict[str, float]:
    """ROUGE against references, and copying from the source, where the task has them."""
    metrics: dict[str, float] = {}
    references = [e.reference for e in examples]
    if references and all(references):
        metrics |= {f"{prefix}{k}{suffix}": float(v) for k, v in rouge(texts, references).items()}  # type: ignore[arg-type]
    if examples and all("source" in e.meta for e in examples):
        copied = [copy_fraction(t, e.meta["source"]) for e, t in zip(examples, texts)]
        lead = [float(starts_with_first_sentence(t, e.meta["first_sentence"])) for e, t in zip(examples, texts)]
        metrics[f"{prefix}copy_fraction{suffix}"] = float(np.mean(copied))
        metrics[f"{prefix}starts_with_lead{suffix}"] = float(np.mean(lead))
    return metrics
