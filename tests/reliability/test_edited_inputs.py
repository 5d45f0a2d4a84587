"""An edited input is a new job: a job's identity (its run_key) covers the content of every local
file it reads, not only the file's path. For a label file (labeler.path), a local dataset file
(task.source) and a local model directory (model.name_or_path), editing the input after a run and
running the same command again runs the job anew as a second MLflow run, with another run_key and
another `input.<setting>` tag (the first 16 hex digits of the content digest):

- after a FINISHED run, the rerun does not print "already finished" nor return the old metrics;
  a third run with the input unchanged does (the identity is stable while the content is;
  checked for the label file);
- after a run killed mid-training (SIGKILL: left RUNNING, checkpoints on disk), the rerun does not
  resume the old checkpoints ("resuming from"): it trains from its first step, and the killed
  run stays as it was."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest

from harness.cache import content_digest
from harness.models.sources import TinyRandom

pytestmark = pytest.mark.slow  # the CLI in subprocesses, three or four runs per test: the slow tier

PROMPTS = ["the hotel by the river was", "the pasta at the corner cafe was", "our room on the top floor was",
           "the service at the front desk was", "the beach near the old harbour was", "the tour of the castle was",
           "the breakfast on the terrace was", "the train ride to the coast was"]
GOOD = [" lovely.", " great fun.", " really good.", " wonderful.", " a delight."]
BAD = [" dirty.", " a letdown.", " really bad.", " awful.", " too loud."]
CORPUS = [f"Review: {p}{r}" for p in PROMPTS for r in GOOD + BAD]

N_LABELS = 32  # labels.n: every line of the label file
N_ROWS = 80  # task.n_train (64) + task.n_eval (16) of task=sentiment_tiny: both read from the file's first rows

# Long enough to be killed mid-training: 32 pairs in batches of 4, 8 steps per epoch, 64 steps, a
# checkpoint every 5; the first checkpoint appears at step 5.
LONG = ["trainer.max_steps=-1", "trainer.max_epochs=8", "train.checkpoint_every=5"]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def label_rows(flipped: bool = False) -> list[dict]:
    """Comparisons of a positive and a negative ending, the positive one chosen (or, flipped, the other)."""
    return [{"prompt": f"Review {i}: {PROMPTS[i % len(PROMPTS)]}",
             "responses": [GOOD[i % len(GOOD)], BAD[(i // 2) % len(BAD)]], "choice": int(flipped)}
            for i in range(N_LABELS)]


def review_rows(words: str) -> list[dict]:
    return [{"text": f"review {i}: {PROMPTS[i % len(PROMPTS)]} {words}"} for i in range(N_ROWS)]


def labels_input(tmp_path: Path) -> tuple[list[str], Path, Callable[[], None]]:
    path = write_jsonl(tmp_path / "labels.jsonl", label_rows())
    # Every choice flipped: the same prompts and responses, the opposite preference.
    return (["labeler=file", f"labeler.path={path}", "labeler@judge=lexicon_panel", f"labels.n={N_LABELS}"], path,
            lambda: write_jsonl(path, label_rows(flipped=True)))


def dataset_input(tmp_path: Path) -> tuple[list[str], Path, Callable[[], None]]:
    path = write_jsonl(tmp_path / "reviews.jsonl", review_rows("and the staff were"))
    return [f"task.source={path}"], path, lambda: write_jsonl(path, review_rows("but the neighbours were"))


def model_input(tmp_path: Path) -> tuple[list[str], Path, Callable[[], None]]:
    built = TinyRandom(vocab_size=300).materialize(tmp_path / "models", lambda: CORPUS)
    path = tmp_path / "mymodel"
    shutil.copytree(built, path)

    def edit() -> None:  # other weights, still a valid model of the same config
        from safetensors.torch import load_file, save_file

        weights = path / "model.safetensors"
        tensors = load_file(weights)
        save_file({name: t + 0.01 for name, t in tensors.items()}, weights, metadata={"format": "pt"})

    return ["model=hf", f"model.name_or_path={path}"], path, edit


# kind -> (its input and how it is edited, the setting that names the input)
INPUTS = {
    "labels": (labels_input, "labeler.path"),
    "dataset": (dataset_input, "task.source"),
    "model": (model_input, "model.name_or_path"),
}


def command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "harness", "experiment=smoke", *args]


def runs(env: dict[str, str], experiment: str) -> list:
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"]) if exp else []


def run(args: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run the command to completion; its output (stdout and stderr)."""
    done = subprocess.run(command(args), env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    return output


def digest(path: Path, tmp_path: Path) -> str:
    """The `input.<setting>` tag the input's current content must give."""
    return content_digest(path, tmp_path / "test-digests")[:16]


def setup(kind: str, state: str, harness_env: dict[str, str], tmp_path: Path):
    make, setting = INPUTS[kind]
    extra, path, edit = make(tmp_path)
    experiment = f"edited-{kind}-{state}"
    env = harness_env | {"PREFHARNESS_CACHE": str(tmp_path / "cache"), "MLFLOW_EXPERIMENT_NAME": experiment}
    return [*extra, f"hydra.run.dir={tmp_path / 'run'}"], path, edit, f"input.{setting}", experiment, env


@pytest.mark.timeout(900)  # three runs of the smoke experiment: ~1-2 min
@pytest.mark.parametrize("kind", sorted(INPUTS))
def test_edited_input_after_a_finished_run_is_run_again(kind: str, harness_env: dict[str, str],
                                                        tmp_path: Path) -> None:
    args, path, edit, tag, experiment, env = setup(kind, "finished", harness_env, tmp_path)
    first_output = run(args, env, tmp_path)
    assert "already finished" not in first_output
    (first,) = runs(env, experiment)
    assert first.info.status == "FINISHED"
    assert first.data.tags[tag] == digest(path, tmp_path)
    first_metrics = dict(first.data.metrics)

    edit()
    second_output = run(args, env, tmp_path)
    assert "already finished" not in second_output  # the old run is not taken for this one
    old, new = runs(env, experiment)
    assert old.info.run_id == first.info.run_id and dict(old.data.metrics) == first_metrics  # left as it was
    assert new.info.run_id != first.info.run_id and new.info.status == "FINISHED"
    assert new.data.tags[tag] == digest(path, tmp_path) != first.data.tags[tag]
    assert new.data.tags["run_key"] != first.data.tags["run_key"]
    assert "eval/kl" in new.data.metrics  # evaluated: a complete run of its own

    if kind != "labels":  # the identity's stability is the same code for every kind: checked once
        return
    # The same command, the input unchanged: the same job, finished, not run again.
    third_output = run(args, env, tmp_path)
    assert "already finished" in third_output
    assert [r.info.run_id for r in runs(env, experiment)] == [old.info.run_id, new.info.run_id]


@pytest.mark.timeout(900)  # a killed run and a run of 64 steps: ~1-2 min
@pytest.mark.parametrize("kind", sorted(INPUTS))
def test_edited_input_after_a_killed_run_does_not_resume_it(kind: str, harness_env: dict[str, str],
                                                            tmp_path: Path) -> None:
    args, path, edit, tag, experiment, env = setup(kind, "killed", harness_env, tmp_path)
    args = [*args, *LONG]
    checkpoints = tmp_path / "cache" / "checkpoints"
    with open(tmp_path / "killed.log", "wb") as log:  # a file, not a pipe nobody reads while it runs
        proc = subprocess.Popen(command(args), env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while not list(checkpoints.glob("*/train.ckpt")):
            assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint within 300 s"
            time.sleep(0.05)
        proc.kill()  # SIGKILL: no handler runs, the MLflow run stays RUNNING
        proc.wait()
    (killed,) = runs(env, experiment)
    assert killed.info.status == "RUNNING"
    old_key = killed.data.tags["run_key"]
    assert (checkpoints / old_key / "train.ckpt").exists()  # what a rerun of the same job would resume from

    edit()
    output = run(args, env, tmp_path)
    assert "resuming from" not in output
    assert "already finished" not in output
    old, new = runs(env, experiment)
    assert old.info.run_id == killed.info.run_id and old.info.status == "RUNNING"  # not continued
    assert new.info.status == "FINISHED" and "resumed" not in new.data.tags
    assert new.data.tags[tag] == digest(path, tmp_path) != killed.data.tags[tag]
    assert new.data.tags["run_key"] != old_key
    history = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"]).get_metric_history(new.info.run_id, "train/loss")
    assert min(m.step for m in history) == 0  # trained from its first step, not from the old checkpoint
    assert not (checkpoints / new.data.tags["run_key"]).exists()  # finished: its own checkpoints removed
