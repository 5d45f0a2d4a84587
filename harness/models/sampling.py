"""Sampling responses with `generate` (KV cache, seeded): for labelling and evaluation, and
PPO's rollouts with the sampler's own log-probs and final hidden states."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase, TopPLogitsWarper

from harness.data.collate import TokenBatch, pack
from harness.models.forward import batched_logps, length_order
from harness.models.trunk import StateTable, capture_boundary, same_bottom
from harness.progress import ProgressBar


@dataclass(frozen=True)
class Stop:
    """Where a sampled response ends (Ziegler et al. 2019's `truncate_token` and
    `truncate_after`; lm-human-preferences `lm_tasks.postprocess_fn_from_hparams`): at EOS, or
    at the first token ending in the task's stop text (`ids`, e.g. every token ending a sentence
    with '.') at response position ≥ `after`; the stop token is kept and what follows is cut.
    A response that reaches `max_new_tokens` without either has not *finished*: PPO can score it
    with a fixed penalty instead of the reward model (`loss.method.settings.unfinished_score`).

    Unlike the original, which trained PPO on the uncut 24 tokens and only scored the cut
    text, the episode here ends at the stop token: the policy is trained, penalised for KL and
    judged on the same tokens (the "EOS trick" of Huang et al.'s TL;DR reproduction)."""

    eos: int
    ids: frozenset[int] = frozenset()
    after: int = 0

    def stops(self, position: int, token: int) -> bool:
        """Whether `token` at response `position` ends the response: EOS anywhere, a stop token
        at ≥ `after`."""
        return token == self.eos or (position >= self.after and token in self.ids)

    def cut(self, row: Sequence[int]) -> list[int]:
        """`row` up to and including its first stop."""
        for i, token in enumerate(row):
            if self.stops(i, token):
                return list(row[: i + 1])
        return list(row)

    def finished(self, response: Sequence[int]) -> bool:
        """Whether a response (already `cut`) ends at a stop rather than at the length limit."""
        return bool(response) and self.stops(len(response) - 1, response[-1])


# How `sample` draws, part of the key of every cached artifact of samples (stages.py): the same
# seed draws other tokens under another rule, so samples drawn before it changed are not reused.
SAMPLER = {"draw": "inverse_cdf", "prompt_pass": "once_per_prompt"}


class InverseCDF(LogitsProcessor):
    """Draws each row's next token from softmax(scores / τ), restricted to the top-p nucleus
    when `top_p` < 1, by inverse transform sampling: one uniform u per row (torch's seeded
    generator), the token i with F(i−1) < u·F(V) ≤ F(i), F the running sum of the
    probabilities. It returns scores that are −inf but at the drawn token, so `generate`'s
    greedy step picks it. The distribution is `generate`'s own sampling (temperature, then
    top-p, then `torch.multinomial`); the cost is not: multinomial draws an exponential variate
    per vocabulary entry (SmolLM2: 49,152 per row and step, 17% of a 100-row sampling call on
    2 EPYC cores), this one cumulative sum."""

    def __init__(self, temperature: float, top_p: float = 1.0) -> None:
        self.temperature = temperature
        self.top_p = TopPLogitsWarper(top_p) if top_p < 1.0 else None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = scores / self.temperature
        if self.top_p is not None:
            scores = self.top_p(input_ids, scores)
        cdf = torch.softmax(scores, -1).cumsum(-1)
        u = torch.rand(scores.shape[0], 1, device=scores.device) * cdf[:, -1:]
        drawn = torch.searchsorted(cdf, u, right=True).clamp_(max=scores.shape[-1] - 1)
        return torch.full_like(scores, float("-inf")).scatter_(1, drawn, 0.0)


def sample(model: PreTrainedModel, ids: torch.Tensor, mask: torch.Tensor, *, k: int, temperature: float,
           top_p: float, max_new_tokens: int, pad: int, eos: int, **outputs: Any) -> Any:
    """`generate` for k responses to each left-padded prompt of `ids` (B, W): rows j·k … j·k+k−1
    of the result answer prompt j. The prompts' first W − 1 columns run once per prompt and
    their KV cache is repeated k times (`generate`'s `num_return_sequences` would run every
    prompt k times: for sentiment's prompts, about as long as their responses, a quarter of
    sampling's compute at k = 2); tokens are drawn by `InverseCDF` (greedy at temperature 0).
    A forward hook on the model sees that shared prompt pass once, with B rows. `outputs`:
    `generate`'s output options (return_dict_in_generate, output_logits, ...)."""
    position = (mask.long().cumsum(-1) - 1).clamp(min=0)
    cache = None
    if k > 1 and ids.shape[1] > 1:
        # Only the cache is wanted: the output layer runs on one position, not W − 1.
        cache = model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=position[:, :-1],
                      use_cache=True, logits_to_keep=1).cache
        cache.batch_repeat_interleave(k)
    processors = LogitsProcessorList([InverseCDF(temperature, top_p)] if temperature > 0 else [])
    return model.generate(
        input_ids=ids.repeat_interleave(k, 0), attention_mask=mask.repeat_interleave(k, 0),
        **({"cache": cache} if cache is not None else {}), do_sample=False, logits_processor=processors,
        max_new_tokens=max_new_tokens, pad_token_id=pad, eos_token_id=eos, **outputs,
    )


