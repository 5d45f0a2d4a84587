"""Simple Preference Optimisation (Meng et al., 2024, "SimPO: Simple Preference Optimization
with a Reference-Free Reward", eq. 6)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.losses.dpo import Metrics, preference_metrics


def simpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
    gamma: float,
) -> tuple[torch.Tensor, Metrics]:
    """SimPO loss on per-token AVERAGE log-probabilities, each of shape (B,).

    The caller length-normalises: pass (1/|y|)·log π(y|x), not the sequence sum. With
    that, the reward is r(y) = β·avg log π(y) and

        L = −log σ(β·avg log π(y_w) − β·avg log π(y_l) − γ)

    γ ≥ 0 is the target reward margin in reward units: TRL's `simpo_gamma` (CPOConfig with
    loss_type="simpo"). The SimPO authors' trainer and HALOs take `gamma_beta_ratio`, which
    is γ/β: their gamma_beta_ratio=0.5 at β=2 is γ=1 here.
    SimPO is reference-free: `ref_chosen_logps` and `ref_rejected_logps` are accepted only
    so all pairwise losses share one signature, and are ignored. At zero margin the loss is
    log(1 + e^γ), which is log 2 for γ = 0. The rewards β·avg log π are returned as metrics.
    """
    del ref_chosen_logps, ref_rejected_logps  # reference-free
    if beta <= 0:
        raise ValueError(f"simpo_loss: beta must be > 0, got {beta}")
    if gamma < 0:
        raise ValueError(f"simpo_loss: gamma must be >= 0, got {gamma}")
    chosen_rewards = beta * policy_chosen_logps  # (B,)
    rejected_rewards = beta * policy_rejected_logps  # (B,)
    losses = -F.logsigmoid(chosen_rewards - rejected_rewards - gamma)
    return losses.mean(), preference_metrics(chosen_rewards, rejected_rewards)
