"""Studies (harness/study.py, harness/cli/study.py): the jobs a study file declares, what counts
as done, the time left, and the committed store's export without a path of this machine."""

from __future__ import annotations

import sqlite3
import subprocess
import textwrap
from pathlib import Path

import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from harness.cli import study as cli
from harness.errors import InputError
from harness.study import Scrubber, committed_uri, export_runs, load_study, merge_overrides, progress

STUDY = """
name: demo_study
version: 1
experiment: study-demo
store: {store}
out: {out}
seeds: [0, 1]
common: [model=tiny, eval.n_prompts=8]
sweeps:
  betas:
    minutes: 2
    overrides: [experiment=smoke, loss=dpo]
    grid:
      loss.beta: [0.1, 0.5]
  budgets:
    minutes: 3
    overrides: [experiment=smoke, loss=dpo, loss.beta=0.1]
    grid:
      labels.n: [16, 32]
outputs:
  frontier: [betas]
  label_count: [budgets]
"""


def write_study(tmp_path: Path, text: str = STUDY) -> Path:
    path = tmp_path / "demo_study.yaml"
    path.write_text(textwrap.dedent(text).format(store=tmp_path / "committed.db", out=tmp_path / "reports"))
    return path


def test_merge_overrides_keeps_one_value_per_key_the_later_one_sorted() -> None:
    assert merge_overrides(["b=1", "a=2"], ["+b=3"], ["c=x=y"]) == ("a=2", "+b=3", "c=x=y")
    with pytest.raises(InputError, match="KEY=VALUE"):
        merge_overrides(["novalue"])


def test_jobs_are_the_grid_times_seeds_seeds_outermost_with_stable_ids(tmp_path: Path) -> None:
    study = load_study(str(write_study(tmp_path)))
    jobs = study.jobs()
    # 2 betas + 2 budgets per seed, nothing shared by overrides alone (`loss.beta=0.1` vs `labels.n=16`).
    assert len(jobs) == 8
    assert [j.seed for j in jobs] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert jobs[0].overrides == ("eval.n_prompts=8", "experiment=smoke", "loss=dpo", "loss.beta=0.1", "model=tiny",
                                 "seed=0")
    assert [j.id for j in study.jobs()] == [j.id for j in jobs]  # a hash of the overrides, not of the order run
    assert len({j.id for j in jobs}) == 8
    # The version is part of every id: bumping it is a new study.
    bumped = load_study(str(write_study(tmp_path, STUDY.replace("version: 1", "version: 2"))))
    assert not {j.id for j in bumped.jobs()} & {j.id for j in jobs}


def test_one_configuration_declared_by_two_sweeps_is_one_job_read_by_both(tmp_path: Path) -> None:
    study = load_study(str(write_study(tmp_path)))
    # As cli.Identity sees it: labels.n=16 is the smoke default, so budgets' first point is betas' β=0.1.
    def identity(overrides: tuple[str, ...]) -> str:
        return " ".join(o for o in overrides if o != "labels.n=16")

    jobs = study.jobs(identity)
    assert len(jobs) == 6
    shared = [j for j in jobs if j.sweeps == ("betas", "budgets")]
    assert [j.seed for j in shared] == [0, 1]
    assert all("loss.beta=0.1" in j.overrides and j.sweep == "betas" for j in shared)


def test_the_harness_config_composes_every_job_of_the_shipped_study() -> None:
    identity = cli.Identity()
    try:
        study = load_study("findings")
        jobs = study.jobs(identity)
    finally:
        identity.close()
    assert {s.name for s in study.sweeps} >= {"offline", "label_count", "ppo"}
    assert all(len([j for j in jobs if j.id == job.id]) == 1 for job in jobs)
    # Every output reads sweeps the study declares, and every point has each of the seeds.
    for sweep in study.sweeps:
        per_seed = {s: sum(1 for j in jobs if sweep.name in j.sweeps and j.seed == s) for s in study.seeds}
        assert len(set(per_seed.values())) == 1, (sweep.name, per_seed)
    assert min(len(study.seeds), 3) == 3


