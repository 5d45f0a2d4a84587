"""Policy-optimisation methods: what the train stage does, chosen by `loss.method._target_`.

Every method turns the labelled comparisons into a policy to evaluate (`EvalPolicy`):
- `OfflinePreference`: DPO and relatives on the comparisons, with cached reference log-probs;
- `PPO`: a reward model trained on the comparisons, then PPO against it with a KL penalty;
- `BestOfN`: the same reward model picks the best of n samples of the initial policy;
- `RewardModelOnly`: the reward-model stage alone (its artifact serves later PPO and best-of-n
  runs); the policy evaluated is the initial one;
- `SFT`: supervised fine-tuning on references or on chosen responses.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import lightning as L
import numpy as np
import torch
from rich.progress import Progress
from torch.utils.data import DataLoader

from harness.cache import ArtifactCache, config_hash, lend_idle_threads, stage_seed
from harness.data.collate import pack
from harness.data.preference import (
    ComparisonGroup,
    GroupCollator,
    ListDataModule,
    PairCollator,
    PreferencePair,
    UnpairedCollator,
    UnpairedExample,
)
from harness.data.resumable import Checkpointing, ResumableBatches
from harness.errors import InputError
from harness.losses.kto import kto_weights
from harness.models.loading import freeze_lower_layers, load_causal_lm
from harness.models.reward import POOLINGS, RewardModel
from harness.modules.offline_preference import OfflinePreferenceModule, PairLoss, UnpairedLoss
from harness.modules.ppo import PPOModule, PPOSettings
from harness.modules.reward_model import GroupLoss, RewardModelModule
from harness.rl.kl_control import AdaptiveKL, FixedKL
from harness.rl.rollout import batched_logps, generate_responses

if TYPE_CHECKING:
    from harness.pipeline import Experiment, Labelled, Prepared

log = logging.getLogger(__name__)


@dataclass
class TrainContext:
    exp: Experiment
    prep: Prepared
    labelled: Labelled
    cache: ArtifactCache
    progress: Callable[[], Progress]
    initial_ids: Sequence[Sequence[int]] = ()  # the initial policy's eval responses


class EvalPolicy(Protocol):
    """What evaluation needs of a trained policy. Policies tied to a reward model may also have
    `proxy_rewards(eval_ids, responses)`: that model's scores, logged as eval/proxy_reward."""

    def responses(self, eval_ids: Sequence[Sequence[int]], progress: Progress) -> list[list[int]]: ...

    def kl(self, eval_ids: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], progress: Progress) -> np.ndarray: ...


@dataclass
class SampledPolicy:
    """A trained policy evaluated by sampling; KL by log-probs against the initial policy.
    With the reward model it optimised (PPO), it also reports that model's scores."""

    model: Any
    ctx: TrainContext
    reward_model: RewardModel | None = None

    def proxy_rewards(self, eval_ids: Sequence[Sequence[int]], responses: Sequence[Sequence[int]]) -> np.ndarray | None:
        if self.reward_model is None:
            return None
        return reward_scores(self.reward_model, eval_ids, responses, self.ctx.prep.tokenizer.pad_token_id)

    def responses(self, eval_ids: Sequence[Sequence[int]], progress: Progress) -> list[list[int]]:
        return eval_samples(self.model, self.ctx.prep.tokenizer, eval_ids, self.ctx.exp, progress, "eval samples: trained policy")

    def kl(self, eval_ids: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], progress: Progress) -> np.ndarray:
        """log π(y) − log π_ref(y) per eval sample, both at the eval temperature."""
        exp, pad = self.ctx.exp, self.ctx.prep.tokenizer.pad_token_id
        reference, _ = load_causal_lm(self.ctx.prep.policy_dir)
        args = (eval_ids, responses, pad, exp.eval.batch_size, exp.eval.temperature, progress)
        return np.asarray(batched_logps(self.model, *args, "eval KL: policy")) - np.asarray(
            batched_logps(reference, *args, "eval KL: reference"))


