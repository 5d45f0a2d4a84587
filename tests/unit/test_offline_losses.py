"""IPO, SimPO, ORPO and KTO against values worked out by hand (see each module for the paper)."""

import math
from collections.abc import Callable

import pytest
import torch

from harness.losses.dpo import dpo_loss
from harness.losses.ipo import ipo_loss
from harness.losses.kto import kto_loss, kto_weights
from harness.losses.orpo import log_odds, orpo_loss
from harness.losses.simpo import simpo_loss


def t(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float64)


def b(*xs: bool) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.bool)


# ---------------------------------------------------------------- IPO


def test_ipo_hand_worked_batch() -> None:
    # β = 0.5 → target 1/(2β) = 1.
    # ex 1: h = (−1 − (−1.5)) − (−2 − (−1.5)) = 0.5 + 0.5 = 1 → (1 − 1)² = 0
    # ex 2: policy == reference, h = 0         → (0 − 1)² = 1;   mean = 0.5
    loss, m = ipo_loss(t(-1.0, -3.0), t(-2.0, -4.0), t(-1.5, -3.0), t(-1.5, -4.0), beta=0.5)
    assert loss.item() == pytest.approx(0.5, abs=1e-12)
    assert m["rewards/chosen"].item() == pytest.approx(0.125)  # 0.5·mean(0.5, 0)
    assert m["rewards/rejected"].item() == pytest.approx(-0.125)  # 0.5·mean(−0.5, 0)
    assert m["rewards/margin"].item() == pytest.approx(0.25)
    assert m["rewards/accuracy"].item() == 0.5  # the tie is not a win


def test_ipo_policy_equals_reference_gives_target_squared() -> None:
    # h = 0: (0 − 1/(2·0.1))² = 5² = 25
    loss, _ = ipo_loss(t(-3.0, -1.0), t(-2.0, -5.0), t(-3.0, -1.0), t(-2.0, -5.0), beta=0.1)
    assert loss.item() == pytest.approx(25.0, abs=1e-12)


def test_ipo_gradient_below_and_beyond_target() -> None:
    # β = 0.5, target 1. h = 0: dL/dπ_w = 2(h − 1) = −2, dL/dπ_l = +2.
    chosen, rejected = t(-2.0).requires_grad_(), t(-2.0).requires_grad_()
    ipo_loss(chosen, rejected, t(-2.0), t(-2.0), beta=0.5)[0].backward()
    assert chosen.grad.item() == pytest.approx(-2.0)
    assert rejected.grad.item() == pytest.approx(2.0)
    # h = 3, past the target: dL/dπ_w = 2(3 − 1) = +4 — IPO pulls the margin back, DPO would not.
    chosen = t(1.0).requires_grad_()
    ipo_loss(chosen, t(-2.0), t(-2.0), t(-2.0), beta=0.5)[0].backward()
    assert chosen.grad.item() == pytest.approx(4.0)


@pytest.mark.parametrize("beta", [0.0, -0.1])
def test_ipo_rejects_non_positive_beta(beta: float) -> None:
    with pytest.raises(ValueError, match="ipo_loss: beta"):
        ipo_loss(t(-1.0), t(-1.0), t(-1.0), t(-1.0), beta=beta)


# ---------------------------------------------------------------- SimPO


def test_simpo_hand_worked_value() -> None:
    # β = 2, γ = 1: z = 2·(−1) − 2·(−2) − 1 = 1;  −log σ(1) = log(1 + e^−1)
    loss, m = simpo_loss(t(-1.0), t(-2.0), t(-7.0), t(-0.5), beta=2.0, gamma=1.0)
    assert loss.item() == pytest.approx(math.log1p(math.exp(-1.0)), abs=1e-12)  # 0.3132617
    assert m["rewards/chosen"].item() == pytest.approx(-2.0)  # 2·(−1)
    assert m["rewards/rejected"].item() == pytest.approx(-4.0)  # 2·(−2)
    assert m["rewards/margin"].item() == pytest.approx(2.0)
    assert m["rewards/accuracy"].item() == 1.0


