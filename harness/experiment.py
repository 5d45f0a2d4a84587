"""The experiment's types: its settings, the records that pass between stages, and the
extension points (`Method`, `EvalPolicy`, `ModelSource`). Everything above may import this;
it imports only the library layers below it.

Defaults live in the YAML configs alone (`harness/conf/`): these dataclasses declare the
types and check the values, so a setting is validated where it is defined and has one
default, the config's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import numpy as np

from harness.cache import ArtifactCache, config_hash
from harness.errors import InputError
from harness.labelers.base import Labeler
from harness.losses.bradley_terry import GroupLoss
from harness.models.lora import LoraSettings
from harness.models.reward import POOLINGS
from harness.models.sources import Corpus
from harness.models.trunk import StateTable
from harness.progress import ProgressBar
from harness.tasks.base import Example, Task
from harness.tracking import RunTracker
from harness.typecheck import check_fields, check_value


def check(key: str, ok: bool, expected: str, found: Any) -> None:
    """Refuse a setting: `key: expected …, got …` (the CLI prints it as one line, exit 2)."""
    if not ok:
        raise InputError(f"{key}: expected {expected}, got {found!r}")


@dataclass(frozen=True)
class SamplingSettings:
    """The initial policy's samples that get labelled (`sampling.*`)."""

    temperature: float
    top_p: float
    batch_size: int
    chunk: int  # train prompts per chunk of the sample pool (stages.samples)

    def __post_init__(self) -> None:
        check_fields(self, "sampling")
        check("sampling.chunk", self.chunk >= 1, "an integer ≥ 1", self.chunk)
        check("sampling.temperature", self.temperature > 0, "a temperature > 0", self.temperature)
        check("sampling.top_p", 0 < self.top_p <= 1, "a probability in (0, 1]", self.top_p)
        check("sampling.batch_size", self.batch_size >= 1, "an integer ≥ 1", self.batch_size)


@dataclass(frozen=True)
class LabelSettings:
    """`labels.*`: the label budget `n` (comparisons, one per prompt), `k` responses per
    comparison (4 = the paper's best-of-4), the share of chosen responses kept for
    training (KTO paper's imbalance experiment: KTO loses desirable examples, pairwise
    objectives the pairs built on them), the `rounds` the budget is collected in (1:
    offline, every label on the initial policy's samples; R > 1: online, harness/online.py),
    and the `kind` of label: `comparison` (the best of k) or `binary` (a thumbs up or down on
    each response alone, unpaired: what KTO was made for)."""

    n: int
    k: int
    desirable_fraction: float
    rounds: int = 1
    kind: str = "comparison"

    KINDS: ClassVar[tuple[str, ...]] = ("comparison", "binary")

    def __post_init__(self) -> None:
        check_fields(self, "labels")
        check("labels.kind", self.kind in self.KINDS, f"one of {', '.join(self.KINDS)}", self.kind)
        check("labels.n", self.n >= 1, "an integer ≥ 1", self.n)
        check("labels.k", self.k >= 2, "an integer ≥ 2", self.k)
        check("labels.desirable_fraction", 0 < self.desirable_fraction <= 1, "a fraction in (0, 1]",
              self.desirable_fraction)
        check("labels.rounds", 1 <= self.rounds <= self.n, f"an integer in 1..labels.n ({self.n})", self.rounds)

    def round_bounds(self) -> list[tuple[int, int]]:
        """The budget split across rounds: round r labels prompts [start, stop) of the first n,
        the n prompts cut as evenly as whole prompts allow (the earlier rounds get the extra)."""
        bounds, start = [], 0
        for size in even_shares(self.n, self.rounds):
            bounds.append((start, start + size))
            start += size
        return bounds


