"""A run's lineage as MLflow shows it: dataset inputs whose digests are the artifacts it used,
source tags, the preset tag, and system metrics while the run is open."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.in_process import run_in_process


def inputs(run) -> dict[str, tuple[str, dict, dict, str]]:  # noqa: ANN001 - mlflow.entities.Run
    return {i.dataset.name: (i.dataset.digest, json.loads(i.dataset.source), json.loads(i.dataset.profile),
                             {t.key: t.value for t in i.tags}["mlflow.data.context"])
            for i in run.inputs.dataset_inputs}


def test_a_run_lists_the_data_it_used_and_where_it_came_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, exp, run, client = run_in_process(
        "lineage", ["experiment=smoke", "logger.system_metrics=true", "logger.system_metrics_interval=0.2"],
        tmp_path, monkeypatch)
    tags = run.data.tags
    found = inputs(run)
    assert set(found) == {"prompts", "eval_prompts", "samples", "labels"}
    # The samples and labels it trained on: digest = the key it tagged (the pool's first n).
    for stage, rows in (("samples", 32 * 2), ("labels", 32)):
        digest, source, profile, context = found[stage]
        assert digest == tags[f"artifact.{stage}"] and source["prompts"] == 32 and source["chunk"] == 50
        assert profile == {"num_rows": rows} and context == "training"
    assert found["prompts"][2] == {"num_rows": 32} and found["eval_prompts"][2] == {"num_rows": 16}
    assert found["eval_prompts"][3] == "evaluation" and found["prompts"][1] == {"task": exp.task.name, "split": "train"}
    assert not any(str(tmp_path) in json.dumps(v) for v in found.values())  # no machine path
    assert tags["preset"] == "smoke" and tags["mlflow.source.name"] == "harness"
    system = [k for k in run.data.metrics if k.startswith("system/")]
    assert "system/cpu_utilization_percentage" in system and "system/system_memory_usage_megabytes" in system


def test_imported_labels_are_the_file_by_its_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [{"prompt": f"The film number {i} was", "responses": [" great.", " dull."], "choice": i % 2} for i in range(8)]
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    _, exp, run, _ = run_in_process(
        "lineage_file", ["experiment=smoke", "labeler=file", f"labeler.path={path}", "labeler@judge=lexicon_panel",
                         "labels.n=8"], tmp_path, monkeypatch)
    found = inputs(run)
    assert set(found) == {"prompts", "eval_prompts", "labels"}  # no samples: the file has the responses
    import hashlib

    assert found["labels"][0] == hashlib.sha256(path.read_bytes()).hexdigest()[:36]
    assert found["labels"][2] == {"num_rows": 8}
