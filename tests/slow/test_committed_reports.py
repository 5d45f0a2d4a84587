"""The committed reports are what the committed study store gives: `harness-study report findings`
run on a clean checkout writes reports/ byte for byte as committed, and no committed file holds
an absolute path of a machine."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.study import load_study

pytestmark = pytest.mark.slow  # the CLI in a subprocess over the committed store

REPO = Path(__file__).resolve().parents[2]
# An absolute path as a machine writes one: /home/…, /work/…, /tmp/…, /Users/…, C:\…
ABSOLUTE = re.compile(rb"(?<![\w.~$-])(?:/(?:home|root|work|tmp|Users|opt|mnt|var|private)/[\w.-]+|[A-Z]:\\\\[\w.-]+)")


def test_the_committed_reports_regenerate_from_the_committed_store(tmp_path: Path) -> None:
    study = load_study("findings")
    if not (REPO / study.store).exists():
        pytest.skip(f"no committed study store at {study.store}")
    # The repository's reports, regenerated from a copy of the store alone, elsewhere.
    (tmp_path / Path(study.store).parent).mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / study.store, tmp_path / study.store)
    proc = subprocess.run([sys.executable, "-m", "harness.cli.study", "report", "findings"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    written = {p.name for p in (tmp_path / study.out).iterdir() if p.is_file() and p.name != Path(study.store).name}
    assert written, proc.stdout
    for name in sorted(written):
        committed = REPO / study.out / name
        assert committed.exists(), f"{name}: written by the report, not committed"
        assert (tmp_path / study.out / name).read_bytes() == committed.read_bytes(), (
            f"{study.out}/{name} differs from what `harness-study report findings` writes from {study.store}")


def test_no_committed_report_or_store_holds_an_absolute_path() -> None:
    reports = REPO / "reports"
    for path in sorted(p for p in reports.rglob("*") if p.is_file()):
        found = ABSOLUTE.findall(path.read_bytes())
        assert not found, f"{path.relative_to(REPO)}: {found[:3]}"
