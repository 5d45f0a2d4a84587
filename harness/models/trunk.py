"""Frozen bottom blocks computed once: a decoder split at block k.

Every SmolLM2 experiment trains only the top blocks (`model.trainable_layers`). Below that
boundary the policy, the reference (the same initial weights, frozen) and every PPO epoch
compute the same activations. `Split(model, k)` runs the two halves separately on views that
share the model's modules: `bottom` (embeddings and blocks 0..k−1) gives the *boundary
states*, the hidden states entering block k; `top` (blocks k.., final norm) continues from
them. Attention is causal and the bottom is frozen, so top(bottom(x)) is the model's forward:
the same outputs, and the same gradients for every trainable parameter (tests/unit/test_trunk.py).

`capture_boundary` records the boundary states while `generate` runs, so a rollout's states
cost nothing beyond sampling; `same_bottom` tells whether two models (the policy and its
frozen reference, or a reward model's trunk) may start from the same states.
"""

from __future__ import annotations

import copy
import inspect
import json
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import PreTrainedModel

from harness.data.collate import TokenBatch, pack


def decoder(model: nn.Module) -> nn.Module:
    """The decoder stack (embeddings, `layers`, final `norm`) of a causal LM or a bare trunk."""
    dec = model.get_decoder() if hasattr(model, "get_decoder") else model
    if not isinstance(getattr(dec, "layers", None), nn.ModuleList):
        raise TypeError(f"{type(model).__name__}: no decoder `layers` to split")
    return dec


def frozen_blocks(model: nn.Module) -> int:
    """How many bottom blocks (with the embeddings) have no trainable parameter: the boundary
    below which every forward of this model computes the same thing. 0 when the embeddings
    train, or when the model has no decoder stack."""
    try:
        dec = decoder(model)
    except TypeError:
        return 0
    if any(p.requires_grad for p in dec.get_input_embeddings().parameters()):
        return 0
    k = 0
    for block in dec.layers:
        if any(p.requires_grad for p in block.parameters()):
            break
        k += 1
    return k


def _bottom_tensors(model: nn.Module, k: int) -> list[torch.Tensor]:
    dec = decoder(model)
    return [*dec.get_input_embeddings().parameters(), *(p for block in dec.layers[:k] for p in block.parameters()),
            *(b for block in dec.layers[:k] for b in block.buffers())]


def same_bottom(a: nn.Module, b: nn.Module, k: int) -> bool:
    """Whether `a` and `b` compute the same boundary states at block k: the same architecture
    below it and equal embeddings and blocks (the same tensors, or equal values)."""
    if k == 0:
        return False
    try:
        ta, tb = _bottom_tensors(a, k), _bottom_tensors(b, k)
    except TypeError:
        return False
    if len(decoder(a).layers) < k or len(decoder(b).layers) < k or len(ta) != len(tb):
        return False
    return all(x is y or (x.shape == y.shape and x.dtype == y.dtype and torch.equal(x, y)) for x, y in zip(ta, tb))


def _config(config: Any, layers: slice) -> Any:
    sliced = copy.copy(config)
    sliced.num_hidden_layers = len(range(config.num_hidden_layers)[layers])
    if getattr(config, "layer_types", None) is not None:
        sliced.layer_types = list(config.layer_types)[layers]
    return sliced


@contextmanager
def _renumbered(blocks: list[nn.Module], offset: int) -> Iterator[None]:
    """For the duration of a top pass, blocks k.. read and write KV-cache layers 0.. (the top
    view's cache holds its own blocks only): every `layer_idx` in them shifted down by `offset`,
    restored after. The blocks themselves are the model's, so nothing set on them later (dropout
    off, new weights) can go stale in the view."""
    shifted = [m for block in blocks for m in block.modules() if isinstance(getattr(m, "layer_idx", None), int)]
    for m in shifted:
        m.layer_idx -= offset
    try:
        yield
    finally:
        for m in shifted:
            m.layer_idx += offset


def _view(dec: nn.Module, layers: slice, norm: bool) -> nn.Module:
    """The decoder with only `layers` of its blocks (the same modules) and, without `norm`, no
    final norm; its config sliced to them."""
    view = copy.copy(dec)
    view._modules = dict(dec._modules)
    view._modules["layers"] = nn.ModuleList(list(dec.layers)[layers])
    if not norm:
        view._modules["norm"] = nn.Identity()
    view.config = _config(dec.config, layers)
    return view


