"""The implementation details of Ziegler et al.'s PPO (issue 17; ARCHITECTURE.md's table):
where a response stops, the penalty for one that never does, reward and advantage whitening,
the value head's initialisation, Adam's ε, dropout and the sampling temperature."""

from pathlib import Path

import lightning as L
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from harness.data.collate import pack
from harness.data.resumable import ResumableBatches
from harness.losses import ppo as ppo_losses
from harness.models.forward import batched_logps, forward_response, without_dropout
from harness.models.loading import load_causal_lm
from harness.models.reward import RewardModel
from harness.models.sampling import Stop, generate_responses, sample_rollout, stop_rule, stop_tokens
from harness.models.sources import TinyRandom
from harness.modules import ppo as ppo_module
from harness.modules.ppo import PPOModule
from harness.rl.advantages import kl_penalized_rewards, whiten
from harness.rl.kl_control import FixedKL
from tests.unit.test_rollout import ppo_settings

CORPUS = ["the film was good. the food was bad. it rained."] * 20 + ["a quiet year in the old town. we left."] * 20
EOS = 0


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return TinyRandom(vocab_size=300).materialize(tmp_path_factory.mktemp("cache"), lambda: CORPUS)


@pytest.fixture(scope="module")
def tiny(tiny_dir: Path):  # noqa: ANN201
    return load_causal_lm(tiny_dir)


# --- where a response stops ------------------------------------------------------------------

def test_stop_cuts_at_eos_anywhere_and_at_a_stop_token_from_position_after() -> None:
    stop = Stop(eos=EOS, ids=frozenset({7}), after=2)
    assert stop.cut([5, 7, 6, 7, 9]) == [5, 7, 6, 7]  # the 7 at position 1 is before `after`
    assert stop.cut([5, EOS, 7, 7]) == [5, EOS]  # EOS ends a response at any position
    assert stop.cut([5, 6, 8]) == [5, 6, 8]  # no stop: the length limit ended it
    assert stop.finished([5, 7, 6, 7]) and stop.finished([5, EOS])
    assert not stop.finished([5, 6, 8]) and not stop.finished([5, 7]) and not stop.finished([])
    assert Stop(eos=EOS).cut([3, 7, EOS, 4]) == [3, 7, EOS]  # EOS only: today's behaviour


def test_stop_tokens_are_the_tokens_ending_in_the_stop_text(tiny) -> None:  # noqa: ANN001
    _, tok = tiny
    ids = stop_tokens(tok, ".")
    assert ids and all(tok.decode([i]).rstrip().endswith(".") for i in ids)
    assert tok.eos_token_id not in ids
    assert stop_rule(tok).ids == frozenset()  # no stop text: EOS only


def test_sampling_with_a_stop_gives_the_prefixes_of_the_same_seeded_samples(tiny) -> None:  # noqa: ANN001
    model, tok = tiny
    prompts = [tok(t, add_special_tokens=False).input_ids for t in ("the film was", "a quiet", "we")]
    # A third of the vocabulary stops from position 2: some responses are cut.
    stop = Stop(eos=tok.eos_token_id, ids=frozenset(range(1, 300, 3)), after=2)
    free = generate_responses(model, tok, prompts, max_new_tokens=12, temperature=1.0, k=4, seed=5)
    cut = generate_responses(model, tok, prompts, max_new_tokens=12, temperature=1.0, k=4, seed=5, stop=stop)
    assert cut == [[stop.cut(r) for r in group] for group in free]
    assert any(len(c) < len(f) for gc, gf in zip(cut, free) for c, f in zip(gc, gf))  # some were cut
    rollout = sample_rollout(model, tok, prompts, max_new_tokens=12, temperature=1.0, seed=5, stop=stop)
    assert all(stop.cut(r) == r for r in rollout.responses)
    assert rollout.logps.shape[1] == max(len(r) for r in rollout.responses)  # log-probs of the cut tokens only