def even_shares(total: int, parts: int) -> list[int]:
    """`total` cut into `parts` whole shares as even as they can be, the earlier ones taking the
    remainder (10 in 3: 4, 3, 3): the label budget and PPO's episodes across online rounds."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


INIT_POLICIES = ("base", "sft")


@dataclass(frozen=True)
class InitSettings:
    """The initial policy: the model as loaded (`base`), or that model first fine-tuned on the
    task's references (`sft`, Ziegler et al.'s supervised baseline for summarisation, from which
    their RL starts). The fine-tuned policy is an artifact shared by every run that uses it;
    `n`, `lr`, `epochs` and `batch_size` are its settings (`n` null: every train example)."""

    policy: str
    n: int | None
    lr: float
    epochs: int
    batch_size: int

    # What only init.policy=sft reads: refused when set with init.policy=base.
    SFT_ONLY: ClassVar[tuple[str, ...]] = ("init.n", "init.lr", "init.epochs", "init.batch_size")

    def __post_init__(self) -> None:
        check_fields(self, "init")
        check("init.policy", self.policy in INIT_POLICIES, f"one of {', '.join(INIT_POLICIES)}", self.policy)
        check("init.n", self.n is None or self.n >= 1, "null or an integer ≥ 1", self.n)
        check("init.lr", self.lr > 0, "a learning rate > 0", self.lr)
        check("init.epochs", self.epochs >= 1, "an integer ≥ 1", self.epochs)
        check("init.batch_size", self.batch_size >= 1, "an integer ≥ 1", self.batch_size)


@dataclass(frozen=True)
class TrainSettings:
    """`train.*`: the policy's optimiser and data for the objectives trained by gradient steps
    on labelled data (offline preference objectives, SFT). `checkpoint_every`: training
    batches (PPO: iterations) between resumable checkpoints; `bucket`: batches per length
    bucket (data/resumable.py, also the reward model's), 0 for plain shuffled batches."""

    lr: float
    batch_size: int
    weight_decay: float
    warmup_steps: int
    val_fraction: float
    checkpoint_every: int
    bucket: int

    # The policy's optimiser and data: what a method that does not train the policy on labelled
    # data (PPO, best-of-n, the reward model alone) does not read.
    POLICY_KEYS: ClassVar[tuple[str, ...]] = ("train.lr", "train.batch_size", "train.weight_decay",
                                              "train.warmup_steps", "train.val_fraction")

    def __post_init__(self) -> None:
        check_fields(self, "train")
        check("train.lr", self.lr > 0, "a learning rate > 0", self.lr)
        check("train.batch_size", self.batch_size >= 1, "an integer ≥ 1", self.batch_size)
        check("train.weight_decay", self.weight_decay >= 0, "a value ≥ 0", self.weight_decay)
        check("train.warmup_steps", self.warmup_steps >= 0, "an integer ≥ 0", self.warmup_steps)
        check("train.val_fraction", 0 <= self.val_fraction < 1, "a fraction in [0, 1)", self.val_fraction)
        check("train.checkpoint_every", self.checkpoint_every >= 1, "an integer ≥ 1", self.checkpoint_every)
        check("train.bucket", self.bucket >= 0, "an integer ≥ 0 (0: no length bucketing)", self.bucket)


@dataclass(frozen=True)
class EvalSettings:
    """`eval.*`: held-out prompts (`n_prompts` null: all of the task's), sampled at `temperature`.

    The over-optimisation series during training (eval/series.py): every `every` training
    batches (PPO: iterations; 0: never) the policy answers the first `series_prompts` eval
    prompts; `patience` evaluations in a row with the proxy reward rising and the gold below
    its peak warn that the policy over-optimises the reward model."""

    n_prompts: int | None
    temperature: float
    batch_size: int
    every: int
    series_prompts: int
    patience: int

    # The series' settings: not what the initial policy's eval samples depend on (left out of
    # their cache key); what methods that train no policy do not read.
    SERIES: ClassVar[tuple[str, ...]] = ("every", "series_prompts", "patience")
    SERIES_KEYS: ClassVar[tuple[str, ...]] = ("eval.every", "eval.series_prompts", "eval.patience")

    def __post_init__(self) -> None:
        check_fields(self, "eval")
        check("eval.n_prompts", self.n_prompts is None or self.n_prompts >= 1, "null or an integer ≥ 1", self.n_prompts)
        check("eval.temperature", self.temperature > 0, "a temperature > 0", self.temperature)
        check("eval.batch_size", self.batch_size >= 1, "an integer ≥ 1", self.batch_size)
        check("eval.every", self.every >= 0, "an integer ≥ 0 (0: no series during training)", self.every)
        check("eval.series_prompts", self.series_prompts >= 1, "an integer ≥ 1", self.series_prompts)
        check("eval.patience", self.patience >= 1, "an integer ≥ 1", self.patience)


@dataclass
class RewardModelSettings:
    """`loss.reward_model.*` (conf/loss/reward_model.yaml): the reward model's loss, optimiser,
    pooling (`mean` over the response's tokens or the `last` token), and the top
    `trainable_layers` trunk blocks it trains (0: the head alone, a linear probe)."""

    loss_fn: GroupLoss
    lr: float
    head_lr: float | None  # None: lr
    weight_decay: float
    pooling: str
    batch_size: int
    epochs: int
    trainable_layers: int | None
    val_fraction: float

    def __post_init__(self) -> None:
        key = "loss.reward_model"
        check_fields(self, key)
        check(f"{key}.pooling", self.pooling in POOLINGS, f"one of {', '.join(POOLINGS)}", self.pooling)
        check(f"{key}.lr", self.lr > 0, "a learning rate > 0", self.lr)
        check(f"{key}.head_lr", self.head_lr is None or self.head_lr > 0, "null or a learning rate > 0", self.head_lr)
        check(f"{key}.weight_decay", self.weight_decay >= 0, "a value ≥ 0", self.weight_decay)
        check(f"{key}.epochs", self.epochs >= 1, "an integer ≥ 1", self.epochs)
        check(f"{key}.batch_size", self.batch_size >= 1, "an integer ≥ 1", self.batch_size)
        check(f"{key}.val_fraction", 0 < self.val_fraction < 1, "a fraction in (0, 1)", self.val_fraction)

    def check_budget(self, n: int) -> int:
        """The comparisons held out of `n` to validate the reward model; refused when none would
        be left to train it."""
        n_val = max(1, int(round(n * self.val_fraction)))
        if n - n_val < 1:
            raise InputError(f"labels.n={n}: a reward model needs at least one comparison to train on besides the "
                             f"{n_val} loss.reward_model.val_fraction={self.val_fraction} holds out; raise labels.n")
        return n_val


@dataclass(frozen=True)
class PPOSettings:
    """`loss.method.settings.*` (conf/loss/ppo.yaml): one iteration rolls out `rollout_batch`
    episodes and runs `ppo_epochs` passes over minibatches of `minibatch`. Gradient clipping
    is the trainer's (`trainer.gradient_clip_val`), as for every other objective.

    The implementation details of Ziegler et al.'s code (lm-human-preferences, train_policy.py;
    Huang et al. 2022, "The N implementation details of RLHF with PPO"), defaults in
    conf/loss/ppo.yaml set to theirs:
    - `whiten_rewards`: the per-token rewards (score and KL penalty) of a rollout divided by
      their std before GAE, mean kept (their `whiten_rewards=True`, `whiten(shift_mean=False)`);
    - `whiten_advantages`: advantages normalised to mean 0, std 1 over the rollout (`batch`,
      theirs with one minibatch per batch, and TRL's), over each minibatch (`minibatch`, theirs
      when a batch has several), or `off`;
    - `vf_coef`: the value loss's weight (theirs 0.1);
    - `value_head_init`: `zero` (theirs: the value head is made with scale 0) or `normal`,
      N(0, 1/√(d+1)) as their reward head;
    - `adam_eps`, `weight_decay`: Adam's ε (theirs 1e-5, TF's) and decoupled weight decay
      (theirs none: plain Adam);
    - `unfinished_score`: the score of a response that ends without reaching its stop token
      (`task.stop`, EOS), instead of the reward model's (their `penalty_reward_value=-1`);
      null: the reward model scores every response.
    """

    rollout_batch: int
    minibatch: int
    ppo_epochs: int
    clip_eps: float
    vf_clip_eps: float
    vf_coef: float
    gamma: float
    lam: float
    temperature: float
    max_new_tokens: int
    lr: float
    whiten_rewards: bool
    whiten_advantages: Literal["batch", "minibatch", "off"]
    value_head_init: Literal["zero", "normal"]
    adam_eps: float
    weight_decay: float
    unfinished_score: float | None

    def __post_init__(self) -> None:
        key = "loss.method.settings"
        check_fields(self, key)
        for name in ("rollout_batch", "minibatch", "ppo_epochs", "max_new_tokens"):
            check(f"{key}.{name}", getattr(self, name) >= 1, "an integer ≥ 1", getattr(self, name))
        for name in ("clip_eps", "vf_clip_eps", "temperature", "lr", "adam_eps"):
            check(f"{key}.{name}", getattr(self, name) > 0, "a value > 0", getattr(self, name))
        for name in ("vf_coef", "weight_decay"):
            check(f"{key}.{name}", getattr(self, name) >= 0, "a value ≥ 0", getattr(self, name))
        for name in ("gamma", "lam"):
            check(f"{key}.{name}", 0 <= getattr(self, name) <= 1, "a value in [0, 1]", getattr(self, name))


class ModelSource(Protocol):
    """Where the initial policy comes from (conf/model/*.yaml `source`): `materialize` returns a
    local Hugging Face directory, converting or building it in the cache the first time."""

    def materialize(self, cache_dir: Path, corpus: Corpus | None = None) -> Path: ...

    def inputs(self) -> dict[str, Path]:
        """Local files or directories it reads, by the setting (under `model.`) that names them:
        their content is part of a job's identity."""
        ...


class EvalPolicy:
    """What evaluation needs of a trained policy: its responses to the eval prompts and
    KL(π‖π_ref) per response. Policies tied to a reward model also give that model's scores
    (`proxy_rewards`, logged as eval/proxy_reward); others return None."""

    def responses(self, eval_ids: Sequence[Sequence[int]], progress: ProgressBar) -> list[list[int]]:
        raise NotImplementedError

    def kl(self, eval_ids: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], progress: ProgressBar) -> np.ndarray:
        raise NotImplementedError

    def proxy_rewards(self, eval_ids: Sequence[Sequence[int]], responses: Sequence[Sequence[int]]) -> np.ndarray | None:
        return None

    def curves(self, examples: Sequence[Example], judge: Any) -> dict[str, dict[int, float]]:
        """Metrics along an axis of the method's own, logged after the eval with the axis as the
        step (best-of-n with a pool: bon/* at each n); called after `responses`."""
        return {}

    def trained_modules(self) -> dict[str, Any]:
        """What the run trained, by kind (`policy`: the causal LM; `reward_model`: the reward
        model), logged as MLflow models at the end of the run (harness/logged_models.py). The
        default: nothing (a policy that is the base model, untouched)."""
        return {}


