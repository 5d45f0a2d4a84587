"""Over-optimisation watched while training happens (Gao et al., 2022: gold reward against KL).

Every `eval.every` training batches (PPO: iterations) the policy answers a fixed small subset
of the eval prompts (the first `eval.series_prompts`) at the eval temperature with the eval
seed, and the run logs, on the x-axis of the train/ metrics:

  series/gold_reward       the judge's mean gold of those responses
  series/proxy_reward      the reward model's mean normalised score (methods with one: PPO)
  series/kl                mean log π(y) − log π_ref(y) over them, at the eval temperature
  series/winrate_vs_init   against the initial policy's cached responses to the same prompts
  series/distinct_2, series/length

Step 0 is the initial policy (its cached eval responses: KL 0, win rate ½). When training ends
the run logs the best gold and its step (`series/gold_peak`, `series/gold_peak_step`). With a
proxy, an evaluation *diverges* when the proxy rose since the previous evaluation while the
gold is below its peak so far; after `eval.patience` diverging evaluations in a row the run
warns once (a log warning, the MLflow tag `overoptimization`, `series/overoptimization_step`).

An evaluation leaves training exactly as it was: it runs under forked RNG states (torch,
numpy, Python) and the modules' train/eval modes are restored, so a run with the series ends
with the same weights and eval/ metrics as one without. The callback's counters and the
watch's state travel in the checkpoint, so a resumed run evaluates at the same steps.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from harness.eval.metrics import distinct_n, win_rate
from harness.models.sampling import Samples, reference_logps
from harness.tasks.base import Example

log = logging.getLogger(__name__)

# What the run's summary (the final `eval:` line) shows of the series, when logged.
SUMMARY_KEYS = ("series/gold_peak", "series/gold_peak_step", "series/overoptimization_step")
OVEROPTIMIZATION_TAG = "overoptimization"

Sampler = Callable[[Any, Sequence[Sequence[int]]], Samples]  # (policy, prompts) -> one response each, with Σ log π
ProxyFn = Callable[[Sequence[Sequence[int]], Sequence[Sequence[int]]], np.ndarray]  # (prompts, responses) -> scores


@dataclass
class Watch:
    """The gold peak so far and the over-optimisation warning, fed one evaluation at a time.

    An evaluation diverges when its proxy is above the previous evaluation's and its gold below
    the peak gold so far; `patience` diverging evaluations in a row fire the warning, once.
    Without a proxy (or a gold) nothing diverges. Plain numbers only: it is checkpointed.
    """

    patience: int
    peak_gold: float | None = None
    peak_step: int | None = None
    last_proxy: float | None = None
    streak: int = 0  # diverging evaluations in a row
    streak_from: float | None = None  # the proxy just before the streak began
    warned_step: int | None = None

    def update(self, step: int, gold: float | None, proxy: float | None) -> str | None:
        """Record one evaluation; returns the warning's sentence when it fires (once per run)."""
        message = None
        if gold is not None:
            diverging = (proxy is not None and self.last_proxy is not None and self.peak_gold is not None
                         and proxy > self.last_proxy and gold < self.peak_gold)
            if diverging:
                if self.streak == 0:
                    self.streak_from = self.last_proxy
                self.streak += 1
            else:
                self.streak = 0
            if diverging and self.streak >= self.patience and self.warned_step is None:
                self.warned_step = step
                message = (f"over-optimisation at step {step}: the proxy reward rose from {self.streak_from:.3f} to "
                           f"{proxy:.3f} while the gold reward fell from its peak {self.peak_gold:.3f} at step "
                           f"{self.peak_step} to {gold:.3f} over {self.streak} evaluation"
                           f"{'s' if self.streak > 1 else ''}; the policy is over-optimising the reward model")
            if self.peak_gold is None or gold > self.peak_gold:
                self.peak_gold, self.peak_step = gold, step
        if proxy is not None:
            self.last_proxy = proxy
        return message

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "patience"}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        for f in fields(self):
            if f.name != "patience" and f.name in state:
                setattr(self, f.name, state[f.name])


