"""Preference data with cached reference log-probs: pairs (DPO, IPO, SimPO, ORPO), unpaired
examples (KTO), comparison groups (reward model), and their datamodule."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from harness.data.collate import TokenBatch, pack
from harness.data.resumable import ResumableBatches


@dataclass(frozen=True)
class PreferencePair:
    prompt_ids: tuple[int, ...]
    chosen_ids: tuple[int, ...]
    rejected_ids: tuple[int, ...]
    ref_chosen_logp: float
    ref_rejected_logp: float

    @property
    def lengths(self) -> tuple[int, int]:
        return len(self.prompt_ids), max(len(self.chosen_ids), len(self.rejected_ids))


@dataclass
class PairBatch:
    """Chosen rows first, then rejected rows, in one TokenBatch of 2B rows; each prompt runs
    once for both (collate.SharedPrompts)."""

    tokens: TokenBatch
    ref_logps: torch.Tensor  # (2B,) chosen then rejected

    def transfer(self, device: torch.device | str) -> PairBatch:
        return PairBatch(self.tokens.to(device), self.ref_logps.to(device))


def collate_pairs(pairs: Sequence[PreferencePair], pad_id: int) -> PairBatch:
    prompts = [p.prompt_ids for p in pairs] * 2
    responses = [p.chosen_ids for p in pairs] + [p.rejected_ids for p in pairs]
    ref = [p.ref_chosen_logp for p in pairs] + [p.ref_rejected_logp for p in pairs]
    return PairBatch(pack(prompts, responses, pad_id, share_prompts=True), torch.tensor(ref, dtype=torch.float32))


class PairCollator:
    """Picklable collate function (DataLoader workers may pickle it)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, pairs: Sequence[PreferencePair]) -> PairBatch:
        return collate_pairs(pairs, self.pad_id)


@dataclass(frozen=True)
class UnpairedExample:
    """One response judged desirable or not (KTO), with a mismatched response for the KL
    reference point: `kl_ids` answers another prompt, scored here against this one."""

    prompt_ids: tuple[int, ...]
    response_ids: tuple[int, ...]
    kl_ids: tuple[int, ...]
    desirable: bool
    ref_logp: float
    ref_kl_logp: float

    @property
    def lengths(self) -> tuple[int, int]:
        return len(self.prompt_ids), len(self.response_ids)


@dataclass
class UnpairedBatch:
    """The B examples and, separately (they need no gradient), their B mismatched pairs."""

    tokens: TokenBatch
    kl_tokens: TokenBatch
    desirable: torch.Tensor  # (B,) bool
    ref_logps: torch.Tensor  # (B,)
    ref_kl_logps: torch.Tensor  # (B,)

    def transfer(self, device: torch.device | str) -> UnpairedBatch:
        return UnpairedBatch(self.tokens.to(device), self.kl_tokens.to(device), self.desirable.to(device),
                             self.ref_logps.to(device), self.ref_kl_logps.to(device))


class UnpairedCollator:
    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, examples: Sequence[UnpairedExample]) -> UnpairedBatch:
        prompts = [e.prompt_ids for e in examples]
        return UnpairedBatch(
            pack(prompts, [e.response_ids for e in examples], self.pad_id),
            pack(prompts, [e.kl_ids for e in examples], self.pad_id),
            torch.tensor([e.desirable for e in examples]),
            torch.tensor([e.ref_logp for e in examples], dtype=torch.float32),
            torch.tensor([e.ref_kl_logp for e in examples], dtype=torch.float32),
        )


class ListDataModule(L.LightningDataModule):
    """Train/validation lists of examples, batched by a collator (pairs, groups, …).

    Validation examples are held out by the caller (by prompt, so none leaks into training).
    With `bucket` > 1, training batches group examples of similar lengths (each example's
    `lengths`: prompt, longest response), `bucket` batches at a time (`ResumableBatches`).
    """

    def __init__(self, train: Sequence, val: Sequence, collate: Callable, batch_size: int, seed: int,
                 bucket: int = 0) -> None:
        super().__init__()
        self.train, self.val = list(train), list(val)
        self.bucket = bucket
        self.collate = collate
        self.batch_size = batch_size
        self.seed = seed

    def train_dataloader(self) -> ResumableBatches:
        lengths = [row.lengths for row in self.train] if self.bucket > 1 else None
        return ResumableBatches(self.train, self.batch_size, self.collate, seed=self.seed, lengths=lengths,
                                bucket=self.bucket)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val, batch_size=self.batch_size, collate_fn=self.collate)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        return batch.transfer(device)


@dataclass(frozen=True)
class ComparisonGroup:
    """k responses to one prompt and the index of the preferred one (reward-model data)."""

    prompt_ids: tuple[int, ...]
    responses: tuple[tuple[int, ...], ...]
    choice: int

    @property
    def lengths(self) -> tuple[int, int]:
        return len(self.prompt_ids), max(len(r) for r in self.responses)


@dataclass
class GroupBatch:
    tokens: TokenBatch  # B·k rows, group-major
    choice: torch.Tensor  # (B,)
    k: int

    def transfer(self, device: torch.device | str) -> GroupBatch:
        return GroupBatch(self.tokens.to(device), self.choice.to(device), self.k)


class GroupCollator:
    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, groups: Sequence[ComparisonGroup]) -> GroupBatch:
        k = len(groups[0].responses)
        if any(len(g.responses) != k for g in groups):
            raise ValueError("GroupCollator: every comparison in a batch needs the same number of responses")
        prompts = [g.prompt_ids for g in groups for _ in range(k)]
        responses = [r for g in groups for r in g.responses]
        return GroupBatch(pack(prompts, responses, self.pad_id, share_prompts=True),
                          torch.tensor([g.choice for g in groups]), k)
