"""Throughput of the harness against TRL on identical work, and of the sweep's sharing.

    python -m bench                      # every objective, 3 rounds, A/B alternating
    python -m bench --only dpo,kto --rounds 5
    python -m bench --only frozen             # the rows with the bottom 2 of 5 blocks frozen on both sides
    python -m bench --write reports/benchmarks.md
    python -m bench sweep                # the 4-point loss.beta sweep vs four independent runs
    python -m bench sweep --sweep label_count  # 4 label budgets vs the largest alone

Each measurement runs in a fresh interpreter (`bench.harness_side` / `bench.trl_side`), so
peak memory is per measurement and neither side inherits the other's allocator state. Within
a round the two sides of a comparison run back to back, and the order alternates between
rounds (A/B, then B/A), so drift in the machine's load falls on both. The matmul peak is
measured in the same invocation, before and after, and the higher figure is used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import BATCH, MODEL, NEW_TOKENS, PROMPT_TOKENS, RESPONSE_TOKENS, write_section

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Job:
    side: str  # harness | trl
    objective: str
    args: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.side}:{self.objective}" + ("".join(f" {a}" for a in self.args))


@dataclass(frozen=True)
class Comparison:
    name: str
    unit: str
    ours: Job
    theirs: Job
    target: float | None  # the bar for ours/theirs
    training: bool = True
    passes: int = 1  # training passes over each item (PPO epochs): the FLOP count's multiplier
    # Both sides make the same library call (generation: HF `generate`): a ratio within this of
    # the bar is parity, the run-to-run noise of this machine, not a shortfall.
    parity: float = 0.0
    frozen: int = 0  # bottom blocks frozen on both sides: the FLOP count covers the blocks above them


FROZEN = 2  # the frozen rows: the bottom 2 of the benchmark model's 5 blocks (and the embeddings)
F = ("--frozen", str(FROZEN))
H = lambda o, *a: Job("harness", o, tuple(a))  # noqa: E731
T = lambda o, *a: Job("trl", o, tuple(a))  # noqa: E731

COMPARISONS = [
    Comparison("reward model", "pairs/s", H("reward"), T("reward"), 1.2),
    Comparison("DPO", "pairs/s", H("dpo"), T("dpo"), 1.5),
    Comparison("DPO vs TRL default (reference forward each step)", "pairs/s", H("dpo"), T("dpo_online"), None),
    Comparison("DPO, harness without length bucketing (train.bucket=0)", "pairs/s", H("dpo", "--bucket", "0"),
               T("dpo"), None),
    Comparison("KTO", "examples/s", H("kto"), T("kto"), 1.5),
    Comparison("PPO vs RLOO, 1 epoch per rollout", "episodes/s", H("ppo1"), T("rloo"), 1.5),
    Comparison("PPO vs GRPO, 1 epoch per rollout", "episodes/s", H("ppo1"), T("grpo"), None),
    Comparison("PPO vs RLOO, 4 epochs per rollout", "episodes/s", H("ppo"), T("rloo", "--num-iterations", "4"), 1.5,
               passes=4),
    Comparison("rollout generation", "new tokens/s", H("generate"), T("generate"), 1.0, training=False,
               parity=0.03),
    # The bottom half frozen on both sides (embeddings and 2 of the 5 blocks; TRL given the same
    # requires_grad=False parameters): every SmolLM2 experiment trains only its top blocks.
    Comparison(f"reward model, {FROZEN} of 5 blocks frozen", "pairs/s", H("reward", *F), T("reward", *F), 1.5,
               frozen=FROZEN),
    Comparison(f"DPO, {FROZEN} of 5 blocks frozen", "pairs/s", H("dpo", *F), T("dpo", *F), 2.0, frozen=FROZEN),
    Comparison(f"KTO, {FROZEN} of 5 blocks frozen", "examples/s", H("kto", *F), T("kto", *F), 2.0, frozen=FROZEN),
    Comparison(f"PPO vs RLOO, 1 epoch per rollout, {FROZEN} of 5 blocks frozen", "episodes/s", H("ppo1", *F),
               T("rloo", *F), 1.5, frozen=FROZEN),
    Comparison(f"PPO vs RLOO, 4 epochs per rollout, {FROZEN} of 5 blocks frozen", "episodes/s", H("ppo", *F),
               T("rloo", "--num-iterations", "4", *F), 1.5, passes=4, frozen=FROZEN),
]
# (objective, its job, the policy trained alone on the sequences it trains on with gradient)
MEMORY = [("DPO", H("dpo"), H("policy_only"), "2·B"), ("KTO", H("kto"), H("policy_only_unpaired"), "B")]
GROUPS = {"reward": ["reward model"], "dpo": [c.name for c in COMPARISONS if c.name.startswith("DPO") and not c.frozen],
          "kto": ["KTO"], "ppo": [c.name for c in COMPARISONS if c.name.startswith("PPO") and not c.frozen],
          "generate": ["rollout generation"], "frozen": [c.name for c in COMPARISONS if c.frozen], "memory": []}


def matmul_peak(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """Best fp32 GFLOP/s of an n×n matmul with torch on `threads` threads (a subprocess)."""
    code = (
        "import time, torch\n"
        f"torch.set_num_threads({threads}); n={n}\n"
        "a, b = torch.randn(n, n), torch.randn(n, n); a @ b\n"
        "best = min((lambda t: (a @ b, time.perf_counter() - t)[1])(time.perf_counter()) "
        f"for _ in range({repeats}))\n"
        "print(2 * n ** 3 / best / 1e9)\n"
    )
    return float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)


def run_job(job: Job, steps: int, warmup: int, threads: int, log: Path) -> dict | None:
    cmd = [sys.executable, "-m", f"bench.{job.side}_side", job.objective, "--steps", str(steps),
           "--warmup", str(warmup), *job.args]
    env = os.environ | {"BENCH_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    with log.open("a") as f:
        f.write(f"\n$ {shlex.join(cmd)}\n{proc.stdout}\n{proc.stderr}\n")
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        print(f"  {job.label}: failed (exit {proc.returncode}); see {log}", file=sys.stderr)
        return None
    result = json.loads(lines[-1])
    rate = result["items"] / result["seconds"]
    print(f"  {job.label:<40} {rate:10.2f} items/s  peak {result['peak_mb']:7.0f} MiB  "
          f"({time.perf_counter() - t:.0f} s)", file=sys.stderr)
    return result


@dataclass
class Measurements:
    results: dict[Job, list[dict]] = field(default_factory=dict)

    def rates(self, job: Job) -> list[float]:
        return [r["items"] / r["seconds"] for r in self.results.get(job, [])]

    def rate(self, job: Job) -> float:
        rates = self.rates(job)
        return statistics.median(rates) if rates else float("nan")

    def peak(self, job: Job) -> float:
        peaks = [r["peak_mb"] for r in self.results.get(job, [])]
        return statistics.median(peaks) if peaks else float("nan")

    def tokens(self, job: Job) -> float:
        return self.results[job][0]["tokens_per_item"] if self.results.get(job) else float("nan")

    def ratios(self, a: Job, b: Job) -> list[float]:
        """Per-round ratios: each round's A and B ran back to back."""
        return [x / y for x, y in zip(self.rates(a), self.rates(b))]


