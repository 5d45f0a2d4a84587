"""The over-optimisation series (harness/eval/series.py) on hand-made numbers: the gold peak and
the warning, the initial policy's point at step 0, the evaluation steps across a checkpoint
round trip, training left untouched; and its settings (refused values, the initial policy's
cache key unchanged). The series on real runs: tests/integration/test_series_in_process.py."""

from __future__ import annotations

import logging
import random
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from harness.errors import InputError
from harness.eval.series import OVEROPTIMIZATION_TAG, EvalSeries, Probe, Watch, untouched
from harness.experiment import EvalSettings
from harness.stages import eval_initial_spec
from harness.tasks.base import Example

SETTINGS = {"n_prompts": None, "temperature": 0.7, "batch_size": 32, "every": 10, "series_prompts": 64, "patience": 3}


def feed(watch: Watch, gold: list[float], proxy: list[float | None]) -> list[tuple[int, str]]:
    """Evaluations at steps 0, 10, 20, …; the warnings fired, by step."""
    fired = []
    for i, (g, p) in enumerate(zip(gold, proxy)):
        message = watch.update(10 * i, g, p)
        if message is not None:
            fired.append((10 * i, message))
    return fired


# --- the peak and the warning ---------------------------------------------------------------

def test_warning_fires_once_after_patience_diverging_evaluations() -> None:
    watch = Watch(patience=3)
    # Gold peaks at step 20; from step 30 the proxy keeps rising while gold stays below the peak.
    # Step 60 breaks nothing (still diverging); the warning fires at the third (step 50), once.
    gold = [0.1, 0.4, 0.6, 0.5, 0.45, 0.3, 0.2, 0.1]
    proxy = [0.0, 0.5, 1.0, 1.2, 1.5, 1.9, 2.5, 3.0]
    fired = feed(watch, gold, proxy)
    assert [step for step, _ in fired] == [50]
    message = fired[0][1]
    for fragment in ("proxy reward rose from 1.000 to 1.900", "peak 0.600 at step 20", "to 0.300",
                     "over 3 evaluations", "over-optimising the reward model"):
        assert fragment in message, (fragment, message)
    assert (watch.peak_gold, watch.peak_step, watch.warned_step) == (0.6, 20, 50)


def test_a_non_diverging_evaluation_restarts_the_count() -> None:
    watch = Watch(patience=2)
    gold = [0.5, 0.4, 0.45, 0.3, 0.2]
    proxy = [0.0, 1.0, 0.9, 1.1, 1.3]  # step 20: the proxy fell; 30 and 40 diverge again
    assert [step for step, _ in feed(watch, gold, proxy)] == [40]
    assert "rose from 0.900 to 1.300" in watch_message(gold, proxy, patience=2)


def watch_message(gold: list[float], proxy: list[float | None], patience: int) -> str:
    (_, message), = feed(Watch(patience), gold, proxy)
    return message


def test_no_warning_when_gold_rises_with_the_proxy() -> None:
    watch = Watch(patience=1)
    assert feed(watch, [0.1, 0.2, 0.3, 0.35, 0.5], [0.0, 0.4, 0.8, 1.0, 1.5]) == []
    assert (watch.peak_gold, watch.peak_step) == (0.5, 40)


def test_no_warning_when_the_proxy_falls_with_gold() -> None:
    assert feed(Watch(patience=1), [0.5, 0.4, 0.3], [1.0, 0.8, 0.5]) == []


def test_no_proxy_no_warning_but_a_peak() -> None:
    watch = Watch(patience=1)
    assert feed(watch, [0.1, 0.6, 0.2, 0.1, 0.0], [None] * 5) == []
    assert (watch.peak_gold, watch.peak_step, watch.warned_step) == (0.6, 10, None)


# --- the callback ----------------------------------------------------------------------------

class Logger:
    def __init__(self) -> None:
        self.logged: list[tuple[int, dict[str, float]]] = []

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.logged.append((step, dict(metrics)))

    def steps(self, key: str) -> list[int]:
        return [step for step, metrics in self.logged if key in metrics]

    def history(self, key: str) -> list[tuple[int, float]]:
        return [(step, metrics[key]) for step, metrics in self.logged if key in metrics]


