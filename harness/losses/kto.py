"""Kahneman–Tversky Optimisation (Ethayarajh et al., 2024, "KTO: Model Alignment as Prospect
Theoretic Optimization", eq. 8).

KTO learns from unpaired binary feedback: each example is one (x, y) labelled desirable or
undesirable, so the batch need not contain pairs. With the implied reward

    r(x, y) = log π(y|x) − log π_ref(y|x)

and a reference point z0 ≈ KL(π ‖ π_ref), the value of an example is

    v(x, y) = λ_D·σ(β·(r − z0))   if y is desirable
              λ_U·σ(β·(z0 − r))   if y is undesirable

and the loss is L = E[λ_y − v(x, y)], i.e. λ_D·(1 − σ(β(r − z0))) or λ_U·(1 − σ(β(z0 − r))),
averaged over the batch. A desirable example lowers its loss by raising r above z0, an
undesirable one by pushing r below it.

The reference point. z0 is estimated per batch from MISMATCHED prompt–response pairs, which
the caller builds (e.g. each prompt x_i with the next example's response y_{i+1}) and scores
under both models:

    z0 = max(0, mean_i [log π(y'_i|x_i) − log π_ref(y'_i|x_i)])

It is clamped at 0 (a KL is non-negative; the batch estimate can be negative) and DETACHED:
the paper does not backpropagate through it, so no gradient flows to the mismatched-pair
log-probs. The paper's estimate is the mean log-ratio on those pairs, exactly what is computed
here; under data parallelism the mean is taken over every process's share of the batch
(`distributed.global_mean`: an all-reduce of sums and counts, as TRL gathers it), so z0 is the global
batch's, not each process's own.

Class weights. λ_D and λ_U reweight the two kinds of example; the paper's rule of thumb is
λ_D·n_D / (λ_U·n_U) ∈ [1, 4/3]. `kto_weights` applies it, e.g. with 1 desirable to 10
undesirable examples and λ_U = 1 it gives λ_D = 10.

Metrics (detached). `rewards/chosen` and `rewards/rejected` are the mean β·r over the
desirable and the undesirable examples, `rewards/margin` their difference, `rewards/accuracy`
the fraction of ALL examples on the right side of z0 (desirable r > z0, undesirable r < z0;
ties are not wins), and `kl/z0` the reference point. A side with no examples in the batch
reports 0 rather than NaN, so logged averages stay finite; the margin is then just the other
side's mean (negated for rejected). Averaging per-batch metrics over batches with very
unequal counts is therefore only approximate.
"""

from __future__ import annotations

import torch

from harness.distributed import global_mean
from harness.losses.dpo import Metrics


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of values[mask]; 0 if mask is empty (see the module docstring)."""
    return (values * mask).sum() / mask.sum().clamp(min=1)


def kto_loss(
    policy_logps: torch.Tensor,
    ref_logps: torch.Tensor,
    desirable: torch.Tensor,
    policy_kl_logps: torch.Tensor,
    ref_kl_logps: torch.Tensor,
    beta: float,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> tuple[torch.Tensor, Metrics]:
    """KTO loss on sequence log-probabilities of shape (B,) (see the module docstring).

    `desirable` is a (B,) bool tensor; `policy_kl_logps` and `ref_kl_logps` are the (B,)
    log-probs of mismatched prompt–response pairs under the policy and the reference. With
    r = log π(y|x) − log π_ref(y|x) and z0 = max(0, mean(policy_kl_logps − ref_kl_logps)),
    detached:

        desirable:    λ_D·(1 − σ(β(r − z0)))
        undesirable:  λ_U·(1 − σ(β(z0 − r)))

    averaged over the batch, with λ_D = desirable_weight and λ_U = undesirable_weight.
    """
    if beta <= 0:
        raise ValueError(f"kto_loss: beta must be > 0, got {beta}")
    if desirable_weight <= 0:
        raise ValueError(f"kto_loss: desirable_weight must be > 0, got {desirable_weight}")
    if undesirable_weight <= 0:
        raise ValueError(f"kto_loss: undesirable_weight must be > 0, got {undesirable_weight}")
    rewards = policy_logps - ref_logps  # (B,)
    z0 = global_mean(policy_kl_logps - ref_kl_logps).clamp(min=0).detach()  # ()
    # 1 − σ(x) = σ(−x), written the stable way round.
    losses = torch.where(
        desirable,
        desirable_weight * torch.sigmoid(beta * (z0 - rewards)),
        undesirable_weight * torch.sigmoid(beta * (rewards - z0)),
    )  # (B,)
    r, undesirable = rewards.detach(), ~desirable
    chosen = _masked_mean(beta * r, desirable)
    rejected = _masked_mean(beta * r, undesirable)
    correct = torch.where(desirable, r > z0, r < z0)
    return losses.mean(), {
        "rewards/chosen": chosen,
        "rewards/rejected": rejected,
        "rewards/margin": chosen - rejected,
        "rewards/accuracy": correct.float().mean(),
        "kl/z0": z0,
    }


def kto_weights(
    n_desirable: int,
    n_undesirable: int,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> tuple[float, float]:
    """(λ_D, λ_U) satisfying the paper's rule of thumb λ_D·n_D / (λ_U·n_U) ∈ [1, 4/3].

    Weights that already satisfy it are returned unchanged; otherwise λ_U is kept and λ_D is
    moved to the nearest bound: λ_D = λ_U·n_U/n_D if the ratio is below 1, and
    λ_D = (4/3)·λ_U·n_U/n_D if it is above 4/3.
    """
    if n_desirable <= 0 or n_undesirable <= 0:
        raise ValueError(
            f"kto_weights: counts must be > 0, got n_desirable={n_desirable}, "
            f"n_undesirable={n_undesirable}"
        )
    if desirable_weight <= 0 or undesirable_weight <= 0:
        raise ValueError(
            f"kto_weights: weights must be > 0, got desirable_weight={desirable_weight}, "
            f"undesirable_weight={undesirable_weight}"
        )
    ratio = desirable_weight * n_desirable / (undesirable_weight * n_undesirable)
    balance = undesirable_weight * n_undesirable / n_desirable  # the λ_D giving ratio 1
    if ratio < 1.0:
        return balance, undesirable_weight
    if ratio > 4.0 / 3.0:
        return 4.0 / 3.0 * balance, undesirable_weight
    return desirable_weight, undesirable_weight