@torch.inference_mode()
def reward_scores(reward_model: RewardModel, prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]],
                  pad_id: int, batch_size: int = 32) -> np.ndarray:
    """The reward model's normalised score of each response: the proxy reward."""
    device = next(reward_model.parameters()).device
    scores = [reward_model(pack(prompts[i : i + batch_size], responses[i : i + batch_size], pad_id).to(device))
              for i in range(0, len(prompts), batch_size)]
    return torch.cat(scores).cpu().numpy() if scores else np.zeros(0)


def eval_samples(policy: Any, tokenizer: Any, eval_ids: Sequence[Sequence[int]], exp: Experiment,
                 progress: Progress, desc: str, k: int = 1) -> list[list[int]]:
    responses = generate_responses(
        policy, tokenizer, eval_ids, max_new_tokens=exp.task.max_new_tokens,
        temperature=exp.eval.temperature, k=k, batch_size=exp.eval.batch_size,
        seed=stage_seed(exp.seed, "eval"), progress=progress, desc=desc,
    )
    return [r[0] for r in responses] if k == 1 else responses  # type: ignore[return-value]


def build_pairs(
    prompt_ids: Sequence[Sequence[int]],
    responses: Sequence[Sequence[Sequence[int]]],
    choices: Sequence[int],
    ref_logps: Sequence[Sequence[float]],
    keep: set[int] | None = None,
) -> list[tuple[int, PreferencePair]]:
    """Best-of-k labels to pairs, each with its prompt index: the chosen response against each
    of the k−1 others, for the prompts in `keep` (all by default).

    Identical responses carry no preference and are skipped.
    """
    pairs = []
    for i, (p, group, best, ref) in enumerate(zip(prompt_ids, responses, choices, ref_logps)):
        if keep is not None and i not in keep:
            continue
        for j, other in enumerate(group):
            if j != best and list(other) != list(group[best]):
                pairs.append((i, PreferencePair(tuple(p), tuple(group[best]), tuple(other), ref[best], ref[j])))
    return pairs


def _trainer(ctx: TrainContext, **overrides: Any) -> L.Trainer:
    kwargs = dict(ctx.exp.trainer_kwargs) | overrides
    return L.Trainer(logger=ctx.exp.tracker.lightning_logger(), default_root_dir=str(ctx.exp.run_dir), **kwargs)


def _loadable(path: Path) -> bool:
    """Whether a checkpoint loads as plain tensors and numbers (weights_only: nothing in it is
    executed). A damaged or foreign file is set aside and the stage starts over."""
    try:
        torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return True
    except Exception as err:  # truncated zip, pickled code, anything torch refuses
        log.warning("checkpoint %s cannot be loaded safely (%s): starting the stage over", path,
                    " ".join(str(err).split())[:200])
        path.rename(path.with_name(path.name + ".rejected"))
        return False


class LendIdleThreads(L.Callback):
    """Training inside a shared artifact's build (a reward model, a fine-tuned initial policy)
    takes the threads of the jobs on this host that wait for it (cache.lend_idle_threads)."""

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        lend_idle_threads()


def _fit(ctx: TrainContext, key: str, stage: str, module: L.LightningModule, *, datamodule: Any = None,
         train: Any = None, val: Any = None, **overrides: Any) -> L.Trainer:
    """Trainer.fit with a checkpoint under cache_dir/checkpoints/<key>/<stage>.ckpt that a
    rerun resumes from (`key`: the run's, or a shared artifact's). No key: no checkpoint."""
    callbacks, ckpt_path = [LendIdleThreads()], None
    if key:
        path = ctx.exp.cache_dir / "checkpoints" / key / f"{stage}.ckpt"
        callbacks.append(Checkpointing(path, ctx.exp.train.checkpoint_every))
        if path.exists() and _loadable(path):
            ckpt_path = str(path)
            log.info("%s: resuming from %s", stage, path)
    trainer = _trainer(ctx, callbacks=callbacks, **overrides)
    # weights_only: a checkpoint is tensors and plain numbers; nothing in it is ever executed.
    if datamodule is not None:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    else:
        trainer.fit(module, train, val, ckpt_path=ckpt_path, weights_only=True)
    return trainer


