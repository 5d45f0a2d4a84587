"""Odds Ratio Preference Optimisation (Hong et al., 2024, "ORPO: Monolithic Preference
Optimization without Reference Model", eqs. 6–7)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from harness.losses.dpo import Metrics, preference_metrics


def log_odds(avg_logps: torch.Tensor) -> torch.Tensor:
    """log odds(y) = log [P / (1 − P)] = ℓ − log(1 − e^ℓ) for ℓ = avg log π(y) < 0.

    Computed as ℓ − log(−expm1(ℓ)), which stays accurate as ℓ → 0⁻ (P → 1). At ℓ = 0 (every
    token certain, which float32 log-softmax reaches) log(1 − P) is −∞: the loss stays finite
    but its gradient is ∞·0 = NaN (TRL's ORPO shares this). ℓ inside the log is therefore
    capped at −ε (the dtype's machine epsilon): the same value wherever ℓ < −ε, and no
    gradient through 1 − P where the response is already certain.
    """
    eps = torch.finfo(avg_logps.dtype).eps
    return avg_logps - torch.log(-torch.expm1(avg_logps.clamp(max=-eps)))


def orpo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, Metrics]:
    """ORPO loss on per-token AVERAGE log-probabilities ℓ = (1/|y|)·log π(y|x), shape (B,).

    The caller length-normalises; every ℓ must be < 0. With the paper's P = exp(ℓ) and
    odds(y) = P / (1 − P):

        L = −ℓ_w + β·(−log σ(log odds(y_w) − log odds(y_l)))

    i.e. the SFT negative log-likelihood of the chosen response plus β times the odds-ratio
    term; β plays the paper's λ. ORPO is reference-free: `ref_chosen_logps` and
    `ref_rejected_logps` are accepted only for the common pairwise signature, and ignored.
    As β → 0 the loss tends to the NLL; at equal odds it is NLL + β·log 2.

    Metrics: `nll` (mean −ℓ_w), `log_odds_ratio` (mean log odds(y_w) − log odds(y_l)), and
    rewards/* for the rewards β·ℓ, as TRL reports them.
    """
    del ref_chosen_logps, ref_rejected_logps  # reference-free
    if beta <= 0:
        raise ValueError(f"orpo_loss: beta must be > 0, got {beta}")
    nll = -policy_chosen_logps  # (B,)
    log_odds_ratio = log_odds(policy_chosen_logps) - log_odds(policy_rejected_logps)  # (B,)
    losses = nll - beta * F.logsigmoid(log_odds_ratio)
    metrics = preference_metrics(beta * policy_chosen_logps, beta * policy_rejected_logps)
    metrics["nll"] = nll.detach().mean()
    metrics["log_odds_ratio"] = log_odds_ratio.detach().mean()
    return losses.mean(), metrics
