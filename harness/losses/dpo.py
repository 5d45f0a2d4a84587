"""Direct Preference Optimization (Rafailov et al., 2023, eq. 7)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

Metrics = dict[str, torch.Tensor]


def preference_metrics(
    chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor
) -> Metrics:
    """Detached implicit-reward statistics shared by the pairwise objectives."""
    chosen, rejected = chosen_rewards.detach(), rejected_rewards.detach()
    return {
        "rewards/chosen": chosen.mean(),
        "rewards/rejected": rejected.mean(),
        "rewards/margin": (chosen - rejected).mean(),
        "rewards/accuracy": (chosen > rejected).float().mean(),
    }


def dpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, Metrics]:
    """DPO loss on sequence log-probabilities, each of shape (B,).

    With h = (log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l)):

        L = −(1 − ε)·log σ(β·h) − ε·log σ(−β·h)

    ε = 0 is the DPO paper's loss; ε > 0 is conservative DPO (cDPO, Mitchell 2023), which
    assumes each label is flipped with probability ε. Libraries differ under the same name:
    TRL 1.16's `sigmoid` loss does not read its `label_smoothing`, and its `robust` loss is a
    different one (Chowdhury et al. 2024's unbiased estimator), so compare with care. The
    implicit rewards β·(log π − log π_ref) of chosen and rejected are returned as metrics.
    """
    if beta <= 0:
        raise ValueError(f"dpo_loss: beta must be > 0, got {beta}")
    if not 0.0 <= label_smoothing < 0.5:
        raise ValueError(f"dpo_loss: label_smoothing must be in [0, 0.5), got {label_smoothing}")
    chosen_rewards = beta * (policy_chosen_logps - ref_chosen_logps)  # (B,)
    rejected_rewards = beta * (policy_rejected_logps - ref_rejected_logps)  # (B,)
    logits = chosen_rewards - rejected_rewards  # (B,)
    losses = -(1.0 - label_smoothing) * F.logsigmoid(logits) - label_smoothing * F.logsigmoid(
        -logits
    )
    return losses.mean(), preference_metrics(chosen_rewards, rejected_rewards)
