"""labeler=human on model=tiny: the run stops at the labels with the pending comparisons queued
(its MLflow run KILLED, resumable), people answer through the labelling page's code, and the same
run continues from the cached samples to the end with the people's choices."""

from __future__ import annotations

import json
import os
from pathlib import Path

import mlflow
import pytest

from harness.errors import AwaitingLabels
from harness.labelers.page import Labelling, shown_order
from tests.integration.in_process import run_in_process


def test_a_run_waits_for_people_and_continues_with_their_labels(tiny_cache: Path, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    people = tmp_path / "people"
    overrides = ["experiment=smoke", "labeler=human", f"labeler.dir={people}", "labeler@judge=lexicon_panel",
                 "labels.n=12", "sampling.chunk=12", "eval.n_prompts=8", f"paths.cache_dir={tiny_cache}",
                 "logger.log_model=false"]
    with pytest.raises(AwaitingLabels) as wait:
        run_in_process("human-labels", overrides, tmp_path / "run", monkeypatch)
    assert wait.value.pending == 12 and wait.value.added == 12
    assert "harness-label serve" in str(wait.value)
    client = mlflow.MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    exp_id = client.get_experiment_by_name("human-labels").experiment_id
    [stopped] = client.search_runs([exp_id])
    assert stopped.info.status == "KILLED" and stopped.data.tags["awaiting_labels"] == "12"

    # Two people answer through the page's own code: Ann everything, Bob the first four, one tie.
    page = Labelling(people / "queue.jsonl", people / "labels.jsonl")
    assert len(page.items) == 12
    for name, items in (("ann", page.items), ("bob", page.items[:4])):
        for n, item in enumerate(items):
            shown = shown_order(name, item["id"], 2)
            form = {"id": item["id"], "shown": json.dumps(shown), "shown_at": "0"}
            page.record(name, form | ({"outcome": "tie"} if (name, n) == ("bob", 3) else {"position": "0"}))
    expected = {item["id"]: shown_order("ann", item["id"], 2)[0] for item in page.items}

    metrics, exp, run, _ = run_in_process("human-labels", overrides, tmp_path / "again", monkeypatch)
    assert run.info.run_id == stopped.info.run_id and run.info.status == "FINISHED"  # the same run, resumed
    assert "eval/gold_reward" in metrics  # the judge panel evaluates
    assert 0.0 <= run.data.metrics["labels/gold_agreement"] <= 1.0  # and scores the people's labels
    labels_dirs = sorted((tiny_cache / "artifacts" / "labels").glob("*/labels.jsonl"), key=lambda p: p.stat().st_mtime)
    rows = [json.loads(line) for line in labels_dirs[-1].read_text().splitlines()]
    assert len(rows) == 12
    # Where Ann and Bob disagree or Bob tied, the choice is one of Ann's or Bob's; elsewhere Ann's.
    queue = [json.loads(line) for line in (people / "queue.jsonl").read_text().splitlines()]
    for row, item in zip(rows, queue):
        if len(row["votes"]) == 1:
            assert row["choice"] == expected[item["id"]]
    assert [len(r["votes"]) for r in rows].count(2) == 3  # Bob's tie is not a vote


@pytest.mark.slow  # the CLI in a subprocess
def test_the_cli_says_how_to_serve_the_page_and_exits_3(harness_env: dict[str, str], tmp_path: Path) -> None:
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "harness", "experiment=smoke", "labeler=human",
                           f"labeler.dir={tmp_path / 'people'}", "labeler@judge=lexicon_panel", "labels.n=8",
                           "sampling.chunk=8", f"hydra.run.dir={tmp_path / 'run'}"],
                          env=harness_env, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 3, proc.stderr[-2000:]
    [line] = [line for line in proc.stderr.splitlines() if line.startswith("harness: waiting for labels")]
    assert f"harness-label serve {tmp_path / 'people' / 'queue.jsonl'}" in line and "http://127.0.0.1:8765/" in line
    assert len((tmp_path / "people" / "queue.jsonl").read_text().splitlines()) == 8


def _answer_everything(people: Path, name: str) -> int:
    """`name` answers every comparison of the queue through the page's code (the first response
    shown); the number answered."""
    page = Labelling(people / "queue.jsonl", people / "labels.jsonl")
    todo = [item for item in page.items if item["id"] not in page.answered_by(name)]
    for item in todo:
        shown = shown_order(name, item["id"], len(item["responses"]))
        page.record(name, {"id": item["id"], "shown": json.dumps(shown), "shown_at": "0", "position": "0"})
    return len(todo)


def test_online_rounds_wait_for_people_at_each_round_and_resume_there(tiny_cache: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """labels.rounds=2 with labeler=human: the run stops for round 1's labels, trains round 1 once
    people answered, samples round 2 from the policy it trained, stops again for those, and the
    third start trains round 2 only."""
    from harness.methods.offline import OfflinePreference

    people = tmp_path / "people"
    overrides = ["experiment=smoke", "loss=dpo", "labeler=human", f"labeler.dir={people}",
                 "labeler@judge=lexicon_panel", "labels.n=12", "labels.rounds=2", "sampling.chunk=6",
                 "eval.n_prompts=8", f"paths.cache_dir={tiny_cache}", "logger.log_model=false"]
    trained: list[tuple[str, int]] = []
    fit = OfflinePreference.fit

    def spy(self, ctx):  # noqa: ANN001, ANN202
        trained.append((ctx.stage, len(ctx.labelled.choices)))
        return fit(self, ctx)

    monkeypatch.setattr(OfflinePreference, "fit", spy)
    with pytest.raises(AwaitingLabels) as wait:  # round 1: the initial policy's samples of the first 6 prompts
        run_in_process("human-online", overrides, tmp_path / "run1", monkeypatch)
    assert (wait.value.pending, wait.value.added) == (6, 6) and trained == []
    assert _answer_everything(people, "ann") == 6

    with pytest.raises(AwaitingLabels) as wait:  # round 2: new samples, of the policy round 1 trained
        run_in_process("human-online", overrides, tmp_path / "run2", monkeypatch)
    assert (wait.value.pending, wait.value.added) == (6, 6)
    assert trained == [("train-round0", 6)]
    queue = [json.loads(line) for line in (people / "queue.jsonl").read_text().splitlines()]
    assert len(queue) == 12 and len({q["id"] for q in queue}) == 12
    client = mlflow.MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    [stopped] = client.search_runs([client.get_experiment_by_name("human-online").experiment_id])
    assert stopped.info.status == "KILLED" and stopped.data.tags["awaiting_labels"] == "6"
    assert [(m.step, m.value) for m in client.get_metric_history(stopped.info.run_id, "online/labels")] == [(0, 6.0)]
    assert _answer_everything(people, "ann") == 6

    trained.clear()
    metrics, _, run, client = run_in_process("human-online", overrides, tmp_path / "run3", monkeypatch)
    assert run.info.run_id == stopped.info.run_id and run.info.status == "FINISHED"
    assert trained == [("train-round1", 12)]  # round 1 was not trained again
    assert sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "online/labels")) == \
        [(0, 6.0), (1, 12.0)]
    assert "eval/gold_reward" in metrics and "online/gold_agreement" in run.data.metrics
