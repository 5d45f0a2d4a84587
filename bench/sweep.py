"""Sweep sharing: `harness -m +sweep=kl_coef` against the same four runs launched independently.

Independent runs each start from an empty artifact cache (as four separate experiments
would: every run draws its own samples, labels, reference log-probs and initial-policy
evaluation) and run one after another with all threads. The sweep starts from one empty
cache and runs as `harness/conf/sweep/kl_coef.yaml` says (two jobs at a time, one thread each), sharing
what the four points have in common. Both sides get the converted model from the existing
cache (a one-time set-up, not part of an experiment) and log to a throw-away MLflow store.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import cache_dir, write_section

BETAS = ("0.03", "0.1", "0.3", "1.0")  # harness/conf/sweep/kl_coef.yaml
# Four budgets for the demo's sentiment task (its 1,000 train prompts hold the largest).
BUDGETS = ("100", "200", "400", "800")
N_TRAIN = 1000
ROOT = Path(__file__).resolve().parent.parent


def _fresh_cache(root: Path) -> Path:
    cache = root / "cache"
    cache.mkdir(parents=True)
    models = cache_dir() / "models"
    if models.is_dir():
        (cache / "models").symlink_to(models, target_is_directory=True)
    return cache


def _harness(args: list[str], cache: Path, store: Path, log: Path) -> float:
    harness = shutil.which("harness") or str(Path(sys.executable).with_name("harness"))
    env = os.environ | {"PREFHARNESS_CACHE": str(cache), "MLFLOW_TRACKING_URI": f"sqlite:///{store}"}
    env.pop("MLFLOW_EXPERIMENT_NAME", None)
    t = time.perf_counter()
    with log.open("a") as f:
        f.write(f"\n$ PREFHARNESS_CACHE={cache} harness {' '.join(args)}\n")
        f.flush()
        proc = subprocess.run([harness, *args], cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SystemExit(f"bench sweep: `harness {' '.join(args)}` failed (exit {proc.returncode}); see {log}")
    return time.perf_counter() - t


def _kl_coef(overrides: list[str], tmp: Path, log: Path) -> list[str]:
    independent = []
    for beta in BETAS:
        root = tmp / f"independent-{beta}"
        seconds = _harness([*overrides, f"loss.beta={beta}", f"hydra.run.dir={root / 'run'}"],
                           _fresh_cache(root), root / "mlflow.db", log)
        independent.append(seconds)
        print(f"  independent run loss.beta={beta}: {seconds / 60:.1f} min", file=sys.stderr)
    root = tmp / "sweep"
    swept = _harness(["-m", "+sweep=kl_coef", *overrides, f"hydra.sweep.dir={root / 'multirun'}"],
                     _fresh_cache(root), root / "mlflow.db", log)
    print(f"  sweep: {swept / 60:.1f} min", file=sys.stderr)
    total = sum(independent)
    ratio = swept / total
    return [
        f"Runs: {' '.join(overrides)} at loss.beta ∈ {{{', '.join(BETAS)}}}", "",
        "| | wall time |", "|---|---|",
        *[f"| independent run, loss.beta={b} (own cache, all threads) | {s / 60:.1f} min |"
          for b, s in zip(BETAS, independent)],
        f"| four independent runs, total | {total / 60:.1f} min |",
        f"| `harness -m +sweep=kl_coef` (shared cache, 2 jobs × 1 thread) | {swept / 60:.1f} min |",
        f"| sweep ÷ independent | **{ratio:.2f}** (bar ≤ 0.5: {'met' if ratio <= 0.5 else 'not met'}) |",
    ]


def _label_count(overrides: list[str], tmp: Path, log: Path) -> list[str]:
    """The label-budget sweep at BUDGETS against its largest point run alone. Both read the same
    prompts (task.n_train fixed at N_TRAIN, as the sweep's config fixes it), so the smaller budgets'
    samples and labels are a prefix of the largest's."""
    fixed = [*overrides, f"task.n_train={N_TRAIN}"]
    root = tmp / "alone"
    alone = _harness(["+sweep=label_count", *fixed, f"labels.n={BUDGETS[-1]}", "threads=2",
                      f"hydra.run.dir={root / 'run'}"],
                     _fresh_cache(root), root / "mlflow.db", log)
    print(f"  largest point alone (labels.n={BUDGETS[-1]}): {alone / 60:.1f} min", file=sys.stderr)
    root = tmp / "sweep"
    swept = _harness(["-m", "+sweep=label_count", *fixed, f"labels.n={','.join(BUDGETS)}",
                      f"hydra.sweep.dir={root / 'multirun'}"],
                     _fresh_cache(root), root / "mlflow.db", log)
    print(f"  sweep: {swept / 60:.1f} min", file=sys.stderr)
    ratio = swept / alone
    return [
        f"Runs: {' '.join(fixed)} at labels.n ∈ {{{', '.join(BUDGETS)}}}", "",
        "| | wall time |", "|---|---|",
        f"| largest point alone, labels.n={BUDGETS[-1]} (own cache, all threads) | {alone / 60:.1f} min |",
        f"| `harness -m +sweep=label_count` (shared cache, 2 jobs × 1 thread) | {swept / 60:.1f} min |",
        f"| sweep ÷ largest point | **{ratio:.2f}** (bar ≤ 1.3: {'met' if ratio <= 1.3 else 'not met'}) |",
    ]


SWEEPS = {"kl_coef": _kl_coef, "label_count": _label_count}


def sweep_benchmark(args: argparse.Namespace) -> None:
    overrides = list(args.overrides) or ["experiment=demo"]
    log = ROOT / "bench" / f"last_sweep_{args.sweep}.log"
    log.write_text("")
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        rows = SWEEPS[args.sweep](overrides, Path(tmp), log)
    extra = "" if args.sweep == "kl_coef" else f" --sweep {args.sweep}"
    text = "\n".join([f"Command: `python -m bench sweep{extra} {' '.join(args.overrides)}`  ", *rows])
    print(text)
    if args.write:
        section = "sweep" if args.sweep == "kl_coef" else f"sweep_{args.sweep}"
        write_section(args.write, section, text)
        print(f"bench sweep: wrote the {section} section of {args.write}", file=sys.stderr)
