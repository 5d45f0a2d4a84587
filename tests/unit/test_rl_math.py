"""Reward-model, PPO and advantage math against values worked out by hand."""

import math

import pytest
import torch

from harness.losses.bradley_terry import best_of_k_loss, pairwise_loss
from harness.losses.ppo import ppo_policy_loss, ppo_value_loss
from harness.rl.advantages import gae, kl_penalized_rewards, whiten
from harness.rl.kl_control import AdaptiveKL, FixedKL


def t(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


def test_pairwise_bradley_terry() -> None:
    loss, m = pairwise_loss(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]))
    # mean of −log σ(1) and −log σ(−1) = mean(log(1+e^−1), log(1+e^1))
    assert loss.item() == pytest.approx((math.log1p(math.exp(-1)) + math.log1p(math.exp(1))) / 2)
    assert m["rewards/accuracy"].item() == 0.5


def test_best_of_k_softmax_hand_worked_and_k2_equals_pairwise() -> None:
    loss, m = best_of_k_loss(torch.tensor([[2.0, 0.0, 0.0, 0.0]]), torch.tensor([0]))
    assert loss.item() == pytest.approx(math.log1p(3 * math.exp(-2)))  # −log(e²/(e²+3)) = 0.34075
    assert m["rewards/accuracy"].item() == 1.0 and m["rewards/margin"].item() == pytest.approx(2.0)
    r = torch.tensor([[0.3, -0.4], [1.0, 2.5]])
    k2, _ = best_of_k_loss(r, torch.tensor([0, 1]))
    pw, _ = pairwise_loss(torch.tensor([0.3, 2.5]), torch.tensor([-0.4, 1.0]))
    assert k2.item() == pytest.approx(pw.item())


def test_kl_penalized_rewards_put_the_score_on_the_last_real_token() -> None:
    logps, ref = t([-1.0, -2.0, -0.5]), t([-1.5, -1.0, -0.5])
    full = kl_penalized_rewards(t(3.0)[0:1], logps, ref, t([1.0, 1.0, 1.0]), beta=0.1)
    assert full[0].tolist() == pytest.approx([-0.05, 0.1, 3.0])
    short = kl_penalized_rewards(t(3.0)[0:1], logps, ref, t([1.0, 1.0, 0.0]), beta=0.1)
    assert short[0].tolist() == pytest.approx([-0.05, 3.1, 0.0])


def test_gae_three_step_episode() -> None:
    # γ = 0.9, λ = 0.8, r = (1, 0, 2), V = (0.5, 1, 1.5):
    # δ = (1 + 0.9·1 − 0.5, 0 + 0.9·1.5 − 1, 2 − 1.5) = (1.4, 0.35, 0.5)
    # A₂ = 0.5, A₁ = 0.35 + 0.72·0.5 = 0.71, A₀ = 1.4 + 0.72·0.71 = 1.9112
    adv, ret = gae(t([1.0, 0.0, 2.0]), t([0.5, 1.0, 1.5]), t([1.0, 1.0, 1.0]), gamma=0.9, lam=0.8)
    assert adv[0].tolist() == pytest.approx([1.9112, 0.71, 0.5])
    assert ret[0].tolist() == pytest.approx([2.4112, 1.71, 2.0])


def test_gae_ignores_padding() -> None:
    # Two real tokens; the padded value 7 must not leak into V₂ (which is 0).
    adv, _ = gae(t([1.0, 2.0, 0.0]), t([0.5, 1.0, 7.0]), t([1.0, 1.0, 0.0]), gamma=0.9, lam=0.8)
    assert adv[0].tolist() == pytest.approx([2.12, 1.0, 0.0])


def test_gae_lambda_one_gamma_one_is_return_minus_value() -> None:
    adv, ret = gae(t([1.0, 2.0, 3.0]), t([0.0, 4.0, 1.0]), t([1.0, 1.0, 1.0]), gamma=1.0, lam=1.0)
    assert ret[0].tolist() == pytest.approx([6.0, 5.0, 3.0])


def test_whiten() -> None:
    x, mask = t([1.0, 3.0, 100.0]), t([1.0, 1.0, 0.0])
    w = whiten(x, mask)
    assert w[0].tolist() == pytest.approx([-1.0, 1.0, 0.0], abs=1e-6)
    assert whiten(x, mask, shift_mean=False)[0].tolist() == pytest.approx([1.0, 3.0, 0.0], abs=1e-6)


