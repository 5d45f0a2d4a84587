"""Packing prompt + response token lists into one padded batch.

Layout of every row: [pad … pad | prompt | response | pad … pad]. Prompts are left-padded
and responses right-padded, so all responses start at the same column and the last
`response_len` columns hold them, exactly as `generate` lays out its output. This lets the
model compute logits only for those columns (`logits_to_keep`).

Rows that answer the same prompt (a pair's chosen and rejected response, a best-of-k group)
can share it (`share_prompts`): the batch then records one row per distinct prompt, and the
forward passes (models/forward.py, models/reward.py) run each prompt once, continuing every
response from its prompt's keys and values. Under causal attention this is the same
computation as running every row in full, with the prompt's FLOPs paid once per prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class SharedPrompts:
    """Which rows answer the same prompt: `rows` (P,) holds one row index per distinct prompt,
    `index` (B,) the distinct prompt of every row."""

    rows: torch.Tensor
    index: torch.Tensor

    def to(self, device: torch.device | str) -> SharedPrompts:
        return SharedPrompts(self.rows.to(device), self.index.to(device))


@dataclass
class TokenBatch:
    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T)
    response_len: int  # responses occupy the last response_len columns
    shared: SharedPrompts | None = None  # rows with one prompt run it once (None: every row in full)
    # The states entering decoder block `states_at` at every column (B, T, H), computed once
    # below the frozen blocks (models/trunk.py): a forward of a model with the same frozen
    # bottom starts there. None: forwards run every block. From a rollout, the last sampled
    # token's column is zero (generation never feeds it back): enough for log-probs and values,
    # which it cannot influence, not for a reward model pooling over it.
    states: torch.Tensor | None = None
    states_at: int = 0

    def to(self, device: torch.device | str) -> TokenBatch:
        shared = self.shared.to(device) if self.shared is not None else None
        states = self.states.to(device) if self.states is not None else None
        return TokenBatch(self.input_ids.to(device), self.attention_mask.to(device), self.response_len, shared,
                          states, self.states_at)

    def select(self, rows: torch.Tensor) -> TokenBatch:
        """These rows, each running its own prompt."""
        states = self.states[rows] if self.states is not None else None
        return TokenBatch(self.input_ids[rows], self.attention_mask[rows], self.response_len, None, states,
                          self.states_at)

    def with_states(self, states: torch.Tensor | None, at: int) -> TokenBatch:
        """This batch carrying boundary states entering block `at` (None: without)."""
        if states is not None and states.shape[:2] != self.input_ids.shape:
            raise ValueError(f"boundary states {tuple(states.shape)} do not cover the batch {tuple(self.input_ids.shape)}")
        return TokenBatch(self.input_ids, self.attention_mask, self.response_len, self.shared, states,
                          at if states is not None else 0)

    @property
    def response_mask(self) -> torch.Tensor:  # (B, R)
        return self.attention_mask[:, -self.response_len :]


def pack(
    prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_id: int, share_prompts: bool = False
) -> TokenBatch:
    """One padded batch; with `share_prompts`, rows with identical prompts are marked to share
    them (when no prompt repeats, nothing is)."""
    if len(prompts) != len(responses):
        raise ValueError(f"pack: {len(prompts)} prompts but {len(responses)} responses")
    p_len = max(len(p) for p in prompts)
    r_len = max(max(len(r) for r in responses), 1)
    ids = torch.full((len(prompts), p_len + r_len), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, (p, r) in enumerate(zip(prompts, responses)):
        start = p_len - len(p)
        ids[i, start:p_len] = torch.as_tensor(list(p), dtype=torch.long)
        ids[i, p_len : p_len + len(r)] = torch.as_tensor(list(r), dtype=torch.long)
        mask[i, start : p_len + len(r)] = 1
    shared = None
    if share_prompts:
        distinct: dict[tuple[int, ...], int] = {}
        rows, index = [], []
        for i, p in enumerate(prompts):
            j = distinct.setdefault(tuple(p), len(distinct))
            if j == len(rows):  # first row with this prompt
                rows.append(i)
            index.append(j)
        if len(rows) < len(prompts):
            shared = SharedPrompts(torch.tensor(rows), torch.tensor(index))
    return TokenBatch(ids, mask, r_len, shared)