def test_simpo_ignores_the_reference() -> None:
    chosen, rejected = t(-1.0, -0.3), t(-2.0, -0.1)
    a, _ = simpo_loss(chosen, rejected, t(-7.0, 0.0), t(-0.5, -9.0), beta=2.0, gamma=0.5)
    c, _ = simpo_loss(chosen, rejected, t(0.0, -3.0), t(-4.0, 0.0), beta=2.0, gamma=0.5)
    assert a.item() == c.item()


def test_simpo_zero_margin() -> None:
    # γ = 0: −log σ(0) = log 2;  γ = 1: −log σ(−1) = log(1 + e) = 1.3132617
    same, zero = t(-1.5, -0.2), t(0.0, 0.0)
    loss, _ = simpo_loss(same, same, zero, zero, beta=2.0, gamma=0.0)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-12)
    loss, _ = simpo_loss(t(-1.5), t(-1.5), t(0.0), t(0.0), beta=2.0, gamma=1.0)
    assert loss.item() == pytest.approx(math.log1p(math.e), abs=1e-12)


def test_simpo_beta_to_zero_limit() -> None:
    # β → 0: −log σ(−γ) = log(1 + e^γ); γ = 0 gives log 2
    loss, _ = simpo_loss(t(-0.1), t(-5.0), t(0.0), t(0.0), beta=1e-9, gamma=0.0)
    assert loss.item() == pytest.approx(math.log(2), abs=1e-6)


def test_simpo_gradient_direction() -> None:
    # zero margin, γ = 0, β = 2: dL/dℓ_w = −β·σ(0) = −1, dL/dℓ_l = +1
    chosen, rejected = t(-1.5).requires_grad_(), t(-1.5).requires_grad_()
    simpo_loss(chosen, rejected, t(0.0), t(0.0), beta=2.0, gamma=0.0)[0].backward()
    assert chosen.grad.item() == pytest.approx(-1.0)
    assert rejected.grad.item() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("beta", "gamma", "bad"), [(0.0, 0.5, "beta"), (-1.0, 0.5, "beta"), (2.0, -0.1, "gamma")]
)
def test_simpo_rejects_invalid_hyperparameters(beta: float, gamma: float, bad: str) -> None:
    with pytest.raises(ValueError, match=f"simpo_loss: {bad}"):
        simpo_loss(t(-1.0), t(-1.0), t(-1.0), t(-1.0), beta=beta, gamma=gamma)


# ---------------------------------------------------------------- ORPO

LN2, LN4, LN5 = math.log(2), math.log(4), math.log(5)


def test_orpo_hand_worked_value() -> None:
    # ℓ_w = log ½ → odds 1, log odds 0;  ℓ_l = log ⅕ → odds ¼, log odds −log 4.
    # log odds ratio = log 4, σ(log 4) = 4/5;  L = log 2 + 0.1·log(5/4) = 0.7154615
    loss, m = orpo_loss(t(-LN2), t(-LN5), t(0.0), t(0.0), beta=0.1)
    assert loss.item() == pytest.approx(LN2 + 0.1 * math.log(1.25), abs=1e-12)
    assert m["nll"].item() == pytest.approx(LN2)  # 0.6931472
    assert m["log_odds_ratio"].item() == pytest.approx(LN4)  # 1.3862944
    assert m["rewards/chosen"].item() == pytest.approx(-0.1 * LN2)
    assert m["rewards/rejected"].item() == pytest.approx(-0.1 * LN5)
    assert m["rewards/margin"].item() == pytest.approx(0.1 * math.log(2.5))  # 0.1·(log 5 − log 2)
    assert m["rewards/accuracy"].item() == 1.0