REFERENCES = ("cached", "online", "none")


@dataclass
class OfflinePreference:
    """Offline objectives on the labelled comparisons; `loss_fn` is the pure loss.

    Pairwise objectives (DPO, IPO, SimPO, ORPO) train on (chosen, other) pairs; with
    `unpaired` (KTO) every chosen response is a desirable example and every other response an
    undesirable one. `labels.desirable_fraction` < 1 keeps only that share of the chosen
    responses (a seeded choice of prompts): KTO loses desirable examples, pairwise objectives
    the pairs built on them. `reference`: `cached` (log π_ref of every labelled response,
    computed once, an artifact), `online` (the frozen initial policy held in memory and run on
    each batch) or `none` (reference-free objectives). `length_normalized` passes per-token
    average log-probs (SimPO, ORPO). `balance_weights` applies KTO's rule of thumb for
    λ_D and λ_U to the counts of desirable and undesirable examples.
    """

    loss_fn: PairLoss | UnpairedLoss
    unpaired: bool = False
    length_normalized: bool = False
    reference: str = "cached"
    balance_weights: bool = False

    def __post_init__(self) -> None:
        if self.reference not in REFERENCES:
            raise InputError(f"loss.method.reference={self.reference!r}: expected one of {', '.join(REFERENCES)}")

    def fit(self, ctx: TrainContext) -> EvalPolicy:
        exp, prep, labelled = ctx.exp, ctx.prep, ctx.labelled
        tokenizer, policy = prep.tokenizer, prep.policy
        n = len(labelled.choices)
        keep = _desirable_prompts(n, exp.labels.desirable_fraction, _seed(exp, "desirable"))
        if self.reference == "cached":
            ref_logps = self._cached_reference(ctx)
        else:
            ref_logps = [[float("nan")] * len(g) for g in labelled.responses]
        n_val = int(round(n * exp.train.val_fraction))  # whole prompts, from the tail
        if self.unpaired:
            partners = _kl_partners(n, _seed(exp, "kl_pairs"))
            ref_kl = (self._cached_kl_reference(ctx, partners) if self.reference == "cached"
                      else [[float("nan")] * len(g) for g in labelled.responses])
            examples = build_unpaired(labelled.prompt_ids, labelled.responses, labelled.choices, ref_logps,
                                      partners, ref_kl, keep)
            train = [e for e in examples if e[0] < n - n_val]
            val = [e for e in examples if e[0] >= n - n_val]
            train_rows, val_rows = [e[1] for e in train], [e[1] for e in val]
            n_d = sum(e.desirable for e in train_rows)
            n_u = len(train_rows) - n_d
            exp.tracker.log_metrics({"labels/desirable": float(n_d), "labels/undesirable": float(n_u)})
            loss_fn = self._balanced(self.loss_fn, n_d, n_u, exp) if self.balance_weights else self.loss_fn
            collate = UnpairedCollator(tokenizer.pad_token_id)
        else:
            pairs = build_pairs(labelled.prompt_ids, labelled.responses, labelled.choices, ref_logps, keep)
            train_rows = [pair for i, pair in pairs if i < n - n_val]
            val_rows = [pair for i, pair in pairs if i >= n - n_val]
            exp.tracker.log_metrics({"labels/pairs": float(len(pairs))})
            loss_fn = self.loss_fn
            collate = PairCollator(tokenizer.pad_token_id)
        if not train_rows:
            raise InputError(f"labels.n={exp.labels.n}, labels.desirable_fraction={exp.labels.desirable_fraction}: "
                             "no training examples left")
        data = ListDataModule(train_rows, val_rows, collate, exp.train.batch_size, _seed(exp, "train"),
                              bucket=exp.train.bucket)
        reference = load_causal_lm(prep.policy_dir)[0] if self.reference == "online" else None
        module = OfflinePreferenceModule(policy, loss_fn, lr=exp.train.lr, weight_decay=exp.train.weight_decay,
                                         warmup_steps=exp.train.warmup_steps, length_normalized=self.length_normalized,
                                         reference=reference)
        _fit(ctx, exp.run_key, "train", module, datamodule=data, limit_val_batches=1.0 if val_rows else 0)
        return SampledPolicy(module.policy, ctx)

    @staticmethod
    def _cached_reference(ctx: TrainContext) -> list[list[float]]:
        """log π_ref(y | x) of every labelled response: an artifact keyed by the samples."""
        labelled = ctx.labelled
        flat_p = [p for p, group in zip(labelled.prompt_ids, labelled.responses) for _ in group]
        flat_r = [r for group in labelled.responses for r in group]
        spec = {"labelled": config_hash(labelled.spec)}
        return _reference_artifact(ctx, "ref_logps", spec, flat_p, flat_r, "reference log-probs")

    @staticmethod
    def _cached_kl_reference(ctx: TrainContext, partners: Sequence[int]) -> list[list[float]]:
        """log π_ref(y' | x) of each prompt with its KL partner's responses (KTO's z0)."""
        labelled = ctx.labelled
        flat_p = [p for p, group in zip(labelled.prompt_ids, labelled.responses) for _ in group]
        flat_r = [r for i, group in enumerate(labelled.responses) for r in _partner_group(labelled.responses, partners, i, len(group))]
        spec = {"labelled": config_hash(labelled.spec), "kl_partners_seed": ctx.exp.seed}
        return _reference_artifact(ctx, "ref_kl_logps", spec, flat_p, flat_r, "reference log-probs: mismatched pairs")

    @staticmethod
    def _balanced(loss_fn: Any, n_d: int, n_u: int, exp: Experiment) -> Any:
        if not isinstance(loss_fn, functools.partial) or "desirable_weight" not in loss_fn.keywords:
            raise InputError("loss.method.balance_weights=true needs a loss with desirable_weight and "
                             "undesirable_weight (KTO)")
        if n_d == 0 or n_u == 0:
            raise InputError(f"loss.method.balance_weights: {n_d} desirable and {n_u} undesirable examples; "
                             "both must be > 0")
        kw = loss_fn.keywords
        lam_d, lam_u = kto_weights(n_d, n_u, kw["desirable_weight"], kw.get("undesirable_weight", 1.0))
        exp.tracker.log_metrics({"labels/desirable_weight": lam_d, "labels/undesirable_weight": lam_u})
        return functools.partial(loss_fn, desirable_weight=lam_d, undesirable_weight=lam_u)


