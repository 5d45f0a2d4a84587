"""Headless Chromium for the browser tests: Debian's chromium and chromium-driver (.ci/run installs
them) driven by Selenium (the dev extra); `missing` is why a browser test must skip, or None."""

from __future__ import annotations

import shutil
from pathlib import Path


def binary(name: str) -> str | None:
    """`name` on PATH, else Debian's /usr/bin/`name`."""
    return shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)


CHROMIUM, CHROMEDRIVER = binary("chromium"), binary("chromedriver")
try:
    import selenium  # noqa: F401
except ImportError:
    selenium = None

if selenium is None:
    missing: str | None = "selenium is not installed (pip install -e '.[dev]')"
elif CHROMIUM is None or CHROMEDRIVER is None:
    missing = "no chromium or chromedriver on PATH or in /usr/bin (apt-get install chromium chromium-driver)"
else:
    missing = None
