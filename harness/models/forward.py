"""Forward passes of (prompt, response) rows: token log-probs, logits and hidden states,
with a prompt shared by several rows run once (KV cache gathered to the rows)."""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from typing import Any

import torch
from transformers import PreTrainedModel

from harness.data.collate import TokenBatch, pack
from harness.models.trunk import StateTable, split
from harness.progress import ProgressBar


def without_dropout(model: torch.nn.Module) -> torch.nn.Module:
    """Every dropout of `model` off, in train mode too: `nn.Dropout` modules (GPT-2's) and the
    attention dropout that attention modules apply functionally from a float attribute
    (Llama's, Gemma's `attention_dropout`), with the config's fields, so that a forward is a
    function of the weights alone (PPO's old and new log-probs, an offline objective's policy
    against its cached reference)."""
    config = getattr(model, "config", None)
    for name in list(vars(config)) if config is not None else []:
        if "dropout" in name or name.endswith("_pdrop"):
            if isinstance(getattr(config, name), float):
                setattr(config, name, 0.0)
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        for attr in ("attention_dropout", "dropout"):
            if isinstance(getattr(module, attr, None), float):
                setattr(module, attr, 0.0)
    return model


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
    the twin's detached. When both carry boundary states at the same block (`batch.states`),
    only the blocks above run, the same way. Falls back to two forwards when the prompts are not
    laid out alike."""
    width = batch.input_ids.shape[1] - batch.response_len
    same = (width > 0 and twin.input_ids.shape[1] - twin.response_len == width and batch.shared is None
            and twin.shared is None and torch.equal(batch.input_ids[:, :width], twin.input_ids[:, :width])
            and torch.equal(batch.attention_mask[:, :width], twin.attention_mask[:, :width])
            and (batch.states is None) == (twin.states is None) and batch.states_at == twin.states_at)
    if not same:
        with torch.no_grad():
            twin_logps = forward_response(model, twin)[0]
        return forward_response(model, batch)[0], twin_logps
    if batch.states is not None:
        return _top_with_detached_twin(model, batch, twin, width)
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


def _top_with_detached_twin(model: PreTrainedModel, batch: TokenBatch, twin: TokenBatch,
                            width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`forward_with_detached_twin` from boundary states: the prompts' states through the top
    blocks once, their cache copied (detached) for the twin's responses (without gradient) and
    used as is for the batch's (with)."""
    view = split(model, batch.states_at)
    mask = batch.attention_mask
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    first = view.top(batch.states[:, :width], mask[:, :width], position_ids[:, :width], use_cache=True)
    cache = getattr(first, view.cache_name)
    twin_cache = _detached_copy(cache)
    last = first.last_hidden_state[:, -1:]  # predicts each response's first token
    with torch.no_grad():
        if twin_cache is None:  # a cache this cannot copy: the twin's rows in full, from their states
            twin_logps = forward_response(model, twin)[0]
        else:
            twin_mask = twin.attention_mask
            second = view.top(twin.states[:, width:], twin_mask, (twin_mask.cumsum(-1) - 1).clamp(min=0)[:, width:],
                              use_cache=True, **{view.cache_name: twin_cache})
            hidden = torch.cat([last.detach(), second.last_hidden_state[:, :-1]], dim=1)
            twin_logps = _token_logps(output_logits(model, hidden), twin)
    second = view.top(batch.states[:, width:], mask, position_ids[:, width:], use_cache=True,
                      **{view.cache_name: cache})
    hidden = torch.cat([last, second.last_hidden_state[:, :-1]], dim=1)
    return _token_logps(output_logits(model, hidden), batch), twin_logps


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
    Rows that share a prompt (`batch.shared`) run it once (`prefix_shared_forward`). A batch
    carrying boundary states (`batch.states`) runs only the blocks above them (`top_hidden`).
    """
    R = batch.response_len
    if batch.states is not None:  # the frozen bottom already computed: the top blocks only
        states = top_hidden(model, batch)
        logits = output_logits(model, states)
        states = states if hidden else None
    elif shares_prompts(batch):
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


def top_passes(model: PreTrainedModel, batch: TokenBatch, share: bool = True) -> tuple[Any | None, Any]:
    """The blocks above `batch.states_at` from `batch.states` (the frozen bottom already
    computed): (prompt pass, response pass) when rows share prompts (each prompt once, as in
    `prefix_shared_forward`), else (None, the whole rows' pass). Outputs hold the final (normed)
    hidden states, `last_hidden_state`."""
    assert batch.states is not None
    view = split(model, batch.states_at)
    mask = batch.attention_mask
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    if share and shares_prompts(batch):
        width = batch.input_ids.shape[1] - batch.response_len
        rows = batch.shared.rows
        first = view.top(batch.states[rows, :width], mask[rows, :width], position_ids[rows, :width], use_cache=True)
        cache = getattr(first, view.cache_name)
        cache.reorder_cache(batch.shared.index)
        return first, view.top(batch.states[:, width:], mask, position_ids[:, width:], use_cache=True,
                               **{view.cache_name: cache})
    return None, view.top(batch.states, mask, position_ids, use_cache=False)


def top_hidden(model: PreTrainedModel, batch: TokenBatch) -> torch.Tensor:
    """The final hidden states at the positions that predict each response token (B, R, H),
    from `batch.states` by the blocks above them (`top_passes`): `forward_response`'s states
    without running the frozen bottom."""
    first, second = top_passes(model, batch)
    if first is not None:
        index = batch.shared.index
        return torch.cat([first.last_hidden_state[index, -1:], second.last_hidden_state[:, :-1]], dim=1)
    return second.last_hidden_state[:, -batch.response_len - 1 : -1]


def output_logits(model: PreTrainedModel, states: torch.Tensor) -> torch.Tensor:
    """The causal LM's output layer on final hidden states, with its logit soft-capping if any."""
    logits = model.get_output_embeddings()(states)
    cap = getattr(model.config.get_text_config(), "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits


def sequence_logps(model: PreTrainedModel, batch: TokenBatch, temperature: float = 1.0) -> torch.Tensor:
    """Σ_t log π(y_t | x, y_<t) over each row's response tokens: (B,)."""
    return forward_response(model, batch, temperature)[0].sum(-1)


def length_order(lengths: Sequence[int]) -> list[int]:
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
    progress: ProgressBar | None = None,
    desc: str = "log-probs",
    share_prompts: bool = False,
    states: StateTable | None = None,
) -> list[float]:
    """Σ log π(response | prompt) of each pair, batched by length. With `share_prompts`, the
    responses to one prompt are batched together and the prompt runs once for them. With
    `states` (covering every pair), only the blocks above the table's boundary run."""
    model.eval()
    device = next(model.parameters()).device
    if share_prompts:  # one prompt's responses side by side
        order = sorted(range(len(prompts)), key=lambda i: (len(prompts[i]), tuple(prompts[i]), len(responses[i]), i))
    else:
        order = length_order([len(p) + len(r) for p, r in zip(prompts, responses)])
    out = [0.0] * len(order)
    task = progress.add_task(desc, total=len(order)) if progress else None
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = pack([prompts[i] for i in idx], [responses[i] for i in idx], pad_id, share_prompts).to(device)
        if states is not None:
            batch = states.attach(batch)
        for i, v in zip(idx, sequence_logps(model, batch, temperature).tolist()):
            out[i] = v
        if progress:
            progress.advance(task, len(idx))
    return out
