"""The harness half of the benchmark: its own modules, collators and Lightning Trainer.

Each objective runs the code a `harness` run trains with (the Trainer settings of
`conf/trainer/cpu.yaml`, the stage's datamodule and LightningModule), minus logging and
checkpoints, on the shared model and data of `bench.common`. Reference log-probs are computed
before training, as the harness's `ref_logps` artifact stage does; with `--frozen`, so are
DPO's boundary states, which a run's sampler records with the samples.

    python -m bench.harness_side dpo --steps 20 --warmup 3
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from typing import Any

import lightning as L
import torch
import yaml

from bench.common import (BATCH, BETA, LR, MODEL, NEW_TOKENS, TEMPERATURE, Record, Result, StepClock, mean_tokens,
                          model_dir, peak_rss_mb, records, rss_mb)

CONF = os.path.join(os.path.dirname(__file__), "..", "harness", "conf")
TRAINER_YAML = os.path.join(CONF, "trainer", "cpu.yaml")
BUCKET = yaml.safe_load(open(os.path.join(CONF, "config.yaml")))["train"]["bucket"]  # the harness's default


class _Clock(L.Callback):
    def __init__(self, clock: StepClock) -> None:
        self.clock = clock

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.clock.tick()


def _trainer(steps: int, clock: StepClock, **overrides: Any) -> L.Trainer:
    kwargs = yaml.safe_load(open(TRAINER_YAML)) | {"max_steps": steps, "max_epochs": -1, "logger": False,
                                                   "enable_progress_bar": False, "limit_val_batches": 0}
    return L.Trainer(callbacks=[_Clock(clock)], **(kwargs | overrides))


FROZEN = 0  # --frozen: bottom blocks frozen (model.trainable_layers = blocks − FROZEN)


def _freeze(model) -> None:  # noqa: ANN001
    from harness.models.loading import freeze_lower_layers

    if FROZEN:
        freeze_lower_layers(model, MODEL["num_layers"] - FROZEN)


def _policy():
    from harness.models.loading import load_causal_lm

    policy, tok = load_causal_lm(model_dir())
    _freeze(policy)
    return policy, tok


def _tokenizer():
    from harness.models.loading import load_tokenizer

    return load_tokenizer(model_dir())


def _eos(ids: tuple[int, ...], eos: int) -> tuple[int, ...]:
    return tuple(ids) + (eos,)


def _reference(policy, tok, prompts, responses) -> list[float]:
    from harness.models.forward import batched_logps

    return batched_logps(policy, prompts, responses, tok.pad_token_id, batch_size=32)


def _offline(recs: list[Record], objective: str, steps: int, clock: StepClock, bucket: int) -> tuple[float, float]:
    from harness.data.preference import (ListDataModule, PairCollator, PreferencePair, UnpairedCollator,
                                         UnpairedExample)
    from harness.losses.dpo import dpo_loss
    from harness.losses.kto import kto_loss
    from harness.modules.offline_preference import OfflinePreferenceModule

    base = rss_mb()
    policy, tok = _policy()
    eos = tok.eos_token_id
    prompts = [r.prompt_ids for r in recs]
    chosen = [_eos(r.chosen_ids, eos) for r in recs]
    if objective == "dpo":
        rejected = [_eos(r.rejected_ids, eos) for r in recs]
        ref = _reference(policy, tok, prompts * 2, chosen + rejected)
        n = len(recs)
        rows = [PreferencePair(p, c, r, ref[i], ref[n + i]) for i, (p, c, r) in enumerate(zip(prompts, chosen, rejected))]
        collate, loss = PairCollator(tok.pad_token_id), functools.partial(dpo_loss, beta=BETA)
    else:  # kto: each example with a mismatched partner (the next record's response) for z0
        partner = chosen[1:] + chosen[:1]
        ref = _reference(policy, tok, prompts * 2, chosen + partner)
        n = len(recs)
        rows = [UnpairedExample(p, c, k, r.desirable, ref[i], ref[n + i])
                for i, (p, c, k, r) in enumerate(zip(prompts, chosen, partner, recs))]
        collate, loss = UnpairedCollator(tok.pad_token_id), functools.partial(kto_loss, beta=BETA)
    data = ListDataModule(rows, [], collate, BATCH, seed=0, bucket=bucket)
    states = None
    if FROZEN:
        # A run's pairs come with the boundary states its sampler recorded (stages.samples), as
        # their reference log-probs come from it: both are ready before training. KTO's
        # mismatched pairs' states are computed once before training (stages.with_rows), as
        # their reference log-probs are.
        from harness.models.trunk import StateTable

        others = rejected if objective == "dpo" else partner
        states = StateTable.build(policy, FROZEN, prompts * 2, chosen + others, tok.pad_token_id)
    module = OfflinePreferenceModule(policy, loss, lr=LR, states=states)
    _trainer(steps, clock).fit(module, datamodule=data)
    return base, mean_tokens(recs, "pair_shared_prompt" if objective == "dpo" else "example")


def _policy_only(recs: list[Record], steps: int, clock: StepClock, bucket: int, paired: bool) -> tuple[float, float]:
    """The memory baseline: the policy trained alone (SFT) on the sequences the objective trains
    on with gradient: 2·BATCH per step for DPO (`paired`), BATCH for KTO."""
    from harness.training import PackCollator
    from harness.modules.sft import SFTModule

    base = rss_mb()
    policy, tok = _policy()
    eos = tok.eos_token_id
    responses = (lambda r: (r.chosen_ids, r.rejected_ids)) if paired else (lambda r: (r.chosen_ids,))
    rows = [(r.prompt_ids, _eos(ids, eos)) for r in recs for ids in responses(r)]
    from harness.data.resumable import ResumableBatches

    train = ResumableBatches(rows, (2 if paired else 1) * BATCH, PackCollator(tok.pad_token_id), seed=0,
                             lengths=[(len(p), len(r)) for p, r in rows], bucket=bucket)
    _trainer(steps, clock).fit(SFTModule(policy, lr=LR), train)
    return base, mean_tokens(recs, "pair" if paired else "example")


def _reward(recs: list[Record], steps: int, clock: StepClock, bucket: int) -> tuple[float, float]:
    from harness.data.preference import ComparisonGroup, GroupCollator, ListDataModule
    from harness.losses.bradley_terry import best_of_k_loss
    from harness.models.reward import RewardModel
    from harness.modules.reward_model import RewardModelModule

    base = rss_mb()
    tok = _tokenizer()  # no policy in memory: the reward model's peak is its own
    rm = RewardModel.from_policy_dir(model_dir())
    _freeze(rm.trunk)
    eos = tok.eos_token_id
    groups = [ComparisonGroup(r.prompt_ids, (_eos(r.chosen_ids, eos), _eos(r.rejected_ids, eos)), 0) for r in recs]
    data = ListDataModule(groups, [], GroupCollator(tok.pad_token_id), BATCH, seed=0, bucket=bucket)
    _trainer(steps, clock).fit(RewardModelModule(rm, best_of_k_loss, LR), datamodule=data)
    return base, mean_tokens(recs, "pair_shared_prompt")


def _ppo(recs: list[Record], steps: int, clock: StepClock, ppo_epochs: int) -> tuple[float, float]:
    from harness.data.resumable import ResumableBatches
    from harness.models.reward import RewardModel
    from harness.experiment import PPOSettings
    from harness.modules.ppo import PPOModule
    from harness.rl.kl_control import AdaptiveKL

    base = rss_mb()
    policy, tok = _policy()
    reference, _ = _policy()
    rm = RewardModel.from_policy_dir(model_dir())
    rm.set_normalization(torch.tensor([0.0, 1.0]))
    # Every episode NEW_TOKENS long, as on the TRL side (min_new_tokens through the generation config).
    policy.generation_config.min_new_tokens = NEW_TOKENS
    # One optimiser step of BATCH episodes per epoch, as TRL's RLOO/GRPO take per generation batch.
    # conf/loss/ppo.yaml's settings, but for the batch shape, temperature, length and lr.
    settings = PPOSettings(rollout_batch=BATCH, minibatch=BATCH, ppo_epochs=ppo_epochs, clip_eps=0.2, vf_clip_eps=0.2,
                           vf_coef=0.1, gamma=1.0, lam=0.95, temperature=TEMPERATURE, max_new_tokens=NEW_TOKENS, lr=LR,
                           whiten_rewards=True, whiten_advantages="batch", value_head_init="zero", adam_eps=1e-5,
                           weight_decay=0.0, unfinished_score=None)
    prompts = [r.prompt_ids for r in recs]
    module = PPOModule(policy, reference, rm, tok, prompts, AdaptiveKL(BETA, 6.0, 10_000), settings, max_grad_norm=1.0)
    loader = ResumableBatches(range(len(prompts)), BATCH, torch.tensor, seed=0, num_samples=BATCH * steps)
    # Manual optimisation counts optimiser steps, not iterations: the loader's length ends the run.
    _trainer(steps, clock, gradient_clip_val=None, max_steps=-1, max_epochs=1).fit(module, loader)
    p = sum(len(r.prompt_ids) for r in recs) / len(recs)
    return base, p + NEW_TOKENS


def _generate(recs: list[Record], steps: int, clock: StepClock) -> tuple[float, float, int]:
    from harness.models.sampling import generate_responses

    base = rss_mb()
    policy, tok = _policy()
    policy.generation_config.min_new_tokens = NEW_TOKENS
    new = 0
    for step in range(steps):
        batch = [recs[(step * BATCH + i) % len(recs)].prompt_ids for i in range(BATCH)]
        out = generate_responses(policy, tok, batch, max_new_tokens=NEW_TOKENS, temperature=TEMPERATURE,
                                 batch_size=BATCH, seed=step)
        clock.tick()
        if step >= clock.warmup:
            new += sum(len(r[0]) for r in out)
    return base, 1.0, new


def run(objective: str, steps: int, warmup: int, bucket: int = BUCKET) -> Result:
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    tok = _tokenizer()
    recs = records(tok, n=BATCH * (steps + warmup))  # each record used once, as on the TRL side
    clock = StepClock(warmup)
    total = steps + warmup
    extra: dict[str, Any] = {}
    if objective in ("dpo", "kto"):
        base, tpi = _offline(recs, objective, total, clock, bucket)
        per_step = BATCH
    elif objective in ("policy_only", "policy_only_unpaired"):
        base, tpi = _policy_only(recs, total, clock, bucket, paired=objective == "policy_only")
        per_step = BATCH
    elif objective == "reward":
        base, tpi = _reward(recs, total, clock, bucket)
        per_step = BATCH
    elif objective in ("ppo", "ppo1"):
        epochs = 4 if objective == "ppo" else 1
        base, tpi = _ppo(recs, total, clock, epochs)
        per_step, extra = BATCH, {"ppo_epochs": epochs}
    elif objective == "generate":
        base, tpi, new = _generate(recs, total, clock)
        return Result("harness", objective, new, clock.seconds, tpi, peak_rss_mb() - base)
    else:
        raise SystemExit(f"unknown objective {objective!r}")
    return Result("harness", objective, clock.timed_steps * per_step, clock.seconds, tpi, peak_rss_mb() - base, extra)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("objective")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--bucket", type=int, default=BUCKET, help=f"train.bucket (default {BUCKET}, the harness's)")
    ap.add_argument("--frozen", type=int, default=0, help="bottom decoder blocks frozen (with the embeddings)")
    args = ap.parse_args()
    global FROZEN
    FROZEN = args.frozen
    t = time.perf_counter()
    result = run(args.objective, args.steps, args.warmup, args.bucket)
    result.extra = (result.extra or {}) | {"wall_s": time.perf_counter() - t}
    print(json.dumps(result.to_json()))


if __name__ == "__main__":
    main()
