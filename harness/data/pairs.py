"""Labelled best-of-k comparisons to training rows: preference pairs (DPO and relatives) and
KTO's unpaired examples with their mismatched partners (z0), and the seeded choices behind
them (which chosen responses are kept, which prompt partners which)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.data.preference import PreferencePair, UnpairedExample
from harness.errors import InputError


def build_pairs(
    prompt_ids: Sequence[Sequence[int]],
    responses: Sequence[Sequence[Sequence[int]]],
    choices: Sequence[int],
    ref_logps: Sequence[Sequence[float]],
    keep: set[int] | None = None,
) -> list[tuple[int, PreferencePair]]:
    """Best-of-k labels to pairs, each with its prompt index: the chosen response against each
    of the k−1 others, for the prompts in `keep` (all by default).

    Identical responses carry no preference and are skipped.
    """
    pairs = []
    for i, (p, group, best, ref) in enumerate(zip(prompt_ids, responses, choices, ref_logps)):
        if keep is not None and i not in keep:
            continue
        for j, other in enumerate(group):
            if j != best and list(other) != list(group[best]):
                pairs.append((i, PreferencePair(tuple(p), tuple(group[best]), tuple(other), ref[best], ref[j])))
    return pairs


def desirable_prompts(n: int, fraction: float, seed: int) -> set[int]:
    """The prompts whose chosen response is kept: a seeded share `fraction` of the n."""
    if fraction >= 1.0:
        return set(range(n))
    order = np.random.default_rng(seed).permutation(n)
    return set(order[: int(round(fraction * n))].tolist())


def kl_partners(n: int, seed: int) -> list[int]:
    """partners[i] ≠ i: the prompt whose responses are scored against prompt i for KTO's z0.

    A seeded cycle through all prompts, fixed before training so the reference log-probs of the
    mismatched pairs can be computed once (TRL also fixes them when it builds the dataset).
    """
    if n < 2:
        raise InputError(f"labels.n={n}: KTO's reference point needs at least 2 prompts")
    order = np.random.default_rng(seed).permutation(n)
    partners = [0] * n
    for pos, i in enumerate(order):
        partners[int(i)] = int(order[(pos + 1) % n])
    return partners


def partner_group(responses: Sequence[Sequence[Sequence[int]]], partners: Sequence[int], i: int, k: int) -> list:
    other = responses[partners[i]]
    return [other[j % len(other)] for j in range(k)]


def build_unpaired(
    prompt_ids: Sequence[Sequence[int]],
    responses: Sequence[Sequence[Sequence[int]]],
    choices: Sequence[int],
    ref_logps: Sequence[Sequence[float]],
    partners: Sequence[int],
    ref_kl_logps: Sequence[Sequence[float]],
    keep: set[int],
    ratings: Sequence[Sequence[int]] | None = None,
) -> list[tuple[int, UnpairedExample]]:
    """Labels to KTO's unpaired examples, each with its prompt index. Best-of-k labels: the
    chosen response desirable (if its prompt is in `keep`), every other response undesirable.
    Binary labels (`ratings`, 1 = thumbs up): each response as rated, a desirable one kept if
    its prompt is in `keep`. Response j of prompt i is paired for the KL estimate with response
    j of its partner."""
    rows = []
    for i, (p, group, best) in enumerate(zip(prompt_ids, responses, choices)):
        kl_group = partner_group(responses, partners, i, len(group))
        for j, response in enumerate(group):
            desirable = bool(ratings[i][j]) if ratings is not None else j == best
            if desirable and i not in keep:
                continue
            if ratings is None and not desirable and list(response) == list(group[best]):
                continue  # a duplicate of the chosen response is not a rejected one
            rows.append((i, UnpairedExample(tuple(p), tuple(response), tuple(kl_group[j]), desirable,
                                            ref_logps[i][j], ref_kl_logps[i][j])))
    return rows
