"""`harness-report` end to end: runs logged straight into a throwaway MLflow store the way the
pipeline logs them, the report run as a user runs it, its CSVs checked against the metrics."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from PIL import Image

pytestmark = pytest.mark.slow  # the CLI in subprocesses (harness-report; its tables in process: tests/unit/test_report_tables.py): the slow tier

T_975_1 = 12.706204736174707  # t quantile 0.975 with 1 degree of freedom
EXPERIMENT = "paper"
TIME0 = 1_700_000_000_000  # ms


@dataclass
class Logged:
    run_id: str
    tags: dict[str, str]
    metrics: dict[str, float]
    status: str


@dataclass
class Store:
    uri: str
    runs: list[Logged] = field(default_factory=list)

    def find(self, status: str = "FINISHED", **tags: str) -> list[Logged]:
        return [r for r in self.runs if r.status == status and all(r.tags.get(k) == v for k, v in tags.items())]

    def one(self, **tags: str) -> Logged:
        found = self.find(**tags)
        assert len(found) == 1, (tags, found)
        return found[0]


def _ci(metrics: dict[str, float], key: str, value: float, half: float) -> None:
    metrics |= {key: value, f"{key}_ci95_low": value - half, f"{key}_ci95_high": value + half}


def _metrics(rng: np.random.Generator, task: str, loss: str) -> dict[str, float]:
    """Every eval metric the pipeline logs for this task and method, as distinct floats."""
    m: dict[str, float] = {"eval/n": 200.0, "eval/length": float(rng.uniform(20, 40))}
    for key in ("eval/gold_reward", "eval/gold_reward_init"):
        _ci(m, key, float(rng.normal()), float(rng.uniform(0.01, 0.1)))
    _ci(m, "eval/kl", float(rng.uniform(0.1, 8.0)), float(rng.uniform(0.05, 0.5)))
    _ci(m, "eval/winrate_vs_init", float(rng.uniform(0.3, 0.9)), 0.05)
    if task in ("tldr", "cnndm"):
        for prefix in ("", "lead3_", "reference_"):
            for suffix in (("", "_init") if prefix == "" else ("",)):
                values = {k: float(rng.uniform(0.1, 0.4)) for k in ("rouge1", "rouge2", "rougeL")}
                values["rouge_avg"] = sum(values.values()) / 3
                m |= {f"eval/{prefix}{k}{suffix}": v for k, v in values.items()}
        m["eval/lead3_gold_reward"] = float(rng.normal())
        _ci(m, "eval/winrate_vs_reference", float(rng.uniform(0.2, 0.7)), 0.06)
        _ci(m, "eval/winrate_vs_lead3", float(rng.uniform(0.2, 0.7)), 0.06)
    if loss in ("ppo", "best_of_n"):
        _ci(m, "eval/proxy_reward", float(rng.uniform(0.5, 2.0)), 0.1)
        m |= {"rm_val/rewards/accuracy": float(rng.uniform(0.6, 0.8)), "rm_val/gold_accuracy": float(rng.uniform(0.6, 0.8))}
    return m


def _log(client: MlflowClient, experiment_id: str, store: Store, rng: np.random.Generator, *, task: str,
         loss: str, seed: int = 0, n: int = 1000, beta: float = 0.1, fraction: float = 1.0, bon_n: int = 4,
         status: str = "FINISHED", minute: int = 0, key: str | None = None,
         curves: dict[str, list[tuple[int, float]]] | None = None) -> Logged:
    config = f"{task}-{loss}-n{n}-b{beta}-f{fraction}-s{seed}" + (f"-bon{bon_n}" if loss == "best_of_n" else "")
    tags = {"task": task, "model": "tiny", "loss": loss, "labeler": "summary_panel", "labeler.version": "1",
            "seed": str(seed), "experiment": "paper_grid", "sweep.name": "paper", "run_key": key or config,
            "artifact.samples": f"s{seed}{n}"}
    params = {"seed": str(seed), "task.name": task, "model.name": "tiny", "loss.name": loss, "loss.beta": str(beta),
              "labels.n": str(n), "labels.k": "2", "labels.desirable_fraction": str(fraction),
              "eval.temperature": "0.7", "eval.n_prompts": "null", "logger.experiment_name": EXPERIMENT,
              "logger.run_name": "null", "threads": "1", "resume": "true", "sweep.name": "paper"}
    if loss == "best_of_n":
        params["loss.n"] = str(bon_n)
    metrics = _metrics(rng, task, loss)
    run = client.create_run(experiment_id, start_time=TIME0 + 60_000 * minute, tags=tags, run_name=config)
    run_id = run.info.run_id
    client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()],
                     metrics=[Metric(k, v, TIME0, 1) for k, v in metrics.items()])
    for key, points in (curves or {}).items():
        client.log_batch(run_id, metrics=[Metric(key, v, TIME0, step) for step, v in points])
    client.set_terminated(run_id, status=status, end_time=TIME0 + 60_000 * (minute + 1))
    logged = Logged(run_id, tags, metrics, status)
    store.runs.append(logged)
    return logged


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    root = tmp_path_factory.mktemp("report")
    store = Store(f"sqlite:///{root / 'mlflow.db'}")
    client = MlflowClient(store.uri)
    exp = client.create_experiment(EXPERIMENT)
    client.create_experiment("empty-experiment")
    rng = np.random.default_rng(0)
    minute = iter(range(1, 1000))
    # The older run of a configuration that was run again (same run_key): left out as a duplicate.
    _log(client, exp, store, rng, task="tldr", loss="sft", minute=next(minute))
    for task in ("tldr", "cnndm"):
        _log(client, exp, store, rng, task=task, loss="sft", minute=next(minute))
        for n in (250, 1000):
            _log(client, exp, store, rng, task=task, loss="ppo", n=n, minute=next(minute))
        _log(client, exp, store, rng, task=task, loss="kto", minute=next(minute))
        _log(client, exp, store, rng, task=task, loss="dpo", minute=next(minute))
    _log(client, exp, store, rng, task="tldr", loss="dpo", seed=1, minute=next(minute))  # second seed
    _log(client, exp, store, rng, task="tldr", loss="kto", fraction=0.5, minute=next(minute))
    _log(client, exp, store, rng, task="tldr", loss="best_of_n", n=250, bon_n=4, minute=next(minute))
    _log(client, exp, store, rng, task="tldr", loss="ppo", n=250, beta=0.3, status="FAILED", minute=next(minute))
    # A task outside the summary table: a DPO frontier over two β, and the over-optimisation
    # curves (PPO along training, best-of-n along n), gold gained exactly Gao et al.'s forms.
    for beta in (0.1, 0.3):
        _log(client, exp, store, rng, task="sentiment", loss="dpo", beta=beta, minute=next(minute))
    for seed in (0, 1):
        _log(client, exp, store, rng, task="sentiment", loss="ppo", seed=seed, minute=next(minute),
             curves=over_curves("series/", "ppo", seed))
    _log(client, exp, store, rng, task="sentiment", loss="best_of_n", minute=next(minute),
         curves=over_curves("bon/", "best_of_n", 0))
    return store


OVER_STEPS = {"ppo": (0, 2, 4, 6), "best_of_n": (1, 2, 4, 8)}
OVER_FORM = {"ppo": (1.0, 0.5), "best_of_n": (0.8, 0.2)}  # (α, β)


def over_point(loss: str, step: int, seed: int) -> tuple[float, float, float]:
    """(KL, gold, proxy) at a curve's step: gold = 0.3 + d(α − β f(d)), f = log (RL) or identity (best-of-n)."""
    kl = 0.25 * step if loss == "ppo" else math.log(step) - (step - 1) / step
    d = math.sqrt(kl)
    alpha, beta = OVER_FORM[loss]
    shape = (math.log(d) if loss == "ppo" else d) if d > 0 else 0.0
    gold = 0.3 + d * (alpha - beta * shape)
    return kl, gold, gold + 0.5 * d + 0.01 * seed


