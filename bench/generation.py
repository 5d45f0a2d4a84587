"""Sampling throughput of the real policy against `sampling.batch_size` (responses per
`generate` call): the samples stage's cost, which the batch size, and nothing else here, sets.

    python -m bench.generation                       # SmolLM2-135M, batch 16/32/64/128, 3 rounds
    python -m bench.generation --sizes 32,64 --rounds 5 --write reports/benchmarks.md

The same prompts (the sentiment task's first train prompts), k = 2 responses each, 24 new
tokens at temperature 0.7, as `experiment=demo` samples. Every round measures each size once,
in a rotated order, so the machine's drift falls on all; ratios are to the first size, per
round, and the table shows their median with min and max.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from bench.common import publish, ratio_cell


def smollm2_and_prompts(n: int) -> tuple:
    """SmolLM2-135M as `model=smollm2_135m` builds it (the converted directory in the cache), its
    tokenizer, and the sentiment task's first `n` train prompts as token ids."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from bench.common import cache_dir
    from harness.cache import check_cache_dir
    from harness.cli.run import CONFIG_DIR
    from harness.models.loading import load_causal_lm, load_tokenizer
    from harness.tasks.sentiment import SentimentTask

    check_cache_dir(cache_dir())
    source = instantiate(OmegaConf.load(f"{CONFIG_DIR}/model/smollm2_135m.yaml").source)
    path = source.materialize(cache_dir())
    model, tokenizer = load_causal_lm(path)[0], load_tokenizer(path)
    prompts = [tokenizer(e.prompt, add_special_tokens=False).input_ids for e in SentimentTask().examples("train")[:n]]
    return model, tokenizer, prompts


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.generation", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="32,16,64,128", help="batch sizes; ratios are to the first")
    ap.add_argument("--prompts", type=int, default=96)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write", help="also write the result into its section of this Markdown file")
    args = ap.parse_args()

    import torch

    from bench.__main__ import machine
    from harness.models.sampling import generate_responses

    torch.set_num_threads(args.threads)
    sizes = [int(s) for s in args.sizes.split(",")]
    model, tokenizer, prompts = smollm2_and_prompts(args.prompts)
    rates: dict[int, list[float]] = {s: [] for s in sizes}
    for rnd in range(args.rounds):
        order = sizes[rnd % len(sizes):] + sizes[: rnd % len(sizes)]
        for size in order:
            start = time.perf_counter()
            out = generate_responses(model, tokenizer, prompts, max_new_tokens=24, temperature=0.7, k=2,
                                     batch_size=size, seed=rnd)
            seconds = time.perf_counter() - start
            rates[size].append(sum(len(r) for group in out for r in group) / seconds)
            print(f"round {rnd + 1}: batch {size}: {rates[size][-1]:.1f} new tokens/s", file=sys.stderr)
    base = sizes[0]
    lines = [f"Command: `python -m bench.generation {' '.join(sys.argv[1:])}`  ", f"Machine: {machine()}  ",
             f"SmolLM2-135M (fp32), {args.prompts} sentiment prompts × k=2, 24 new tokens at T=0.7; "
             f"{args.threads} threads; {args.rounds} rounds.", "",
             f"| sampling.batch_size | new tokens/s (median) | ÷ batch {base}: median (min–max) |", "|---|---|---|"]
    for size in sizes:
        ratios = [a / b for a, b in zip(rates[size], rates[base])]
        lines.append(f"| {size} | {statistics.median(rates[size]):.1f} | {ratio_cell(ratios)} |")
    publish(lines, args.write, "generation")


if __name__ == "__main__":
    main()
