"""Nothing in a data or labels file is ever instantiated or executed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # the CLI in subprocesses (python -m harness): the slow tier


def test_target_keys_in_label_and_data_files_stay_data(harness_env: dict[str, str], tmp_path: Path) -> None:
    pwned = tmp_path / "PWNED"
    hostile = {"_target_": "os.system", "_args_": [f"touch {pwned}"], "_partial_": False}
    labels = tmp_path / "labels.jsonl"
    labels.write_text("\n".join(json.dumps({"prompt": f"Review {i}: the place was", "responses": [" great.", " bad."],
                                             "choice": 0} | hostile) for i in range(8)) + "\n")
    data = tmp_path / "reviews.jsonl"
    data.write_text("\n".join(json.dumps({"text": f"{hostile} review {i} of the place was"} | hostile)
                               for i in range(80)) + "\n")
    env = harness_env | {"MLFLOW_EXPERIMENT_NAME": "safety"}
    for args in (["labeler=file", f"labeler.path={labels}", "labeler@judge=lexicon_panel", "labels.n=8"],
                 [f"task.source={data}"]):
        proc = subprocess.run([sys.executable, "-m", "harness", "experiment=smoke", *args,
                               f"hydra.run.dir={tmp_path / 'run'}"], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert not pwned.exists()