def over_curves(prefix: str, loss: str, seed: int) -> dict[str, list[tuple[int, float]]]:
    points = {step: over_point(loss, step, seed) for step in OVER_STEPS[loss]}
    return {f"{prefix}{key}": [(step, p[i]) for step, p in points.items()]
            for i, key in enumerate(("kl", "gold_reward", "proxy_reward"))}


def report(args: list[str], env_uri: str | None, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    if env_uri:
        env["MLFLOW_TRACKING_URI"] = env_uri
    return subprocess.run([sys.executable, "-m", "harness.cli.report", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def reports(store: Store, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cwd = tmp_path_factory.mktemp("cwd")
    # The store comes from MLFLOW_TRACKING_URI, as when a user has it exported.
    proc = report(["--experiment", EXPERIMENT, "--tag", "sweep.name=paper", "--out", "reports"], store.uri, cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "wrote index" in proc.stdout
    return cwd / "reports"


def read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, comment="#")


def test_summarization_table_numbers(store: Store, reports: Path) -> None:
    table = read(reports / "summarization.csv").set_index("method")
    assert list(table.index) == ["zero-shot", "supervised", "lead-3", "RL (250 labels)", "RL (1000 labels)", "DPO",
                                 "KTO (desirable fraction=0.5)", "KTO (desirable fraction=1.0)", "best-of-n (n=4)"]
    for task in ("tldr", "cnndm"):
        sft = store.find(task=task, loss="sft")[-1]  # the later of the two tldr sft runs
        assert table.at["supervised", f"{task} R-1"] == sft.metrics["eval/rouge1"]
        assert table.at["supervised", f"{task} R-AVG"] == sft.metrics["eval/rouge_avg"]
        assert table.at["supervised", f"{task} runs"] == sft.run_id
        for n in (250, 1000):
            ppo = store.one(task=task, loss="ppo", run_key=f"{task}-ppo-n{n}-b0.1-f1.0-s0")
            assert table.at[f"RL ({n} labels)", f"{task} R-2"] == ppo.metrics["eval/rouge2"]
        kto = store.one(task=task, loss="kto", run_key=f"{task}-kto-n1000-b0.1-f1.0-s0")
        assert table.at["KTO (desirable fraction=1.0)", f"{task} R-L"] == kto.metrics["eval/rougeL"]
    cnndm_dpo = store.one(task="cnndm", loss="dpo")
    assert table.at["DPO", "cnndm R-1"] == cnndm_dpo.metrics["eval/rouge1"]
    assert math.isnan(table.at["DPO", "cnndm R-1_ci95_low"])  # ROUGE has no logged interval
    assert "supervised + RL" not in table.index  # no PPO run started from the SFT policy


def test_two_seed_row_is_the_mean_with_a_t_interval(store: Store, reports: Path) -> None:
    table = read(reports / "summarization.csv").set_index("method")
    a, b = (r.metrics["eval/rouge1"] for r in store.find(task="tldr", loss="dpo"))
    mean = (a + b) / 2
    half = T_975_1 * abs(a - b) / 2  # t · s/√2 with s = |a − b|/√2
    assert table.at["DPO", "tldr R-1"] == pytest.approx(mean, rel=1e-12)
    assert table.at["DPO", "tldr R-1_ci95_low"] == pytest.approx(mean - half, rel=1e-9)
    assert table.at["DPO", "tldr R-1_ci95_high"] == pytest.approx(mean + half, rel=1e-9)
    assert table.at["DPO", "tldr n_seeds"] == 2 and table.at["DPO", "tldr seeds"] == "0,1"
    human = read(reports / "human_eval.csv")
    row = human[(human["task"] == "tldr") & (human["loss"] == "dpo")].iloc[0]
    wins = [r.metrics["eval/winrate_vs_init"] for r in store.find(task="tldr", loss="dpo")]
    assert row["% preferred vs initial"] == pytest.approx(100 * sum(wins) / 2, rel=1e-12)
    assert row["comparisons"] == 400  # eval/n summed over the two seeds


def test_baseline_rows_come_from_the_init_and_lead3_metrics(store: Store, reports: Path) -> None:
    table = read(reports / "summarization.csv").set_index("method")
    latest = store.find(task="cnndm")[-1]  # runs are logged (and started) in order
    assert table.at["zero-shot", "cnndm R-1"] == latest.metrics["eval/rouge1_init"]
    assert table.at["lead-3", "cnndm R-AVG"] == latest.metrics["eval/lead3_rouge_avg"]
    assert table.at["lead-3", "cnndm runs"] == latest.run_id
    tldr_seed1 = store.one(task="tldr", loss="dpo", seed="1")
    assert str(tldr_seed1.run_id) in table.at["zero-shot", "tldr runs"]
    assert table.at["zero-shot", "tldr n_seeds"] == 2


def test_human_eval_table_numbers(store: Store, reports: Path) -> None:
    table = read(reports / "human_eval.csv")
    assert {"% preferred vs initial", "% preferred vs reference", "comparisons", "runs", "labeler", "seeds"} <= set(table.columns)
    kto = store.one(task="cnndm", loss="kto")
    row = table[table["runs"] == kto.run_id].iloc[0]
    assert row["% preferred vs initial"] == 100 * kto.metrics["eval/winrate_vs_init"]
    assert row["% preferred vs initial_ci95_low"] == 100 * kto.metrics["eval/winrate_vs_init_ci95_low"]
    assert row["% preferred vs reference_ci95_high"] == 100 * kto.metrics["eval/winrate_vs_reference_ci95_high"]
    assert row["comparisons"] == kto.metrics["eval/n"]
    assert row["labeler"] == "summary_panel v1"
    assert set(table["labels.n"]) == {250, 1000}  # varies (ppo), so shown


def test_figure_data_numbers(store: Store, reports: Path) -> None:
    over = read(reports / "overoptimization.csv")
    assert set(over["loss"]) == {"ppo", "best_of_n"} and set(over["task"]) == {"sentiment"}
    for loss, curve in (("ppo", "RL"), ("best_of_n", "best-of-n")):
        rows = over[over["loss"] == loss].sort_values("point")
        assert list(rows["point"]) == list(OVER_STEPS[loss]) and set(rows["curve"]) == {curve}
        seeds = (0, 1) if loss == "ppo" else (0,)
        assert set(rows["n_seeds"]) == {len(seeds)}
        for _, row in rows.iterrows():
            points = [over_point(loss, int(row["point"]), s) for s in seeds]
            assert row["kl"] == pytest.approx(points[0][0])
            assert row["gold"] == pytest.approx(points[0][1])
            assert row["proxy"] == pytest.approx(sum(p[2] for p in points) / len(points))
            assert row["sqrt_kl"] == pytest.approx(math.sqrt(points[0][0]))
        # The fitted form recovers the α, β the gold was made with.
        assert (rows["fit_alpha"].iloc[0], rows["fit_beta"].iloc[0]) == pytest.approx(OVER_FORM[loss], abs=1e-9)
    # PPO runs without a series (the tldr / cnndm ones) are named, not drawn.
    index = (reports / "index.md").read_text()
    assert "no series/* curve logged" in index
    frontier = read(reports / "frontier.csv")
    assert set(frontier["task"]) == {"sentiment"}  # the only method with two β on its curve
    dpo = store.one(task="sentiment", loss="dpo", run_key="sentiment-dpo-n1000-b0.3-f1.0-s0")
    row = frontier[frontier["runs"] == dpo.run_id].iloc[0]
    assert (row["eval/kl"], row["eval/gold_reward"]) == (dpo.metrics["eval/kl"], dpo.metrics["eval/gold_reward"])
    assert "one value of loss.beta / loss.n" in index  # e.g. tldr's KTO at β = 0.1 alone
    imbalance = read(reports / "imbalance.csv")
    assert set(imbalance["labels.desirable_fraction"]) == {0.5, 1.0}
    label_count = read(reports / "label_count.csv")
    assert set(label_count["labels.n"]) == {250, 1000}


def test_index_lists_excluded_runs_with_reasons(store: Store, reports: Path) -> None:
    index = (reports / "index.md").read_text()
    failed = store.find(status="FAILED")[0]
    older, newer = store.find(task="tldr", loss="sft")
    lines = index.splitlines()
    assert any(failed.run_id in line and "status FAILED" in line for line in lines)
    assert any(line.startswith(f"| {older.run_id} ") and f"duplicate of {newer.run_id}" in line for line in lines)
    assert "--experiment paper" in index and "sweep.name=paper" in index  # the selection
    for name in ("summarization", "human_eval", "frontier", "overoptimization", "imbalance", "label_count"):
        assert f"({name}.csv)" in index
    for name in ("frontier", "overoptimization", "imbalance", "label_count"):
        assert f"({name}.png)" in index and f"_Figure {name}:" in index


def test_every_output_has_its_regenerate_header(store: Store, reports: Path) -> None:
    command = f"Regenerate: harness-report --tracking-uri {store.uri} --experiment paper"
    outputs = sorted(reports.iterdir())
    assert {p.suffix for p in outputs} == {".md", ".tex", ".csv", ".png"}
    for path in outputs:
        if path.suffix == ".png":
            assert path.stat().st_size > 1000
            with Image.open(path) as image:
                assert command in image.info["Description"]
            continue
        text = path.read_text()
        if path.suffix == ".md":
            assert text.startswith("<!--") and command in text.split("-->")[0]
        else:
            mark = {".tex": "%", ".csv": "#"}[path.suffix]
            header = [line for line in text.splitlines() if line.startswith(mark)]
            assert text.startswith(mark) and any(command in line for line in header)


def test_selection_matching_nothing_exits_2_with_one_line(store: Store, tmp_path: Path) -> None:
    proc = report(["--tracking-uri", store.uri, "--tag", "task=no_such_task"], None, tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("harness-report: error: no MLflow runs match")
    assert "task=no_such_task" in lines[0] and store.uri in lines[0]
    assert not (tmp_path / "reports").exists()


def test_unknown_experiment_exits_2(store: Store, tmp_path: Path) -> None:
    proc = report(["--experiment", "no-such-experiment"], store.uri, tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"harness-report: error: MLflow experiment 'no-such-experiment' not found in {store.uri}"]


def test_rerun_into_the_same_directory_removes_outputs_the_selection_no_longer_supports(
        store: Store, tmp_path: Path) -> None:
    out = tmp_path / "reports"
    first = report(["--out", str(out)], store.uri, tmp_path)
    assert first.returncode == 0 and (out / "imbalance.png").exists()
    # Only the PPO label-budget runs: no KTO/DPO, so no imbalance figure may be left behind.
    second = report(["--out", str(out), "--tag", "loss=ppo"], store.uri, tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    assert not any(out.glob("imbalance.*")) and (out / "label_count.png").exists()
    index = (out / "index.md").read_text()
    assert "- imbalance: skipped, no run with loss kto or dpo logged eval/gold_reward, eval/winrate_vs_init." in index