def _reference_artifact(ctx: TrainContext, stage: str, spec: dict[str, Any], prompts: Sequence[Sequence[int]],
                        responses: Sequence[Sequence[int]], desc: str) -> list[list[float]]:
    exp, prep, labelled = ctx.exp, ctx.prep, ctx.labelled

    def build(out: Path) -> None:
        with ctx.progress() as progress:
            flat = iter(batched_logps(prep.policy, prompts, responses, prep.tokenizer.pad_token_id,
                                      exp.sampling.batch_size, progress=progress, desc=desc, share_prompts=True))
        (out / f"{stage}.json").write_text(json.dumps([[next(flat) for _ in g] for g in labelled.responses]))

    path = ctx.cache.get_or_build(stage, spec, build)
    exp.tracker.set_tags({f"artifact.{stage}": config_hash(spec)})
    return json.loads((path / f"{stage}.json").read_text())


def _desirable_prompts(n: int, fraction: float, seed: int) -> set[int]:
    """The prompts whose chosen response is kept: a seeded share `fraction` of the n."""
    if fraction >= 1.0:
        return set(range(n))
    order = np.random.default_rng(seed).permutation(n)
    return set(order[: int(round(fraction * n))].tolist())


def _kl_partners(n: int, seed: int) -> list[int]:
    """partners[i] ≠ i: the prompt whose responses are scored against prompt i for KTO's z0.

    A seeded cycle through all prompts, fixed before training so the reference log-probs of the
    mismatched pairs can be computed once (TRL also fixes them when it builds the dataset).
    """
    if n < 2:
        raise InputError(f"labels.n={n}: KTO's reference point needs at least 2 prompts")
    order = np.random.default_rng(seed).permutation(n)
    partners = [0] * n
    for pos, i in enumerate(order):
        partners[int(i)] = int(order[(pos + 1) % n])
    return partners