@pytest.mark.parametrize(("edit", "message"), [
    (("seeds: [0, 1]", "seeds: [0, 0]"), r"seeds: expected a list of distinct integers"),
    (("minutes: 2", "minutes: 0"), r"sweeps\.betas\.minutes: expected minutes > 0"),
    (("frontier: [betas]", "frontier: [nope]"), r"outputs\.frontier: expected a list of this study's sweeps"),
    (("common: [model=tiny, eval.n_prompts=8]", "common: [model]"), r"\.common: expected a Hydra override"),
    (("version: 1", "version: one"), r"\.version: expected int"),
    (("out: ", "outt: "), r"unknown keys \['outt'\]"),
])
def test_a_bad_study_file_is_refused_naming_the_file_and_key(tmp_path: Path, edit: tuple[str, str],
                                                             message: str) -> None:
    path = write_study(tmp_path, STUDY.replace(*edit))
    with pytest.raises(InputError, match=message) as err:
        load_study(str(path))
    assert str(path) in str(err.value)


def test_an_unknown_study_name_lists_the_shipped_ones() -> None:
    with pytest.raises(InputError, match=r"no file nope\.yaml .*findings"):
        load_study("nope")


def _log_run(client: MlflowClient, experiment: str, study: str, job: str, status: str = "FINISHED",
             seconds: float = 60.0, **extra_tags: str) -> str:
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
    run = client.create_run(exp_id, start_time=1_700_000_000_000,
                            tags={"study.name": study, "study.job": job, "task": "sentiment", "loss": "dpo",
                                  "seed": "0", "run_key": job} | extra_tags)
    client.set_terminated(run.info.run_id, status, end_time=1_700_000_000_000 + int(seconds * 1000))
    return run.info.run_id


def test_progress_counts_finished_jobs_of_either_store_and_times_the_rest(tmp_path: Path) -> None:
    study = load_study(str(write_study(tmp_path)))
    jobs = study.jobs()
    working = f"sqlite:///{tmp_path / 'working.db'}"
    client = MlflowClient(working)
    _log_run(client, study.experiment, study.name, jobs[0].id, seconds=120)   # betas, 2 min
    _log_run(client, study.experiment, study.name, jobs[1].id, seconds=240)   # betas, 4 min
    _log_run(client, study.experiment, study.name, jobs[2].id, status="KILLED")  # not done: resumed by run
    _log_run(client, study.experiment, "other", jobs[3].id)                   # another study's
    _log_run(MlflowClient(committed_uri(study)), study.experiment, study.name, jobs[4].id)  # committed
    state = progress(study, [working, committed_uri(study)])
    assert set(state.done) == {jobs[0].id, jobs[1].id, jobs[4].id}
    assert [j.id for j in state.pending] == [jobs[i].id for i in (2, 3, 5, 6, 7)]
    text = "\n".join(state.lines())
    assert "3 of 8 jobs done, 5 left" in text
    assert "betas: 3/4 done; 1 left × 2.0 min (median of 3 finished) ≈ 2 min" in text  # 2, 4 and 1 min
    assert "budgets: 0/4 done; 4 left × 3.0 min (the study file's estimate) ≈ 12 min" in text


