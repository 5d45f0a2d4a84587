"""Packing and sequence log-probs against a plain, unpadded forward pass."""

from pathlib import Path

import pytest
import torch

from harness.data.collate import pack
from harness.models.loading import load_causal_lm
from harness.models.sources import TinyRandom
from harness.models.forward import batched_logps, sequence_logps
from harness.models.sampling import generate_responses

CORPUS = ["the film was good and the food was bad"] * 20 + ["a quiet year in the old town"] * 20


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    path = TinyRandom(vocab_size=300).materialize(tmp_path_factory.mktemp("cache"), lambda: CORPUS)
    return load_causal_lm(path)


def test_pack_layout() -> None:
    b = pack([[5, 6, 7], [8]], [[1], [2, 3]], pad_id=0)
    assert b.input_ids.tolist() == [[5, 6, 7, 1, 0], [0, 0, 8, 2, 3]]
    assert b.attention_mask.tolist() == [[1, 1, 1, 1, 0], [0, 0, 1, 1, 1]]
    assert b.response_len == 2
    assert b.response_mask.tolist() == [[1, 0], [1, 1]]


def naive_logp(model, prompt: list[int], response: list[int]) -> float:  # noqa: ANN001
    ids = torch.tensor([prompt + response])
    logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1]
    return logits.log_softmax(-1).gather(-1, torch.tensor(response)[:, None]).sum().item()


def test_sequence_logps_match_unpadded_forward(tiny) -> None:  # noqa: ANN001
    model, _ = tiny
    prompts, responses = [[3, 4, 5, 6], [7], [8, 9]], [[10, 11], [12, 13, 14], [15]]
    with torch.no_grad():
        got = sequence_logps(model.eval(), pack(prompts, responses, pad_id=0)).tolist()
        want = [naive_logp(model, p, r) for p, r in zip(prompts, responses)]
    assert got == pytest.approx(want, abs=1e-4)
    # batching and ordering do not change the values
    assert batched_logps(model, prompts, responses, 0, batch_size=2) == pytest.approx(want, abs=1e-4)


def test_generation_is_seeded_and_stops_at_eos(tiny) -> None:  # noqa: ANN001
    model, tok = tiny
    prompts = [tok("the film was", add_special_tokens=False).input_ids, tok("a quiet", add_special_tokens=False).input_ids]
    a = generate_responses(model, tok, prompts, max_new_tokens=6, temperature=1.0, k=3, seed=1)
    b = generate_responses(model, tok, prompts, max_new_tokens=6, temperature=1.0, k=3, seed=1)
    assert a == b
    assert [len(g) for g in a] == [3, 3]
    for group in a:
        for r in group:
            assert 1 <= len(r) <= 6
            assert tok.eos_token_id not in r[:-1]


def test_rollout_log_probs_and_states_match_a_forward_pass(tiny) -> None:  # noqa: ANN001
    from harness.models.forward import forward_response
    from harness.models.sampling import sample_rollout

    model, tok = tiny
    prompts = [tok(t, add_special_tokens=False).input_ids for t in ("the film was", "a quiet year in the old", "the")]
    ro = sample_rollout(model, tok, prompts, max_new_tokens=7, temperature=0.7, seed=3)
    assert [len(r) for r in ro.responses] and all(1 <= len(r) <= 7 for r in ro.responses)
    batch = pack(prompts, ro.responses, tok.pad_token_id)
    with torch.no_grad():
        logps, states, _ = forward_response(model.eval(), batch, temperature=0.7, hidden=True)
    assert ro.logps.shape == logps.shape and ro.hidden.shape == states.shape
    torch.testing.assert_close(ro.logps, logps, atol=1e-4, rtol=1e-4)
    mask = batch.response_mask.unsqueeze(-1)
    torch.testing.assert_close(ro.hidden, states * mask, atol=1e-4, rtol=1e-4)
    again = sample_rollout(model, tok, prompts, max_new_tokens=7, temperature=0.7, seed=3)
    assert again.responses == ro.responses  # seeded


