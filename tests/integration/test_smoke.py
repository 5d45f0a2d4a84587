"""The CLI end to end, run as a user runs it, against a throwaway MLflow store and cache."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

pytestmark = pytest.mark.slow  # the CLI in subprocesses (python -m harness; in process: test_objectives_in_process.py): the slow tier

REQUIRED = [
    "eval/gold_reward", "eval/gold_reward_ci95_low", "eval/gold_reward_ci95_high",
    "eval/winrate_vs_init", "eval/winrate_vs_init_ci95_low", "eval/winrate_vs_init_ci95_high",
    "eval/kl", "eval/length", "train/loss", "train/rewards/margin", "train/rewards/accuracy",
]


def harness(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def smoke_run(harness_env: dict[str, str], workdir: Path):  # noqa: ANN201
    env = harness_env | {"MLFLOW_EXPERIMENT_NAME": "smoke-test"}
    proc = harness(["experiment=smoke", f"hydra.run.dir={workdir / 'run'}"], env, workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("smoke-test")
    return client, client.search_runs([experiment.experiment_id])


def test_smoke_leaves_one_finished_run_with_metrics(smoke_run) -> None:  # noqa: ANN001
    client, runs = smoke_run
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    missing = [k for k in REQUIRED if k not in run.data.metrics]
    assert not missing
    m = run.data.metrics
    assert m["eval/winrate_vs_init_ci95_low"] <= m["eval/winrate_vs_init"] <= m["eval/winrate_vs_init_ci95_high"]
    assert m["eval/gold_reward_ci95_low"] <= m["eval/gold_reward"] <= m["eval/gold_reward_ci95_high"]
    assert 1 <= m["eval/length"] <= 8
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) == 4  # one per step


def test_smoke_run_tags_params_artifacts(smoke_run) -> None:  # noqa: ANN001
    client, runs = smoke_run
    run = runs[0]
    tags = run.data.tags
    assert {tags[k] for k in ("task", "model", "loss", "labeler", "seed")} == {"sentiment", "tiny", "dpo", "lexicon_panel", "0"}
    params = run.data.params
    assert params["loss.beta"] == "0.1" and params["labels.n"] == "32" and params["model.name"] == "tiny"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "eval_samples.json"} <= artifacts
    table = json.loads(Path(client.download_artifacts(run.info.run_id, "eval_samples.json")).read_text())
    assert len(table["data"]) == 16
    assert {"prompt", "initial", "trained", "gold_trained"} <= set(table["columns"])


def test_unknown_option_gets_hydra_error(harness_env: dict[str, str], workdir: Path) -> None:
    proc = harness(["experiment=smoke", "loss=not_a_loss"], harness_env, workdir)
    assert proc.returncode != 0
    assert "not_a_loss" in proc.stderr


@pytest.mark.parametrize(
    "override,needle",
    [
        ("model=hf model.name_or_path=/no/such/model", "/no/such/model"),
        ("model=smollm2_135m model.source.package=no_such_gguf_pkg", "no_such_gguf_pkg"),
    ],  # settings (loss.beta=0, labels.n=100000, …): tests/reliability/test_bad_input.py, in process
)
def test_bad_input_is_one_line(override: str, needle: str, harness_env: dict[str, str], workdir: Path) -> None:
    proc = harness(["experiment=smoke", *override.split()], harness_env, workdir)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("harness: error:")]
    assert len(errors) == 1 and needle in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
