"""A decoder split at its frozen boundary: the top blocks run from the boundary states give the
full forward's log-probs, final states and gradients; generation records those states."""

from __future__ import annotations

import pytest
import torch

from harness.data.collate import pack
from harness.models.forward import batched_logps, forward_response
from harness.models.loading import freeze_lower_layers, load_causal_lm
from harness.models.sources import TinyRandom
from harness.models.trunk import capture_boundary, frozen_blocks, same_bottom, split

CORPUS = ["the film was good and the food was bad"] * 20 + ["a quiet year in the old town"] * 20
PROMPTS = [[3, 4, 5, 6, 7], [8, 9], [10, 11, 12], [3, 4, 5, 6, 7], [8, 9]]
RESPONSES = [[13, 14], [19, 20, 21, 22], [25, 26, 27], [28], [29, 30]]
LAYERS = 4


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    return TinyRandom(vocab_size=300, num_layers=LAYERS).materialize(tmp_path_factory.mktemp("cache"), lambda: CORPUS)


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("share", [False, True])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_from_boundary_states_is_the_full_forward(tiny_dir, share: bool, k: int) -> None:  # noqa: ANN001
    model, _ = load_causal_lm(tiny_dir)
    freeze_lower_layers(model, LAYERS - k)
    assert frozen_blocks(model) == k
    model.train()
    batch = pack(PROMPTS, RESPONSES, 0, share_prompts=share)
    assert (batch.shared is not None) == share
    weights = torch.arange(1.0, len(PROMPTS) + 1)
    results = []
    for states in (None, split(model, k).bottom(batch.input_ids, batch.attention_mask)):
        model.zero_grad()
        logps, hidden, logits = forward_response(model, batch.with_states(states, k), temperature=0.7, hidden=True)
        ((logps.sum(-1) * weights).sum() + hidden.square().mean()).backward()
        results.append((logps.detach(), hidden.detach(), logits.detach(), _grads(model)))
    (lp0, h0, l0, g0), (lp1, h1, l1, g1) = results
    mask = batch.response_mask.unsqueeze(-1)
    torch.testing.assert_close(lp1, lp0, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(h1 * mask, h0 * mask, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(l1 * mask, l0 * mask, atol=1e-5, rtol=1e-4)
    assert g0 and g1.keys() == g0.keys()  # the same parameters train, and only those
    assert all(f"layers.{i}." not in name for name in g1 for i in range(k))
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], atol=1e-5, rtol=1e-4, msg=name)