class Method:
    """The train stage of one family of objectives (`loss.method._target_`): it chooses the
    artifact stages it needs (harness/stages.py) and the LightningModule that trains, and
    returns the policy to evaluate.

    `ignores` names the settings it does not read: the CLI refuses them when they are set, so
    no key silently does nothing. `check` looks at the data before any run or artifact exists.
    """

    ignores: ClassVar[tuple[str, ...]] = ()
    # Whether `fit` can be called once per online round (labels.rounds > 1, harness/online.py):
    # it trains `ctx.prep.policy` in place, on `ctx.labelled`, under the checkpoint `ctx.stage`.
    online: ClassVar[bool] = False
    # Whether `fit` trains correctly as one of several processes (trainer.strategy=ddp_fork):
    # its batches shared out and its global statistics all-reduced (harness/distributed.py).
    data_parallel: ClassVar[bool] = True

    def check(self, exp: Experiment, examples: Sequence[Example]) -> None:
        """Refuse (InputError) settings or data (the `labels.n` examples to be labelled) this
        method cannot train on; called by `pipeline.check`, before any run or artifact."""

    def reads_states(self) -> bool:
        """Whether `fit` trains from the boundary states the sampler records (`Labelled.states`):
        only then does sampling record them."""
        return False

    def fit(self, ctx: TrainContext) -> EvalPolicy:
        raise NotImplementedError

    def round_state(self) -> dict[str, Any]:
        """What an online method carries from one round to the next besides the policy's
        weights (tensors and numbers; PPO: its value head and KL coefficient): saved with the
        round (harness/online.py) so that a resumed run continues as an uninterrupted one."""
        return {}

    def load_round_state(self, state: dict[str, Any]) -> None:
        """Take back what `round_state` returned."""


