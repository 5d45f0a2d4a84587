"""An MLflow store that cannot take the run is refused before any compute, with one line naming
the store and what is wrong: an SQLite "file" that is a directory (at once, not after minutes
of retries), one under a file or that is not SQLite; a server that does not answer within a
bounded wait that is announced (PREFHARNESS_STORE_WAIT seconds); an experiment of this name that
is deleted. Checking creates nothing: no experiment, no run, no artifact. `harness-report`
refuses an --out that is a file before reading any run."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import mlflow
import pytest
from mlflow.entities import ViewType

from harness.errors import InputError
from harness.tracking import RunTracker

DELETED = "gone"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refusal(tracker_args: tuple[str, str | None, str]) -> tuple[str, float]:
    """The message of the InputError that constructing the tracker or its check() raises, and
    the seconds it took."""
    start = time.monotonic()
    with pytest.raises(InputError) as err:
        RunTracker(*tracker_args).check()
    return str(err.value), time.monotonic() - start


def experiment_names(uri: str) -> set[str]:
    return {e.name for e in mlflow.MlflowClient(uri).search_experiments(view_type=ViewType.ALL)}


def deleted_experiment(uri: str) -> str:
    """A store holding experiment DELETED, deleted; returns its id."""
    client = mlflow.MlflowClient(uri)
    exp_id = client.create_experiment(DELETED)
    client.delete_experiment(exp_id)
    return exp_id


# --- SQLite stores ---------------------------------------------------------------------------


def test_an_sqlite_store_that_is_a_directory_is_refused_at_once(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    db.mkdir()  # a user made mlflow.db a folder
    uri = f"sqlite:///{db}"
    message, seconds = refusal(("exp", None, uri))
    assert uri in message and "not usable" in message
    assert f"{db} is a directory, expected an SQLite file" in message
    assert seconds < 60  # MLflow's own retries take ~2 minutes
    assert list(db.iterdir()) == [] and not (tmp_path / "mlflow.db.lock").exists()


def test_an_sqlite_store_under_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notadir").write_text("a file where the store's directory should be")
    uri = f"sqlite:///{tmp_path / 'notadir' / 'sub' / 'mlflow.db'}"
    message, _ = refusal(("exp", None, uri))
    assert uri in message and "not usable" in message
    assert f"{tmp_path / 'notadir'} is a file, expected a directory" in message


def test_a_file_that_is_not_sqlite_is_refused_and_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    db.write_text("name,value\na,1\n")
    message, _ = refusal(("exp", None, f"sqlite:///{db}"))
    assert "not usable" in message and f"{db} is not an SQLite database" in message
    assert db.read_text() == "name,value\na,1\n"


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_an_sqlite_store_in_a_read_only_directory_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "readonly"
    locked.mkdir(mode=0o500)
    uri = f"sqlite:///{locked / 'mlflow.db'}"
    message, _ = refusal(("exp", None, uri))
    assert uri in message and f"directory {locked} is not writable" in message


def test_check_of_a_usable_store_creates_no_experiment_and_no_run(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}"  # a missing directory: MLflow creates it
    RunTracker("fresh", None, uri).check()
    assert "fresh" not in experiment_names(uri)
    client = mlflow.MlflowClient(uri)
    assert client.search_runs([e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]) == []


# --- a deleted experiment ----------------------------------------------------------------------


def test_a_deleted_experiment_is_refused_by_check_and_by_start(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    exp_id = deleted_experiment(uri)
    tracker = RunTracker(DELETED, None, uri)
    with pytest.raises(InputError) as checked:
        tracker.check()
    with pytest.raises(InputError) as started:  # the same line, not a traceback, if start() gets there
        tracker.start({"task": "x"}, {"a": "1"})
    for err in (checked, started):
        message = str(err.value)
        assert f"MLflow experiment '{DELETED}' exists but is deleted (id {exp_id})" in message
        assert f"mlflow experiments restore --experiment-id {exp_id}" in message
        assert "MLFLOW_EXPERIMENT_NAME" in message and "\n" not in message
    client = mlflow.MlflowClient(uri)
    assert client.get_experiment(exp_id).lifecycle_stage == "deleted"  # not restored behind the user's back
    assert client.search_runs([exp_id], run_view_type=ViewType.ALL) == []


# --- a tracking server -------------------------------------------------------------------------


class FakeServer(BaseHTTPRequestHandler):
    """Answers /health (503 until `ready_at`, then 200) and MLflow's experiment lookup (none)."""

    ready_at = 0.0
    health_calls = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path.startswith("/health"):
            type(self).health_calls += 1
            self._answer(200 if time.monotonic() >= self.ready_at else 503, b"OK")
        elif self.path.startswith("/api/2.0/mlflow/experiments/get-by-name"):
            self._answer(404, json.dumps({"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "no such"}).encode())
        else:
            self._answer(404, b"{}")

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[str, type[FakeServer]]]:
    handler = type("Handler", (FakeServer,), {"ready_at": 0.0, "health_calls": 0})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_an_unreachable_server_is_refused_after_an_announced_bounded_wait(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("PREFHARNESS_STORE_WAIT", "1")
    uri = f"http://127.0.0.1:{free_port()}"
    with caplog.at_level(logging.INFO, logger="harness"):
        message, seconds = refusal(("exp", None, uri))
    assert f"MLflow server {uri} (MLFLOW_TRACKING_URI) did not answer within 1 s" in message
    assert "start it or point MLFLOW_TRACKING_URI elsewhere" in message and "\n" not in message
    assert f"waiting up to 1 s for the MLflow server at {uri}" in caplog.text
    assert seconds < 30  # bounded by the wait asked for, not MLflow's minutes of retries


def test_a_server_that_answers_at_once_is_not_waited_for(server: tuple[str, type[FakeServer]],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    uri, handler = server
    with caplog.at_level(logging.INFO, logger="harness"):
        RunTracker("exp", None, uri).check()
    assert handler.health_calls == 1
    assert "waiting" not in caplog.text


def test_a_server_that_comes_up_within_the_wait_is_used(server: tuple[str, type[FakeServer]],
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    uri, handler = server
    monkeypatch.setenv("PREFHARNESS_STORE_WAIT", "60")
    handler.ready_at = time.monotonic() + 1.0  # /health answers 503 (starting) for a second
    with caplog.at_level(logging.INFO, logger="harness"):
        RunTracker("exp", None, uri).check()
    assert handler.health_calls >= 2
    assert f"waiting up to 60 s for the MLflow server at {uri}" in caplog.text and "503" in caplog.text


@pytest.mark.parametrize("value", ["soon", "-1", "nan", "inf"])
def test_a_bad_store_wait_is_refused_naming_the_variable(value: str, server: tuple[str, type[FakeServer]],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFHARNESS_STORE_WAIT", value)
    uri, _ = server
    message, _ = refusal(("exp", None, uri))
    assert f"PREFHARNESS_STORE_WAIT={value!r}" in message and "≥ 0" in message


# --- the CLI, as a user runs it ----------------------------------------------------------------


def _refused_run(env: dict[str, str], tmp_path: Path) -> tuple[str, str]:
    """Runs `harness experiment=smoke`; asserts exit 2, one error line and no artifact. Returns
    (the error line, everything the job printed)."""
    env = env | {"PREFHARNESS_CACHE": str(tmp_path / "cache"), "PREFHARNESS_STORE_WAIT": "2"}
    proc = subprocess.run([sys.executable, "-m", "harness", "experiment=smoke", f"hydra.run.dir={tmp_path / 'run'}"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("harness: error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    artifacts = tmp_path / "cache" / "artifacts"
    assert not artifacts.exists() or not any(artifacts.rglob("*"))
    return errors[0], proc.stdout + proc.stderr


@pytest.mark.slow  # python -m harness
def test_cli_refuses_an_unreachable_server(harness_env: dict[str, str], tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    line, output = _refused_run(harness_env | {"MLFLOW_TRACKING_URI": uri}, tmp_path)
    assert uri in line and "did not answer within 2 s" in line
    assert f"waiting up to 2 s for the MLflow server at {uri}" in output


@pytest.mark.slow  # python -m harness
def test_cli_refuses_an_sqlite_store_that_is_a_directory(harness_env: dict[str, str], tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    db.mkdir()
    uri = f"sqlite:///{db}"
    line, _ = _refused_run(harness_env | {"MLFLOW_TRACKING_URI": uri}, tmp_path)
    assert uri in line and "is a directory, expected an SQLite file" in line
    assert list(db.iterdir()) == []


@pytest.mark.slow  # python -m harness
def test_cli_refuses_a_deleted_experiment(harness_env: dict[str, str], tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    exp_id = deleted_experiment(uri)
    line, _ = _refused_run(harness_env | {"MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_NAME": DELETED}, tmp_path)
    assert f"'{DELETED}' exists but is deleted (id {exp_id})" in line
    assert mlflow.MlflowClient(uri).search_runs([exp_id], run_view_type=ViewType.ALL) == []


# --- harness-report --out ----------------------------------------------------------------------


@pytest.fixture
def report_store(tmp_path: Path) -> str:
    """A store with one FINISHED run: enough for a report to get as far as writing."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    exp_id = client.create_experiment("rep")
    run = client.create_run(exp_id, tags={"task": "sentiment_tiny", "model": "tiny", "loss": "dpo",
                                          "labeler": "sentiment_panel", "seed": "0", "init": "base"})
    client.log_param(run.info.run_id, "labels.n", "32")
    client.log_metric(run.info.run_id, "eval/gold_reward", 0.5)
    client.set_terminated(run.info.run_id, "FINISHED")
    return uri


OUT_CASES = {"a_file": ("notes.txt", "found a file"), "under_a_file": ("notes.txt/report", "notes.txt is a file")}


@pytest.mark.parametrize("case", OUT_CASES)
def test_report_out_that_is_a_file_is_refused(case: str, report_store: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli.report import main

    out, fragment = OUT_CASES[case]
    (tmp_path / "notes.txt").write_text("my notes")
    with pytest.raises(SystemExit) as exited:
        main(["--tracking-uri", report_store, "--out", str(tmp_path / out)])
    assert exited.value.code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"harness-report: error: --out {tmp_path / out}: expected a directory (or a new path)")
    assert fragment in line
    assert (tmp_path / "notes.txt").read_text() == "my notes"


@pytest.mark.slow  # python -m harness.cli.report
def test_cli_report_refuses_an_out_that_is_a_file(report_store: str, tmp_path: Path) -> None:
    out = tmp_path / "notes.txt"
    out.write_text("my notes")
    cmd = [sys.executable, "-m", "harness.cli.report", "--tracking-uri", report_store, "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("harness-report:")]
    assert errors == [f"harness-report: error: --out {out}: expected a directory (or a new path), found a file"]
    assert out.read_text() == "my notes"
