"""The harness's DPO with the bottom 2 of 5 blocks frozen, trained from the boundary states (as
a run trains from its sampler's) against the same run of every block, in fresh interpreters,
alternating within each round.

    python -m bench.states                  # 3 rounds, 8 timed steps after 2 warm-up
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

CODE = """
import json, os
import bench.harness_side as side
side.FROZEN = 2
if os.environ.get("BENCH_STATES") == "off":
    import harness.models.trunk as trunk
    trunk.StateTable.build = classmethod(lambda cls, *args, **kwargs: None)
result = side.run("dpo", {steps}, {warmup})
print(json.dumps(result.items / result.seconds))
"""


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.states", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    rates: dict[str, list[float]] = {"on": [], "off": []}
    for rnd in range(args.rounds):
        for mode in ("on", "off") if rnd % 2 == 0 else ("off", "on"):
            env = os.environ | {"BENCH_THREADS": "2", "BENCH_STATES": mode}
            out = subprocess.run([sys.executable, "-c", CODE.format(steps=args.steps, warmup=args.warmup)], env=env,
                                 capture_output=True, text=True, check=True)
            rates[mode].append(float(out.stdout.strip().splitlines()[-1]))
            print(f"round {rnd + 1}: states {mode}: {rates[mode][-1]:.2f} pairs/s", file=sys.stderr)
    ratios = [a / b for a, b in zip(rates["on"], rates["off"])]
    print(f"DPO, 2 of 5 blocks frozen: with the boundary states ÷ without: median {statistics.median(ratios):.2f} "
          f"({min(ratios):.2f}–{max(ratios):.2f}); per round {', '.join(f'{r:.2f}' for r in ratios)}")


if __name__ == "__main__":
    main()