def test_orpo_hand_worked_gradient() -> None:
    # d log odds/dℓ = 1/(1 − P).  1 − σ(log 4) = 1/5.
    # dL/dℓ_w = −1 − β·(1/5)·1/(1 − ½) = −1 − 0.1·0.2·2 = −1.04
    # dL/dℓ_l = +β·(1/5)·1/(1 − ⅕)      = 0.1·0.2·1.25  = +0.025
    chosen, rejected = t(-LN2).requires_grad_(), t(-LN5).requires_grad_()
    orpo_loss(chosen, rejected, t(0.0), t(0.0), beta=0.1)[0].backward()
    assert chosen.grad.item() == pytest.approx(-1.04, abs=1e-12)
    assert rejected.grad.item() == pytest.approx(0.025, abs=1e-12)


def test_orpo_equal_odds_and_beta_limit() -> None:
    # ℓ_w = ℓ_l = −1: NLL = 1, odds term −log σ(0) = log 2 → L = 1 + 0.5·log 2
    loss, _ = orpo_loss(t(-1.0), t(-1.0), t(0.0), t(0.0), beta=0.5)
    assert loss.item() == pytest.approx(1.0 + 0.5 * LN2, abs=1e-12)
    # β → 0: only the NLL is left, mean(0.7, 2.0) = 1.35
    loss, _ = orpo_loss(t(-0.7, -2.0), t(-0.1, -3.0), t(0.0, 0.0), t(0.0, 0.0), beta=1e-9)
    assert loss.item() == pytest.approx(1.35, abs=1e-8)


def test_orpo_ignores_the_reference_and_log_odds_is_stable_near_zero() -> None:
    a, _ = orpo_loss(t(-0.4), t(-1.2), t(-9.0), t(0.0), beta=0.2)
    c, _ = orpo_loss(t(-0.4), t(-1.2), t(0.0), t(-3.0), beta=0.2)
    assert a.item() == c.item()
    # ℓ = −1e−12: P/(1 − P) ≈ 1/1e−12, log odds ≈ log(1e12) = 27.631021
    assert log_odds(t(-1e-12)).item() == pytest.approx(12 * math.log(10), rel=1e-9)


@pytest.mark.parametrize("beta", [0.0, -0.1])
def test_orpo_rejects_non_positive_beta(beta: float) -> None:
    with pytest.raises(ValueError, match="orpo_loss: beta"):
        orpo_loss(t(-1.0), t(-1.0), t(-1.0), t(-1.0), beta=beta)


# ---------------------------------------------------------------- KTO

LN3 = math.log(3)
# Mismatched pairs: log-ratios 1 and 0 → z0 = mean(1, 0) = 0.5.
KL_POLICY, KL_REF = t(-1.0, -2.0), t(-2.0, -2.0)


def test_kto_hand_worked_value() -> None:
    # β = 1, z0 = 0.5. Desirable r = 0.5 + log 3, undesirable r = 0.5 − log 3.
    # desirable:   λ_D·(1 − σ(log 3)) = 1·¼ = 0.25
    # undesirable: λ_U·(1 − σ(log 3)) = 2·¼ = 0.5;   mean = 0.375
    policy = t(-1.5 + LN3, -1.5 - LN3)
    loss, m = kto_loss(policy, t(-2.0, -2.0), b(True, False), KL_POLICY, KL_REF, beta=1.0,
                       desirable_weight=1.0, undesirable_weight=2.0)
    assert loss.item() == pytest.approx(0.375, abs=1e-12)
    assert m["kl/z0"].item() == pytest.approx(0.5)
    assert m["rewards/chosen"].item() == pytest.approx(0.5 + LN3)  # 1.5986123
    assert m["rewards/rejected"].item() == pytest.approx(0.5 - LN3)  # −0.5986123
    assert m["rewards/margin"].item() == pytest.approx(2 * LN3)  # 2.1972246
    assert m["rewards/accuracy"].item() == 1.0


