"""Rows that answer one prompt run it once: same log-probs, rewards and gradients as running
every row in full."""

from __future__ import annotations

import pytest
import torch

from harness.data.collate import pack
from harness.data.preference import ComparisonGroup, GroupCollator, PairCollator, PreferencePair
from harness.models.loading import load_causal_lm
from harness.models.reward import RewardModel
from harness.models.sources import TinyRandom
from harness.models.forward import batched_logps, forward_response

CORPUS = ["the film was good and the food was bad"] * 20 + ["a quiet year in the old town"] * 20
# Three prompts of different lengths (left padding differs per row), two or three responses each.
PROMPTS = [[3, 4, 5, 6, 7], [8, 9], [10, 11, 12]]
GROUPS = [[[13, 14], [15, 16, 17, 18]], [[19], [20, 21, 22], [23, 24]], [[25, 26, 27], [28]]]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    return TinyRandom(vocab_size=300).materialize(tmp_path_factory.mktemp("cache"), lambda: CORPUS)


def _rows() -> tuple[list[list[int]], list[list[int]]]:
    prompts = [p for p, g in zip(PROMPTS, GROUPS) for _ in g]
    responses = [r for g in GROUPS for r in g]
    return prompts, responses


def test_pack_marks_rows_with_one_prompt() -> None:
    b = pack([[5, 6], [7], [5, 6], [7], [9]], [[1], [2], [3], [4], [5]], pad_id=0, share_prompts=True)
    assert b.shared.rows.tolist() == [0, 1, 4]
    assert b.shared.index.tolist() == [0, 1, 0, 1, 2]
    assert pack([[5], [6]], [[1], [2]], pad_id=0, share_prompts=True).shared is None  # nothing repeats
    assert pack([[5], [5]], [[1], [2]], pad_id=0).shared is None  # not asked


def test_log_probs_and_their_gradients_match_full_rows(tiny_dir) -> None:  # noqa: ANN001
    model, _ = load_causal_lm(tiny_dir)
    model.train()
    prompts, responses = _rows()
    full, shared = pack(prompts, responses, 0), pack(prompts, responses, 0, share_prompts=True)
    assert shared.shared is not None and len(shared.shared.rows) == 3
    grads = []
    outs = []
    for batch in (full, shared):
        model.zero_grad()
        logps, states, _ = forward_response(model, batch, temperature=0.7, hidden=True)
        (logps.sum(-1) * torch.arange(1.0, len(prompts) + 1)).sum().backward()
        outs.append((logps.detach(), states.detach()))
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    torch.testing.assert_close(outs[1][0], outs[0][0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(outs[1][1], outs[0][1], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(grads[1], grads[0], atol=1e-5, rtol=1e-4)
    # the cached reference log-probs: grouped by prompt, same values as row by row
    model.eval()
    want = batched_logps(model, prompts, responses, 0, batch_size=4)
    assert batched_logps(model, prompts, responses, 0, batch_size=4, share_prompts=True) == pytest.approx(want, abs=1e-4)


@pytest.mark.parametrize("pooling", ["mean", "last"])
def test_reward_model_scores_and_gradients_match_full_rows(tiny_dir, pooling: str) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    rm = RewardModel.from_policy_dir(tiny_dir, pooling=pooling)
    prompts, responses = _rows()
    scores, grads = [], []
    for share in (False, True):
        rm.zero_grad()
        s = rm.raw(pack(prompts, responses, 0, share_prompts=share))
        (s * torch.arange(1.0, len(prompts) + 1)).sum().backward()
        scores.append(s.detach())
        grads.append(torch.cat([p.grad.flatten() for p in rm.parameters() if p.grad is not None]))
    torch.testing.assert_close(scores[1], scores[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(grads[1], grads[0], atol=1e-5, rtol=1e-4)


def test_training_collators_share_the_prompt_of_a_pair_and_of_a_group() -> None:
    pairs = [PreferencePair((1, 2), (3,), (4, 5), 0.0, 0.0), PreferencePair((6,), (7,), (8,), 0.0, 0.0)]
    batch = PairCollator(0)(pairs)
    assert batch.tokens.shared.index.tolist() == [0, 1, 0, 1]  # chosen rows, then rejected rows
    groups = [ComparisonGroup((1, 2), ((3,), (4,), (5,)), 1), ComparisonGroup((6,), ((7,), (8,), (9,)), 0)]
    assert GroupCollator(0)(groups).tokens.shared.index.tolist() == [0, 0, 0, 1, 1, 1]


def test_kto_mismatched_pairs_reuse_the_example_prompt_without_gradient(tiny_dir) -> None:  # noqa: ANN001
    from harness.models.forward import forward_with_detached_twin

    model, _ = load_causal_lm(tiny_dir)
    model.train()
    prompts = PROMPTS
    mine, theirs = [g[0] for g in GROUPS], [g[-1] for g in GROUPS[1:] + GROUPS[:1]]
    batch, twin = pack(prompts, mine, 0), pack(prompts, theirs, 0)
    weights = torch.arange(1.0, len(prompts) + 1)
    model.zero_grad()
    want = forward_response(model, batch)[0]
    (want.sum(-1) * weights).sum().backward()
    want_grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    with torch.no_grad():
        want_twin = forward_response(model, twin)[0]
    model.zero_grad()
    got, got_twin = forward_with_detached_twin(model, batch, twin)
    assert not got_twin.requires_grad
    (got.sum(-1) * weights).sum().backward()
    got_grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
    torch.testing.assert_close(got.detach(), want.detach(), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got_twin, want_twin, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(got_grad, want_grad, atol=1e-5, rtol=1e-4)
    # prompts laid out differently: two plain forwards, same values
    other = pack([p + [1] for p in prompts], theirs, 0)
    got, got_other = forward_with_detached_twin(model, batch, other)
    with torch.no_grad():
        torch.testing.assert_close(got_other, forward_response(model, other)[0], atol=1e-5, rtol=1e-4)