def refuse_harness(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if anything launches `harness` (git may run)."""
    popen = subprocess.Popen

    class Guarded(popen):  # type: ignore[misc, valid-type]
        def __init__(self, command, *args, **kwargs):  # noqa: ANN001, ANN204
            if str(command[0]).endswith("harness"):
                raise AssertionError(f"launched {command}")
            super().__init__(command, *args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", Guarded)


def test_run_on_a_complete_store_launches_nothing_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    path = write_study(tmp_path)
    study = load_study(str(path))
    identity = cli.Identity()
    try:
        jobs = study.jobs(identity)
    finally:
        identity.close()
    client = MlflowClient(committed_uri(study))
    for job in jobs:
        _log_run(client, study.experiment, study.name, job.id)

    refuse_harness(monkeypatch)
    with pytest.raises(SystemExit) as done:
        cli.main(["run", str(path), "--tracking-uri", f"sqlite:///{tmp_path / 'working.db'}"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert f"{len(jobs)} of {len(jobs)} jobs done, 0 left" in out
    assert "nothing to launch: every job is done" in out


def test_the_export_leaves_no_path_of_this_machine_in_the_committed_store(tmp_path: Path) -> None:
    repo, cache = tmp_path / "repo", tmp_path / "cache"
    repo.mkdir()
    study = load_study(str(write_study(tmp_path)))
    job = study.jobs()[0].id
    working = f"sqlite:///{tmp_path / 'working.db'}"
    client = MlflowClient(working)
    run_id = _log_run(client, study.experiment, study.name, job, **{"mlflow.parentRunId": "0" * 32,
                      "overrides": f"hydra.run.dir={repo}/outputs/x paths.cache_dir={cache}"})
    client.log_batch(run_id, params=[Param("paths.cache_dir", str(cache)), Param("task.path", f"{repo}/data/x.jsonl"),
                                     Param("elsewhere", "/opt/data/set.json"), Param("loss.beta", "0.1")],
                     metrics=[Metric("eval/gold_reward", 1.5, 1, 0), Metric("system/cpu", 50.0, 1, 0),
                              *[Metric("series/gold_reward", 0.5 + s, 2 + s, s) for s in range(3)]])
    scrub = Scrubber.here(repo, cache)
    assert export_runs(study, working, scrub) == [job]
    assert export_runs(study, working, scrub) == []  # already there: nothing copied twice
    raw = Path(study.store).read_bytes()
    for path in (str(repo), str(cache), str(tmp_path)):
        assert path.encode() not in raw
    copy = MlflowClient(committed_uri(study))
    [run] = copy.search_runs([copy.get_experiment_by_name(study.experiment).experiment_id])
    assert run.data.params["paths.cache_dir"] == "$PREFHARNESS_CACHE"
    assert run.data.params["task.path"] == "./data/x.jsonl"
    assert run.data.params["elsewhere"] == "<path>"
    assert run.data.tags["overrides"] == "hydra.run.dir=./outputs/x paths.cache_dir=$PREFHARNESS_CACHE"
    assert "mlflow.parentRunId" not in run.data.tags and run.data.tags["study.job"] == job
    assert run.data.metrics == {"eval/gold_reward": 1.5, "series/gold_reward": 2.5}
    assert [m.value for m in copy.get_metric_history(run.info.run_id, "series/gold_reward")] == [0.5, 1.5, 2.5]
    assert run.info.status == "FINISHED" and run.info.end_time - run.info.start_time == 60_000
    with sqlite3.connect(study.store) as db:
        assert {r[0] for r in db.execute("SELECT artifact_location FROM experiments")} <= {"mlartifacts/0", "mlartifacts/1"}


def test_a_bad_point_stops_the_launch_before_any_job_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = write_study(tmp_path, STUDY.replace("loss.beta: [0.1, 0.5]", "loss.beta: [0.1, -1.0]"))

    refuse_harness(monkeypatch)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        cli.main(["run", str(path), "--tracking-uri", f"sqlite:///{tmp_path / 'working.db'}"])
    assert stop.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("harness-study")]
    assert len(err) == 1 and err[0].startswith("harness-study: error: study job "), err
    err = err[0]
    assert "loss.beta: expected a number > 0, got -1.0" in err and "seed 0" in err and "no job was launched" in err


def test_a_stopped_study_stops_its_job_with_sigint() -> None:
    import signal
    import subprocess
    import sys

    from harness.cli.study import _stop

    # A job that did not get the signal (it went to the study's process alone) gets SIGINT.
    job = subprocess.Popen([sys.executable, "-c", "import signal, sys, time\n"
                            "signal.signal(signal.SIGINT, lambda *a: sys.exit(42))\nprint('ready', flush=True)\n"
                            "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert job.stdout.readline().strip() == "ready"
    assert _stop(job) == 128 + signal.SIGINT
    assert job.returncode == 42  # it ran its own SIGINT handler (the harness marks its run KILLED there)