@functools.lru_cache(maxsize=8)
def stop_tokens(tokenizer: PreTrainedTokenizerBase, text: str) -> frozenset[int]:
    r"""Every token whose text ends with `text`, trailing whitespace aside: for '.', the tokens
    '.', ' .', '.\n', '...' (not '.com'); for '\n', '\n', '.\n' and '\n\n' (not '\nThe').
    Decodes the vocabulary once per tokenizer and text."""
    special = set(tokenizer.all_special_ids)
    pieces = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    found = set()
    for i, piece in enumerate(pieces):
        end = piece.rfind(text)
        if i not in special and end >= 0 and not piece[end + len(text):].strip():
            found.add(i)
    return frozenset(found)


def stop_rule(tokenizer: PreTrainedTokenizerBase, text: str | None = None, after: int = 0) -> Stop:
    """The `Stop` of a task (`task.stop`, `task.stop_after`) for this tokenizer; EOS only when
    `text` is None."""
    return Stop(tokenizer.eos_token_id, stop_tokens(tokenizer, text) if text else frozenset(), after)


@torch.inference_mode()
def generate_responses(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[Sequence[int]],
                       **settings: Any) -> list[list[list[int]]]:
    """k sampled responses per prompt, as token ids cut at (and keeping) their stop: [N][k][len].
    `settings`: `_generate`'s (max_new_tokens, temperature, k, batch_size, top_p, seed, progress,
    desc, stop; `stop` None: EOS)."""
    return _generate(model, tokenizer, prompts, **settings)[0]


@torch.inference_mode()
def generate_with_logps(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[Sequence[int]],
                        logps_temperature: float = 1.0,
                        **settings: Any) -> tuple[list[list[list[int]]], list[list[float]]]:
    """`generate_responses`, and the sampling model's Σ_t log π_τ(y_t | x, y_<t) of each
    response over its kept tokens, τ = `logps_temperature` (log-softmax of the raw logits / τ),
    read from the generation's own logits: the numbers a forward pass of (prompt, response)
    gives (`forward.batched_logps` at τ), to float rounding, so the sampler's log-probs need no
    second pass."""
    return _generate(model, tokenizer, prompts, logps=logps_temperature, **settings)  # type: ignore[return-value]