@dataclass
class Probe:
    """The fixed eval subset, and how a policy is scored on it."""

    tokenizer: Any
    judge: Any  # a Panel: gold and compare
    examples: Sequence[Example]
    prompt_ids: Sequence[Sequence[int]]
    initial_ids: Sequence[Sequence[int]]  # the initial policy's cached responses to them
    sample: Sampler  # at the eval temperature, with the eval seed
    reference: Callable[[], Any]  # the reference policy, asked for on the first measurement
    temperature: float
    batch_size: int
    proxy: ProxyFn | None = None
    _reference: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not len(self.examples) == len(self.prompt_ids) == len(self.initial_ids) > 0:
            raise ValueError(f"Probe: {len(self.examples)} examples, {len(self.prompt_ids)} prompts and "
                             f"{len(self.initial_ids)} initial responses; expected the same number, ≥ 1")

    def decode(self, responses: Sequence[Sequence[int]]) -> list[str]:
        return [self.tokenizer.decode(r, skip_special_tokens=True) for r in responses]

    def initial(self) -> dict[str, float]:
        """The initial policy's point: its cached responses, KL 0, win rate against itself ½."""
        return self._scores(self.initial_ids, self.decode(self.initial_ids)) | {
            "series/kl": 0.0, "series/winrate_vs_init": 0.5}

    def measure(self, policy: Any) -> dict[str, float]:
        """`policy` sampled on the subset and scored."""
        sampled = self.sample(policy, self.prompt_ids)
        responses = sampled.responses
        texts = self.decode(responses)
        metrics = self._scores(responses, texts)
        if self._reference is None:
            device = next(policy.parameters()).device
            self._reference = self.reference().to(device)
        reference = reference_logps(self._reference, policy, self.prompt_ids, sampled, self.tokenizer.pad_token_id,
                                    self.batch_size, self.temperature)
        kl = np.asarray(sampled.logps) - np.asarray(reference)
        metrics["series/kl"] = float(kl.mean())
        outcomes = self.judge.compare(self.examples, texts, self.decode(self.initial_ids))
        metrics["series/winrate_vs_init"] = win_rate(outcomes).mean
        return metrics

    def _scores(self, responses: Sequence[Sequence[int]], texts: Sequence[str]) -> dict[str, float]:
        metrics = {"series/distinct_2": distinct_n(texts, 2),
                   "series/length": float(np.mean([len(r) for r in responses]))}
        gold = self.judge.gold(self.examples, texts)
        if gold is not None:
            metrics["series/gold_reward"] = float(np.mean(gold))
        if self.proxy is not None:
            metrics["series/proxy_reward"] = float(np.mean(self.proxy(self.prompt_ids, responses)))
        return metrics


@contextmanager
def untouched(device: torch.device, modules: Sequence[torch.nn.Module]) -> Iterator[None]:
    """Whatever runs inside leaves the RNGs (torch's on the CPU and `device`, numpy's global,
    Python's) and each module's train/eval mode as they were."""
    modes = [(m, m.training) for m in modules]
    py_state, np_state = random.getstate(), np.random.get_state()
    accelerator = device.type not in ("cpu", "meta")
    try:
        with torch.random.fork_rng(devices=[device.index or 0] if accelerator else [],
                                   device_type=device.type if accelerator else None):
            yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        for module, training in modes:
            module.training = training


def _main(trainer: L.Trainer) -> bool:
    return getattr(trainer, "is_global_zero", True)


class EvalSeries(Callback):
    """Logs the series (module docstring) every `every` training batches, the initial policy's
    point at step 0, and the gold peak when training ends; warns of over-optimisation once."""

    def __init__(self, probe: Probe, policy: Any, every: int, patience: int, tracker: Any = None) -> None:
        if every < 1 or patience < 1:
            raise ValueError(f"EvalSeries: every and patience must be ≥ 1, got {every}, {patience}")
        self.probe = probe
        self.policy = policy
        self.every = every
        self.tracker = tracker  # RunTracker: the warning's tag
        self.batches = 0  # training batches finished (PPO: iterations); the series' step
        self.watch = Watch(patience)

    # One process evaluates and logs (rank 0 of a multi-device run); every process counts.
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.batches == 0 and _main(trainer):  # not when resuming past the start
            self._record(trainer, 0, self._quietly(pl_module, self.probe.initial))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self.batches += 1
        if self.batches % self.every == 0 and _main(trainer):
            self._record(trainer, self.batches, self._quietly(pl_module, lambda: self.probe.measure(self.policy)))

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        w = self.watch
        if w.peak_step is None or not _main(trainer):
            return
        self._log(trainer, {"series/gold_peak": w.peak_gold, "series/gold_peak_step": float(w.peak_step)},
                  self.batches)
        log.info("series: the gold reward on %d eval prompts peaked at %.4g at step %d (of %d)",
                 len(self.probe.prompt_ids), w.peak_gold, w.peak_step, self.batches)

    def _quietly(self, pl_module: L.LightningModule, measure: Callable[[], dict[str, float]]) -> dict[str, float]:
        modules = [*pl_module.modules(), *self.policy.modules()]
        with untouched(pl_module.device, modules):
            return measure()

    def _record(self, trainer: L.Trainer, step: int, metrics: dict[str, float]) -> None:
        self._log(trainer, metrics, step)
        log.info("series at step %d: %s", step, ", ".join(f"{k.removeprefix('series/')}={v:.4g}"
                                                           for k, v in sorted(metrics.items())))
        message = self.watch.update(step, metrics.get("series/gold_reward"), metrics.get("series/proxy_reward"))
        if message is not None:
            log.warning("%s", message)
            self._log(trainer, {"series/overoptimization_step": float(step)}, step)
            if self.tracker is not None:
                self.tracker.set_tags({OVEROPTIMIZATION_TAG: message})

    @staticmethod
    def _log(trainer: L.Trainer, metrics: Mapping[str, float], step: int) -> None:
        for logger in trainer.loggers:
            logger.log_metrics(dict(metrics), step=step)

    def state_dict(self) -> dict[str, Any]:
        return {"batches": self.batches, "watch": self.watch.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.batches = int(state_dict["batches"])
        self.watch.load_state_dict(state_dict.get("watch", {}))