def test_a_row_without_a_response_token_is_refused_not_dropped() -> None:
    logps = torch.zeros(2, 3)
    mask = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match=r"rows \[1\] have no response token"):
        kl_penalized_rewards(torch.tensor([1.0, 2.0]), logps, logps, mask, beta=0.1)


# --- PPO's rollout: penalty and whitening ----------------------------------------------------

def _module(tiny_dir: Path, tmp_path: Path, stop: Stop | None = None, **settings) -> PPOModule:  # noqa: ANN003
    policy, tok = load_causal_lm(tiny_dir)
    reference, _ = load_causal_lm(tiny_dir)
    rm = RewardModel.from_policy_dir(tiny_dir)
    torch.manual_seed(0)
    torch.nn.init.normal_(rm.head.weight)
    prompts = [tok(t, add_special_tokens=False).input_ids for t in ("the film was", "a quiet year", "the old", "we")]
    return PPOModule(policy, reference, rm, tok, prompts, FixedKL(0.1), ppo_settings(**settings), seed=1, stop=stop)


def test_unfinished_responses_score_the_penalty_and_finished_ones_the_reward_model(tiny_dir: Path,
                                                                                   tmp_path: Path) -> None:
    _, tok = load_causal_lm(tiny_dir)
    # A seventh of the vocabulary ends a response from position 3: some rollouts finish, some do not.
    stop = Stop(eos=tok.eos_token_id, ids=frozenset(range(0, 300, 7)), after=3)
    module = _module(tiny_dir, tmp_path, stop, unfinished_score=-7.0, max_new_tokens=6)
    ro = module.rollout(list(range(4)) * 4)
    finished = ro["finished"].bool()
    assert finished.any() and not finished.all()
    with torch.no_grad():
        rm_scores = module._frozen[1](ro["tokens"])
    torch.testing.assert_close(ro["scores"], torch.where(finished, rm_scores, torch.full_like(rm_scores, -7.0)))
    plain = _module(tiny_dir, tmp_path, stop, unfinished_score=None, max_new_tokens=6).rollout(list(range(4)) * 4)
    torch.testing.assert_close(plain["scores"], rm_scores)  # null: the reward model scores every response


@pytest.mark.parametrize("whiten_rewards", [True, False])
def test_rewards_are_divided_by_their_std_before_gae_mean_kept(tiny_dir: Path, tmp_path: Path,
                                                                whiten_rewards: bool) -> None:
    module = _module(tiny_dir, tmp_path, whiten_rewards=whiten_rewards, whiten_advantages="off")
    ro = module.rollout(list(range(4)) * 2)
    mask = ro["mask"]
    raw = kl_penalized_rewards(ro["scores"], ro["old_logps"], ro["ref_logps"], mask, module.kl.beta)
    want = whiten(raw, mask, shift_mean=False) if whiten_rewards else raw
    torch.testing.assert_close(ro["rewards"], want)
    mean = lambda x: float((x * mask).sum() / mask.sum())  # noqa: E731
    assert mean(ro["rewards"]) == pytest.approx(mean(raw), abs=1e-5)  # the mean is not shifted
    if whiten_rewards:
        assert mean((ro["rewards"] - mean(raw)) ** 2) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("whitening", ["batch", "minibatch", "off"])
def test_advantages_are_whitened_per_rollout_per_minibatch_or_not(tiny_dir: Path, tmp_path: Path, monkeypatch,
                                                                   whitening: str) -> None:  # noqa: ANN001
    seen = []
    loss = ppo_losses.ppo_policy_loss

    def spy(logps, old, advantages, mask, clip_eps):  # noqa: ANN001, ANN202
        seen.append((advantages.detach().clone(), mask.clone()))
        return loss(logps, old, advantages, mask, clip_eps)

    monkeypatch.setattr(ppo_module, "ppo_policy_loss", spy)
    module = _module(tiny_dir, tmp_path, whiten_advantages=whitening, rollout_batch=8, minibatch=4, ppo_epochs=1)
    batches = ResumableBatches(range(4), 8, torch.tensor, seed=0, num_samples=8)
    L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False).fit(module, batches)
    assert len(seen) == 2  # one epoch, two minibatches of 4
    for advantages, mask in seen:
        n = mask.sum()
        mean = (advantages * mask).sum() / n
        std = (((advantages - mean) * mask) ** 2).sum().div(n).sqrt()
        if whitening == "minibatch":
            assert float(mean) == pytest.approx(0.0, abs=1e-5) and float(std) == pytest.approx(1.0, abs=1e-3)
    adv = torch.cat([a.flatten() for a, _ in seen])
    m = torch.cat([k.flatten() for _, k in seen])
    together = float((adv * m).sum() / m.sum())  # the two minibatches: the rollout
    if whitening == "off":
        assert abs(together) > 1e-2  # GAE's advantages as they are
    else:
        assert together == pytest.approx(0.0, abs=1e-5)