def params() -> tuple[int, int]:
    """The benchmark model's parameter count and vocabulary size."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from bench.common import model_dir

    config = AutoConfig.from_pretrained(model_dir())
    return sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters()), config.vocab_size


def table(m: Measurements, comparisons: list[Comparison], peak: float, n_params: int) -> str:
    lines = ["| work | unit | harness | TRL / HF | harness ÷ TRL: median (min–max) | per round | bar | met "
             "| harness GFLOP/s (% peak) | TRL GFLOP/s (% peak) | harness peak MiB | TRL peak MiB |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in comparisons:
        a, b = m.rate(c.ours), m.rate(c.theirs)
        ratios = m.ratios(c.ours, c.theirs)
        ratio = statistics.median(ratios) if ratios else float("nan")
        # 2N forward + 4N backward per token; with the bottom frozen the backward covers the blocks
        # above it (approximately their share of the blocks).
        top = 1 - c.frozen / MODEL["num_layers"]
        flops = ((2 + 4 * top) if c.training else 2) * n_params * c.passes
        ga, gb = a * m.tokens(c.ours) * flops / 1e9, b * m.tokens(c.theirs) * flops / 1e9
        met = "" if c.target is None else ("yes" if ratio >= c.target else
                                           "parity (same call)" if ratio >= c.target - c.parity else "**no**")
        per_round = ", ".join(f"{r:.2f}" for r in ratios)
        spread = f"{min(ratios):.2f}–{max(ratios):.2f}" if ratios else "–"
        lines.append(
            f"| {c.name} | {c.unit} | {a:.1f} | {b:.1f} | **{ratio:.2f}** ({spread}) | {per_round} | "
            f"{'' if c.target is None else f'≥ {c.target:g}'} | {met} | {ga:.1f} ({100 * ga / peak:.0f}%) | "
            f"{gb:.1f} ({100 * gb / peak:.0f}%) | {m.peak(c.ours):.0f} | {m.peak(c.theirs):.0f} |")
    return "\n".join(lines)


def memory_table(m: Measurements) -> str:
    lines = ["| training (harness) | peak MiB above start | the policy alone: SFT on the same sequences | ratio | bar "
             "| met |", "|---|---|---|---|---|---|"]
    for name, job, base_job, rows in MEMORY:
        base = m.peak(base_job)
        ratio = m.peak(job) / base
        lines.append(f"| {name}, cached reference log-probs | {m.peak(job):.0f} | {base:.0f} ({rows} rows per step) | "
                     f"**{ratio:.2f}** | ≤ 1.3 | {'yes' if ratio <= 1.3 else '**no**'} |")
    return "\n".join(lines)


def machine() -> str:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    try:
        import trl

        trl_version = trl.__version__
    except ImportError:
        trl_version = "not installed"
    import transformers

    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}, "
            f"transformers {transformers.__version__}, TRL {trl_version}")


def benchmark(args: argparse.Namespace) -> None:
    wanted = args.only.split(",") if args.only else list(GROUPS)
    unknown = [w for w in wanted if w not in GROUPS]
    if unknown:
        raise SystemExit(f"bench: --only: unknown {', '.join(unknown)}; choose from {', '.join(GROUPS)}")
    comparisons = [c for c in COMPARISONS if any(c.name in GROUPS[w] for w in wanted)]
    jobs_a = list(dict.fromkeys(j for c in comparisons for j in (c.ours, c.theirs)))
    if "memory" in wanted:
        jobs_a += [j for _, job, base, _ in MEMORY for j in (job, base) if j not in jobs_a]
    log = ROOT / "bench" / "last_run.log"
    log.write_text("")
    print(f"bench: {len(jobs_a)} measurements × {args.rounds} rounds, {args.steps} timed steps each "
          f"after {args.warmup} warm-up; log in {log}", file=sys.stderr)
    peaks = [matmul_peak(args.threads)]
    print(f"  matmul peak: {peaks[0]:.1f} GFLOP/s", file=sys.stderr)
    m = Measurements()
    started = time.time()
    for rnd in range(args.rounds):
        print(f"round {rnd + 1}/{args.rounds}", file=sys.stderr)
        # Harness first in even rounds, TRL first in odd ones: pairs stay adjacent in time.
        done: set[Job] = set()
        for c in comparisons:
            pair = (c.ours, c.theirs) if rnd % 2 == 0 else (c.theirs, c.ours)
            for job in pair:
                if job in done:
                    continue
                done.add(job)
                result = run_job(job, args.steps, args.warmup, args.threads, log)
                if result:
                    m.results.setdefault(job, []).append(result)
        for job in jobs_a:  # the memory measurements
            if job not in done:
                done.add(job)
                result = run_job(job, args.steps, args.warmup, args.threads, log)
                if result:
                    m.results.setdefault(job, []).append(result)
    peaks.append(matmul_peak(args.threads))
    peak = max(peaks)
    n_params, vocab = params()
    minutes = (time.time() - started) / 60
    command = "python -m bench " + " ".join(sys.argv[1:])
    header = [f"Command: `{command}`  ", f"Machine: {machine()}  ",
           f"Threads: {args.threads}; matmul peak {peak:.1f} GFLOP/s (fp32 2048² matmul, best of 5; "
           f"{' / '.join(f'{p:.1f}' for p in peaks)} before / after); {minutes:.0f} min  ",
           f"Model: random Llama, {n_params / 1e6:.2f}M parameters ({MODEL['num_layers']} blocks, hidden "
           f"{MODEL['hidden_size']}, {vocab}-token BPE); prompts {PROMPT_TOKENS[0]}–{PROMPT_TOKENS[1]} "
           f"and responses {RESPONSE_TOKENS[0]}–{RESPONSE_TOKENS[1]} tokens; {BATCH} items per step; rollouts "
           f"{NEW_TOKENS} new tokens; {args.rounds} rounds × {args.steps} timed steps; rates are medians, ratios the "
           f"median of the per-round ratios with their min and max (bars judged on the median).", ""]
    sections = {}
    # The frozen-bottom rows have a section of their own: either can be rerun alone.
    for name, rows in (("throughput", [c for c in comparisons if not c.frozen]),
                       ("frozen", [c for c in comparisons if c.frozen])):
        if rows:
            sections[name] = "\n".join(header + [table(m, rows, peak, n_params)])
    if "memory" in wanted:
        sections["memory"] = "\n".join(header + [memory_table(m)])
    for name, text in sections.items():
        print(text + "\n")
        if args.write:
            write_section(args.write, name, text)
            print(f"bench: wrote the {name} section of {args.write}", file=sys.stderr)
            jobs = {j for c in comparisons if (name == "frozen") == bool(c.frozen) for j in (c.ours, c.theirs)}
            if name == "memory":
                jobs = {j for _, job, base, _ in MEMORY for j in (job, base)}
            write_evidence(Path(args.write), name, command, {j.label: m.results.get(j, []) for j in sorted(
                jobs, key=lambda j: j.label)})


def write_evidence(report: Path, section: str, command: str, results: dict[str, list[dict]]) -> Path:
    """What each measurement reported besides its rate, per round (TRL's tokenisation check,
    its forwards per step by kind, the settings in effect, versions), committed next to the
    figures: `<report's folder>/bench/<section>.json`."""
    out = report.parent / "bench" / f"{section}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": command, "machine": machine(), "results": results}, indent=1,
                              default=str) + "\n")
    return out


def evidence_from_log(log: Path) -> dict[str, list[dict]]:
    """The results of a past run, per job label, read back from its log (bench/last_run.log)."""
    results: dict[str, list[dict]] = {}
    label = None
    for line in log.read_text().splitlines():
        if line.startswith("$ "):
            words = line.split()
            i = words.index("-m")
            side = words[i + 1].removeprefix("bench.").removesuffix("_side")
            args = words[i + 3 :]
            rest = [w for j, w in enumerate(args)  # the job's own arguments: not --steps / --warmup N
                    if w not in ("--steps", "--warmup") and (j == 0 or args[j - 1] not in ("--steps", "--warmup"))]
            label = Job(side, words[i + 2], tuple(rest)).label
        elif line.startswith('{"side"') and label:
            results.setdefault(label, []).append(json.loads(line))
    return results


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command")
    ap.add_argument("--only", help=f"comma-separated subset of {', '.join(GROUPS)}")
    ap.add_argument("--rounds", type=int, default=3, help="rounds (≥ 1; at least 3 for a spread worth reading)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--write", help="also write the result into its section of this Markdown file (the rest is kept)")
    sweep = sub.add_parser("sweep", help="a sweep's sharing: kl_coef against four independent runs, "
                           "label_count against its largest point alone")
    sweep.add_argument("--sweep", choices=("kl_coef", "label_count"), default="kl_coef")
    sweep.add_argument("overrides", nargs="*", help="Hydra overrides for every run (e.g. experiment=demo)")
    sweep.add_argument("--write", help="also write the result into its section of this Markdown file (the rest is kept)")
    args = ap.parse_args()
    if args.command == "sweep":
        from bench.sweep import sweep_benchmark

        sweep_benchmark(args)
    else:
        benchmark(args)


if __name__ == "__main__":
    main()