class Split:
    """`model`'s decoder split at block `k` (1 ≤ k ≤ number of blocks): two views sharing its
    parameters. Build it with `split(model, k)`, which keeps one per model and k."""

    def __init__(self, model: nn.Module, k: int) -> None:
        dec = decoder(model)
        n = len(dec.layers)
        if not 1 <= k <= n:
            raise ValueError(f"split at block {k}: the model has {n} blocks")
        self.k = k
        self._bottom = _view(dec, slice(0, k), norm=False)
        self._top = _view(dec, slice(k, n), norm=True)
        self.cache_name = "cache" if "cache" in _parameters(dec) else "past_key_values"

    @torch.no_grad()
    def bottom(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The states entering block k at every position: (B, T, H), positions counted from each
        row's first real token (left padding), as in `forward.forward_response`."""
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        return self._bottom(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                            use_cache=False).last_hidden_state

    def top(self, states: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor,
            **kwargs: Any) -> Any:
        """Blocks k.. and the final norm from `states` (B, T', H) at `position_ids`; `attention_mask`
        covers the cache's columns and these. Returns the decoder's output (last_hidden_state,
        and the KV cache of the top blocks with `use_cache`)."""
        with _renumbered(list(self._top.layers), self.k):
            return self._top(inputs_embeds=states, attention_mask=attention_mask, position_ids=position_ids,
                             **kwargs)


def _parameters(module: nn.Module) -> Any:
    return inspect.signature(module.forward).parameters


_SPLITS: weakref.WeakKeyDictionary[nn.Module, dict[int, Split]] = weakref.WeakKeyDictionary()


def split(model: nn.Module, k: int) -> Split:
    """The `Split` of `model` at block k, built once per model and k."""
    per_model = _SPLITS.setdefault(model, {})
    if k not in per_model:
        per_model[k] = Split(model, k)
    return per_model[k]


@contextmanager
def capture_boundary(model: PreTrainedModel, k: int) -> Iterator[list[torch.Tensor]]:
    """Records the states entering block k at each forward of `model` inside the block (for
    `generate`: the prompt, then one column per new token). `torch.cat(states, 1)` gives
    (B, prompt width + steps, H): every position but the last sampled token, which generation
    never feeds back. Its state is never needed: under causal attention it influences only the
    logits after it."""
    states: list[torch.Tensor] = []

    def hook(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        hidden = output[0] if isinstance(output, tuple) else output
        states.append(hidden.detach())

    block = decoder(model).layers[k - 1]
    handle = block.register_forward_hook(hook, with_kwargs=True)
    try:
        yield states
    finally:
        handle.remove()


class StateTable:
    """Boundary states of a fixed set of (prompt, response) rows, computed once: a reward model
    trained for several epochs (and scored once more for its normalisation) runs its frozen
    bottom once per row instead of at every pass. A prompt's states are stored once for all its
    responses (under causal attention they do not depend on the response). `attach` lays the
    states of a packed batch's rows out as `pack` lays out their tokens."""

    def __init__(self, k: int) -> None:
        self.k = k
        self._prompts: dict[tuple[int, ...], torch.Tensor] = {}
        self._responses: dict[tuple[tuple[int, ...], tuple[int, ...]], torch.Tensor] = {}

    @staticmethod
    def nbytes(model: nn.Module, prompts: Any, responses: Any) -> int:
        """What `build` would hold for these rows (fp32 states, each prompt once)."""
        hidden = decoder(model).config.hidden_size
        tokens = sum(len(p) for p in {tuple(p) for p in prompts}) + sum(len(r) for r in responses)
        return 4 * hidden * tokens

    @classmethod
    @torch.no_grad()
    def build(cls, model: nn.Module, k: int, prompts: Any, responses: Any, pad_id: int,
              batch_size: int = 32) -> StateTable:
        table = cls(k)
        view = split(model, k)
        device = next(model.parameters()).device
        rows = list(dict.fromkeys((tuple(p), tuple(r)) for p, r in zip(prompts, responses)))
        order = sorted(range(len(rows)), key=lambda i: (len(rows[i][0]) + len(rows[i][1]), i))  # less padding
        for start in range(0, len(order), batch_size):
            chunk = [rows[i] for i in order[start : start + batch_size]]
            batch = pack([p for p, _ in chunk], [r for _, r in chunk], pad_id)
            states = view.bottom(batch.input_ids.to(device), batch.attention_mask.to(device)).cpu()
            width = batch.input_ids.shape[1] - batch.response_len
            for row, (p, r) in enumerate(chunk):
                table.add(p, r, states[row, width - len(p) : width], states[row, width : width + len(r)])
        return table

    def complete(self, model: nn.Module, prompts: Any, responses: Any, pad_id: int, batch_size: int = 32) -> StateTable:
        """This table with the rows it lacks among these added (a bottom pass of `model` over
        them, `build`'s); returns it."""
        missing = [(p, r) for p, r in zip(prompts, responses) if (p, r) not in self]
        if missing:
            self.update(StateTable.build(model, self.k, [p for p, _ in missing], [r for _, r in missing], pad_id,
                                         batch_size))
        return self

    def held_bytes(self) -> int:
        return sum(t.nbytes for t in self._prompts.values()) + sum(t.nbytes for t in self._responses.values())

    def __contains__(self, row: tuple[Any, Any]) -> bool:
        return (tuple(row[0]), tuple(row[1])) in self._responses

    def add(self, prompt: tuple[int, ...], response: tuple[int, ...], prompt_states: torch.Tensor,
            response_states: torch.Tensor) -> None:
        """One row's states: (len(prompt), H) and (len(response), H), copied (a prompt's once)."""
        if prompt not in self._prompts:
            self._prompts[prompt] = prompt_states.clone()
        self._responses[(prompt, response)] = response_states.clone()

    def __len__(self) -> int:
        return len(self._responses)

    def covers(self, prompts: Any, responses: Any) -> bool:
        return all((tuple(p), tuple(r)) in self._responses for p, r in zip(prompts, responses))

    def update(self, other: StateTable) -> None:
        if other.k != self.k:
            raise ValueError(f"boundary states at block {other.k} cannot join a table at block {self.k}")
        self._prompts.update(other._prompts)
        self._responses.update(other._responses)

    def save(self, out: Path) -> None:
        """Two tensors (every prompt's states, every response's, concatenated) and the token ids
        that slice them, in `out`."""
        prompts, rows = list(self._prompts), list(self._responses)
        save_file({"prompts": torch.cat([self._prompts[p] for p in prompts]).contiguous(),
                   "responses": torch.cat([self._responses[r] for r in rows]).contiguous()},
                  str(out / "states.safetensors"))
        (out / "rows.json").write_text(json.dumps({"k": self.k, "prompts": prompts, "rows": rows}))

    @classmethod
    def load(cls, path: Path) -> StateTable:
        meta = json.loads((path / "rows.json").read_text())
        tensors = load_file(str(path / "states.safetensors"))
        table = cls(meta["k"])
        for name, keys, store in (("prompts", [tuple(p) for p in meta["prompts"]], table._prompts),
                                  ("responses", [(tuple(p), tuple(r)) for p, r in meta["rows"]], table._responses)):
            lengths = [len(key) if name == "prompts" else len(key[1]) for key in keys]
            for key, states in zip(keys, torch.split(tensors[name], lengths)):
                store[key] = states
        return table

    def attach(self, batch: TokenBatch) -> TokenBatch:
        """`batch` (a TokenBatch laid out by `pack`) carrying its rows' boundary states."""
        ids, mask = batch.input_ids.tolist(), batch.attention_mask
        width = batch.input_ids.shape[1] - batch.response_len
        lengths = mask.sum(-1).tolist()
        response_lengths = mask[:, width:].sum(-1).tolist()
        hidden = next(iter(self._prompts.values())).shape[-1]
        states = torch.zeros(*batch.input_ids.shape, hidden)
        for row, (n, r_len) in enumerate(zip(lengths, response_lengths)):
            p = tuple(ids[row][width - (n - r_len) : width])
            r = tuple(ids[row][width : width + r_len])
            states[row, width - len(p) : width] = self._prompts[p]
            states[row, width : width + r_len] = self._responses[(p, r)]
        return batch.with_states(states.to(batch.input_ids.device), self.k)
