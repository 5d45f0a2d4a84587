"""The layering in .importlinter holds, and the check would catch an upward import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """lint-imports on the `harness` package found at `root` (PYTHONPATH first, so a copy
    shadows the installed package)."""
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run([sys.executable, "-c", code, "--no-cache", str(REPO / ".importlinter")], cwd=root,
                          env={"PYTHONPATH": str(root), "PATH": ""}, capture_output=True, text=True, timeout=300)


def test_contracts_hold() -> None:
    proc = lint_imports(REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "BROKEN" not in proc.stdout


def test_an_upward_import_breaks_them(tmp_path: Path) -> None:
    """A loss that imports the pipeline (a low layer reaching up) fails the layers contract."""
    shutil.copytree(REPO / "harness", tmp_path / "harness", ignore=shutil.ignore_patterns("__pycache__", "conf"))
    dpo = tmp_path / "harness" / "losses" / "dpo.py"
    dpo.write_text(dpo.read_text() + "\nfrom harness.pipeline import run_experiment  # noqa: E402\n")
    proc = lint_imports(tmp_path)
    assert proc.returncode != 0
    assert "harness.losses is not allowed to import harness.pipeline" in proc.stdout, proc.stdout[-3000:]


def test_only_the_cli_imports_hydra(tmp_path: Path) -> None:
    shutil.copytree(REPO / "harness", tmp_path / "harness", ignore=shutil.ignore_patterns("__pycache__", "conf"))
    stages = tmp_path / "harness" / "stages.py"
    stages.write_text(stages.read_text() + "\nimport omegaconf  # noqa: E402\n")
    proc = lint_imports(tmp_path)
    assert proc.returncode != 0 and "harness.stages is not allowed to import omegaconf" in proc.stdout, proc.stdout[-3000:]
