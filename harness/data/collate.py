"""Packing prompt + response token lists into one padded batch.

Layout of every row: [pad … pad | prompt | response | pad … pad]. Prompts are left-padded
and responses right-padded, so all responses start at the same column and the last
`response_len` columns hold them, exactly as `generate` lays out its output. This lets the
model compute logits only for those columns (`logits_to_keep`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass
class TokenBatch:
    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T)
    response_len: int  # responses occupy the last response_len columns

    def to(self, device: torch.device | str) -> TokenBatch:
        return TokenBatch(self.input_ids.to(device), self.attention_mask.to(device), self.response_len)

    @property
    def response_mask(self) -> torch.Tensor:  # (B, R)
        return self.attention_mask[:, -self.response_len :]


def pack(
    prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[int]], pad_id: int
) -> TokenBatch:
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
    return TokenBatch(ids, mask, r_len)
