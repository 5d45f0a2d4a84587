"""Against a real MLflow tracking server (started here, bound to 127.0.0.1, SQLite backend):
runs are logged and read back by the report; a server that goes away mid-run and comes back is
ridden out by the client's retries, with no metric lost."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest

MLFLOW = str(Path(sys.executable).with_name("mlflow"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(root: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen([MLFLOW, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                             "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
                             "--artifacts-destination", str(root / "artifacts")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.5)
    stop_server(proc)
    pytest.fail("mlflow server did not start within 180 s")


def stop_server(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=60)


@pytest.mark.slow
@pytest.mark.timeout(600)  # a server started twice and a job: over a minute
def test_runs_through_a_tracking_server_that_restarts(harness_env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = start_server(tmp_path, port)
    env = harness_env | {"MLFLOW_TRACKING_URI": uri, "MLFLOW_EXPERIMENT_NAME": "served",
                         "PREFHARNESS_CACHE": str(tmp_path / "cache"),
                         "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "8", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
    cmd = [sys.executable, "-m", "harness", "experiment=smoke", "trainer.max_steps=-1", "trainer.max_epochs=40",
           "trainer.log_every_n_steps=1", f"hydra.run.dir={tmp_path / 'run'}"]
    job = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert job.stdout is not None
        for line in job.stdout:  # training has started logging to the server
            if "artifact ref_logps/" in line:
                break
        time.sleep(2)
        stop_server(server)
        time.sleep(5)  # the job keeps training; its logging calls retry meanwhile
        server = start_server(tmp_path, port)
        rest = job.communicate(timeout=900)[0]
        assert job.returncode == 0, rest[-3000:]
        client = mlflow.MlflowClient(uri)
        (run,) = client.search_runs([client.get_experiment_by_name("served").experiment_id])
        assert run.info.status == "FINISHED"
        steps = {m.step for m in client.get_metric_history(run.info.run_id, "train/loss")}
        assert steps == set(range(max(steps) + 1)) and max(steps) >= 100  # no step lost

        report = subprocess.run([sys.executable, "-m", "harness.cli.report", "--tracking-uri", uri, "--experiment", "served",
                                 "--out", str(tmp_path / "report")], capture_output=True, text=True, timeout=300)
        assert report.returncode == 0, report.stderr[-2000:]
        assert run.info.run_id[:8] in (tmp_path / "report" / "human_eval.md").read_text()
    finally:
        job.kill()
        stop_server(server)
