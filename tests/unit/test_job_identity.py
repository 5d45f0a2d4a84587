"""A job's identity (run_key) and its artifacts' keys cover the content of every local file its
components read, found through their `inputs()`: here a panel scorer's norms table, nested two
levels down (labeler.annotators.0.scorer.path), which no test in the slow tier edits."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from harness.cli.run import CONFIG_DIR, build_experiment


def build(overrides: list[str], tmp_path: Path):  # noqa: ANN201 - an Experiment
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=smoke", *overrides])
    return build_experiment(cfg, tmp_path / "run")


def test_an_edited_scorer_file_is_a_new_job(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFHARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    norms = tmp_path / "norms.csv"
    norms.write_text("Word,Concreteness\nriver,4.8\nidea,1.5\n")
    args = ["task=descriptive_tiny", "labeler=descriptive_lexical_panel",
            f"+labeler.annotators.0.scorer.path={norms}"]
    first, again = build(args, tmp_path), build(args, tmp_path)
    key = "input.labeler.annotators.0.scorer.path"
    assert key in first.tags and first.run_key == again.run_key  # unchanged content: the same job
    norms.write_text("Word,Concreteness\nriver,1.5\nidea,4.8\n")
    edited = build(args, tmp_path)
    assert edited.run_key != first.run_key and edited.tags[key] != first.tags[key]
    assert edited.keys["labeler"] != first.keys["labeler"]  # the labels artifact is keyed anew too
    baseline = build(["task=descriptive_tiny", "labeler=descriptive_lexical_panel"], tmp_path)
    assert not any(k.startswith("input.") for k in baseline.tags)  # packaged tables: no local input