def _partner_group(responses: Sequence[Sequence[Sequence[int]]], partners: Sequence[int], i: int, k: int) -> list:
    other = responses[partners[i]]
    return [other[j % len(other)] for j in range(k)]


def build_unpaired(
    prompt_ids: Sequence[Sequence[int]],
    responses: Sequence[Sequence[Sequence[int]]],
    choices: Sequence[int],
    ref_logps: Sequence[Sequence[float]],
    partners: Sequence[int],
    ref_kl_logps: Sequence[Sequence[float]],
    keep: set[int],
) -> list[tuple[int, UnpairedExample]]:
    """Best-of-k labels to KTO's unpaired examples, each with its prompt index: the chosen
    response desirable (if its prompt is in `keep`), every other response undesirable.
    Response j of prompt i is paired for the KL estimate with response j of its partner."""
    rows = []
    for i, (p, group, best) in enumerate(zip(prompt_ids, responses, choices)):
        kl_group = _partner_group(responses, partners, i, len(group))
        for j, response in enumerate(group):
            desirable = j == best
            if desirable and i not in keep:
                continue
            if not desirable and list(response) == list(group[best]):
                continue  # a duplicate of the chosen response is not a rejected one
            rows.append((i, UnpairedExample(tuple(p), tuple(response), tuple(kl_group[j]), desirable,
                                            ref_logps[i][j], ref_kl_logps[i][j])))
    return rows


def _seed(exp: Experiment, stage: str) -> int:
    return stage_seed(exp.seed, stage)