def ppo_settings(**changes):  # noqa: ANN003, ANN201
    """conf/loss/ppo.yaml's settings at test size."""
    from harness.experiment import PPOSettings

    values = dict(rollout_batch=16, minibatch=8, ppo_epochs=4, clip_eps=0.2, vf_clip_eps=0.2, vf_coef=0.1, gamma=1.0,
                  lam=0.95, temperature=0.7, max_new_tokens=6, lr=1e-5, whiten_rewards=True, whiten_advantages="batch",
                  value_head_init="zero", adam_eps=1e-5, weight_decay=0.0, unfinished_score=None)
    return PPOSettings(**(values | changes))


@pytest.mark.parametrize("budget", [1 << 30, 0])  # the sampler's logits; too big for them: a policy pass
def test_ppo_rollout_old_log_probs_and_values_are_the_policy_forward_ones(tiny, tmp_path: Path, monkeypatch,
                                                                          budget: int) -> None:  # noqa: ANN001
    from harness.models.reward import RewardModel
    from harness.modules import ppo
    from harness.modules.ppo import PPOModule
    from harness.rl.kl_control import FixedKL

    monkeypatch.setattr(ppo, "ROLLOUT_LOGITS_BUDGET", budget)

    model, tok = tiny
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    reference, _ = load_causal_lm(tmp_path / "m")
    rm = RewardModel.from_policy_dir(tmp_path / "m")
    prompts = [tok(t, add_special_tokens=False).input_ids for t in ("the film was", "a quiet year", "the old")]
    module = PPOModule(model, reference, rm, tok, prompts, FixedKL(0.1), ppo_settings(value_head_init="normal"), seed=1)
    assert module.value_head.weight.abs().sum() > 0  # a value head that is not all zeros
    ro = module.rollout([0, 1, 2])
    with torch.no_grad():
        logps, values, _ = module._policy_forward(ro["tokens"])
    torch.testing.assert_close(ro["old_logps"], logps, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(ro["old_values"], values, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("tau", [1.0, 0.7])
def test_sampler_log_probs_are_a_forward_pass_ones(tiny, tau: float) -> None:  # noqa: ANN001
    """generate_with_logps: the same responses as generate_responses (same seed), and Σ log π at
    temperature τ over each kept response, as batched_logps computes them, to float rounding —
    with ragged prompts, k > 1 and responses cut at a stop."""
    from harness.models.sampling import Stop, generate_with_logps

    model, tok = tiny
    prompts = [[3, 4, 5, 6], [7], [8, 9, 10], [11, 12]]
    stop = Stop(tok.eos_token_id, frozenset(range(20, 60)), after=2)
    args = dict(max_new_tokens=8, temperature=0.7, k=2, batch_size=4, seed=3, stop=stop)
    responses, logps = generate_with_logps(model, tok, prompts, **args, logps_temperature=tau)
    assert responses == generate_responses(model, tok, prompts, **args)
    assert any(len(r) < 8 for group in responses for r in group)  # some were cut
    flat_p = [p for p, group in zip(prompts, responses) for _ in group]
    flat_r = [r for group in responses for r in group]
    with torch.no_grad():
        expected = batched_logps(model, flat_p, flat_r, tok.pad_token_id, batch_size=3, temperature=tau)
    assert [x for group in logps for x in group] == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 1.0), (1.0, 0.8)])
def test_inverse_cdf_draws_from_the_tempered_nucleus(temperature: float, top_p: float) -> None:
    from harness.models.sampling import InverseCDF

    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0, -3.0])
    # What generate's own sampling draws from: softmax(logits / τ), then the smallest set of
    # tokens whose mass reaches top_p (here 0.8 keeps the first three at τ = 1), renormalised.
    p = torch.softmax(logits / temperature, -1)
    if top_p < 1.0:
        keep = 3
        assert p[: keep - 1].sum() < top_p <= p[:keep].sum()
        p = torch.cat([p[:keep] / p[:keep].sum(), torch.zeros(len(p) - keep)])
    n = 60_000
    torch.manual_seed(0)
    out = InverseCDF(temperature, top_p)(torch.zeros(n, 1, dtype=torch.long), logits.repeat(n, 1))
    drawn = out.argmax(-1)
    assert torch.isinf(out).sum(-1).eq(len(logits) - 1).all()  # one finite score per row: greedy picks it
    freq = torch.bincount(drawn, minlength=len(logits)).float() / n
    stderr = (p * (1 - p) / n).sqrt()
    assert ((freq - p).abs() <= 5 * stderr + 1e-9).all(), (freq, p)
    # seeded: the same draws again
    torch.manual_seed(0)
    assert torch.equal(InverseCDF(temperature, top_p)(torch.zeros(n, 1, dtype=torch.long), logits.repeat(n, 1)).argmax(-1), drawn)


