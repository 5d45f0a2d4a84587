"""The TRL half of the throughput benchmark: the same work as `harness_side`, done by TRL 1.16.

`run(objective, steps, warmup)` trains (or generates) with Hugging Face TRL / transformers on
the shared model and data of `bench.common` and returns a `Result`:

- `reward`: `trl.RewardTrainer`, BATCH pairs per optimiser step; items = pairs.
- `dpo`: `trl.DPOTrainer`, reference log-probs precomputed once before training (outside the
  timed steps, as the harness caches them); `dpo_online`: the same with a reference forward
  every step (TRL's default). BATCH pairs per step; items = pairs.
- `kto`: `trl.KTOTrainer` on unpaired examples (prompt, completion = chosen, label =
  desirable), reference log-probs precomputed. BATCH examples per step; items = examples.
- `rloo`, `grpo`: `trl.RLOOTrainer` / `trl.GRPOTrainer` against a reward model (random scalar
  head on the benchmark trunk), num_generations=2, exactly NEW_TOKENS sampled tokens per
  completion, KL to the reference (beta=BETA). BATCH completions per optimiser step; with
  `num_iterations=μ` one timed step is one generation batch of BATCH completions followed by
  its μ optimiser steps. items = completions actually generated in the timed steps (counted).
- `generate`: plain `model.generate` (side "hf"), one call on BATCH left-padded prompts per
  step; items = new tokens.

Every trainer runs in fp32 on the CPU without gradient checkpointing, dropout, logging,
evaluation or saving. Timing is a `TrainerCallback` ticking `StepClock` at each step's end.
`extra` carries what TRL actually did: tokens per item seen by the forwards, whether TRL's
tokenisation reproduced the record ids, the forwards per step by kind, the settings in effect.

    python -m bench.trl_side dpo --steps 3 --warmup 1      # last stdout line: the Result as JSON
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections import defaultdict

import torch

from bench.common import (
    BATCH,
    BETA,
    LR,
    NEW_TOKENS,
    TEMPERATURE,
    Record,
    Result,
    StepClock,
    freeze_bottom,
    mean_tokens,
    model_dir,
    peak_rss_mb,
    records,
    rss_mb,
)

FROZEN = 0  # --frozen: embeddings and the bottom blocks given requires_grad=False, as on the harness side
OBJECTIVES = ("reward", "dpo", "dpo_online", "kto", "rloo", "grpo", "generate")
MAX_LENGTH = 512  # the model's max_position_embeddings; prompts ≤64 + responses ≤65 never reach it


# --------------------------------------------------------------------------------------------
# Instrumentation
# --------------------------------------------------------------------------------------------


class _ForwardMeter:
    """Counts a module's forward calls in the timed steps, by kind.

    Kinds: `grad` (a forward that builds a graph: the training forward), `nograd` (a scoring
    forward without a graph: reference, old log-probs, KTO's KL pass, reward model), `generate`
    (calls from `generate`, recognised by the KV cache argument: the prefill and each decode step;
    `tokens` counts the positions fed in, so a decode step counts one per row).
    """

    def __init__(self, clock: StepClock) -> None:
        self.clock = clock
        self.stats: dict[str, dict[str, dict[str, int]]] = {}
        self._handles = []

    def attach(self, name: str, module: torch.nn.Module) -> None:
        stats = self.stats.setdefault(name, defaultdict(lambda: {"calls": 0, "rows": 0, "tokens": 0, "padded": 0}))

        def hook(_module, args, kwargs):
            if self.clock.steps < self.clock.warmup:
                return
            ids = kwargs.get("input_ids", args[0] if args else None)
            if ids is None:
                return
            mask = kwargs.get("attention_mask")
            # transformers 5 passes the KV cache as `cache` (older versions: `past_key_values`)
            if kwargs.get("cache") is not None or kwargs.get("past_key_values") is not None:
                kind = "generate"
            elif torch.is_grad_enabled():
                kind = "grad"
            else:
                kind = "nograd"
            s = stats[kind]
            s["calls"] += 1
            s["rows"] += int(ids.shape[0])
            s["padded"] += int(ids.numel())
            # the inputs' own positions are the mask's last ones (a decode step's mask spans the cache too)
            if mask is not None and mask.dim() == 2:
                s["tokens"] += int(mask[:, -ids.shape[1] :].sum())
            else:
                s["tokens"] += int(ids.numel())

        self._handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))

    def summary(self, timed_steps: int) -> dict:
        out = {}
        for name, kinds in self.stats.items():
            out[name] = {}
            for kind, s in kinds.items():
                d = dict(s)
                if timed_steps > 0:
                    d["calls_per_step"] = round(s["calls"] / timed_steps, 3)
                out[name][kind] = d
        return out

    def get(self, name: str, kind: str) -> dict:
        return dict(self.stats.get(name, {}).get(kind, {"calls": 0, "rows": 0, "tokens": 0, "padded": 0}))

    def close(self) -> None:
        for h in self._handles:
            h.remove()


def _tick_callback(clock: StepClock, every: int = 1):
    from transformers import TrainerCallback

    class _Tick(TrainerCallback):
        """Ticks the clock at the end of every `every`-th optimiser step."""

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step % every == 0:
                clock.tick()

    return _Tick()


def _trainer_settings(trainer, keys: tuple[str, ...]) -> dict:
    a = trainer.args
    out = {k: getattr(a, k) for k in keys if hasattr(a, k)}
    out = {k: (v.value if hasattr(v, "value") else v) for k, v in out.items()}
    opt = getattr(trainer.optimizer, "optimizer", trainer.optimizer)  # unwrap accelerate's wrapper
    if opt is not None:
        out["optimizer"] = type(opt).__name__
        out["optimizer_fused"] = opt.defaults.get("fused")
    model = trainer.model
    out["model_activation_checkpointing"] = bool(getattr(model, "is_activation_checkpointing", False))
    out["model_dtype"] = str(next(model.parameters()).dtype)
    out["model_training_mode_after"] = model.training
    dropouts = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    out["dropout_modules_nonzero"] = sum(p > 0 for p in dropouts)
    out["attention_dropout"] = getattr(model.config, "attention_dropout", None)
    return out


_COMMON_KEYS = (
    "per_device_train_batch_size", "gradient_accumulation_steps", "max_steps", "learning_rate", "lr_scheduler_type",
    "bf16", "fp16", "gradient_checkpointing", "activation_checkpointing", "use_cpu", "disable_dropout", "optim",
    "max_grad_norm", "seed", "dataloader_num_workers", "logging_strategy", "save_strategy", "eval_strategy",
    "max_length", "beta",
)


def _common_args(out_dir: str, max_steps: int) -> dict:
    """The fairness settings shared by every trainer (TRL's defaults differ: bf16 and gradient
    checkpointing are on by default in TRL 1.16's `_BaseConfig`)."""
    return dict(
        output_dir=out_dir,
        max_steps=max_steps,
        per_device_train_batch_size=BATCH,
        gradient_accumulation_steps=1,
        learning_rate=LR,
        lr_scheduler_type="constant",  # the harness's AdamW has no schedule; irrelevant for speed
        seed=0,
        bf16=False,
        fp16=False,
        gradient_checkpointing=False,  # TRL's `_BaseConfig` defaults it to True
        activation_checkpointing=False,  # its transformers-5 name; setting both avoids the alias warning
        disable_dropout=True,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        dataloader_num_workers=0,
        disable_tqdm=True,
    )


def _token_check(rows: list[dict], recs: list[Record], eos: int, kind: str) -> dict:
    """Compare the ids TRL's preprocessing produced with the record's ids (+ EOS)."""
    n = min(len(rows), len(recs))
    mismatched = 0
    trl_len, rec_len = [], []
    for row, r in zip(rows[:n], recs[:n], strict=True):
        if kind == "reward":  # prompt+response tokenised as one string, EOS appended as text
            want_c = list(r.prompt_ids) + list(r.chosen_ids) + [eos]
            want_r = list(r.prompt_ids) + list(r.rejected_ids) + [eos]
            got_c, got_r = row["chosen_ids"], row["rejected_ids"]
            ok = got_c == want_c and got_r == want_r
            trl_len.append(len(got_c) + len(got_r))
            rec_len.append(len(want_c) + len(want_r))
        elif kind == "dpo":  # prompt and completions stored apart; the prompt is fed twice (chosen, rejected)
            want_p, want_c, want_r = list(r.prompt_ids), list(r.chosen_ids) + [eos], list(r.rejected_ids) + [eos]
            ok = row["prompt_ids"] == want_p and row["chosen_ids"] == want_c and row["rejected_ids"] == want_r
            trl_len.append(2 * len(row["prompt_ids"]) + len(row["chosen_ids"]) + len(row["rejected_ids"]))
            rec_len.append(2 * len(want_p) + len(want_c) + len(want_r))
        else:  # kto
            want_p, want_c = list(r.prompt_ids), list(r.chosen_ids) + [eos]
            ok = row["prompt_ids"] == want_p and row["completion_ids"] == want_c and bool(row["label"]) == r.desirable
            trl_len.append(len(row["prompt_ids"]) + len(row["completion_ids"]))
            rec_len.append(len(want_p) + len(want_c))
        mismatched += not ok
    return {
        "rows_checked": n,
        "rows_mismatched": mismatched,
        "dataset_rows": len(rows),
        "records": len(recs),
        "mean_tokens_per_item_trl_dataset": round(statistics.fmean(trl_len), 3) if trl_len else None,
        "mean_tokens_per_item_records": round(statistics.fmean(rec_len), 3) if rec_len else None,
    }


def _train_metered(trainer, meter: _ForwardMeter, out_dir: str, **modules: torch.nn.Module | None) -> None:
    """trainer.train() with the forwards of `modules` counted; the output directory removed after."""
    for name, module in modules.items():
        if module is not None:
            meter.attach(name, module)
    try:
        trainer.train()
    finally:
        meter.close()
        shutil.rmtree(out_dir, ignore_errors=True)


def _versions() -> dict:
    import transformers
    import trl

    return {"trl": trl.__version__, "transformers": transformers.__version__, "torch": torch.__version__,
            "threads": torch.get_num_threads()}


# --------------------------------------------------------------------------------------------
# Objectives
# --------------------------------------------------------------------------------------------


def _run_offline(objective: str, steps: int, warmup: int) -> Result:
    """reward, dpo, dpo_online, kto: a fixed data set, BATCH items per optimiser step."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    d = model_dir()
    tok = AutoTokenizer.from_pretrained(d)
    eos = tok.eos_token_id
    n_steps = warmup + steps
    recs = records(tok, BATCH * n_steps)  # exactly the items the run consumes (one epoch)
    if objective == "kto":
        data = {"prompt": [r.prompt for r in recs], "completion": [r.chosen for r in recs],
                "label": [r.desirable for r in recs]}
    else:
        data = {"prompt": [r.prompt for r in recs], "chosen": [r.chosen for r in recs],
                "rejected": [r.rejected for r in recs]}
    dataset = Dataset.from_dict(data)
    clock = StepClock(warmup)
    meter = _ForwardMeter(clock)
    out_dir = tempfile.mkdtemp(prefix=f"trl-{objective}-")
    extra: dict = {"versions": _versions(), "records": len(recs)}

    rss0 = rss_mb()
    t_setup = time.perf_counter()
    if objective == "reward":
        from trl import RewardConfig, RewardTrainer

        model = AutoModelForSequenceClassification.from_pretrained(d, num_labels=1, dtype=torch.float32)
        freeze_bottom(model, FROZEN)
        model.config.pad_token_id = tok.pad_token_id
        args = RewardConfig(**_common_args(out_dir, n_steps), max_length=MAX_LENGTH)
        trainer = RewardTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok,
                                callbacks=[_tick_callback(clock)])
        per_item, kind = mean_tokens(recs, "pair"), "reward"
        extra["note"] = ("pad_token_id == eos_token_id == 0: the sequence-classification head reads the score at the "
                         "last token before EOS; EOS is still fed (attention_mask 1), so the compute is unchanged")
    elif objective in ("dpo", "dpo_online"):
        from trl import DPOConfig, DPOTrainer

        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
        freeze_bottom(model, FROZEN)
        args = DPOConfig(**_common_args(out_dir, n_steps), max_length=MAX_LENGTH, beta=BETA,
                         precompute_ref_log_probs=(objective == "dpo"))
        trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok,
                             callbacks=[_tick_callback(clock)])
        per_item, kind = mean_tokens(recs, "pair"), "dpo"
    else:
        from trl import KTOConfig, KTOTrainer

        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
        freeze_bottom(model, FROZEN)
        args = KTOConfig(**_common_args(out_dir, n_steps), max_length=MAX_LENGTH, beta=BETA,
                         precompute_ref_log_probs=True)
        trainer = KTOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tok,
                             callbacks=[_tick_callback(clock)])
        per_item, kind = mean_tokens(recs, "example"), "kto"
        extra["kto_calculate_KL"] = bool(trainer.calculate_KL)
        extra["kto_loss_type"] = args.loss_type
        extra["kl_forward_tokens_per_item"] = round(mean_tokens(recs, "example"), 3)  # no-grad, mismatched pairs
    extra["setup_seconds"] = round(time.perf_counter() - t_setup, 3)  # includes any reference precompute

    extra["tokenization"] = _token_check(trainer.train_dataset.to_list(), recs, eos, kind)
    _train_metered(trainer, meter, out_dir, policy=trainer.model, reference=getattr(trainer, "ref_model", None))

    timed = clock.timed_steps
    items = timed * BATCH
    extra["settings"] = _trainer_settings(trainer, _COMMON_KEYS + ("precompute_ref_log_probs", "loss_type",
                                                                   "train_sampling_strategy"))
    extra["timed_steps"] = timed
    extra["forwards"] = meter.summary(timed)
    g = meter.get("policy", "grad")
    extra["trl_tokens_per_item"] = round(g["tokens"] / items, 3) if items else None  # real tokens, training forward
    extra["trl_padded_tokens_per_item"] = round(g["padded"] / items, 3) if items else None
    extra["mean_tokens"] = round(per_item, 3)
    if objective == "kto":
        ng = meter.get("policy", "nograd")
        extra["kto_kl_forward_each_step"] = ng["calls"] >= timed > 0
        extra["kto_kl_forward_tokens_per_item"] = round(ng["tokens"] / items, 3) if items else None
        extra["note"] = ("KTO (loss_type='kto') runs a no-grad policy forward on the mismatched (prompt_i, "
                         "completion_{i-1}) KL sequences every step, besides the training forward; the reference "
                         "log-probs of both are precomputed. tokens_per_item counts only the training forward "
                         "(mean_tokens 'example'); the KL forward adds ~ the same again, without backward.")
    if objective == "dpo_online":
        extra["note"] = "reference forward (no grad) on the same padded batch every step"
    return Result(side="trl", objective=objective, items=float(items), seconds=clock.seconds,
                  tokens_per_item=per_item, peak_mb=peak_rss_mb() - rss0, extra=extra)


def _run_online(objective: str, steps: int, warmup: int, num_iterations: int) -> Result:
    """rloo, grpo: generate BATCH completions (BATCH/2 prompts × 2), score, one optimiser step per
    BATCH completions; μ = num_iterations optimiser passes per generation batch."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    d = model_dir()
    tok = AutoTokenizer.from_pretrained(d)
    reward_tok = AutoTokenizer.from_pretrained(d)
    n_steps = warmup + steps
    num_generations = 2
    # BATCH/num_generations prompts per generation batch: exactly the prompts the run consumes
    recs = records(tok, BATCH // num_generations * n_steps)
    known_prompts = {tuple(r.prompt_ids) for r in recs}  # TRL re-tokenises the prompt text: same ids?
    dataset = Dataset.from_dict({"prompt": [r.prompt for r in recs]})
    clock = StepClock(warmup)
    meter = _ForwardMeter(clock)
    out_dir = tempfile.mkdtemp(prefix=f"trl-{objective}-")
    extra: dict = {"versions": _versions(), "records": len(recs), "num_iterations": num_iterations}

    rss0 = rss_mb()
    t_setup = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32)
    freeze_bottom(model, FROZEN)
    reward_model = AutoModelForSequenceClassification.from_pretrained(d, num_labels=1, dtype=torch.float32)
    reward_model.config.pad_token_id = reward_tok.pad_token_id
    online = dict(
        _common_args(out_dir, n_steps * num_iterations),
        num_generations=num_generations,
        steps_per_generation=1,  # generation batch = per_device_train_batch_size × 1 = BATCH completions
        num_iterations=num_iterations,
        max_completion_length=NEW_TOKENS,
        generation_kwargs={"min_new_tokens": NEW_TOKENS},
        temperature=TEMPERATURE,
        top_p=1.0,
        top_k=0,
        beta=BETA,
    )
    callbacks = [_tick_callback(clock, every=num_iterations)]
    if objective == "grpo":
        from trl import GRPOConfig, GRPOTrainer

        args = GRPOConfig(**online)
        trainer = GRPOTrainer(model=model, reward_funcs=reward_model, args=args, train_dataset=dataset,
                              processing_class=tok, reward_processing_classes=reward_tok, callbacks=callbacks)
    else:
        from trl import RLOOConfig, RLOOTrainer

        args = RLOOConfig(**online)
        trainer = RLOOTrainer(model=model, reward_funcs=reward_model, args=args, train_dataset=dataset,
                              processing_class=tok, reward_processing_classes=reward_tok, callbacks=callbacks)
    extra["setup_seconds"] = round(time.perf_counter() - t_setup, 3)
    if args.generation_batch_size != BATCH or args.steps_per_generation != 1:
        raise RuntimeError(f"generation_batch_size {args.generation_batch_size}, steps_per_generation "
                           f"{args.steps_per_generation}: one step would not be {BATCH} completions")

    # Count what is really generated: wrap the trainer's generation (instrumentation only).
    gen = {"episodes": 0, "calls": 0, "completion_lens": [], "prompt_lens": [], "prompt_mismatch": 0,
           "episodes_all": 0}
    original = trainer._generate_single_turn

    def counted(prompt_ids, *a, **kw):
        out = original(prompt_ids, *a, **kw)
        completion_ids = out[0] if isinstance(out, tuple) else out
        gen["episodes_all"] += len(completion_ids)
        if clock.steps >= clock.warmup:
            gen["calls"] += 1
            gen["episodes"] += len(completion_ids)
            gen["completion_lens"] += [len(c) for c in completion_ids]
            gen["prompt_lens"] += [len(p) for p in prompt_ids]
        gen["prompt_mismatch"] += sum(tuple(p) not in known_prompts for p in prompt_ids)
        return out

    trainer._generate_single_turn = counted
    _train_metered(trainer, meter, out_dir, policy=trainer.model, reference=trainer.ref_model,
                   reward_model=trainer.reward_funcs[0])

    timed_cycles = clock.timed_steps
    episodes = gen["episodes"]
    lens = gen["completion_lens"]
    mean_prompt = sum(len(r.prompt_ids) for r in recs) / len(recs)
    per_item = mean_prompt + NEW_TOKENS
    extra["settings"] = _trainer_settings(trainer, _COMMON_KEYS + (
        "num_generations", "generation_batch_size", "steps_per_generation", "num_iterations",
        "max_completion_length", "generation_kwargs", "temperature", "top_p", "top_k", "loss_type",
        "scale_rewards", "normalize_advantages", "mask_truncated_completions", "shuffle_dataset"))
    extra["timed_steps"] = timed_cycles
    extra["optimizer_steps_total"] = trainer.state.global_step
    extra["timed_optimizer_steps"] = timed_cycles * num_iterations
    extra["episodes_expected"] = timed_cycles * BATCH
    extra["episodes_counted"] = episodes
    extra["episodes_all_including_warmup"] = gen["episodes_all"]
    extra["generate_calls_timed"] = gen["calls"]
    extra["reward_model_rows_timed"] = meter.get("reward_model", "nograd")["rows"]
    extra["completion_len"] = ({"min": min(lens), "max": max(lens), "mean": round(statistics.fmean(lens), 3)}
                               if lens else None)
    extra["all_completions_exactly_new_tokens"] = bool(lens) and min(lens) == max(lens) == NEW_TOKENS
    extra["prompt_len_timed_mean"] = round(statistics.fmean(gen["prompt_lens"]), 3) if lens else None
    extra["prompt_len_records_mean"] = round(mean_prompt, 3)
    extra["prompt_tokenization_mismatches"] = gen["prompt_mismatch"]
    extra["forwards"] = meter.summary(timed_cycles)
    g = meter.get("policy", "grad")
    extra["trl_tokens_per_item"] = round(g["tokens"] / episodes, 3) if episodes else None  # all μ passes
    extra["trl_tokens_per_item_per_pass"] = (round(g["tokens"] / episodes / num_iterations, 3)
                                             if episodes else None)
    extra["trl_padded_tokens_per_item_per_pass"] = (round(g["padded"] / episodes / num_iterations, 3)
                                                    if episodes else None)
    extra["mean_tokens"] = round(per_item, 3)
    extra["note"] = (
        f"{objective}: per generation batch TRL runs generate (KV cache), "
        + ("a no-grad policy forward for old log-probs (always in RLOO), " if objective == "rloo" else
           "a no-grad policy forward for old log-probs only when num_iterations>1, ")
        + "a no-grad reference forward (beta>0), a reward-model forward on the re-tokenised text, then "
        f"{num_iterations} optimiser step(s) of {BATCH} completions each. One timed step = one generation "
        "batch and its optimiser steps."
    )
    if episodes != timed_cycles * BATCH:
        extra["warning"] = f"counted {episodes} episodes, expected {timed_cycles * BATCH}"
    return Result(side="trl", objective=objective, items=float(episodes), seconds=clock.seconds,
                  tokens_per_item=per_item, peak_mb=peak_rss_mb() - rss0, extra=extra)


def _run_generate(steps: int, warmup: int) -> Result:
    """Plain Hugging Face sampling: one `generate` call on BATCH left-padded prompts per step."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = model_dir()
    tok = AutoTokenizer.from_pretrained(d)
    tok.padding_side = "left"
    n_steps = warmup + steps
    recs = records(tok, BATCH * n_steps)
    clock = StepClock(warmup)
    extra: dict = {"versions": _versions(), "records": len(recs)}

    rss0 = rss_mb()
    model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    meter = _ForwardMeter(clock)
    meter.attach("policy", model)
    torch.manual_seed(0)
    new_tokens = 0
    mismatch = 0
    with torch.inference_mode():
        for k in range(n_steps):
            batch = recs[k * BATCH : (k + 1) * BATCH]
            enc = tok([r.prompt for r in batch], padding=True, return_tensors="pt", add_special_tokens=False)
            for row, m, r in zip(enc["input_ids"], enc["attention_mask"], batch, strict=True):
                mismatch += row[m.bool()].tolist() != list(r.prompt_ids)
            out = model.generate(
                **enc, do_sample=True, temperature=TEMPERATURE, top_k=0, top_p=1.0,
                min_new_tokens=NEW_TOKENS, max_new_tokens=NEW_TOKENS, use_cache=True,
                pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
            )
            n_new = out.shape[1] - enc["input_ids"].shape[1]
            if n_new != NEW_TOKENS:
                raise RuntimeError(f"generate returned {n_new} new tokens, expected {NEW_TOKENS}")
            if k >= warmup:
                new_tokens += out.shape[0] * n_new
            clock.tick()
    meter.close()
    extra["timed_steps"] = clock.timed_steps
    extra["new_tokens_per_step"] = BATCH * NEW_TOKENS
    extra["prompt_tokenization_mismatches"] = mismatch
    extra["prompt_len_records_mean"] = round(sum(len(r.prompt_ids) for r in recs) / len(recs), 3)
    extra["forwards"] = meter.summary(clock.timed_steps)
    extra["settings"] = {"do_sample": True, "temperature": TEMPERATURE, "top_k": 0, "top_p": 1.0,
                         "min_new_tokens": NEW_TOKENS, "max_new_tokens": NEW_TOKENS, "use_cache": True,
                         "padding_side": "left", "batch": BATCH, "inference_mode": True, "dtype": "float32"}
    return Result(side="hf", objective="generate", items=float(new_tokens), seconds=clock.seconds,
                  tokens_per_item=1.0, peak_mb=peak_rss_mb() - rss0, extra=extra)


def run(objective: str, steps: int, warmup: int, num_iterations: int = 1) -> Result:
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; expected one of {OBJECTIVES}")
    if warmup < 1 or steps < 1:
        raise ValueError("need warmup >= 1 and steps >= 1 (StepClock starts timing at the end of warm-up step)")
    if num_iterations < 1:
        raise ValueError("num_iterations must be >= 1")
    if num_iterations != 1 and objective not in ("rloo", "grpo"):
        raise ValueError("num_iterations applies to rloo and grpo only")
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    if objective == "generate":
        return _run_generate(steps, warmup)
    if objective in ("rloo", "grpo"):
        return _run_online(objective, steps, warmup, num_iterations)
    return _run_offline(objective, steps, warmup)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("objective", choices=OBJECTIVES)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--num-iterations", type=int, default=1, help="TRL's μ for rloo/grpo")
    p.add_argument("--frozen", type=int, default=0, help="bottom decoder blocks frozen (with the embeddings)")
    a = p.parse_args()
    global FROZEN
    FROZEN = a.frozen
    result = run(a.objective, a.steps, a.warmup, num_iterations=a.num_iterations)
    print(json.dumps(result.to_json(), default=str), flush=True)


if __name__ == "__main__":
    main()