@dataclass
class Experiment:
    """Everything one run needs, as typed objects (built from the Hydra config by the CLI)."""

    task: Task
    model_source: ModelSource
    labeler: Labeler
    method: Method
    labels: LabelSettings
    sampling: SamplingSettings
    train: TrainSettings
    eval: EvalSettings
    init: InitSettings
    trainer_kwargs: dict[str, Any]
    tracker: RunTracker
    cache_dir: Path
    run_dir: Path
    seed: int
    trainable_layers: int | None = None
    lora: LoraSettings = field(default_factory=LoraSettings)  # model.lora: adapters on the policy (r > 0)
    judge: Labeler | None = None  # evaluates; None: the labeler itself
    # The config subtrees that determine each input, used in artifact keys.
    keys: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, str] = field(default_factory=dict)
    config_yaml: str = ""
    # Identity of the job (hash of its config): a rerun finds its MLflow run and checkpoints.
    run_key: str = ""
    resume: bool = True
    system_metrics_interval: float | None = None  # seconds between system/* samples; None: off
    # logger.log_model: the trained policy and reward model logged as MLflow models (what
    # differs from the base model only; harness/logged_models.py).
    log_model: bool = True

    def __post_init__(self) -> None:
        check_value("logger.log_model", self.log_model, bool)

    @property
    def evaluator(self) -> Labeler:
        """Who judges: the judge panel, or the labeler itself."""
        return self.judge or self.labeler


