"""How well an LLM judge labels sentiment comparisons: its agreement with the gold panel.

SmolLM2-135M-Instruct (the converted model in the cache), served by `transformers serve` on
127.0.0.1, labels `--n` comparisons of experiment=demo's samples (the initial policy's pool,
seed 0: the comparisons a demo run labels) through `labeler=llm_judge`, each asked in both
orders. Reported: how often its label is the response the panel's noise-free gold ranks best
(95% Wilson interval), how often its two orders agreed, replies it could not read; and, for
scale, the same agreement of the simulated panel's own noisy labels. Written to
reports/judge_agreement.md.

    python -m bench.judge_agreement                       # the local server, 200 comparisons
    python -m bench.judge_agreement --base-url URL --model NAME   # any OpenAI-compatible endpoint
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import tempfile
from datetime import date
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from hydra import compose, initialize_config_dir

from bench.__main__ import machine
from bench.common import cache_dir
from harness.cache import ArtifactCache, stage_seed
from harness.cli.run import CONFIG_DIR, build_experiment
from harness.labelers.serve_local import transformers_serve
from harness.pipeline import prepare
from harness.progress import progress_bar
from harness.stages import gold_agreement, samples

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / "reports" / "judge_agreement.md"


def wilson(hits: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval of a proportion hits / n."""
    if n == 0:
        return math.nan, math.nan
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


PORT = 8017  # fixed: the judge's cache keys its answers by the endpoint's address


def _experiment(tmp: Path, overrides: list[str]):  # noqa: ANN202 - an Experiment
    """experiment=demo with `overrides`, its MLflow store a throw-away one in `tmp` (nothing is
    logged there); the caller's MLFLOW_TRACKING_URI is left as it was."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
    try:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose("config", overrides=["experiment=demo", f"paths.cache_dir={cache_dir()}", *overrides])
        return build_experiment(cfg, tmp)
    finally:
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before


def policy_dir() -> Path:
    """experiment=demo's model directory: SmolLM2-135M-Instruct converted into the cache."""
    with tempfile.TemporaryDirectory() as tmp:
        exp = _experiment(Path(tmp), [])
        return exp.model_source.materialize(exp.cache_dir, lambda: (e.prompt for e in exp.task.examples("train")))


def measure(n: int, base_url: str, model: str) -> dict[str, float]:
    os.environ.setdefault("OPENAI_API_KEY", "none")  # a local server asks for no key
    with tempfile.TemporaryDirectory() as tmp:
        exp = _experiment(Path(tmp), [f"labels.n={n}", "labeler=llm_judge", "labeler@judge=sentiment_panel",
                                      f"labeler.base_url={base_url}", f"labeler.model={model}"])
        prep = prepare(exp)
        with progress_bar() as progress:  # the pool's samples (built once, then read from the cache)
            pool, _ = samples(exp, prep, ArtifactCache(exp.cache_dir / "artifacts"), progress)
    rows = [row for chunk in pool for row in chunk][:n]
    examples, tok = prep.train_examples[:n], prep.tokenizer
    groups, texts = [r["responses"] for r in rows], [r["texts"] for r in rows]
    rng = np.random.default_rng(stage_seed(exp.seed, "labels:0"))
    # Asked here rather than read from a labels artifact, so that every answer is counted
    # (those asked before come back from the judge's own cache).
    judged = exp.labeler.label(examples, texts, rng)
    judge_hits = gold_agreement(exp, examples, groups, list(judged.choice), tok)
    # The simulated panel's own labels of the same comparisons, for scale (its noise model).
    panel = exp.judge
    panel_labels = panel.label(examples, texts, rng)
    as_people = SimpleNamespace(judge=panel, labeler=None)
    panel_hits = gold_agreement(as_people, examples, groups, list(panel_labels.choice), tok)
    usage = exp.labeler.usage()
    return {"n": float(n), "judge": float(judge_hits), "panel": float(panel_hits),
            "orders_agree": float(judged.agreement), "requests": usage["judge/requests"],
            "cached": usage["judge/cached"], "unparsed": float((np.asarray(judged.votes) >= 2).sum())}


def report(result: dict[str, float], served: str, command: str) -> str:
    n = int(result["n"])
    rows = []
    for name, key in (("LLM judge (SmolLM2-135M-Instruct, both orders)", "judge"),
                      ("simulated panel (its noisy labels)", "panel")):
        low, high = wilson(round(result[key] * n), n)
        rows.append(f"| {name} | {100 * result[key]:.1f}% | {100 * low:.1f}–{100 * high:.1f}% |")
    return "\n".join([
        "# The LLM judge against the gold panel",
        "",
        f"{n} sentiment comparisons (experiment=demo's samples of the initial policy, seed 0, two responses "
        "each), labelled by `labeler=llm_judge` asking each in both orders (a disagreement is a tie, broken "
        "at random); agreement = the share of labels that pick the response the panel's noise-free gold "
        "ranks best (chance: 50%).",
        "",
        "| labels from | agree with the gold | 95% CI (Wilson) |",
        "|---|---|---|",
        *rows,
        "",
        f"- Its two orders gave the same readable answer on {100 * result['orders_agree']:.1f}% of comparisons; "
        "the rest are ties (an order's reply named neither letter, or the answer followed the position).",
        f"- Replies naming neither A nor B: {int(result['unparsed'])} of {int(result['requests'] + result['cached'])} "
        f"answers ({int(result['cached'])} of them read from the judge's cache, asked by an earlier run).",
        f"- Served by {served}.",
        f"- Machine: {machine()}; {date.today().isoformat()}.",
        "",
        f"Regenerate: `{command}`",
        "",
    ])


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM too ends the block that stops the server


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    parser = argparse.ArgumentParser(prog="python -m bench.judge_agreement", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200, help="comparisons (default 200)")
    parser.add_argument("--base-url", help="an OpenAI-compatible endpoint; default: start transformers serve here")
    parser.add_argument("--model", help="the endpoint's model name (with --base-url)")
    parser.add_argument("--no-write", action="store_true", help=f"print only; do not write {REPORT.name}")
    args = parser.parse_args()
    command = "python -m bench.judge_agreement" + (f" --n {args.n}" if args.n != 200 else "")
    if args.base_url:
        result = measure(args.n, args.base_url, args.model or "default")
        served = f"{args.base_url} ({args.model})"
    else:
        with transformers_serve(policy_dir(), port=PORT) as (url, model):
            result = measure(args.n, url, model)
        served = "`transformers serve` on 127.0.0.1 (CPU, fp32), the converted model in $PREFHARNESS_CACHE/models"
    text = report(result, served, command)
    print(text)
    if not args.no_write and not args.base_url:
        REPORT.write_text(text)
        print(f"written: {REPORT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