# --- the value head, the optimiser, dropout, temperature --------------------------------------

def test_value_head_initialisation_zero_or_normal(tiny_dir: Path, tmp_path: Path) -> None:
    zero = _module(tiny_dir, tmp_path, value_head_init="zero").value_head
    assert not zero.weight.any() and not zero.bias.any()
    normal = _module(tiny_dir, tmp_path, value_head_init="normal").value_head
    d = normal.weight.shape[1]
    std = float(normal.weight.detach().std())
    assert 0.5 / (d + 1) ** 0.5 < std < 2.0 / (d + 1) ** 0.5 and not normal.bias.any()
    again = _module(tiny_dir, tmp_path, value_head_init="normal").value_head
    assert torch.equal(normal.weight, again.weight)  # seeded by the run's seed


def test_adam_epsilon_and_weight_decay_are_the_settings(tiny_dir: Path, tmp_path: Path) -> None:
    opt = _module(tiny_dir, tmp_path, adam_eps=1e-5, weight_decay=0.0).configure_optimizers()
    assert all(g["eps"] == 1e-5 and g["weight_decay"] == 0.0 for g in opt.param_groups)


def test_dropout_is_off_in_every_forward_even_in_train_mode() -> None:
    config = LlamaConfig(vocab_size=50, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, attention_dropout=0.5)
    config._attn_implementation = "eager"
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).train()
    ids = torch.randint(0, 50, (2, 9))
    noisy = [model(input_ids=ids).logits for _ in range(2)]
    assert not torch.equal(*noisy)  # the test can fail: attention dropout is on
    without_dropout(model)
    assert model.config.attention_dropout == 0.0
    clean = [model(input_ids=ids).logits for _ in range(2)]
    torch.testing.assert_close(*clean, rtol=0, atol=0)


def test_log_probs_of_sampled_text_are_taken_at_the_sampling_temperature(tiny) -> None:  # noqa: ANN001
    model, tok = tiny
    prompts = [tok(t, add_special_tokens=False).input_ids for t in ("the film was", "a quiet")]
    responses = [[5, 6, 7], [8, 9]]
    batch = pack(prompts, responses, tok.pad_token_id)
    with torch.no_grad():
        for temperature in (0.5, 1.0):
            want = []
            for p, r in zip(prompts, responses):
                logits = model.eval()(input_ids=torch.tensor([p + r])).logits[0, len(p) - 1 : -1] / temperature
                want.append(float(logits.log_softmax(-1).gather(-1, torch.tensor(r)[:, None]).sum()))
            got = forward_response(model, batch, temperature)[0].sum(-1).tolist()
            assert got == pytest.approx(want, abs=1e-4)
            assert batched_logps(model, prompts, responses, tok.pad_token_id, 2, temperature) == pytest.approx(
                want, abs=1e-4)
    rollout = sample_rollout(model, tok, prompts, max_new_tokens=5, temperature=0.5, seed=2)
    with torch.no_grad():
        at_half = forward_response(model, rollout.tokens, 0.5)[0]
        at_one = forward_response(model, rollout.tokens, 1.0)[0]
    torch.testing.assert_close(rollout.logps, at_half, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(rollout.logps, at_one, atol=1e-3)