def _generate(
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
    progress: ProgressBar | None = None,
    desc: str = "sampling",
    stop: Stop | None = None,
    logps: float | None = None,
    states: StateTable | None = None,
) -> tuple[list[list[list[int]]], list[list[float]] | None]:
    """Sampling with `generate` (seeded, KV cache), batched by prompt length; with `logps` (a
    temperature τ) also each kept response's Σ log π_τ from the raw logits; with `states` (a
    `trunk.StateTable` at block k) the states entering block k of every kept row, recorded
    while sampling, added to it (a response that runs to `max_new_tokens` gets zeros for its
    last token, which generation never feeds back: no log-prob of the row depends on it)."""
    model.eval()
    device = next(model.parameters()).device
    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id
    stop = stop or Stop(eos)
    torch.manual_seed(seed)
    order = length_order([len(p) for p in prompts])
    out: list[list[list[int]]] = [[] for _ in prompts]
    sums: list[list[float]] = [[] for _ in prompts]
    per_batch = max(1, batch_size // k)
    task = progress.add_task(desc, total=len(prompts)) if progress else None
    for start in range(0, len(order), per_batch):
        idx = order[start : start + per_batch]
        batch = pack([prompts[i] for i in idx], [[] for _ in idx], pad)
        width = batch.input_ids.shape[1] - batch.response_len
        # pack reserves one response column; generation starts right after the prompt.
        ids = batch.input_ids[:, :width].to(device)
        mask = batch.attention_mask[:, :width].to(device)
        with capture_boundary(model, states.k) if states is not None else nullcontext([]) as steps:
            gen = sample(model, ids, mask, k=k, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                         pad=pad, eos=eos, return_dict_in_generate=True, output_logits=logps is not None)
        # The shared prompt pass was recorded once per prompt: each of its k rows gets it.
        captured = (torch.cat([s.repeat_interleave(len(idx) * k // s.shape[0], 0) for s in steps], 1).cpu()
                    if states is not None else None)  # (len(idx)·k, width + T − 1, H)
        tokens = gen.sequences[:, width:]
        rows = tokens.tolist()  # (len(idx)·k, ≤ max_new_tokens)
        if logps is not None:
            # Step t's raw logits predict token t: log-softmax at temperature τ, the token's entry.
            steps = torch.stack([torch.log_softmax(step.float() / logps, -1) for step in gen.logits], 1)  # (B·k, T, V)
            token_logps = steps.gather(-1, tokens[:, : steps.shape[1], None]).squeeze(-1).tolist()
        for j, i in enumerate(idx):
            for r in range(j * k, (j + 1) * k):
                kept = stop.cut(rows[r])
                out[i].append(kept)
                if logps is not None:
                    sums[i].append(float(sum(token_logps[r][: len(kept)])))
                if captured is not None:
                    p = tuple(prompts[i])
                    row = captured[r, width : width + len(kept)]
                    row = torch.cat([row, row.new_zeros(len(kept) - row.shape[0], row.shape[1])])
                    states.add(p, tuple(kept), captured[r, width - len(p) : width], row)
        if progress:
            progress.advance(task, len(idx))
    return out, (sums if logps is not None else None)


@dataclass
class Samples:
    """One sampled response per prompt with what the sampler computed on the way: each
    response's Σ log π (`generate_with_logps`) and, when recorded, every row's boundary states."""

    responses: list[list[int]]
    logps: list[float]
    states: StateTable | None = None


def reference_logps(reference: PreTrainedModel, policy: PreTrainedModel, prompts: Sequence[Sequence[int]],
                    samples: Samples, pad_id: int, batch_size: int, temperature: float,
                    progress: ProgressBar | None = None, desc: str = "log-probs") -> list[float]:
    """Σ log π_ref of the policy's samples at `temperature`: from the states the policy's sampler
    recorded when the reference has the same (frozen) bottom blocks, so only the blocks above
    run; otherwise a full forward."""
    states = samples.states
    if states is not None and not (len(states) and same_bottom(policy, reference, states.k)):
        states = None
    return batched_logps(reference, prompts, samples.responses, pad_id, batch_size, temperature, progress, desc,
                         states=states)


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
    stop: Stop | None = None,
    states_at: int = 0,
) -> Rollout:
    """One sampled response per prompt, in one batch and in order, for an RL rollout: PPO
    takes its old log-probs and values from here instead of running the policy again.
    Responses are cut at `stop` (None: EOS); a cut response's log-probs are its prefix's.
    With `states_at` = k ≥ 1, the states entering block k, recorded while sampling
    (trunk.capture_boundary), come with the tokens (`tokens.states`): later forwards of the
    rollout by models with the same frozen bottom run only the blocks above it."""
    model.eval()
    device = next(model.parameters()).device
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    stop = stop or Stop(eos)
    torch.manual_seed(seed)
    batch = pack(prompts, [[] for _ in prompts], pad)
    width = batch.input_ids.shape[1] - batch.response_len
    with torch.inference_mode(), capture_boundary(model, states_at) if states_at else nullcontext([]) as steps:
        out = sample(
            model, batch.input_ids[:, :width].to(device), batch.attention_mask[:, :width].to(device), k=1,
            temperature=temperature, top_p=1.0, max_new_tokens=max_new_tokens, pad=pad, eos=eos,
            return_dict_in_generate=True, output_logits=True, output_hidden_states=True,
        )
        rows = out.sequences[:, width:].tolist()
        responses = [stop.cut(row) for row in rows]
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
        if states_at:
            # Every column but the last sampled token's, whose state no kept logit depends on: zero.
            states = torch.cat(steps, 1)[:, : width + R]
            states = torch.cat([states, states.new_zeros(len(prompts), width + R - states.shape[1], states.shape[2])], 1)
    # Outside inference mode: tensors that later losses may save for backward.
    if states_at:
        tokens = tokens.with_states(states.clone(), states_at)
    return Rollout(responses, tokens, logps.clone(), hidden.clone())