def test_the_split_shares_the_models_parameters(tiny_dir) -> None:  # noqa: ANN001
    model, _ = load_causal_lm(tiny_dir)
    freeze_lower_layers(model, 2)
    view = split(model, 2)
    assert view is split(model, 2)  # built once per model and k
    batch = pack(PROMPTS, RESPONSES, 0)
    states = view.bottom(batch.input_ids, batch.attention_mask)
    before = forward_response(model, batch.with_states(states, 2))[0]
    with torch.no_grad():
        for p in model.model.layers[3].parameters():
            p.mul_(1.5)
    after_full = forward_response(model, batch)[0]
    after_top = forward_response(model, batch.with_states(states, 2))[0]
    torch.testing.assert_close(after_top, after_full, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(after_top, before)  # the view reads the model's current weights


def test_generation_records_the_boundary_states(tiny_dir) -> None:  # noqa: ANN001
    model, tok = load_causal_lm(tiny_dir)
    model.eval()
    prompts = [[3, 4, 5, 6, 7], [8, 9]]
    batch = pack(prompts, [[] for _ in prompts], 0)
    width = batch.input_ids.shape[1] - batch.response_len
    torch.manual_seed(0)
    with capture_boundary(model, 2) as steps, torch.inference_mode():
        out = model.generate(input_ids=batch.input_ids[:, :width], attention_mask=batch.attention_mask[:, :width],
                             do_sample=True, max_new_tokens=6, min_new_tokens=6, pad_token_id=0, eos_token_id=None)
    captured = torch.cat(steps, 1)  # every position but the last sampled token
    assert captured.shape[1] == out.shape[1] - 1
    full = pack(prompts, out[:, width:].tolist(), 0)
    want = split(model, 2).bottom(full.input_ids, full.attention_mask)
    real = full.attention_mask[:, :-1].bool()
    torch.testing.assert_close(captured[real], want[:, :-1][real], atol=1e-5, rtol=1e-4)


def test_same_bottom(tiny_dir) -> None:  # noqa: ANN001
    a, _ = load_causal_lm(tiny_dir)
    b, _ = load_causal_lm(tiny_dir)
    assert same_bottom(a, b, 3) and same_bottom(a, a, LAYERS)
    with torch.no_grad():
        b.model.layers[2].mlp.up_proj.weight[0, 0] += 1.0
    assert same_bottom(a, b, 2) and not same_bottom(a, b, 3)
    assert not same_bottom(a, b, 0)
    a.requires_grad_(True)
    assert frozen_blocks(a) == 0  # trainable embeddings: nothing below them is shared


def _ppo_module(tiny_dir, reference_differs: bool = False):  # noqa: ANN001, ANN202
    from harness.models.reward import RewardModel
    from harness.modules.ppo import PPOModule
    from harness.rl.kl_control import FixedKL
    from tests.unit.test_rollout import ppo_settings

    policy, tok = load_causal_lm(tiny_dir)
    reference, _ = load_causal_lm(tiny_dir)
    if reference_differs:
        with torch.no_grad():
            reference.model.layers[0].mlp.up_proj.weight.mul_(1.1)
    freeze_lower_layers(policy, 2)
    rm = RewardModel.from_policy_dir(tiny_dir)
    torch.manual_seed(0)
    torch.nn.init.normal_(rm.head.weight)
    prompts = [tok(t, add_special_tokens=False).input_ids for t in ("the film was", "a quiet year", "the old", "we")]
    # Adam with ε = 1 steps in proportion to the gradient: rounding differences stay rounding
    # differences (with a small ε a zero-in-exact-arithmetic gradient's noise is a full step).
    settings = ppo_settings(rollout_batch=8, minibatch=4, ppo_epochs=2, value_head_init="normal", adam_eps=1.0,
                            lr=1e-2)
    return PPOModule(policy, reference, rm, tok, prompts, FixedKL(0.1), settings, seed=1)


@pytest.mark.parametrize("reference_differs", [False, True])
def test_ppo_from_boundary_states_trains_as_the_full_forward(tiny_dir, reference_differs: bool) -> None:  # noqa: ANN001
    import lightning as L

    from harness.data.resumable import ResumableBatches

    results = []
    for use_states in (False, True):
        module = _ppo_module(tiny_dir, reference_differs)
        assert module.states_at == 2 and module._reference_shares == (not reference_differs)
        if not use_states:
            module.states_at, module._reference_shares = 0, False
        calls = []
        hook = module.policy.model.layers[0].register_forward_hook(lambda *a: calls.append(1))
        seen = {}
        L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                  enable_model_summary=False, callbacks=[_Metrics(seen)]).fit(
            module, ResumableBatches(range(4), 8, torch.tensor, seed=0, num_samples=16))
        hook.remove()
        results.append((dict(module.policy.named_parameters()), module.value_head.weight.detach().clone(), seen,
                        len(calls)))
    (p0, v0, m0, c0), (p1, v1, m1, c1) = results
    for name, param in p0.items():
        torch.testing.assert_close(p1[name], param, atol=1e-4, rtol=1e-4)  # steps of ~1e-2
    torch.testing.assert_close(v1, v0, atol=1e-5, rtol=1e-4)
    assert m1.keys() == m0.keys() and m0
    for key in m0:
        assert m1[key] == pytest.approx(m0[key], abs=1e-4), key
    # The policy's bottom blocks run while sampling only: not in 2 iterations × 2 epochs × 2
    # minibatches (the reference's, a separate model, skip theirs when it shares them).
    assert c0 - c1 == 8


class _Metrics:
    def __new__(cls, seen: dict):  # noqa: ANN204
        import lightning as L

        class Collect(L.Callback):
            def on_train_batch_end(self, trainer, *args) -> None:  # noqa: ANN001, ANN002
                seen.update({k: float(v) for k, v in trainer.callback_metrics.items()})

        return Collect()


