"""Sampling responses with `generate` (KV cache) and scoring sequences' log-probabilities."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from rich.progress import Progress
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from harness.cache import lend_idle_threads
from harness.data.collate import TokenBatch, pack


def shares_prompts(batch: TokenBatch) -> bool:
    return batch.shared is not None and batch.input_ids.shape[1] > batch.response_len


def _prompt_pass(model: PreTrainedModel, batch: TokenBatch, rows: torch.Tensor | None = None,
                 **kwargs: Any) -> tuple[Any, Any, str]:
    """The prompt columns of `rows` (all rows by default) through the model with a KV cache:
    (output, cache, the forward's name for the cache)."""
    width = batch.input_ids.shape[1] - batch.response_len
    ids, mask = batch.input_ids[:, :width], batch.attention_mask[:, :width]
    if rows is not None:
        ids, mask = ids[rows], mask[rows]
    out = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                use_cache=True, **kwargs)
    # transformers ≥ 5.24 names the KV cache `cache`; earlier releases `past_key_values`.
    name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    return out, getattr(out, name), name


def _response_pass(model: PreTrainedModel, batch: TokenBatch, cache: Any, name: str, **kwargs: Any) -> Any:
    """The response columns of every row, continuing from `cache` (its prompts' keys and values)."""
    width = batch.input_ids.shape[1] - batch.response_len
    mask = batch.attention_mask
    return model(input_ids=batch.input_ids[:, width:], attention_mask=mask,
                 position_ids=(mask.cumsum(-1) - 1).clamp(min=0)[:, width:], use_cache=True, **{name: cache},
                 **kwargs)


def prefix_shared_forward(model: PreTrainedModel, batch: TokenBatch, prompt_kwargs: dict | None = None,
                          response_kwargs: dict | None = None) -> tuple[Any, Any]:
    """Each distinct prompt once, then every row's response on its prompt's keys and values.

    Phase 1 runs the P distinct prompts (`batch.shared.rows`) with a KV cache; the cache is
    gathered to the B rows (`batch.shared.index`, differentiable); phase 2 runs the B
    responses attending to it. Attention is causal, so every response position sees exactly
    what it sees in a full forward of its row: same outputs, and gradients reach the prompt
    through the cache from every row that shares it. Returns both phases' model outputs.
    """
    assert batch.shared is not None
    first, cache, name = _prompt_pass(model, batch, batch.shared.rows, **(prompt_kwargs or {}))
    cache.reorder_cache(batch.shared.index)
    return first, _response_pass(model, batch, cache, name, **(response_kwargs or {}))


def _detached_copy(cache: Any) -> Any | None:
    """A second cache holding the same (detached) prompt keys and values, or None where the
    cache is not the layered kind this knows how to copy."""
    layers = getattr(cache, "layers", None)
    if not layers or not all(isinstance(getattr(layer, "keys", None), torch.Tensor) for layer in layers):
        return None
    twin = copy.copy(cache)
    twin.layers = [copy.copy(layer) for layer in layers]
    for layer in twin.layers:  # a layer's update rebinds keys/values: the original keeps its own
        layer.keys, layer.values = layer.keys.detach(), layer.values.detach()
    return twin