@dataclass
class Prepared:
    """Inputs checked and loaded before any run or artifact is created."""

    train_examples: list[Example]
    eval_examples: list[Example]
    policy_dir: Path
    policy: Any
    tokenizer: Any
    train_ids: list[list[int]]
    eval_ids: list[list[int]]
    imported: Any = None  # labelers.file.FileExamples: labels read from a file instead of the panel
    imported_sha256: str = ""


@dataclass
class Labelled:
    """Best-of-k comparisons ready for training, from the panel or from a file."""

    prompt_ids: list[list[int]]
    responses: list[list[list[int]]]  # [N][k] token ids
    choices: list[int]
    spec: dict[str, Any]  # what determines the responses: keys the reference log-probs
    meta: dict[str, Any]  # provenance and agreement
    artifacts: dict[str, str] = field(default_factory=dict)
    choices_key: str = ""  # hash of what determines the choices too: keys the reward model
    # Σ log π_ref(y | x) of each response as the sampler computed it ([N][k]; the initial policy
    # sampled them and is the reference), None where responses were not sampled here (a file).
    ref_logps: list[list[float]] | None = None
    # The states entering the policy's first trainable block of every (prompt, response), as the
    # sampler recorded them (stages.samples), for methods that read them; None: not recorded.
    states: StateTable | None = None
    # labels.kind=binary: each response's own judgement, 1 (thumbs up) or 0 ([N][k]); `choices`
    # then only fills the shape. None: comparisons.
    ratings: list[list[int]] | None = None

    def __post_init__(self) -> None:
        self.choices_key = self.choices_key or config_hash(self.spec)


@dataclass
class TrainContext:
    """What a method's `fit` gets: the experiment, its loaded inputs and labels, the artifact
    cache, a progress factory, and the initial policy's eval responses."""

    exp: Experiment
    prep: Prepared
    labelled: Labelled
    cache: ArtifactCache
    progress: Callable[[], ProgressBar]
    initial_ids: Sequence[Sequence[int]] = ()
    # The training stage's checkpoint name (online rounds: one per round) and the reference
    # model that reference passes run (None: prep.policy, untrained when they run).
    stage: str = "train"
    reference: Any = None
    round: int = 0  # the online round (labels.rounds > 1) this fit trains
