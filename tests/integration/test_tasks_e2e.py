"""Every task end to end on the tiny model, and real human labels imported from a file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from harness.cli.run import CONFIG_DIR

# The CLI in subprocesses, as a user runs it: the slow tier (test_objectives_in_process.py runs
# every objective in process in the fast tier).
pytestmark = pytest.mark.slow

# Every test-sized task of the `task` group (harness/conf/task/*_tiny.yaml).
TASKS = sorted(p.stem for p in (Path(CONFIG_DIR) / "task").glob("*_tiny.yaml"))

# Metrics a task logs besides the eval/* and train/* every run logs; a task not named here is
# checked for those alone.
TASK_METRICS = {
    "tldr_tiny": ["eval/rouge1", "eval/rouge_avg", "eval/copy_fraction", "eval/lead3_gold_reward", "eval/winrate_vs_reference",
                  "eval/winrate_init_vs_reference", "eval/lead3_winrate_vs_reference"],
    "cnndm_tiny": ["eval/rouge2", "eval/rougeL", "eval/starts_with_lead", "eval/reference_rouge1"],
}


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def finished_run(env: dict[str, str], experiment: str):  # noqa: ANN201
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    return runs[0]


def test_tiny_tasks_are_found() -> None:
    assert {"sentiment_tiny", "tldr_tiny"} <= set(TASKS)


@pytest.mark.parametrize("task", TASKS)
def test_task_end_to_end(task: str, harness_env: dict[str, str], workdir: Path) -> None:
    env = harness_env | {"MLFLOW_EXPERIMENT_NAME": f"e2e-{task}"}
    proc = run(["experiment=smoke", f"task={task}", f"hydra.run.dir={workdir / task}"], env, workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = finished_run(env, f"e2e-{task}").data.metrics
    for key in ["eval/gold_reward", "eval/winrate_vs_init", "eval/kl", "train/loss", *TASK_METRICS.get(task, [])]:
        assert key in metrics, key
    if "eval/rouge1" in TASK_METRICS.get(task, []):
        # The reference scored against itself: ROUGE 1 by construction.
        assert metrics["eval/reference_rouge1"] == pytest.approx(1.0)


def write_comparisons(path: Path, n: int) -> None:
    rows = [
        {"prompt": f"Review {i}: the hotel by the river was", "responses": [" lovely and warm.", " dirty and loud."],
         "choice": 0, "annotator": f"a{i % 3}"}
        for i in range(n)
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def test_file_labels_train_and_judge_evaluates(harness_env: dict[str, str], workdir: Path) -> None:
    path = workdir / "human.jsonl"
    write_comparisons(path, 24)
    env = harness_env | {"MLFLOW_EXPERIMENT_NAME": "e2e-file"}
    args = ["experiment=smoke", "labeler=file", f"labeler.path={path}", "labeler@judge=lexicon_panel",
            "labels.n=20", f"hydra.run.dir={workdir / 'file'}"]
    proc = run(args, env, workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = finished_run(env, "e2e-file")
    assert r.data.tags["labeler"] == "file"
    assert r.data.metrics["labels/pairs"] == 20
    assert "eval/winrate_vs_init" in r.data.metrics


def test_file_labels_need_a_judge_and_enough_rows(harness_env: dict[str, str], workdir: Path) -> None:
    path = workdir / "few.jsonl"
    write_comparisons(path, 5)
    proc = run(["experiment=smoke", "labeler=file", f"labeler.path={path}"], harness_env, workdir)
    assert proc.returncode == 2 and "labeler@judge" in proc.stderr
    proc = run(["experiment=smoke", "labeler=file", f"labeler.path={path}", "labeler@judge=lexicon_panel", "labels.n=10"],
               harness_env, workdir)
    assert proc.returncode == 2 and "few.jsonl" in proc.stderr and "labels.n=10" in proc.stderr


def test_bad_comparisons_file_is_one_line_naming_the_line(harness_env: dict[str, str], workdir: Path) -> None:
    path = workdir / "bad.jsonl"
    write_comparisons(path, 3)
    path.write_text(path.read_text() + '{"prompt": "x", "responses": ["a", "b"], "choice": 5}\n')
    proc = run(["experiment=smoke", "labeler=file", f"labeler.path={path}", "labeler@judge=lexicon_panel", "labels.n=2"],
               harness_env, workdir)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("harness: error:")]
    assert len(errors) == 1 and "bad.jsonl:4" in errors[0] and "choice" in errors[0]


PPO_METRICS = ["train/reward", "train/kl", "train/beta", "train/entropy", "train/policy_loss", "train/value_loss",
               "train/clipfrac", "train/approx_kl", "train/gold_reward"]
RM_METRICS = ["rm_train/loss", "rm_val/rewards/accuracy", "rm_val/gold_accuracy", "eval/proxy_reward", "eval/proxy_reward_ci95_low"]


@pytest.mark.parametrize("loss,extra,expected", [
    ("ppo", ["loss.method.episodes=64"], PPO_METRICS + RM_METRICS),
    ("best_of_n", ["loss.n=3"], RM_METRICS),
])
def test_reward_model_methods_end_to_end(loss: str, extra: list[str], expected: list[str],
                                         harness_env: dict[str, str], workdir: Path) -> None:
    env = harness_env | {"MLFLOW_EXPERIMENT_NAME": f"e2e-{loss}"}
    proc = run(["experiment=smoke", f"loss={loss}", *extra, f"hydra.run.dir={workdir / loss}"], env, workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = finished_run(env, f"e2e-{loss}")
    for key in ["eval/gold_reward", "eval/winrate_vs_init", "eval/kl", *expected]:
        assert key in r.data.metrics, key
    assert "artifact.reward_model" in r.data.tags
    if loss == "best_of_n":
        assert r.data.metrics["eval/kl"] == pytest.approx(__import__("math").log(3) - 2 / 3)
    else:
        client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
        assert len(client.get_metric_history(r.info.run_id, "train/beta")) == 4  # 64 episodes / 16 per iteration


@pytest.mark.parametrize("task,targets", [("sentiment_tiny", "chosen"), ("tldr_tiny", "references")])
def test_sft_end_to_end(task: str, targets: str, harness_env: dict[str, str], workdir: Path) -> None:
    env = harness_env | {"MLFLOW_EXPERIMENT_NAME": f"e2e-sft-{task}"}
    proc = run(["experiment=smoke", f"task={task}", "loss=sft", f"loss.targets={targets}",
                f"hydra.run.dir={workdir / ('sft' + task)}"], env, workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = finished_run(env, f"e2e-sft-{task}")
    assert {"train/loss", "train/perplexity", "eval/gold_reward"} <= set(r.data.metrics)


def test_sft_on_references_needs_references(harness_env: dict[str, str], workdir: Path) -> None:
    proc = run(["experiment=smoke", "loss=sft", "loss.targets=references"], harness_env, workdir)
    assert proc.returncode == 2 and "loss.targets=references" in proc.stderr


@pytest.mark.timeout(600)  # three runs
def test_reward_model_stage_alone_is_shared_with_best_of_n(harness_env: dict[str, str], workdir: Path) -> None:
    settings = ["experiment=smoke", "loss.reward_model.epochs=2", "loss.reward_model.pooling=last"]
    env = harness_env | {"MLFLOW_EXPERIMENT_NAME": "e2e-rm-alone"}
    proc = run([*settings, "loss=reward_model", f"hydra.run.dir={workdir / 'rm-alone'}"], env, workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    alone = finished_run(env, "e2e-rm-alone")
    assert {"rm_train/loss", "rm_val/rewards/accuracy", "rm_val/gold_accuracy"} <= set(alone.data.metrics)
    # The initial policy is what it evaluates: no KL, every comparison with itself a tie.
    assert alone.data.metrics["eval/kl"] == 0 and alone.data.metrics["eval/winrate_vs_init"] == 0.5
    artifact = Path(env["PREFHARNESS_CACHE"]) / "artifacts" / "reward_model" / alone.data.tags["artifact.reward_model"]
    built = (artifact / "head.safetensors").stat().st_mtime_ns

    env = harness_env | {"MLFLOW_EXPERIMENT_NAME": "e2e-rm-then-bon"}
    proc = run([*settings, "loss=best_of_n", f"hydra.run.dir={workdir / 'rm-bon'}"], env, workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    bon = finished_run(env, "e2e-rm-then-bon")
    assert bon.data.tags["artifact.reward_model"] == alone.data.tags["artifact.reward_model"]
    assert (artifact / "head.safetensors").stat().st_mtime_ns == built  # loaded, not trained again
    assert bon.data.metrics["rm_val/rewards/accuracy"] == pytest.approx(alone.data.metrics["rm_val/rewards/accuracy"], rel=1e-6)

    # Other labels (one annotator far more careless) on the same samples: another reward model.
    env = harness_env | {"MLFLOW_EXPERIMENT_NAME": "e2e-rm-other-labels"}
    proc = run([*settings, "loss=reward_model", "labeler.annotators.0.flip_rate=0.45",
                f"hydra.run.dir={workdir / 'rm-other'}"], env, workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    other = finished_run(env, "e2e-rm-other-labels")
    assert other.data.tags["artifact.samples"] == alone.data.tags["artifact.samples"]
    assert other.data.tags["artifact.reward_model"] != alone.data.tags["artifact.reward_model"]


@pytest.mark.timeout(600)  # SFT, reward model and PPO: about 2 min
def test_supervised_init_then_rl(harness_env: dict[str, str], workdir: Path) -> None:
    """init.policy=sft: the policy is first fine-tuned on the references (an artifact), and every
    later stage starts from it — Ziegler et al.'s "supervised + RL"."""
    env = harness_env | {"MLFLOW_EXPERIMENT_NAME": "e2e-sft-init"}
    proc = run(["experiment=smoke", "task=tldr_tiny", "init.policy=sft", "loss=ppo", "loss.method.episodes=32",
                f"hydra.run.dir={workdir / 'sft-init'}"], env, workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = finished_run(env, "e2e-sft-init")
    assert r.data.tags["init"] == "sft" and "artifact.sft_policy" in r.data.tags
    sft_dir = Path(env["PREFHARNESS_CACHE"]) / "artifacts" / "sft_policy" / r.data.tags["artifact.sft_policy"]
    assert (sft_dir / "config.json").exists()
    proc = run(["experiment=smoke", "init.policy=sft"], harness_env, workdir)  # sentiment has no references
    assert proc.returncode == 2 and "init.policy=sft" in proc.stderr