@pytest.mark.parametrize("pooling", ["mean", "last"])
@pytest.mark.parametrize("k", [2, LAYERS])  # LAYERS: the whole trunk frozen (a linear probe)
def test_reward_model_from_a_state_table_scores_and_trains_as_the_full_forward(tiny_dir, pooling: str,
                                                                               k: int) -> None:  # noqa: ANN001
    import lightning as L

    from harness.data.preference import ComparisonGroup, GroupCollator, ListDataModule
    from harness.losses.bradley_terry import best_of_k_loss
    from harness.models.reward import RewardModel
    from harness.models.trunk import StateTable
    from harness.modules.reward_model import RewardModelModule

    groups = [ComparisonGroup(tuple(PROMPTS[i % 3]), (tuple(RESPONSES[i % 5]), tuple(RESPONSES[(i + 1) % 5])), i % 2)
              for i in range(8)]
    flat_p = [g.prompt_ids for g in groups for _ in g.responses]
    flat_r = [r for g in groups for r in g.responses]
    results = []
    for use_states in (False, True):
        torch.manual_seed(0)
        rm = RewardModel.from_policy_dir(tiny_dir, pooling)
        freeze_lower_layers(rm.trunk, LAYERS - k, minimum=0)
        assert frozen_blocks(rm.trunk) == k
        table = StateTable.build(rm.trunk, k, flat_p, flat_r, 0, batch_size=3) if use_states else None
        for share in (False, True):  # scoring, before training
            batch = pack(flat_p, flat_r, 0, share_prompts=share)
            with torch.no_grad():
                results.append(rm.raw(table.attach(batch) if table else batch))
        module = RewardModelModule(rm, best_of_k_loss, lr=1e-2, states=table)
        data = ListDataModule(groups[:6], groups[6:], GroupCollator(0), 3, seed=0, bucket=0)
        L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                  enable_model_summary=False).fit(module, datamodule=data)
        # The head's bias cancels in every comparison: its gradient is rounding noise, which Adam
        # scales to a full step either way. Every other trained parameter must agree.
        results.append(torch.cat([p.detach().flatten() for p in rm.parameters()
                                  if p.requires_grad and p is not rm.head.bias]))
    for full, top in zip(results[:2], results[3:5]):  # scores
        torch.testing.assert_close(top, full, atol=1e-5, rtol=1e-4)
    # Trained weights, after 4 Adam steps of ~1e-2 each: a weight whose gradient is near zero takes
    # a step of any size from rounding noise (Adam divides by √v), so a few differ by more than
    # rounding; 5e-4 is 5% of one step.
    torch.testing.assert_close(results[5], results[2], atol=5e-4, rtol=1e-4)
    torch.testing.assert_close(results[0], results[1], atol=1e-5, rtol=1e-4)  # shared prompts: the same scores


