"""Reward-model losses on scalar rewards (Ziegler et al., 2019, eq. 1; Bradley & Terry, 1952)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

Metrics = dict[str, torch.Tensor]
# A group loss: (B, k) rewards and (B,) chosen indices -> (loss, metrics).
GroupLoss = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, Metrics]]


def pairwise_loss(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> tuple[torch.Tensor, Metrics]:
    """Bradley–Terry loss on rewards of shape (B,): L = −log σ(r_w − r_l)."""
    margin = chosen_rewards - rejected_rewards  # (B,)
    loss = -F.logsigmoid(margin).mean()
    return loss, {"rewards/accuracy": (margin.detach() > 0).float().mean(), "rewards/margin": margin.detach().mean()}


def best_of_k_loss(rewards: torch.Tensor, choice: torch.Tensor) -> tuple[torch.Tensor, Metrics]:
    """The paper's k-way softmax loss on rewards (B, k) and chosen indices (B,).

        L = −log [ exp r_b / Σ_i exp r_i ]

    For k = 2 it equals `pairwise_loss`. Accuracy: the chosen response has the top reward.
    """
    loss = F.cross_entropy(rewards, choice)
    detached = rewards.detach()
    best = detached.gather(1, choice[:, None]).squeeze(1)  # (B,)
    others = (detached.sum(1) - best) / (rewards.shape[1] - 1)
    return loss, {
        "rewards/accuracy": (detached.argmax(1) == choice).float().mean(),
        "rewards/margin": (best - others).mean(),
    }


def best_vs_rest_pairwise_loss(rewards: torch.Tensor, choice: torch.Tensor) -> tuple[torch.Tensor, Metrics]:
    """Pairwise Bradley–Terry on best-of-k labels: the best against each of the k−1 others.

        L = mean_{j ≠ b} −log σ(r_b − r_j)

    For k = 2 it equals `pairwise_loss`. For k > 2 it is not Ziegler et al.'s loss, which
    is the softmax over all k rewards (`best_of_k_loss`): it weighs each rival separately.
    """
    best = rewards.gather(1, choice[:, None])  # (B, 1)
    others = torch.ones_like(rewards, dtype=torch.bool).scatter(1, choice[:, None], False)
    margins = (best - rewards)[others].view(rewards.shape[0], -1)  # (B, k−1)
    loss = -F.logsigmoid(margins).mean()
    detached = rewards.detach()
    return loss, {
        "rewards/accuracy": (detached.argmax(1) == choice).float().mean(),
        "rewards/margin": margins.detach().mean(),
    }
