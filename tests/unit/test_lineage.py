"""What MLflow itself understands about a run: the experiment's kind, source tags, dataset
inputs, a sweep's parent run and its summary (harness/tracking.py)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.tracking import (
    DESCRIPTION_TAG,
    EXPERIMENT_KIND_TAG,
    MODEL_TRAINING,
    PARENT_TAG,
    RunTracker,
    SweepParent,
    dataset_input,
    reward_kl_frontier,
    source_tags,
)

REPO = Path(__file__).resolve().parents[2]


def tracker(tmp_path: Path, experiment: str = "e", name: str = "r") -> RunTracker:
    return RunTracker(experiment, name, f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_experiments_are_model_training_ones_with_a_description(tmp_path: Path) -> None:
    t = tracker(tmp_path)
    t.start({}, {})
    experiment = t.client.get_experiment_by_name("e")
    assert experiment.tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING  # the UI opens on the runs table
    assert "gold_reward" in experiment.tags[DESCRIPTION_TAG]
    # An experiment made elsewhere (an older harness, by hand) gets the kind; its own tags stay.
    exp_id = t.client.create_experiment("old", tags={DESCRIPTION_TAG: "mine"})
    RunTracker("old", "r", t.tracking_uri).start({}, {})
    old = t.client.get_experiment(exp_id)
    assert old.tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING and old.tags[DESCRIPTION_TAG] == "mine"


def test_source_tags_name_the_command_and_commit_never_a_path() -> None:
    tags = source_tags()
    assert tags["mlflow.source.name"] == "harness" and tags["mlflow.source.type"] == "LOCAL"
    assert tags["prefharness.version"]
    assert not any(value.startswith("/") or str(REPO) in value for value in tags.values())
    if (REPO / ".git").exists():
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
        assert tags["mlflow.source.git.commit"] == head.strip()
        assert tags["prefharness.git.dirty"] in ("true", "false")


def test_dataset_inputs_carry_digest_rows_and_context(tmp_path: Path) -> None:
    t = tracker(tmp_path)
    run_id, _ = t.start({}, {})
    t.log_inputs([dataset_input("labels", "ab" * 20, 32, "training", {"artifact": "labels/abab"})])
    t.log_inputs([dataset_input("labels", "ab" * 20, 32, "training", {"artifact": "labels/abab"})])  # resumed
    (found,) = t.client.get_run(run_id).inputs.dataset_inputs  # logged once
    assert found.dataset.name == "labels" and found.dataset.digest == ("ab" * 20)[:36]
    assert json.loads(found.dataset.profile) == {"num_rows": 32}
    assert json.loads(found.dataset.source) == {"artifact": "labels/abab"}
    assert [(tag.key, tag.value) for tag in found.tags] == [("mlflow.data.context", "training")]


def run(run_id: str, name: str, gold: float, kl: float) -> SimpleNamespace:
    return SimpleNamespace(info=SimpleNamespace(run_id=run_id, run_name=name),
                           data=SimpleNamespace(metrics={"eval/gold_reward": gold, "eval/kl": kl}))


def test_reward_kl_frontier_by_hand() -> None:
    # (KL, gold): b is beaten by a (less KL, more gold), d by c; e ties c on both: both stay.
    runs = [run("a", "a", 1.0, 1.0), run("b", "b", 0.9, 2.0), run("c", "c", 2.0, 3.0), run("d", "d", 1.5, 4.0),
            run("e", "e", 2.0, 3.0)]
    front = reward_kl_frontier(runs, "eval/gold_reward", "eval/kl")
    assert [p["run_id"] for p in front] == ["a", "c", "e"]


def child(t: RunTracker, parent: str, name: str, status: str, gold: float | None, kl: float) -> str:
    c = RunTracker(t.experiment_name, name, t.tracking_uri)
    run_id, _ = c.start({PARENT_TAG: parent}, {})
    if gold is not None:
        c.log_metrics({"eval/gold_reward": gold, "eval/kl": kl})
    c.end(status)
    return run_id


@pytest.mark.parametrize("jobs, status", [(3, "FINISHED"), (4, "FAILED")])
def test_sweep_parent_is_found_again_and_summarises_its_children(tmp_path: Path, jobs: int, status: str) -> None:
    t = tracker(tmp_path, name="sweep-x")
    parent = SweepParent(t, "key1", jobs)
    first = parent.open({"sweep.name": "x"}, {"grid.loss.beta": "0.1,0.2"}, {"sweep.json": "{}"})
    best = child(t, first, "b", "FINISHED", 2.0, 5.0)
    child(t, first, "a", "FINISHED", 1.0, 1.0)
    child(t, first, "c", "FINISHED", 0.5, 3.0)  # beaten by a: not on the frontier
    parent.close("FINISHED")
    # The same sweep launched again: the same parent, running again, counted as resumed.
    again = SweepParent(tracker(tmp_path, name="sweep-x"), "key1", jobs)
    assert again.open({"sweep.name": "x"}, {}, {}) == first
    got = t.client.get_run(first)
    assert got.info.status == "RUNNING" and got.data.tags["resumed"] == "1"
    again.close("FINISHED")
    got = t.client.get_run(first)
    assert got.info.status == status  # FAILED: fewer finished jobs than points
    assert got.data.metrics["sweep/jobs_finished"] == 3 and got.data.metrics["sweep/jobs"] == jobs
    assert got.data.metrics["sweep/best_gold_reward"] == 2.0 and got.data.tags["sweep.best_run"] == best
    assert got.data.metrics["sweep/frontier_size"] == 2
    assert got.data.params["grid.loss.beta"] == "0.1,0.2"
    # Another sweep (another key) is another parent.
    assert SweepParent(t, "key2", 1).open({}, {}, {}) != first
