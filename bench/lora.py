"""LoRA adapters (`model.lora.r=16`) against training whole blocks (`model.trainable_layers=15`),
on SmolLM2-135M as `experiment=demo` trains it: DPO steps of 8 pairs through the harness's own
module (OfflinePreferenceModule under a Lightning Trainer), and the process's peak memory with
the reference the run's evaluation holds (a second copy of the model for whole blocks, the
policy's own tensors for LoRA: models/lora.py).

    python -m bench.lora                      # 3 rounds, each side in a fresh interpreter
    python -m bench.lora --write reports/benchmarks.md

Both sides train the top 15 of 30 blocks: every weight of them (and the final norm), or rank-16
adapters on their seven linear layers. Prompts are the sentiment task's, responses 24 random
tokens; 2 warm-up steps, then `--steps` timed ones (the median step is the side's time).
Peak memory is the peak resident set above the resident set just before the model was loaded.
Within a round the sides run back to back, in alternating order across rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

SIDES = {"blocks": "whole blocks: trainable_layers=15", "lora": "LoRA r=16 on the top 15 blocks"}


def one_side(side: str, steps: int, threads: int) -> dict[str, float]:
    """One side's median step time and peak memory, measured in this interpreter."""
    import time
    from functools import partial

    import lightning as L
    import torch
    from torch.utils.data import DataLoader

    from bench.common import cache_dir
    from bench.generation import smollm2_and_prompts
    from harness.data.preference import PairCollator, PreferencePair
    from harness.losses.dpo import dpo_loss
    from harness.models.loading import freeze_lower_layers
    from harness.models.lora import LoraSettings, adapt, initial_reference
    from harness.modules.offline_preference import OfflinePreferenceModule

    torch.set_num_threads(threads)
    start_rss = _rss()
    model, tokenizer, prompts = smollm2_and_prompts(64)
    freeze_lower_layers(model, 15)
    if side == "lora":
        adapt(model, LoraSettings(r=16), 15)
    base_dir = next(p for p in (cache_dir() / "models").glob("smollm2_135m-*") if p.is_dir())
    reference = initial_reference(base_dir, model)  # what the run's eval KL and series hold
    g = torch.Generator().manual_seed(0)
    pairs = [PreferencePair(tuple(p), tuple(torch.randint(100, 40000, (24,), generator=g).tolist()),
                            tuple(torch.randint(100, 40000, (24,), generator=g).tolist()), 0.0, 0.0)
             for p in prompts]
    module = OfflinePreferenceModule(model, partial(dpo_loss, beta=0.1), lr=2e-5)
    times: list[float] = []

    class Clock(L.Callback):
        def on_train_batch_start(self, *args: object) -> None:
            self.t = time.perf_counter()

        def on_train_batch_end(self, *args: object) -> None:
            times.append(time.perf_counter() - self.t)

    trainer = L.Trainer(max_steps=steps + 2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu", callbacks=[Clock()])
    trainer.fit(module, DataLoader(pairs, batch_size=8, shuffle=False, collate_fn=PairCollator(tokenizer.pad_token_id)))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    del reference
    return {"step_s": statistics.median(times[2:]), "peak_mib": (_peak() - start_rss) / 2**20,
            "trainable": float(trainable)}


def _rss() -> int:
    import os

    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.lora", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write", help="also write the result into its section of this Markdown file")
    ap.add_argument("--side", help=argparse.SUPPRESS)  # one side, in a fresh interpreter
    args = ap.parse_args()
    if args.side:
        print(json.dumps(one_side(args.side, args.steps, args.threads)))
        return

    from bench.__main__ import machine
    from bench.common import publish, ratio_cell

    results: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
    for rnd in range(args.rounds):
        for side in (list(SIDES) if rnd % 2 == 0 else list(reversed(SIDES))):
            out = subprocess.run([sys.executable, "-m", "bench.lora", "--side", side, "--steps", str(args.steps),
                                  "--threads", str(args.threads)], capture_output=True, text=True, check=True)
            results[side].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"round {rnd + 1} {side}: {results[side][-1]}", file=sys.stderr, flush=True)
    speed = [b["step_s"] / lo["step_s"] for b, lo in zip(results["blocks"], results["lora"])]
    memory = [lo["peak_mib"] / b["peak_mib"] for b, lo in zip(results["blocks"], results["lora"])]
    lines = [f"Command: `python -m bench.lora{' --write ' + args.write if args.write else ''}`  ",
             f"Machine: {machine()}  ",
             f"SmolLM2-135M (fp32), DPO, 8 pairs per step (sentiment prompts, 24-token responses); {args.threads} "
             f"threads; {args.rounds} rounds × {args.steps} timed steps, each side in a fresh interpreter.",
             "", "| | trainable parameters | step, s (median) | peak MiB above start (median) |", "|---|---|---|---|"]
    for side, label in SIDES.items():
        rows = results[side]
        lines.append(f"| {label} | {rows[0]['trainable'] / 1e6:.2f}M | "
                     f"{statistics.median(r['step_s'] for r in rows):.2f} | "
                     f"{statistics.median(r['peak_mib'] for r in rows):.0f} |")
    lines += ["", f"LoRA step speed-up (whole-block step ÷ LoRA step): {ratio_cell(speed)}; "
              f"LoRA peak memory ÷ whole blocks': {ratio_cell(memory)}."]
    publish(lines, args.write, "lora")


if __name__ == "__main__":
    main()