def test_k_responses_share_their_prompts_pass(tiny) -> None:  # noqa: ANN001
    """`sample` runs each prompt once for its k responses (KV cache repeated): greedy, it gives
    the tokens and, to float rounding, the logits of `generate` on the prompts repeated k times;
    a hook sees the shared pass with one row per prompt."""
    from harness.models.sampling import sample

    model, tok = tiny
    model.eval()
    prompts = [[3, 4, 5, 6, 7], [8, 9], [10, 11, 12]]
    batch = pack(prompts, [[] for _ in prompts], tok.pad_token_id)
    width = batch.input_ids.shape[1] - batch.response_len
    ids, mask = batch.input_ids[:, :width], batch.attention_mask[:, :width]
    k, common = 3, dict(max_new_tokens=5, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                        return_dict_in_generate=True, output_logits=True)
    seen: list[int] = []
    handle = model.model.layers[0].register_forward_hook(lambda m, a, o: seen.append(a[0].shape[0]))
    with torch.inference_mode():
        got = sample(model, ids, mask, k=k, temperature=0.0, top_p=1.0, max_new_tokens=5, pad=tok.pad_token_id,
                     eos=tok.eos_token_id, return_dict_in_generate=True, output_logits=True)
        handle.remove()
        want = model.generate(input_ids=ids.repeat_interleave(k, 0), attention_mask=mask.repeat_interleave(k, 0),
                              do_sample=False, **common)
    assert seen[0] == len(prompts) and set(seen[1:]) == {len(prompts) * k}
    assert torch.equal(got.sequences, want.sequences)
    for a, b in zip(got.logits, want.logits, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    # sampled, the k responses of a prompt are drawn independently
    with torch.inference_mode():
        torch.manual_seed(0)
        drawn = sample(model, ids, mask, k=k, temperature=1.0, top_p=1.0, max_new_tokens=5, pad=tok.pad_token_id,
                       eos=tok.eos_token_id)
    rows = drawn[:, width:].tolist()
    assert any(len({tuple(r) for r in rows[j * k : (j + 1) * k]}) > 1 for j in range(len(prompts)))


def test_k_responses_share_their_prompts_pass_with_sliding_window_blocks() -> None:
    """The repeated KV cache holds Gemma 3's sliding-window layers too (prompts longer than the
    window): greedy `sample` gives `generate`'s tokens on the prompts repeated k times."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from harness.models.sampling import sample

    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
                              num_attention_heads=4, num_key_value_heads=2, head_dim=16, sliding_window=4,
                              max_position_embeddings=128, final_logit_softcapping=30.0,
                              layer_types=["sliding_attention", "full_attention"] * 2)
    model = Gemma3ForCausalLM(config).eval()
    prompts = [[3, 4, 5, 6, 7, 8, 9, 10], [8, 9, 10]]
    batch = pack(prompts, [[] for _ in prompts], 0)
    width = batch.input_ids.shape[1] - batch.response_len
    ids, mask = batch.input_ids[:, :width], batch.attention_mask[:, :width]
    with torch.inference_mode():
        got = sample(model, ids, mask, k=2, temperature=0.0, top_p=1.0, max_new_tokens=6, pad=0, eos=1)
        want = model.generate(input_ids=ids.repeat_interleave(2, 0), attention_mask=mask.repeat_interleave(2, 0),
                              do_sample=False, max_new_tokens=6, pad_token_id=0, eos_token_id=1)
    assert torch.equal(got, want)
