"""Supervised fine-tuning: token-level negative log-likelihood of the target responses."""

from __future__ import annotations

import torch


def nll_loss(token_logps: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L = −Σ_t m_t·log π(y_t | x, y_<t) / Σ_t m_t over (B, T) response tokens.

    Averaging over tokens (not sequences) weighs every target token equally.
    """
    n = mask.sum().clamp(min=1)
    loss = -(token_logps * mask).sum() / n
    return loss, {"perplexity": loss.detach().exp()}