@dataclass
class RewardModelSettings:
    loss_fn: GroupLoss
    lr: float = 1.0e-5
    head_lr: float | None = None  # None: lr
    weight_decay: float = 0.0
    pooling: str = "mean"  # "mean" over the response's tokens, or "last" token (models/reward.py)
    batch_size: int = 8
    epochs: int = 1
    trainable_layers: int | None = None
    val_fraction: float = 0.1

    def __post_init__(self) -> None:
        key = "loss.reward_model"
        if self.pooling not in POOLINGS:
            raise InputError(f"{key}.pooling={self.pooling!r}: expected one of {', '.join(POOLINGS)}")
        for name in ("lr", "head_lr"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise InputError(f"{key}.{name}={value}: expected a learning rate > 0")
        if self.epochs < 1 or self.batch_size < 1:
            raise InputError(f"{key}: epochs and batch_size must be ≥ 1, got {self.epochs} and {self.batch_size}")
        if not 0 < self.val_fraction < 1:
            raise InputError(f"{key}.val_fraction={self.val_fraction}: expected a fraction in (0, 1)")


def reward_model_stage(ctx: TrainContext, settings: RewardModelSettings) -> RewardModel:
    """Train (or load from the cache) the reward model on the labelled comparisons.

    Normalised to mean 0, std 1 on the labelled responses, which are samples of the initial
    policy. Logs rm/* metrics, including rm/gold_accuracy: how often the model's top response
    in a held-out comparison is the judge panel's noise-free best.
    """
    exp, prep, labelled = ctx.exp, ctx.prep, ctx.labelled
    # Keyed by the labels themselves (not only the samples): another labeler, another model.
    spec = {"labels": labelled.choices_key, "reward_model": exp.keys.get("reward_model"), "seed": exp.seed,
            "bucket": exp.train.bucket}
    groups = [ComparisonGroup(tuple(p), tuple(tuple(r) for r in g), c)
              for p, g, c in zip(labelled.prompt_ids, labelled.responses, labelled.choices)]
    n_val = max(1, int(round(len(groups) * settings.val_fraction)))
    if len(groups) - n_val < 1:
        raise InputError(f"labels.n={exp.labels.n}: too few comparisons to train a reward model")
    judge = exp.judge or exp.labeler

    def build(out: Path) -> None:
        torch.manual_seed(_seed(exp, "reward_model"))
        rm = RewardModel.from_policy_dir(prep.policy_dir, settings.pooling)
        freeze_lower_layers(rm.trunk, settings.trainable_layers, key="loss.reward_model.trainable_layers", minimum=0)
        module = RewardModelModule(rm, settings.loss_fn, settings.lr, settings.weight_decay, settings.head_lr)
        data = ListDataModule(groups[:-n_val], groups[-n_val:], GroupCollator(prep.tokenizer.pad_token_id),
                              settings.batch_size, _seed(exp, "reward_model"), bucket=exp.train.bucket)
        trainer = _fit(ctx, rm_key and f"reward_model-{rm_key}", "reward_model", module, datamodule=data,
                       max_epochs=settings.epochs, max_steps=-1)
        rm.eval()
        with torch.inference_mode():
            flat_p = [g.prompt_ids for g in groups for _ in g.responses]
            flat_r = [r for g in groups for r in g.responses]
            raw = torch.cat([rm.raw(pack(flat_p[i : i + 32], flat_r[i : i + 32], prep.tokenizer.pad_token_id, True))
                             for i in range(0, len(flat_p), 32)])
        rm.set_normalization(raw)
        val = groups[-n_val:]
        val_rewards = raw[-sum(len(g.responses) for g in val):]
        # Stored with the model so that runs which load it from the cache report it too.
        metrics = {"rm/train_loss": float(trainer.callback_metrics["rm_fit/train_loss"]),
                   "rm/val_accuracy": _top_accuracy(val_rewards, [len(g.responses) for g in val], [g.choice for g in val])}
        if hasattr(judge, "gold"):
            examples = prep.train_examples[len(groups) - n_val : len(groups)]
            gold_best = []
            for e, g in zip(examples, val):
                texts = [prep.tokenizer.decode(r, skip_special_tokens=True) for r in g.responses]
                gold_best.append(int(np.argmax(judge.gold([e] * len(texts), texts))))
            metrics["rm/gold_accuracy"] = _top_accuracy(val_rewards, [len(g.responses) for g in val], gold_best)
        rm.save(out)
        (out / "metrics.json").write_text(json.dumps(metrics))

    rm_key = config_hash(spec) if exp.run_key else ""  # checkpoints only for runs that can resume
    path = ctx.cache.get_or_build("reward_model", spec, build)
    if rm_key:
        shutil.rmtree(exp.cache_dir / "checkpoints" / f"reward_model-{rm_key}", ignore_errors=True)
    exp.tracker.set_tags({"artifact.reward_model": config_hash(spec)})
    exp.tracker.log_metrics(json.loads((path / "metrics.json").read_text()))
    return RewardModel.load(path)


def _top_accuracy(rewards: torch.Tensor, sizes: Sequence[int], targets: Sequence[int]) -> float:
    hits, start = 0, 0
    for size, target in zip(sizes, targets):
        hits += int(rewards[start : start + size].argmax()) == target
        start += size
    return hits / max(len(sizes), 1)


@dataclass
class PPO:
    """Reward model, then PPO with a per-token KL penalty (fixed or adaptive β)."""

    reward_model: RewardModelSettings
    settings: PPOSettings
    kl: FixedKL | AdaptiveKL
    episodes: int = 512

    def fit(self, ctx: TrainContext) -> EvalPolicy:
        exp, prep = ctx.exp, ctx.prep
        rm = reward_model_stage(ctx, self.reward_model)
        reference, _ = load_causal_lm(prep.policy_dir)
        judge = exp.judge or exp.labeler
        examples = prep.train_examples
        gold = (lambda idx, texts: judge.gold([examples[i] for i in idx], texts)) if hasattr(judge, "gold") else None
        module = PPOModule(prep.policy, reference, rm, prep.tokenizer, prep.train_ids, self.kl, self.settings,
                           gold_fn=gold, seed=_seed(exp, "ppo"))
        # Prompts drawn with replacement, `rollout_batch` per iteration, resumable mid-run.
        prompts = ResumableBatches(range(len(prep.train_ids)), self.settings.rollout_batch, torch.tensor,
                                   seed=_seed(exp, "ppo"), num_samples=self.episodes)
        # Manual optimisation: PPO clips its own gradients and counts iterations, not steps.
        overrides = {"gradient_clip_val": None, "max_steps": -1, "max_epochs": 1, "limit_val_batches": 0,
                     "log_every_n_steps": 1}  # an iteration is expensive: log each one
        _fit(ctx, exp.run_key, "ppo", module, train=prompts, **overrides)
        return SampledPolicy(module.policy, ctx, reward_model=rm)


@dataclass
class BestOfNPolicy:
    """Sample n from the initial policy and keep the one the reward model scores highest."""

    n: int
    reward_model: RewardModel
    ctx: TrainContext

    def responses(self, eval_ids: Sequence[Sequence[int]], progress: Progress) -> list[list[int]]:
        prep = self.ctx.prep
        groups = eval_samples(prep.policy, prep.tokenizer, eval_ids, self.ctx.exp, progress, f"eval samples: best of {self.n}", k=self.n)
        best = []
        with torch.inference_mode():
            for p, group in zip(eval_ids, groups):
                scores = self.reward_model(pack([p] * len(group), group, prep.tokenizer.pad_token_id, True))
                best.append(group[int(scores.argmax())])
        return best

    def proxy_rewards(self, eval_ids: Sequence[Sequence[int]], responses: Sequence[Sequence[int]]) -> np.ndarray:
        return reward_scores(self.reward_model, eval_ids, responses, self.ctx.prep.tokenizer.pad_token_id)

    def kl(self, eval_ids: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], progress: Progress) -> np.ndarray:
        """The analytic KL of best-of-n to the base policy: log n − (n−1)/n."""
        return np.full(len(responses), math.log(self.n) - (self.n - 1) / self.n)


