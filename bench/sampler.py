"""The harness's sampler (`sampling.sample`) against `generate`'s own sampling, on the real policy.

    python -m bench.sampler                          # SmolLM2-135M, 3 rounds
    python -m bench.sampler --rounds 5 --write reports/benchmarks.md

Two shapes, as runs sample: a chunk of the pool (50 sentiment prompts × k = 2 responses, one
call of 100 rows) and an evaluation batch (128 prompts × k = 1). `generate` with
`do_sample=True` and `num_return_sequences=k` (what the harness called before) against
`sampling.sample` (each prompt's pass once for its k responses, tokens drawn by inverse CDF);
24 new tokens at temperature 0.7, every response run to full length (`min_new_tokens`) so both
sides generate the same number of tokens. Within a round the two sides run back to back, in
alternating order across rounds; ratios are per round, the table shows their median with min
and max.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from bench.common import publish, ratio_cell

SHAPES = (("pool chunk: 50 prompts × k=2", 50, 2), ("eval batch: 128 prompts × k=1", 128, 1))
NEW_TOKENS = 24


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.sampler", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write", help="also write the result into its section of this Markdown file")
    args = ap.parse_args()

    import torch

    from bench.__main__ import machine
    from bench.generation import smollm2_and_prompts
    from harness.data.collate import pack
    from harness.models.sampling import sample

    torch.set_num_threads(args.threads)
    model, tokenizer, prompts = smollm2_and_prompts(max(n for _, n, _ in SHAPES))
    model.eval()
    pad, eos = tokenizer.pad_token_id, tokenizer.eos_token_id

    def generate_own(ids: torch.Tensor, mask: torch.Tensor, k: int) -> None:
        model.generate(input_ids=ids, attention_mask=mask, do_sample=True, temperature=0.7, top_p=1.0, top_k=0,
                       num_return_sequences=k, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                       pad_token_id=pad, eos_token_id=eos)

    def harness(ids: torch.Tensor, mask: torch.Tensor, k: int) -> None:
        sample(model, ids, mask, k=k, temperature=0.7, top_p=1.0, max_new_tokens=NEW_TOKENS, pad=pad, eos=eos,
               min_new_tokens=NEW_TOKENS)

    sides = {"generate": generate_own, "harness": harness}
    seconds: dict[tuple[str, str], list[float]] = {}
    for rnd in range(args.rounds):
        for name, n, k in SHAPES:
            batch = pack(prompts[:n], [[] for _ in range(n)], pad)
            width = batch.input_ids.shape[1] - batch.response_len
            ids, mask = batch.input_ids[:, :width], batch.attention_mask[:, :width]
            for side in (("generate", "harness") if rnd % 2 == 0 else ("harness", "generate")):
                torch.manual_seed(rnd)
                start = time.perf_counter()
                with torch.inference_mode():
                    sides[side](ids, mask, k)
                seconds.setdefault((name, side), []).append(time.perf_counter() - start)
                print(f"round {rnd + 1}: {name}: {side} {seconds[name, side][-1]:.2f} s", file=sys.stderr)
    lines = [f"Command: `python -m bench.sampler {' '.join(sys.argv[1:])}`  ", f"Machine: {machine()}  ",
             f"SmolLM2-135M (fp32), sentiment prompts, {NEW_TOKENS} new tokens at T=0.7; {args.threads} threads; "
             f"{args.rounds} rounds.", "",
             "| shape | `generate` sampling, s (median) | `sampling.sample`, s (median) | speed-up: median (min–max) |",
             "|---|---|---|---|"]
    for name, _, _ in SHAPES:
        own, ours = seconds[name, "generate"], seconds[name, "harness"]
        ratios = [a / b for a, b in zip(own, ours)]
        lines.append(f"| {name} | {statistics.median(own):.2f} | {statistics.median(ours):.2f} | "
                     f"{ratio_cell(ratios)} |")
    publish(lines, args.write, "sampler")


if __name__ == "__main__":
    main()