class Tracker:
    def __init__(self) -> None:
        self.tags: dict[str, str] = {}

    def set_tags(self, tags: dict[str, str]) -> None:
        self.tags |= tags


class ScriptedProbe:
    """Gold and proxy of successive evaluations, by a script; step 0 is the first entry."""

    def __init__(self, gold: list[float], proxy: list[float]) -> None:
        self.script = list(zip(gold, proxy))
        self.prompt_ids = [[1]]
        self.calls = 0

    def _next(self) -> dict[str, float]:
        gold, proxy = self.script[self.calls]
        self.calls += 1
        return {"series/gold_reward": gold, "series/proxy_reward": proxy}

    def initial(self) -> dict[str, float]:
        return self._next()

    def measure(self, policy: Any) -> dict[str, float]:
        return self._next()


MODULE = SimpleNamespace(device=torch.device("cpu"), modules=lambda: iter(()))


def train(series: EvalSeries, trainer: Any, batches: int, start: bool = True) -> None:
    """What Lightning calls on a callback: on_train_start, each batch's end, on_train_end."""
    if start:
        series.on_train_start(trainer, MODULE)
    for i in range(batches):
        series.on_train_batch_end(trainer, MODULE, None, None, i)
    series.on_train_end(trainer, MODULE)


def test_the_initial_policy_is_step_zero() -> None:
    tokenizer = SimpleNamespace(decode=lambda ids, skip_special_tokens: " ".join(f"w{i}" for i in ids),
                                pad_token_id=0)
    judge = SimpleNamespace(gold=lambda examples, texts: np.array([len(t.split()) for t in texts], float))
    probe = Probe(tokenizer, judge, examples=["a", "b"], prompt_ids=[[5], [6]], initial_ids=[[1, 2, 3], [1, 2]],
                  sample=None, reference=None, temperature=0.7, batch_size=2,  # type: ignore[arg-type]
                  proxy=lambda prompts, responses: np.array([0.5, -1.5]))
    logger = Logger()
    series = EvalSeries(probe, torch.nn.Linear(1, 1), every=5, patience=1)
    series.on_train_start(SimpleNamespace(loggers=[logger]), MODULE)
    (step, metrics), = logger.logged
    assert step == 0
    assert metrics == {"series/kl": 0.0, "series/winrate_vs_init": 0.5, "series/gold_reward": 2.5,
                       "series/proxy_reward": -0.5, "series/length": 2.5, "series/distinct_2": 2 / 3}