@dataclass
class BestOfN:
    reward_model: RewardModelSettings
    n: int = 4

    def fit(self, ctx: TrainContext) -> EvalPolicy:
        if self.n < 1:
            raise InputError(f"loss.n must be ≥ 1, got {self.n}")
        return BestOfNPolicy(self.n, reward_model_stage(ctx, self.reward_model), ctx)


@dataclass
class InitialPolicy:
    """The initial policy, unchanged: its cached eval responses, KL 0."""

    ctx: TrainContext

    def responses(self, eval_ids: Sequence[Sequence[int]], progress: Progress) -> list[list[int]]:
        return [list(r) for r in self.ctx.initial_ids]

    def kl(self, eval_ids: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], progress: Progress) -> np.ndarray:
        return np.zeros(len(responses))


@dataclass
class RewardModelOnly:
    """`loss=reward_model`: train (or load) the reward model and log its rm/* metrics.

    The artifact is keyed by the labels and `loss.reward_model`, so PPO and best-of-n runs with
    the same settings load it instead of training it again.
    """

    reward_model: RewardModelSettings

    def fit(self, ctx: TrainContext) -> EvalPolicy:
        reward_model_stage(ctx, self.reward_model)
        return InitialPolicy(ctx)


class _PackCollator:
    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, rows: Sequence[tuple[Sequence[int], Sequence[int]]]) -> Any:
        return pack([r[0] for r in rows], [r[1] for r in rows], self.pad_id)


