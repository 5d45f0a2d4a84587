"""Per-token rewards with a KL penalty, GAE and whitening (Ziegler et al., 2019, §2.2).

Tensors are (B, T) over response tokens, right-padded, `mask` 1 on real tokens.
"""

from __future__ import annotations

import torch


def kl_penalized_rewards(
    scores: torch.Tensor, logps: torch.Tensor, ref_logps: torch.Tensor, mask: torch.Tensor, beta: float
) -> torch.Tensor:
    """r_t = −β·(log π(a_t|s_t) − log π_ref(a_t|s_t)), plus the score R(x, y) at the last token.

    Every row needs a response token to carry its score: a row without one (mask all zero)
    would put R on a padded position, which GAE masks out, and the episode would vanish from
    training without a trace. It is refused instead (the sampler always returns at least one
    token: its stop, or the first of `max_new_tokens` ≥ 1).
    """
    lengths = mask.sum(1)
    if bool((lengths == 0).any()):
        rows = (lengths == 0).nonzero().flatten().tolist()
        raise ValueError(f"kl_penalized_rewards: rows {rows} have no response token to carry their score")
    rewards = -beta * (logps - ref_logps) * mask  # (B, T)
    last = lengths.long() - 1  # (B,) index of each row's last real token
    return rewards.scatter_add(1, last[:, None], scores[:, None].to(rewards.dtype))


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al., 2016).

        δ_t = r_t + γ·V_{t+1} − V_t   (V = 0 after the last real token)
        A_t = δ_t + γλ·A_{t+1},       returns R_t = A_t + V_t
    """
    values = values * mask
    advantages = torch.zeros_like(rewards)
    next_adv = torch.zeros_like(rewards[:, 0])
    next_value = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        next_adv = (delta + gamma * lam * next_adv) * mask[:, t]
        advantages[:, t] = next_adv
        next_value = values[:, t]
    return advantages, advantages + values


def whiten(x: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """(x − mean) / std over real tokens; with shift_mean=False the mean is added back."""
    n = mask.sum().clamp(min=1)
    mean = (x * mask).sum() / n
    var = (((x - mean) * mask) ** 2).sum() / n
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask
