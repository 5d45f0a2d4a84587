"""A local OpenAI-compatible endpoint for `labeler=llm_judge`: `transformers serve` (transformers'
own server, FastAPI + Uvicorn) on 127.0.0.1 with a model directory, started and stopped around a
block. Used by the judge's tests and by `python -m bench.judge_agreement`; a user runs the same
command by hand (README, "Labels"). The server is pinned to that model: requests must name it
exactly as given (`labeler.model` = the same path).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from harness.errors import InputError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _command() -> list[str]:
    found = shutil.which("transformers") or str(Path(sys.executable).with_name("transformers"))
    return [found, "serve"]


@contextlib.contextmanager
def transformers_serve(model_dir: Path, port: int | None = None, timeout: float = 180.0,
                       log: Path | None = None) -> Iterator[tuple[str, str]]:
    """(base URL, model name) of `transformers serve` running `model_dir` on CPU in fp32, offline;
    stopped when the block ends. Refused (InputError) when it does not answer /health in time."""
    port = port or free_port()
    env = os.environ | {"HF_HUB_OFFLINE": "1"}
    out = log.open("w") if log is not None else subprocess.DEVNULL
    process = subprocess.Popen([*_command(), str(model_dir), "--host", "127.0.0.1", "--port", str(port),
                                "--device", "cpu", "--dtype", "float32"],
                               stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None:
                raise InputError(f"transformers serve {model_dir} exited with status {process.returncode} before "
                                 f"answering{f' (its log: {log})' if log else ''}")
            if time.monotonic() > deadline:
                raise InputError(f"transformers serve {model_dir} did not answer {url}/health within {timeout:.0f} s")
            time.sleep(0.5)
        yield f"{url}/v1", str(model_dir)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        if log is not None:
            out.close()  # type: ignore[union-attr]