def forward_with_detached_twin(
    model: PreTrainedModel, batch: TokenBatch, twin: TokenBatch
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs of `batch` (with gradient) and of `twin` (without), where `twin`
    answers the same prompts row by row (KTO's mismatched pairs: prompt i with another
    prompt's response). Each prompt runs once; its keys and values feed both continuations,
    the twin's detached. Falls back to two forwards when the prompts are not laid out alike."""
    width = batch.input_ids.shape[1] - batch.response_len
    same = (width > 0 and twin.input_ids.shape[1] - twin.response_len == width and batch.shared is None
            and twin.shared is None and torch.equal(batch.input_ids[:, :width], twin.input_ids[:, :width])
            and torch.equal(batch.attention_mask[:, :width], twin.attention_mask[:, :width]))
    if not same:
        with torch.no_grad():
            twin_logps = forward_response(model, twin)[0]
        return forward_response(model, batch)[0], twin_logps
    first, cache, name = _prompt_pass(model, batch, logits_to_keep=1)
    twin_cache = _detached_copy(cache)
    with torch.no_grad():
        if twin_cache is None:  # a cache this cannot copy: the twin runs in full
            twin_logps = forward_response(model, twin)[0]
        else:
            second = _response_pass(model, twin, twin_cache, name, logits_to_keep=twin.response_len)
            twin_logps = _token_logps(torch.cat([first.logits.detach(), second.logits[:, :-1]], dim=1), twin)
    second = _response_pass(model, batch, cache, name, logits_to_keep=batch.response_len)
    return _token_logps(torch.cat([first.logits, second.logits[:, :-1]], dim=1), batch), twin_logps


def _token_logps(logits: torch.Tensor, batch: TokenBatch) -> torch.Tensor:
    targets = batch.input_ids[:, -batch.response_len :]  # (B, R)
    token_logps = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - logits.logsumexp(-1)
    return token_logps * batch.response_mask


def forward_response(
    model: PreTrainedModel, batch: TokenBatch, temperature: float = 1.0, hidden: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    """Per-token log π(y_t | x, y_<t) of each response token: (B, R), and the logits (B, R, V).

    Only the last response_len + 1 positions go through the output layer, so the prompt
    costs no vocabulary-sized logits. Positions are counted from each row's first real
    token, as in generation with left padding. With `hidden`, also returns the final hidden
    states at the positions that predict the response tokens (B, R, H), for a value head.
    Rows that share a prompt (`batch.shared`) run it once (`prefix_shared_forward`).
    """
    R = batch.response_len
    if shares_prompts(batch):
        first, second = prefix_shared_forward(
            model, batch, {"logits_to_keep": 1, "output_hidden_states": hidden},
            {"logits_to_keep": R, "output_hidden_states": hidden})
        index = batch.shared.index
        # y_0 is predicted at the prompt's last position, y_t (t ≥ 1) at response position t − 1.
        logits = torch.cat([first.logits[index], second.logits[:, :-1]], dim=1)  # (B, R, V)
        states = (torch.cat([first.hidden_states[-1][index, -1:], second.hidden_states[-1][:, :-1]], dim=1)
                  if hidden else None)
    else:
        mask = batch.attention_mask
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        out = model(
            input_ids=batch.input_ids, attention_mask=mask, position_ids=position_ids,
            logits_to_keep=R + 1, use_cache=False, output_hidden_states=hidden,
        )
        logits = out.logits[:, :-1]  # (B, R, V)
        states = out.hidden_states[-1][:, -R - 1 : -1] if hidden else None
    if temperature != 1.0:
        logits = logits / temperature
    return _token_logps(logits, batch), states, logits


def sequence_logps(model: PreTrainedModel, batch: TokenBatch, temperature: float = 1.0) -> torch.Tensor:
    """Σ_t log π(y_t | x, y_<t) over each row's response tokens: (B,)."""
    return forward_response(model, batch, temperature)[0].sum(-1)


def _length_order(lengths: Sequence[int]) -> list[int]:
    # Similar lengths in one batch waste less compute on padding.
    return sorted(range(len(lengths)), key=lambda i: (lengths[i], i))


@torch.inference_mode()
def batched_logps(
    model: PreTrainedModel,
    prompts: Sequence[Sequence[int]],
    responses: Sequence[Sequence[int]],
    pad_id: int,
    batch_size: int,
    temperature: float = 1.0,
    progress: Progress | None = None,
    desc: str = "log-probs",
    share_prompts: bool = False,
) -> list[float]:
    """Σ log π(response | prompt) of each pair, batched by length. With `share_prompts`, the
    responses to one prompt are batched together and the prompt runs once for them."""
    model.eval()
    device = next(model.parameters()).device
    if share_prompts:  # one prompt's responses side by side
        order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), tuple(prompts[i]), len(responses[i]), i))
    else:
        order = _length_order([len(p) + len(r) for p, r in zip(prompts, responses)])
    out = [0.0] * len(order)
    task = progress.add_task(desc, total=len(order)) if progress else None
    for start in range(0, len(order), batch_size):
        lend_idle_threads()  # inside a shared artifact's build: the cores of jobs waiting for it
        idx = order[start : start + batch_size]
        batch = pack([prompts[i] for i in idx], [responses[i] for i in idx], pad_id, share_prompts).to(device)
        for i, v in zip(idx, sequence_logps(model, batch, temperature).tolist()):
            out[i] = v
        if progress:
            progress.advance(task, len(idx))
    return out


