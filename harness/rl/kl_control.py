"""KL coefficient controllers (Ziegler et al., 2019, §2.2)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FixedKL:
    """β stays at its initial value."""

    beta: float

    def update(self, kl: float, n_steps: int) -> float:
        return self.beta


@dataclass
class AdaptiveKL:
    """The paper's proportional controller towards a target KL.

        e_t = clip((KL_t − KL_target) / KL_target, −0.2, 0.2)
        β_{t+1} = β_t · (1 + K_β · e_t),   K_β = n_steps / horizon

    `n_steps` is the number of episodes in the batch just used, so β moves at the same
    speed per episode whatever the batch size; with n_steps / horizon = 0.1 this is the
    paper's K_β = 0.1.
    """

    beta: float
    target: float
    horizon: float

    def __post_init__(self) -> None:
        if self.target <= 0 or self.horizon <= 0:
            raise ValueError(f"AdaptiveKL: target and horizon must be > 0, got {self.target}, {self.horizon}")

    def update(self, kl: float, n_steps: int) -> float:
        error = min(max((kl - self.target) / self.target, -0.2), 0.2)
        self.beta *= 1.0 + error * n_steps / self.horizon
        return self.beta


def kl_controller(beta: float, target: float | None = None, horizon: float = 10_000) -> FixedKL | AdaptiveKL:
    """Adaptive towards `target` when one is given, else fixed at `beta` (`loss.kl.target=null`)."""
    return FixedKL(beta) if target is None else AdaptiveKL(beta, target, horizon)