def test_steps_and_state_survive_a_checkpoint_round_trip(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Interrupted after 5 batches (evaluated at 0, 2, 4) and resumed from the checkpoint (saved
    and loaded as Lightning does, weights_only): the resumed callback skips step 0 and evaluates
    at 6 and 8, as an uninterrupted one does; the peak and the warning's state carry over."""
    gold, proxy = [0.1, 0.5, 0.4, 0.3, 0.2], [0.0, 1.0, 2.0, 3.0, 4.0]
    logger, tracker = Logger(), Tracker()
    trainer = SimpleNamespace(loggers=[logger])
    first = EvalSeries(ScriptedProbe(gold, proxy), torch.nn.Linear(1, 1), every=2, patience=2, tracker=tracker)
    first.on_train_start(trainer, MODULE)
    for i in range(5):
        first.on_train_batch_end(trainer, MODULE, None, None, i)
    torch.save({"callbacks": {"EvalSeries": first.state_dict()}}, tmp_path / "last.ckpt")

    probe = ScriptedProbe(gold, proxy)
    probe.calls = 3  # the resumed run's evaluations continue the script
    resumed = EvalSeries(probe, torch.nn.Linear(1, 1), every=2, patience=2, tracker=tracker)
    resumed.load_state_dict(torch.load(tmp_path / "last.ckpt", weights_only=True)["callbacks"]["EvalSeries"])
    with caplog.at_level(logging.WARNING, logger="harness.eval.series"):
        train(resumed, trainer, 4)  # batches 6..9
    assert logger.steps("series/gold_reward") == [0, 2, 4, 6, 8]
    # Gold peaked at step 2; steps 4 and 6 diverge: the warning at 6, once.
    assert logger.history("series/overoptimization_step") == [(6, 6.0)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [tracker.tags[OVEROPTIMIZATION_TAG]]
    assert logger.history("series/gold_peak") == [(9, 0.5)] and logger.history("series/gold_peak_step") == [(9, 2.0)]

    uninterrupted, tracker2 = Logger(), Tracker()
    train(EvalSeries(ScriptedProbe(gold, proxy), torch.nn.Linear(1, 1), every=2, patience=2, tracker=tracker2),
          SimpleNamespace(loggers=[uninterrupted]), 9)
    assert uninterrupted.logged == logger.logged and tracker2.tags == tracker.tags


def test_an_evaluation_leaves_rngs_and_modes_as_they_were() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5), torch.nn.Linear(2, 2))
    model.train()
    model[2].eval()  # a frozen part stays in eval mode
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    with untouched(torch.device("cpu"), list(model.modules())):
        torch.manual_seed(99), np.random.seed(99), random.seed(99)
        torch.rand(10), np.random.rand(10), random.random()
        model.eval()
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1]) and random.random() == expected[2]
    assert [m.training for m in model.modules()] == [True, True, True, False]


# --- settings --------------------------------------------------------------------------------

@pytest.mark.parametrize("key,value,expected", [("every", -1, "≥ 0"), ("series_prompts", 0, "≥ 1"),
                                                ("patience", 0, "≥ 1"), ("every", 2.5, "an integer")])
def test_series_settings_are_checked(key: str, value: Any, expected: str) -> None:
    with pytest.raises(InputError, match=rf"^eval\.{key}: expected .*{expected}"):
        EvalSettings(**SETTINGS | {key: value})


def test_series_settings_leave_the_initial_policys_eval_samples_key_alone() -> None:
    """The key of eval_initial is what it was before the series existed, whatever they are."""
    exp = SimpleNamespace(keys={"model": {"name": "m"}, "task": {"name": "t"}}, eval=EvalSettings(**SETTINGS), seed=0,
                          trainer_kwargs={"precision": "32-true"})
    spec = eval_initial_spec(exp)  # type: ignore[arg-type]
    assert spec["eval"] == {"n_prompts": None, "temperature": 0.7, "batch_size": 32}
    other = replace(exp.eval, every=0, series_prompts=8, patience=1)
    assert eval_initial_spec(SimpleNamespace(keys=exp.keys, eval=other, seed=0,  # type: ignore[arg-type]
                                             trainer_kwargs=exp.trainer_kwargs)) == spec


def test_a_series_larger_than_the_eval_set_uses_all_of_it(caplog: pytest.LogCaptureFixture) -> None:
    """A test-sized task has 16 eval prompts: the default 64 takes them all, and says so."""
    from harness.methods.policies import eval_series

    examples = [Example(id=str(i), prompt="p") for i in range(16)]
    prep = SimpleNamespace(eval_examples=examples, eval_ids=[[1, 2]] * 16, tokenizer=SimpleNamespace(pad_token_id=0),
                           policy_dir=None)
    exp = SimpleNamespace(eval=EvalSettings(**SETTINGS), evaluator=None, tracker=None)
    ctx = SimpleNamespace(exp=exp, prep=prep, initial_ids=[[3]] * 16)
    with caplog.at_level("INFO"):
        (series,) = eval_series(ctx, policy=None)  # type: ignore[arg-type]
    assert len(series.probe.prompt_ids) == len(series.probe.examples) == 16
    assert "eval.series_prompts=64, but the eval set has 16 prompts" in caplog.text
    exp.eval = replace(exp.eval, series_prompts=8)
    assert len(eval_series(ctx, policy=None)[0].probe.prompt_ids) == 8  # type: ignore[arg-type]