def test_kto_hand_worked_gradient() -> None:
    # Same point. σ(x)(1 − σ(x)) at x = ±log 3 is ¼·¾ = 3/16; batch mean divides by 2.
    # desirable:   dL/dπ = −λ_D·β·3/16 / 2 = −3/32
    # undesirable: dL/dπ = +λ_U·β·3/16 / 2 = +3/16
    policy = t(-1.5 + LN3, -1.5 - LN3).requires_grad_()
    kto_loss(policy, t(-2.0, -2.0), b(True, False), KL_POLICY, KL_REF, beta=1.0,
             undesirable_weight=2.0)[0].backward()
    assert policy.grad.tolist() == pytest.approx([-3 / 32, 3 / 16], abs=1e-12)


def test_kto_policy_equals_reference_and_beta_limit() -> None:
    # r = 0, z0 = 0: each example contributes λ_y·σ(0) = λ_y/2 → (1/2 + 3/2)/2 = 1
    same = t(-1.0, -4.0)
    loss, m = kto_loss(same, same, b(True, False), same, same, beta=0.1, undesirable_weight=3.0)
    assert loss.item() == pytest.approx(1.0, abs=1e-12)
    assert m["rewards/accuracy"].item() == 0.0  # r = z0 is on neither side
    # β → 0: λ_y/2 whatever the rewards
    loss, _ = kto_loss(t(3.0, -9.0), t(-1.0, -1.0), b(True, False), KL_POLICY, KL_REF, beta=1e-9,
                       undesirable_weight=3.0)
    assert loss.item() == pytest.approx(1.0, abs=1e-8)


def test_kto_z0_is_clamped_at_zero() -> None:
    # Mismatched log-ratios −2, −2 → mean −2 → z0 = max(0, −2) = 0, same loss as with KL = 0.
    policy, ref, desirable = t(-1.0, -2.0), t(-1.5, -1.0), b(True, False)
    loss, m = kto_loss(policy, ref, desirable, t(-3.0, -3.0), t(-1.0, -1.0), beta=0.5)
    zero, _ = kto_loss(policy, ref, desirable, t(-1.0, -1.0), t(-1.0, -1.0), beta=0.5)
    assert m["kl/z0"].item() == 0.0
    assert loss.item() == zero.item()
    # Hand value: r = (0.5, −1), z0 = 0: (σ(−0.25) + σ(−0.5))/2 = (0.4378235 + 0.3775407)/2
    expected = (1 / (1 + math.exp(0.25)) + 1 / (1 + math.exp(0.5))) / 2  # 0.4076821
    assert loss.item() == pytest.approx(expected, abs=1e-12)


def test_kto_z0_is_detached() -> None:
    kl_policy = KL_POLICY.clone().requires_grad_()
    policy = t(-1.0, -2.0).requires_grad_()
    kto_loss(policy, t(-1.5, -1.0), b(True, False), kl_policy, KL_REF, beta=1.0)[0].backward()
    assert kl_policy.grad is None or torch.all(kl_policy.grad == 0)
    assert policy.grad is not None


def test_kto_gradient_direction_and_accuracy() -> None:
    # z0 = 0.5. Desirable r: 1 (> z0, right), 0 (< z0, wrong); undesirable r: −1 (right), 2 (wrong).
    policy = t(-1.0, -2.0, -3.0, 0.0).requires_grad_()
    ref = t(-2.0, -2.0, -2.0, -2.0)
    loss, m = kto_loss(policy, ref, b(True, True, False, False), KL_POLICY, KL_REF, beta=0.5)
    loss.backward()
    assert (policy.grad[:2] < 0).all() and (policy.grad[2:] > 0).all()
    assert m["rewards/accuracy"].item() == 0.5  # 2 of 4
    assert m["rewards/chosen"].item() == pytest.approx(0.25)  # 0.5·mean(1, 0)
    assert m["rewards/rejected"].item() == pytest.approx(0.25)  # 0.5·mean(−1, 2)


