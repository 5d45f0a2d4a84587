from pathlib import Path

from harness.tracking import RunTracker, flatten


def test_flatten() -> None:
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": "x"}) == {"a.b": "1", "a.c": "[1, 2]", "d": "x"}


def test_lightning_logger_does_not_end_the_run(tmp_path: Path) -> None:
    tracker = RunTracker("t", "r", f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id, finished = tracker.start({"task": "x"}, {"a": "1"})
    assert not finished
    logger = tracker.lightning_logger()
    logger.log_metrics({"train/loss": 1.0}, step=0)
    logger.finalize("success")
    assert tracker.client.get_run(run_id).info.status == "RUNNING"
    tracker.end("FINISHED")
    run = tracker.client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.metrics["train/loss"] == 1.0
