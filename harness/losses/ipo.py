"""Identity Preference Optimisation (Azar et al., 2023, "A General Theoretical Paradigm to
Understand Learning from Human Preferences", eq. 17)."""

from __future__ import annotations

import torch

from harness.losses.dpo import Metrics, preference_metrics


def ipo_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    beta: float,
) -> tuple[torch.Tensor, Metrics]:
    """IPO loss on sequence log-probabilities, each of shape (B,), with the paper's τ = beta.

    With h = (log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l)):

        L = (h − 1/(2β))²

    a squared regression of the log-likelihood-ratio margin onto 1/(2β), so unlike DPO the
    margin stops growing once it reaches the target (smaller β → larger target margin). At
    π = π_ref, L = (1/(2β))². The implicit rewards β·(log π − log π_ref) are returned as
    metrics. (TRL's "ipo" passes length-averaged log-probs here; that choice is the caller's.)
    """
    if beta <= 0:
        raise ValueError(f"ipo_loss: beta must be > 0, got {beta}")
    chosen_logratios = policy_chosen_logps - ref_chosen_logps  # (B,)
    rejected_logratios = policy_rejected_logps - ref_rejected_logps  # (B,)
    h = chosen_logratios - rejected_logratios  # (B,)
    losses = (h - 1.0 / (2.0 * beta)) ** 2
    return losses.mean(), preference_metrics(beta * chosen_logratios, beta * rejected_logratios)