def test_kto_empty_side_reports_zero_not_nan() -> None:
    # All desirable: r = (1, 3), β = 1 → rewards/chosen = 2; no undesirable → rewards/rejected = 0.
    _, m = kto_loss(t(0.0, 1.0), t(-1.0, -2.0), b(True, True), KL_POLICY, KL_REF, beta=1.0)
    assert m["rewards/chosen"].item() == pytest.approx(2.0)
    assert m["rewards/rejected"].item() == 0.0
    assert m["rewards/margin"].item() == pytest.approx(2.0)
    assert all(torch.isfinite(v) for v in m.values())


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [({"beta": 0.0}, "beta"), ({"beta": -1.0}, "beta"),
     ({"beta": 0.1, "desirable_weight": 0.0}, "desirable_weight"),
     ({"beta": 0.1, "undesirable_weight": -1.0}, "undesirable_weight")],
)
def test_kto_rejects_invalid_hyperparameters(kwargs: dict[str, float], bad: str) -> None:
    with pytest.raises(ValueError, match=f"kto_loss: {bad}"):
        kto_loss(t(-1.0), t(-1.0), b(True), t(-1.0), t(-1.0), **kwargs)


def test_kto_weights_rule_of_thumb() -> None:
    # 1 desirable : 10 undesirable, λ = (1, 1): ratio 1·1/(1·10) = 0.1 < 1 → λ_D = 1·10/1 = 10
    assert kto_weights(1, 10) == pytest.approx((10.0, 1.0))
    # 10 : 1 → ratio 10 > 4/3 → λ_D = (4/3)·1·1/10 = 0.1333333
    assert kto_weights(10, 1) == pytest.approx((4 / 30, 1.0))
    # 3 : 3 with λ_D = 2 → ratio 2 > 4/3 → λ_D = (4/3)·1·3/3 = 4/3
    assert kto_weights(3, 3, desirable_weight=2.0) == pytest.approx((4 / 3, 1.0))
    # Already balanced (ratio 1, and 1.2·5/(1·5) = 1.2 ∈ [1, 4/3]): returned unchanged.
    assert kto_weights(5, 5) == (1.0, 1.0)
    assert kto_weights(5, 5, desirable_weight=1.2) == (1.2, 1.0)
    # 1 : 10 with λ_U = 0.5 already given λ_D = 6: ratio 6/5 = 1.2 → unchanged
    assert kto_weights(1, 10, desirable_weight=6.0, undesirable_weight=0.5) == (6.0, 0.5)


@pytest.mark.parametrize(
    "args", [(0, 10, 1.0, 1.0), (5, -1, 1.0, 1.0), (5, 5, 0.0, 1.0), (5, 5, 1.0, -2.0)]
)
def test_kto_weights_rejects_invalid_inputs(args: tuple[int, int, float, float]) -> None:
    with pytest.raises(ValueError, match="kto_weights"):
        kto_weights(*args)


# ---------------------------------------------------------------- all losses

PairwiseLoss = Callable[..., tuple[torch.Tensor, dict[str, torch.Tensor]]]
PAIRWISE: dict[str, PairwiseLoss] = {
    "dpo": lambda *a: dpo_loss(*a, beta=0.5),
    "ipo": lambda *a: ipo_loss(*a, beta=0.5),
    "simpo": lambda *a: simpo_loss(*a, beta=2.0, gamma=0.5),
    "orpo": lambda *a: orpo_loss(*a, beta=0.5),
}


@pytest.mark.parametrize("name", PAIRWISE)
def test_toy_training_raises_chosen_over_rejected(name: str) -> None:
    # A "policy" over 5 tokens; chosen = token 0, rejected = token 1, one-token responses
    # (so sequence and per-token-average log-probs coincide).
    logits = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    ref = torch.log_softmax(logits, 0).detach()
    opt = torch.optim.SGD([logits], lr=0.5)
    for _ in range(5):
        logp = torch.log_softmax(logits, 0)
        loss, _ = PAIRWISE[name](logp[:1], logp[1:2], ref[:1], ref[1:2])
        opt.zero_grad()
        loss.backward()
        opt.step()
    logp = torch.log_softmax(logits, 0).detach()
    assert logp[0] - logp[1] > 0.1  # started at 0