@pytest.mark.parametrize("share", [False, True])
def test_gemma3_sliding_window_blocks_and_logit_softcapping(share: bool) -> None:
    """Gemma 3 (gemma-3-270m's architecture): sliding-window and global blocks on both sides of
    the boundary, the embedding scaled inside its module, soft-capped logits."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    config = Gemma3TextConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=6,
                              num_attention_heads=4, num_key_value_heads=2, head_dim=16, sliding_window=4,
                              max_position_embeddings=128, final_logit_softcapping=30.0,
                              layer_types=["sliding_attention", "full_attention"] * 3)
    model = Gemma3ForCausalLM(config)
    freeze_lower_layers(model, 3)
    assert frozen_blocks(model) == 3
    prompts = [[3, 4, 5, 6, 7, 8, 9], [3, 4, 5, 6, 7, 8, 9], [8, 9]]
    batch = pack(prompts, [[13, 14, 15, 16, 17], [19, 20], [21]], 0, share_prompts=share)
    states = split(model, 3).bottom(batch.input_ids, batch.attention_mask)
    full = forward_response(model, batch)
    top = forward_response(model, batch.with_states(states, 3))
    torch.testing.assert_close(top[0], full[0], atol=1e-5, rtol=1e-4)
    mask = batch.response_mask.unsqueeze(-1)
    torch.testing.assert_close(top[2] * mask, full[2] * mask, atol=1e-4, rtol=1e-4)


def test_sampling_records_each_rows_boundary_states(tiny_dir) -> None:  # noqa: ANN001
    """`generate_with_logps(states=…)`: every kept (prompt, response)'s states as a bottom pass
    over the row gives them, but for the last token of a response that ran to max_new_tokens
    (zeros: generation never feeds it back). Saved and loaded, the table is the same."""
    from harness.models.sampling import Stop, generate_with_logps
    from harness.models.trunk import StateTable

    model, tok = load_causal_lm(tiny_dir)
    freeze_lower_layers(model, 2)
    prompts = [[3, 4, 5, 6, 7], [8, 9], [10, 11, 12]]
    table = StateTable(2)
    stop = Stop(eos=tok.eos_token_id, ids=frozenset(range(0, 300, 5)), after=2)  # some responses stop early
    responses, _ = generate_with_logps(model, tok, prompts, max_new_tokens=6, temperature=1.0, k=2, batch_size=4,
                                       seed=3, stop=stop, states=table)
    rows = [(p, r) for p, group in zip(prompts, responses) for r in group]
    assert len(table) == len(set((tuple(p), tuple(r)) for p, r in rows))
    assert any(len(r) < 6 for _, r in rows) and any(len(r) == 6 for _, r in rows)
    want = StateTable.build(model, 2, [p for p, _ in rows], [r for _, r in rows], 0)
    batch = pack([p for p, _ in rows], [r for _, r in rows], 0)
    got, ref = table.attach(batch).states, want.attach(batch).states
    full = torch.tensor([len(r) == 6 for _, r in rows])
    last = batch.input_ids.shape[1] - 1  # where a full-length response's last token sits
    assert not got[full, last].any()
    ref[full, last] = 0
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-4)
    # and these states give the log-probs of a full forward
    torch.testing.assert_close(forward_response(model, table.attach(batch))[0], forward_response(model, batch)[0],
                               atol=1e-5, rtol=1e-4)


def test_a_state_table_saved_and_loaded_is_the_same(tiny_dir, tmp_path) -> None:  # noqa: ANN001
    from harness.models.trunk import StateTable

    model, _ = load_causal_lm(tiny_dir)
    table = StateTable.build(model, 1, PROMPTS, RESPONSES, 0)
    table.save(tmp_path)
    again = StateTable.load(tmp_path)
    batch = pack(PROMPTS, RESPONSES, 0, share_prompts=True)
    assert again.k == 1 and len(again) == len(table)
    torch.testing.assert_close(again.attach(batch).states, table.attach(batch).states, atol=0, rtol=0)


def test_the_top_view_follows_settings_made_after_it_was_built(tiny_dir) -> None:  # noqa: ANN001
    """The views hold the model's own blocks: dropout turned off after the split is off in the top
    pass too (a training forward is then a function of the weights), and the blocks' cache
    indices are back to their own after each pass."""
    from harness.models.forward import without_dropout

    model, _ = load_causal_lm(tiny_dir)
    for m in model.modules():
        if hasattr(m, "attention_dropout"):
            m.attention_dropout = 0.9
    freeze_lower_layers(model, 2)
    view = split(model, 2)
    batch = pack(PROMPTS, RESPONSES, 0)
    states = view.bottom(batch.input_ids, batch.attention_mask)
    model.train()
    without_dropout(model)
    a = forward_response(model, batch.with_states(states, 2))[0]
    b = forward_response(model, batch.with_states(states, 2))[0]
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    torch.testing.assert_close(a, forward_response(model, batch)[0], atol=1e-5, rtol=1e-4)
    assert [layer.self_attn.layer_idx for layer in model.model.layers] == list(range(LAYERS))


def test_the_eval_kl_reference_runs_from_the_samplers_states(tiny_dir) -> None:  # noqa: ANN001
    """`reference_logps`: the reference's Σ log π of a policy's samples from the states the
    policy's sampler recorded equals its full forward, and its bottom blocks do not run; a
    reference whose bottom differs gets the full forward."""
    from harness.models.sampling import Samples, generate_with_logps, reference_logps
    from harness.models.trunk import StateTable

    policy, tok = load_causal_lm(tiny_dir)
    freeze_lower_layers(policy, 2)
    with torch.no_grad():  # trained above the boundary: the policy is no longer the reference
        for p in policy.model.layers[3].parameters():
            p.add_(0.05 * torch.randn_like(p))
    prompts = [[3, 4, 5, 6, 7], [8, 9], [10, 11, 12], [8, 9]]
    table = StateTable(frozen_blocks(policy))
    responses, logps = generate_with_logps(policy, tok, prompts, max_new_tokens=6, temperature=0.7, k=1, seed=2,
                                           logps_temperature=0.7, states=table)
    samples = Samples([r[0] for r in responses], [lp[0] for lp in logps], table)
    reference, _ = load_causal_lm(tiny_dir)
    full = batched_logps(reference, prompts, samples.responses, 0, 2, 0.7)
    bottom_runs: list[int] = []
    handle = reference.model.layers[0].register_forward_hook(lambda m, a, o: bottom_runs.append(1))
    got = reference_logps(reference, policy, prompts, samples, 0, 2, 0.7)
    handle.remove()
    assert got == pytest.approx(full, abs=1e-4) and not bottom_runs
    # the policy's own log-probs from its sampler are its forward's
    assert samples.logps == pytest.approx(batched_logps(policy, prompts, samples.responses, 0, 2, 0.7), abs=1e-4)
    other, _ = load_causal_lm(tiny_dir)
    with torch.no_grad():
        other.model.layers[0].mlp.down_proj.weight.mul_(1.5)
    handle = other.model.layers[0].register_forward_hook(lambda m, a, o: bottom_runs.append(1))
    assert reference_logps(other, policy, prompts, samples, 0, 2, 0.7) == pytest.approx(
        batched_logps(other, prompts, samples.responses, 0, 2, 0.7), abs=1e-5)
    handle.remove()
    assert bottom_runs


@pytest.mark.parametrize("k", [1, 3])
def test_kto_example_and_detached_twin_from_states_are_the_full_forward(tiny_dir, k: int) -> None:  # noqa: ANN001
    """KTO's forward (`forward_with_detached_twin`: each prompt once, its mismatched pair
    without gradient) from boundary states gives the full forward's log-probs of both and the
    same gradients; the bottom blocks do not run."""
    from harness.data.preference import UnpairedCollator, UnpairedExample
    from harness.models.forward import forward_with_detached_twin
    from harness.models.trunk import StateTable

    model, _ = load_causal_lm(tiny_dir)
    freeze_lower_layers(model, LAYERS - k)
    model.train()
    prompts, responses = PROMPTS[:3], RESPONSES[:3]
    twins = responses[1:] + responses[:1]  # each prompt with the next prompt's response
    examples = [UnpairedExample(tuple(p), tuple(r), tuple(t), i % 2 == 0, 0.0, 0.0)
                for i, (p, r, t) in enumerate(zip(prompts, responses, twins))]
    batch = UnpairedCollator(0)(examples)
    table = StateTable.build(model, k, prompts, responses, 0).complete(model, prompts, twins, 0)
    assert len(table) == 6
    results = []
    for tokens, twin in ((batch.tokens, batch.kl_tokens), (table.attach(batch.tokens), table.attach(batch.kl_tokens))):
        model.zero_grad()
        runs: list[int] = []
        handle = model.model.layers[0].register_forward_hook(lambda m, a, o: runs.append(1))
        logps, twin_logps = forward_with_detached_twin(model, tokens, twin)
        handle.remove()
        assert not twin_logps.requires_grad
        (logps.sum(-1) * torch.tensor([1.0, -2.0, 0.5])).sum().backward()
        results.append((logps.detach(), twin_logps, _grads(model), bool(runs)))
    (lp0, t0, g0, ran0), (lp1, t1, g1, ran1) = results
    assert ran0 and (ran1 == (k == 0))
    torch.testing.assert_close(lp1, lp0, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(t1, t0, atol=1e-5, rtol=1e-4)
    assert g0 and g1.keys() == g0.keys()
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], atol=1e-5, rtol=1e-4, msg=name)
