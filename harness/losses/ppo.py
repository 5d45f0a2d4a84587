"""PPO's clipped surrogate and clipped value losses (Schulman et al., 2017), token-level.

All tensors are (B, T) over response tokens, with `mask` 1 on real tokens; means are taken
over real tokens only.
"""

from __future__ import annotations

import torch

Metrics = dict[str, torch.Tensor]


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def ppo_policy_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float = 0.2,
) -> tuple[torch.Tensor, Metrics]:
    """L = −E_t[ min(ρ_t·A_t, clip(ρ_t, 1−ε, 1+ε)·A_t) ],  ρ_t = π(a_t|s_t) / π_old(a_t|s_t).

    Metrics: `clipfrac` (share of tokens where the clip is active) and `approx_kl`, the
    estimator E[(ρ − 1) − log ρ] ≥ 0 of KL(π_old‖π) (Schulman's k3).
    """
    log_ratio = logps - old_logps
    ratio = log_ratio.exp()
    unclipped = ratio * advantages
    clipped = ratio.clamp(1.0 - clip_eps, 1.0 + clip_eps) * advantages
    loss = masked_mean(-torch.minimum(unclipped, clipped), mask)
    with torch.no_grad():
        clipfrac = masked_mean((clipped < unclipped).float(), mask)
        approx_kl = masked_mean((ratio - 1.0) - log_ratio, mask)
    return loss, {"clipfrac": clipfrac, "approx_kl": approx_kl}


def ppo_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float = 0.2,
) -> tuple[torch.Tensor, Metrics]:
    """L_V = ½·E_t[ max((V_t − R_t)², (clip(V_t, V_old ± ε) − R_t)²) ]."""
    clipped = old_values + (values - old_values).clamp(-clip_eps, clip_eps)
    loss = 0.5 * masked_mean(torch.maximum((values - returns) ** 2, (clipped - returns) ** 2), mask)
    with torch.no_grad():
        vf_clipfrac = masked_mean(((clipped - returns) ** 2 > (values - returns) ** 2).float(), mask)
    return loss, {"vf_clipfrac": vf_clipfrac}
