"""The command line as a whole: Hydra's composition errors and every point of a sweep are
checked before any job runs (one `harness: error:` line, exit 2, no run, no artifact), and a
job stopped by a signal says so: exit 128 + signal, its MLflow run KILLED, resumed by the same
command."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from harness.cli.run import check_command_line
from harness.errors import InputError

COMPOSE_CASES = {
    "unknown_key": (["foo=1"], ["Could not override 'foo'", "+foo=1"]),
    "unknown_option": (["loss=nope"], ["Could not find 'loss/nope'", "Available options"]),
    "bad_override_syntax": (["labels.n=[1,"], ["labels.n=[1,"]),
    "sweep_value_without_multirun": (["loss.beta=0.1,0.2"], ["loss.beta", "--multirun"]),
}


@pytest.mark.parametrize("case", sorted(COMPOSE_CASES))
def test_composition_errors_keep_hydras_message_under_one_first_line(case: str) -> None:
    args, expected = COMPOSE_CASES[case]
    with pytest.raises(InputError) as err:
        check_command_line(["experiment=smoke", *args])
    for fragment in expected:
        assert fragment in str(err.value), (fragment, str(err.value))


def test_help_and_config_printing_are_left_to_hydra() -> None:
    check_command_line(["--help"])
    check_command_line(["--cfg", "job", "foo=1"])  # Hydra reports it in its own way


def _stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path / "mlflow.db"
    monkeypatch.setenv("PREFHARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    return db


def _no_runs_no_artifacts(tmp_path: Path, db: Path) -> None:
    artifacts = tmp_path / "cache" / "artifacts"
    assert not artifacts.exists() or not any(p.is_dir() for p in artifacts.glob("*/*")), "an artifact was written"
    if db.exists():
        client = mlflow.MlflowClient(f"sqlite:///{db}")
        assert not client.search_runs([e.experiment_id for e in client.search_experiments()]), "a run was created"


@pytest.mark.parametrize("sweep,bad", [
    (["loss.beta=0.1,-1,0.2"], "job 2 of 3 (loss.beta=-1)"),
    (["labels.n=8,100000"], "job 2 of 2 (labels.n=100000)"),
    (["loss=dpo,kto", "labels.desirable_fraction=0.01"], "job 1 of 2"),
])
def test_every_point_of_a_sweep_is_checked_before_any_job_runs(sweep: list[str], bad: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    db = _stores(tmp_path, monkeypatch)
    with pytest.raises(InputError) as err:
        check_command_line(["-m", "experiment=smoke", *sweep, f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    assert bad in str(err.value) and "no job was launched" in str(err.value)
    assert "\n" not in str(err.value)
    _no_runs_no_artifacts(tmp_path, db)


def test_a_sweep_of_good_points_passes_its_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    db = _stores(tmp_path, monkeypatch)
    check_command_line(["-m", "experiment=smoke", "loss.beta=0.1,0.2", f"hydra.sweep.dir={tmp_path / 'sweep'}"])
    assert "the 2 jobs of the sweep are checked" in capsys.readouterr().err
    _no_runs_no_artifacts(tmp_path, db)


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow  # python -m harness
def test_composition_error_from_the_command_line(harness_env: dict[str, str], tmp_path: Path) -> None:
    proc = _run(["experiment=smoke", "loss=nope", f"hydra.run.dir={tmp_path / 'run'}"], harness_env, tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == "harness: error: In 'config': Could not find 'loss/nope'", lines[:3]
    assert sum(line.startswith("harness: error:") for line in lines) == 1
    assert "\tdpo" in proc.stderr  # Hydra's list of options is kept


@pytest.mark.slow  # python -m harness -m
def test_a_sweep_with_one_bad_point_launches_nothing(harness_env: dict[str, str], tmp_path: Path) -> None:
    env = harness_env | {"PREFHARNESS_CACHE": str(tmp_path / "cache"),
                         "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    proc = _run(["-m", "experiment=smoke", "loss.beta=0.1,-1,0.2", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                env, tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("harness: error:")]
    assert len(errors) == 1 and "job 2 of 3 (loss.beta=-1)" in errors[0]
    assert not (tmp_path / "sweep").exists()
    _no_runs_no_artifacts(tmp_path, tmp_path / "mlflow.db")


MARKERS = {"training": "artifact ref_logps/", "sampling": "artifact samples/"}


@pytest.mark.slow  # python -m harness, stopped and rerun
@pytest.mark.timeout(600)
@pytest.mark.parametrize("signum,phase,rerun", [(signal.SIGTERM, "training", True), (signal.SIGINT, "training", False),
                                                (signal.SIGTERM, "sampling", False)])
def test_a_signal_stops_the_job_truthfully_and_the_same_command_resumes_it(
        signum: int, phase: str, rerun: bool, harness_env: dict[str, str], tmp_path: Path) -> None:
    name = f"stop-{signum}-{phase}"
    env = harness_env | {"PREFHARNESS_CACHE": str(tmp_path / "cache"), "MLFLOW_EXPERIMENT_NAME": name}
    cmd = [sys.executable, "-m", "harness", "experiment=smoke", "trainer.max_steps=-1", "trainer.max_epochs=6",
           "train.checkpoint_every=1", f"hydra.run.dir={tmp_path / 'run'}"]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        if MARKERS[phase] in line and (phase != "sampling" or "building" in line):
            proc.send_signal(signum)
            break
    rest = proc.communicate(timeout=300)[0]
    assert proc.returncode == 128 + signum, rest[-3000:]
    assert f"stopped by {signal.Signals(signum).name}" in rest
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    (stopped,) = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    assert stopped.info.status == "KILLED"
    if not rerun:  # resuming a KILLED run is the same path whatever stopped it
        return

    again = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    (resumed,) = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    assert resumed.info.run_id == stopped.info.run_id and resumed.info.status == "FINISHED"
