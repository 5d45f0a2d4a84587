"""`harness-study` as a user runs it, on model=tiny: a study run in two chunks, rerun on a
complete store (nothing launched), its committed store free of this machine's paths, and its
report regenerated from that store alone, byte for byte."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow  # the CLI in subprocesses, each job a `harness` process: the slow tier

STUDY = """
name: tiny
version: 1
experiment: study-tiny
store: committed/study.db
out: reports
seeds: [0]
common: [experiment=smoke, loss=dpo]
sweeps:
  betas:
    minutes: 0.5
    grid:
      loss.beta: [0.1, 0.5]
  budgets:
    minutes: 0.5
    overrides: [loss.beta=0.1]
    grid:
      labels.n: [16, 32]   # 32 is the smoke default: betas' β=0.1 job, run once
outputs:
  frontier: [betas]
  label_count: [budgets]
"""


def study(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli.study", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL)


@pytest.mark.timeout(900)
def test_a_study_runs_in_chunks_resumes_and_reports_from_its_committed_store(harness_env: dict[str, str],
                                                                            tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(textwrap.dedent(STUDY))
    env = harness_env | {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'working.db'}"}

    first = study(["run", "tiny.yaml", "--limit", "2"], env, tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "0 of 3 jobs done, 3 left" in first.stdout  # 2 betas + 1 budget of its own
    assert "2 of 3 jobs done, 1 left" in first.stdout

    second = study(["run", "tiny.yaml"], env, tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "3 of 3 jobs done, 0 left" in second.stdout

    working = MlflowClient(env["MLFLOW_TRACKING_URI"])
    exp_id = working.get_experiment_by_name("study-tiny").experiment_id
    runs = working.search_runs([exp_id])
    assert len(runs) == 3 and {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["study.name"] for r in runs} == {"tiny"}

    again = study(["run", "tiny.yaml"], env, tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "nothing to launch: every job is done" in again.stdout
    assert len(working.search_runs([exp_id])) == 3

    # The committed store alone: a fresh checkout has no working store and nothing to run.
    fresh = env | {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'elsewhere.db'}"}
    status = study(["status", "tiny.yaml"], fresh, tmp_path)
    assert "3 of 3 jobs done, 0 left" in status.stdout, status.stderr[-3000:]
    store = (tmp_path / "committed" / "study.db").read_bytes()
    assert str(tmp_path).encode() not in store and str(Path.home()).encode() not in store

    report = study(["report", "tiny.yaml"], fresh, tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    out = tmp_path / "reports"
    frontier = (out / "frontier.csv").read_text()
    assert "# Regenerate: harness-study report tiny.yaml" in frontier
    assert "wrote frontier" in report.stdout and "wrote label_count" in report.stdout
    first_pass = {p.name: p.read_bytes() for p in out.iterdir()}
    for content in first_pass.values():
        assert str(tmp_path).encode() not in content
    # The frontier reads the β sweep only; the label axis the budget sweep only (β=0.1 at 32
    # labels is in both, as one job).
    frontier_rows = pd.read_csv(out / "frontier.csv", comment="#")
    assert sorted(frontier_rows["loss.beta"]) == [0.1, 0.5]
    assert set(frontier_rows.get("labels.n", pd.Series([32]))) == {32}
    budget_rows = pd.read_csv(out / "label_count.csv", comment="#")
    assert sorted(budget_rows["labels.n"]) == [16, 32] and set(budget_rows["n_seeds"]) == {1}
    rerun = study(["report", "tiny.yaml"], fresh, tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first_pass