def test_toy_training_kto() -> None:
    # Desirable token 0, undesirable token 1; tokens 2, 3 stand in for mismatched pairs.
    logits = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    ref = torch.log_softmax(logits, 0).detach()
    opt = torch.optim.SGD([logits], lr=0.5)
    for _ in range(5):
        logp = torch.log_softmax(logits, 0)
        loss, _ = kto_loss(logp[:2], ref[:2], b(True, False), logp[2:4], ref[2:4], beta=0.5)
        opt.zero_grad()
        loss.backward()
        opt.step()
    logp = torch.log_softmax(logits, 0).detach()
    assert logp[0] - logp[1] > 0.1


@pytest.mark.parametrize("name", PAIRWISE)
def test_pairwise_metrics_are_detached(name: str) -> None:
    chosen = t(-1.0, -2.0).requires_grad_()
    _, m = PAIRWISE[name](chosen, t(-3.0, -1.0), t(-1.0, -1.0), t(-1.0, -1.0))
    assert all(not v.requires_grad for v in m.values())


def test_kto_metrics_are_detached() -> None:
    policy = t(-1.0, -2.0).requires_grad_()
    kl_policy = KL_POLICY.clone().requires_grad_()
    _, m = kto_loss(policy, t(-1.0, -1.0), b(True, False), kl_policy, KL_REF, beta=0.1)
    assert all(not v.requires_grad for v in m.values())


def test_orpo_gradient_is_finite_where_a_response_is_certain() -> None:
    """ℓ_w = 0 (every token of the chosen response certain): log(1 − P) = −∞ would give a NaN
    gradient; capped at −ε, the loss and its gradient are finite, and the chosen response's
    odds term no longer pushes (its NLL term still does, with gradient −1/B)."""
    chosen = torch.tensor([0.0, -0.5], requires_grad=True)
    rejected = torch.tensor([-1.0, -1.0], requires_grad=True)
    loss, _ = orpo_loss(chosen, rejected, torch.zeros(2), torch.zeros(2), beta=0.1)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(chosen.grad).all() and torch.isfinite(rejected.grad).all()
    assert chosen.grad[0].item() == pytest.approx(-0.5, abs=1e-6)  # d(−ℓ_w / 2)/dℓ_w; the odds term is capped
    # Below the cap nothing changes: log odds(−0.5) = −0.5 − log(1 − e^−0.5), by hand.
    assert log_odds(torch.tensor([-0.5])).item() == pytest.approx(-0.5 - math.log(1 - math.exp(-0.5)), rel=1e-6)


def test_length_normalised_log_probs_are_per_token_averages_for_policy_and_cached_reference() -> None:
    """With length_normalized, Σ_t log π(y_t) and the cached reference sum are both divided by
    the response's token count (padding excluded): [−1, −2, pad] → −1.5, cached −6 → −3."""
    from types import SimpleNamespace

    from harness.data.collate import TokenBatch
    from harness.modules.offline_preference import OfflinePreferenceModule

    tokens = TokenBatch(input_ids=torch.zeros(1, 4, dtype=torch.long),
                        attention_mask=torch.tensor([[1, 1, 1, 0]]), response_len=3)
    module = SimpleNamespace(length_normalized=True, _reference=())
    token_logps = torch.tensor([[-1.0, -2.0, 0.0]])
    assert OfflinePreferenceModule._total(module, token_logps, tokens).item() == pytest.approx(-1.5)
    assert OfflinePreferenceModule._reference_logps(module, tokens, torch.tensor([-6.0])).item() == pytest.approx(-3.0)
    module.length_normalized = False
    assert OfflinePreferenceModule._total(module, token_logps, tokens).item() == pytest.approx(-3.0)