def supervised_fine_tune(policy: Any, tokenizer: Any, prompt_ids: Sequence[Sequence[int]], targets: Sequence[str],
                         settings: Any, trainer_kwargs: dict[str, Any], seed: int) -> Any:
    """Fine-tune `policy` in place on (prompt, target + EOS) pairs; no logger, no checkpoint
    (the caller stores the result as an artifact)."""
    from harness.modules.sft import SFTModule

    rows = [(p, tokenizer(t, add_special_tokens=False).input_ids + [tokenizer.eos_token_id])
            for p, t in zip(prompt_ids, targets)]
    train = ResumableBatches(rows, settings.batch_size, _PackCollator(tokenizer.pad_token_id), seed=seed)
    kwargs = dict(trainer_kwargs) | {"max_epochs": settings.epochs, "logger": False, "enable_checkpointing": False,
                                     "limit_val_batches": 0}
    L.Trainer(callbacks=[LendIdleThreads()], **kwargs).fit(SFTModule(policy, lr=settings.lr), train)
    return policy


@dataclass
class SFT:
    """Supervised fine-tuning on the task's references (`targets='references'`, e.g. the
    TL;DR summaries) or on the labelled comparisons' chosen responses (`'chosen'`)."""

    targets: str = "chosen"

    def __post_init__(self) -> None:
        if self.targets not in ("references", "chosen"):
            raise InputError(f"loss.targets={self.targets!r}: expected 'references' or 'chosen'")

    def check(self, task_name: str, examples: Sequence[Any]) -> None:
        """Before the run starts: references must exist to train on them."""
        missing = [e.id for e in examples if not e.reference]
        if self.targets == "references" and missing:
            raise InputError(f"loss.targets=references: task {task_name} has no reference for {missing[:3]}…; "
                             "use loss.targets=chosen")

    def fit(self, ctx: TrainContext) -> EvalPolicy:
        from harness.modules.sft import SFTModule

        exp, prep, labelled = ctx.exp, ctx.prep, ctx.labelled
        tok = prep.tokenizer
        if self.targets == "references":
            missing = [e.id for e in prep.train_examples if not e.reference]
            if missing:
                raise InputError(f"loss.targets=references: task {exp.task.name} has no reference for {missing[:3]}…; "
                                 "use loss.targets=chosen")
            rows = [(p, tok(e.reference, add_special_tokens=False).input_ids + [tok.eos_token_id])
                    for p, e in zip(prep.train_ids, prep.train_examples)]
        elif self.targets == "chosen":
            rows = [(p, g[c]) for p, g, c in zip(labelled.prompt_ids, labelled.responses, labelled.choices)]
        else:
            raise InputError(f"loss.targets={self.targets!r}: expected 'references' or 'chosen'")
        n_val = int(round(len(rows) * exp.train.val_fraction))
        collate = _PackCollator(tok.pad_token_id)
        train = ResumableBatches(rows[: len(rows) - n_val], exp.train.batch_size, collate, seed=_seed(exp, "sft"))
        val = DataLoader(rows[len(rows) - n_val :], batch_size=exp.train.batch_size, collate_fn=collate)
        module = SFTModule(prep.policy, lr=exp.train.lr, weight_decay=exp.train.weight_decay)
        _fit(ctx, exp.run_key, "sft", module, train=train, val=val if n_val else None,
             limit_val_batches=1.0 if n_val else 0)
        return SampledPolicy(module.policy, ctx)
