"""DPO loss against values worked out by hand (Rafailov et al. 2023, eq. 7)."""

import math

import pytest
import torch

from harness.losses.dpo import dpo_loss


def t(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float64)


def test_zero_margin_gives_log2() -> None:
    loss, m = dpo_loss(t(-3.0, -1.0), t(-2.0, -5.0), t(-3.0, -1.0), t(-2.0, -5.0), beta=0.5)
    assert loss.item() == pytest.approx(math.log(2))
    assert m["rewards/margin"].item() == 0.0
    assert m["rewards/accuracy"].item() == 0.0  # ties are not wins


def test_hand_worked_value() -> None:
    # h = (−1 − (−1.5)) − (−2 − (−1.5)) = 1;  β = 1:  −log σ(1) = log(1 + e^−1)
    loss, m = dpo_loss(t(-1.0), t(-2.0), t(-1.5), t(-1.5), beta=1.0)
    assert loss.item() == pytest.approx(math.log1p(math.exp(-1.0)), abs=1e-12)  # 0.3132617
    assert m["rewards/chosen"].item() == pytest.approx(0.5)
    assert m["rewards/rejected"].item() == pytest.approx(-0.5)
    assert m["rewards/margin"].item() == pytest.approx(1.0)
    assert m["rewards/accuracy"].item() == 1.0


def test_beta_scales_the_logit() -> None:
    # β = 0.1, h = 1: −log σ(0.1) = log(1 + e^−0.1) = 0.6443967
    loss, _ = dpo_loss(t(-1.0), t(-2.0), t(-1.5), t(-1.5), beta=0.1)
    assert loss.item() == pytest.approx(0.6443966600735709, abs=1e-12)


def test_label_smoothing_hand_worked() -> None:
    # ε = 0.1, βh = 1:  0.9·log(1 + e^−1) + 0.1·log(1 + e^1) = 0.4132617
    loss, _ = dpo_loss(t(-1.0), t(-2.0), t(-1.5), t(-1.5), beta=1.0, label_smoothing=0.1)
    expected = 0.9 * math.log1p(math.exp(-1.0)) + 0.1 * math.log1p(math.exp(1.0))
    assert loss.item() == pytest.approx(expected, abs=1e-12)


def test_beta_to_zero_limit_is_log2() -> None:
    loss, _ = dpo_loss(t(-1.0), t(-20.0), t(-5.0), t(-1.0), beta=1e-9)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)


def test_gradient_raises_chosen_and_lowers_rejected() -> None:
    chosen, rejected = t(-2.0).requires_grad_(), t(-2.0).requires_grad_()
    loss, _ = dpo_loss(chosen, rejected, t(-2.0), t(-2.0), beta=0.5)
    loss.backward()
    # At zero margin dL/dπ_w = −β·σ(0) = −0.25 and dL/dπ_l = +0.25.
    assert chosen.grad.item() == pytest.approx(-0.25)
    assert rejected.grad.item() == pytest.approx(0.25)


def test_metrics_are_detached() -> None:
    chosen = t(-1.0, -2.0).requires_grad_()
    _, m = dpo_loss(chosen, t(-3.0, -1.0), t(-1.0, -1.0), t(-1.0, -1.0), beta=0.1)
    assert all(not v.requires_grad for v in m.values())


@pytest.mark.parametrize("beta", [0.0, -0.1])
def test_rejects_non_positive_beta(beta: float) -> None:
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(t(-1.0), t(-1.0), t(-1.0), t(-1.0), beta=beta)