@torch.inference_mode()
def generate_responses(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    temperature: float,
    k: int = 1,
    batch_size: int = 32,
    top_p: float = 1.0,
    seed: int = 0,
    progress: Progress | None = None,
    desc: str = "sampling",
) -> list[list[list[int]]]:
    """k sampled responses per prompt, as token ids ending at (and keeping) EOS: [N][k][len]."""
    model.eval()
    device = next(model.parameters()).device
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id
    torch.manual_seed(seed)
    order = _length_order([len(p) for p in prompts])
    out: list[list[list[int]]] = [[] for _ in prompts]
    per_batch = max(1, batch_size // k)
    task = progress.add_task(desc, total=len(prompts)) if progress else None
    for start in range(0, len(order), per_batch):
        lend_idle_threads()
        idx = order[start : start + per_batch]
        batch = pack([prompts[i] for i in idx], [[] for _ in idx], pad)
        width = batch.input_ids.shape[1] - batch.response_len
        # pack reserves one response column; generation starts right after the prompt.
        ids = batch.input_ids[:, :width].to(device)
        mask = batch.attention_mask[:, :width].to(device)
        gen = model.generate(
            input_ids=ids, attention_mask=mask, do_sample=temperature > 0,
            temperature=temperature if temperature > 0 else None, top_p=top_p, top_k=0,
            max_new_tokens=max_new_tokens, num_return_sequences=k,
            pad_token_id=pad, eos_token_id=eos,
        )[:, width:].tolist()  # (len(idx)·k, ≤ max_new_tokens)
        for j, i in enumerate(idx):
            for row in gen[j * k : (j + 1) * k]:
                out[i].append(row[: row.index(eos) + 1] if eos in row else row)
        if progress:
            progress.advance(task, len(idx))
    return out


@dataclass
class Rollout:
    """Sampled responses with what the sampler computed on the way: the per-token log-probs
    log π_T(y_t | x, y_<t) at the sampling temperature (N, R) and the final hidden states at
    the positions that predict each token (N, R, H), R the longest response; both zero past
    each response's end. The same numbers a forward pass of (prompt, response) gives
    (forward_response with hidden=True), read from the generation's own logits and states."""

    responses: list[list[int]]
    tokens: TokenBatch  # prompts and responses packed (pack), on the model's device
    logps: torch.Tensor
    hidden: torch.Tensor


def rollout_logits_bytes(model: PreTrainedModel, episodes: int, max_new_tokens: int) -> int:
    """What `sample_rollout` holds of the generation's logits: one (episodes, vocab) fp32 row
    per step, kept by `generate` until it returns."""
    return 4 * episodes * max_new_tokens * int(model.config.get_text_config().vocab_size)


def sample_rollout(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    temperature: float,
    seed: int = 0,
) -> Rollout:
    """One sampled response per prompt, in one batch and in order, for an RL rollout: PPO
    takes its old log-probs and values from here instead of running the policy again."""
    model.eval()
    device = next(model.parameters()).device
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    torch.manual_seed(seed)
    batch = pack(prompts, [[] for _ in prompts], pad)
    width = batch.input_ids.shape[1] - batch.response_len
    with torch.inference_mode():
        out = model.generate(
            input_ids=batch.input_ids[:, :width].to(device), attention_mask=batch.attention_mask[:, :width].to(device),
            do_sample=True, temperature=temperature, top_p=1.0, top_k=0, max_new_tokens=max_new_tokens,
            pad_token_id=pad, eos_token_id=eos, return_dict_in_generate=True, output_logits=True,
            output_hidden_states=True,
        )
        rows = out.sequences[:, width:].tolist()
        responses = [row[: row.index(eos) + 1] if eos in row else row for row in rows]
        tokens = pack(prompts, responses, pad).to(device)
        R, mask = tokens.response_len, tokens.response_mask.float()
        # Step t's raw logits predict token t (one step at a time: no (N, R, V) copy); its final
        # hidden state (the prompt's last position at t = 0, the previous token's afterwards) is
        # the value head's input.
        targets = out.sequences[:, width : width + R]
        logps = torch.zeros(len(responses), R, device=device)
        for t in range(R):
            step = out.logits[t].float() / temperature  # (N, V)
            logps[:, t] = step.gather(-1, targets[:, t : t + 1]).squeeze(-1) - step.logsumexp(-1)
        logps = logps * mask
        hidden = torch.cat([out.hidden_states[0][-1][:, -1:]] + [out.hidden_states[t][-1] for t in range(1, R)], dim=1)
        hidden = hidden * mask.unsqueeze(-1)
    # Outside inference mode: tensors that later losses may save for backward.
    return Rollout(responses, tokens, logps.clone(), hidden.clone())