@pytest.mark.parametrize(
    "ratio,advantage,loss,clipped",
    [
        (1.5, 1.0, -1.2, 1.0),  # clip active above 1+ε for A > 0
        (1.1, 1.0, -1.1, 0.0),  # inside the trust region
        (0.5, -1.0, 0.8, 1.0),  # clip active below 1−ε for A < 0
        (1.5, -1.0, 1.5, 0.0),  # pessimistic side: no clip
        (0.8, 1.0, -0.8, 0.0),  # exactly at 1−ε: inactive
    ],
)
def test_ppo_policy_clip(ratio: float, advantage: float, loss: float, clipped: float) -> None:
    old = t([-1.0])
    new = old + math.log(ratio)
    value, m = ppo_policy_loss(new, old, t([advantage]), t([1.0]), clip_eps=0.2)
    assert value.item() == pytest.approx(loss)
    assert m["clipfrac"].item() == clipped
    assert m["approx_kl"].item() == pytest.approx((ratio - 1) - math.log(ratio))


def test_ppo_policy_loss_masks_padding() -> None:
    old = t([-1.0, -1.0])
    value, _ = ppo_policy_loss(old + math.log(1.1), old, t([1.0, 50.0]), t([1.0, 0.0]))
    assert value.item() == pytest.approx(-1.1)


def test_ppo_value_loss_clip() -> None:
    # V = 2, V_old = 1, R = 3, ε = 0.2: clipped V = 1.2; max(1, 3.24) / 2 = 1.62
    loss, m = ppo_value_loss(t([2.0]), t([1.0]), t([3.0]), t([1.0]), clip_eps=0.2)
    assert loss.item() == pytest.approx(1.62) and m["vf_clipfrac"].item() == 1.0
    loss, m = ppo_value_loss(t([1.1]), t([1.0]), t([3.0]), t([1.0]), clip_eps=0.2)
    assert loss.item() == pytest.approx(0.5 * 1.9**2) and m["vf_clipfrac"].item() == 0.0


def test_adaptive_kl_controller_step_and_clip() -> None:
    c = AdaptiveKL(beta=0.1, target=6.0, horizon=10_000)
    assert c.update(kl=6.6, n_steps=1_000) == pytest.approx(0.1 * 1.01)  # e = 0.1, K_β = 0.1
    c = AdaptiveKL(beta=0.1, target=6.0, horizon=10_000)
    assert c.update(kl=12.0, n_steps=1_000) == pytest.approx(0.1 * 1.02)  # e clipped to 0.2
    c = AdaptiveKL(beta=0.1, target=6.0, horizon=10_000)
    assert c.update(kl=0.0, n_steps=1_000) == pytest.approx(0.1 * 0.98)  # e clipped to −0.2
    c = AdaptiveKL(beta=0.1, target=6.0, horizon=10_000)
    assert c.update(kl=12.0, n_steps=256) == pytest.approx(0.1 * (1 + 0.2 * 0.0256))
    assert FixedKL(0.3).update(kl=100.0, n_steps=10) == 0.3


def test_best_vs_rest_pairwise() -> None:
    from harness.losses.bradley_terry import best_vs_rest_pairwise_loss

    # best reward 1 against 0 and −1: mean(log(1+e^−1), log(1+e^−2))
    loss, m = best_vs_rest_pairwise_loss(torch.tensor([[0.0, 1.0, -1.0]]), torch.tensor([1]))
    assert loss.item() == pytest.approx((math.log1p(math.exp(-1)) + math.log1p(math.exp(-2))) / 2)
    assert m["rewards/margin"].item() == pytest.approx(1.5)
    r = torch.tensor([[0.3, -0.4], [1.0, 2.5]])
    k2, _ = best_vs_rest_pairwise_loss(r, torch.tensor([0, 1]))
    pw, _ = pairwise_loss(torch.tensor([0.3, 2.5]), torch.tensor([-0.4, 1.0]))
    assert k2.item() == pytest.approx(pw.item())


def test_sft_nll_hand_worked() -> None:
    from harness.losses.sft import nll_loss

    # tokens log-probs −1, −2 (real) and −9 (padding): mean NLL 1.5
    loss, m = nll_loss(t([-1.0, -2.0, -9.0]), t([1.0, 1.0, 0.0]))
    assert loss.item() == pytest.approx(1.5)
    assert m["perplexity"].item() == pytest.approx(math.exp(1.5))


def test_kl_controller_factory() -> None:
    from harness.rl.kl_control import kl_controller

    assert isinstance(kl_controller(0.2, None), FixedKL)
    adaptive = kl_controller(0.2, 6.0, 100)
    assert isinstance(adaptive, AdaptiveKL) and adaptive.horizon == 100
