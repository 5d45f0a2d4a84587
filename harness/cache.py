"""Artifact directories keyed by a hash of the config that determines them.

An artifact becomes visible only when complete: it is built in a temporary directory and
renamed into place, under a file lock so that concurrent runs wait instead of building it
twice. A killed build leaves nothing a later run would trust. The completion marker lists a
SHA-256 of every file; an artifact whose files no longer match (truncated, edited, a disk
fault) is never loaded: it is rebuilt.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from harness.errors import InputError

COMPLETE = ".complete"
log = logging.getLogger(__name__)


def config_hash(spec: Mapping[str, Any]) -> str:
    """Stable short hash of a JSON-serialisable spec (key order does not matter)."""
    text = json.dumps(spec, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def stage_seed(seed: int, stage: str) -> int:
    """A seed per stage, so a stage draws the same numbers whether it runs or is loaded."""
    return zlib.crc32(f"{seed}:{stage}".encode())


def is_complete(path: Path) -> bool:
    return (path / COMPLETE).exists()


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_digest(path: Path, memo: Path) -> str:
    """SHA-256 of what `path` holds: a file's bytes, or a directory's files (relative names and
    bytes). The digest of each file is remembered under `memo`, keyed by its path, size,
    modification time and inode, so an unchanged multi-GB model is not read again and an edited
    file is. Part of a job's identity: an edited input is a new job."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    h = hashlib.sha256()
    try:
        memo.mkdir(parents=True, exist_ok=True)
        for f in files:
            st = f.stat()
            key = hashlib.sha256(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}".encode()).hexdigest()
            known = memo / key
            digest = known.read_text() if known.exists() else ""
            if len(digest) != 64:
                digest = _digest(f)
                tmp = known.with_name(f".{key}.tmp-{os.getpid()}")
                tmp.write_text(digest)
                os.replace(tmp, known)
            h.update(f"{f.relative_to(path) if f != path else f.name}\0{digest}\n".encode())
    except PermissionError as err:
        raise InputError(f"{err.filename}: cannot read it: {err.strerror}") from None
    return h.hexdigest()


def check_cache_dir(path: Path) -> None:
    """The artifact cache is a directory this process can write, created if absent."""
    where = f"paths.cache_dir={path} (PREFHARNESS_CACHE)"
    if path.exists() and not path.is_dir():
        raise InputError(f"{where}: expected a directory, found a file")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(f"{where}: cannot create it: {err.strerror}") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"{where}: cannot write to it: permission denied")


def _manifest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): _digest(p) for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != COMPLETE}


def damaged(path: Path) -> str | None:
    """Why a complete-marked artifact cannot be trusted, or None if its files match."""
    try:
        text = (path / COMPLETE).read_text()
    except OSError:
        return "unreadable completion marker"
    if text.strip() == "ok":
        return None  # written before checksums were recorded: trusted as before
    try:
        recorded = json.loads(text)
    except ValueError:
        return "unreadable completion marker"
    if not isinstance(recorded, dict) or not isinstance(recorded.get("files"), dict):
        return "unreadable completion marker"
    found = _manifest(path)
    if found != recorded["files"]:
        bad = sorted(set(found.items()) ^ set(recorded["files"].items()))
        return f"checksum mismatch in {bad[0][0]}"
    return None


def _out_of_space(err: BaseException) -> bool:
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return True
    return "No space left on device" in str(err) or (err.__cause__ is not None and _out_of_space(err.__cause__))


@contextmanager
def _exclusive(target: Path) -> Iterator[None]:
    lock = FileLock(str(target) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("artifact %s/%s: another job is building it; waiting", target.parent.name, target.name)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def build_once(target: Path, build: Callable[[Path], None], spec: Mapping[str, Any] | None = None) -> Path:
    """Return `target`, running `build(tmp_dir)` and renaming it into place if it is missing."""
    name = f"{target.parent.name}/{target.name}"
    if is_complete(target) and not damaged(target):
        log.info("artifact %s: cached", name)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(target):
        if is_complete(target):
            reason = damaged(target)
            if reason is None:
                log.info("artifact %s: built meanwhile by another job", name)
                return target
            log.warning("artifact %s is damaged (%s): rebuilding it", name, reason)
        log.info("artifact %s: building", name)
        start = time.monotonic()
        # Holding the lock, no one else builds this target: leftovers of killed builds can go.
        for stale in target.parent.glob(f".{target.name}.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        tmp.mkdir()
        try:
            try:
                build(tmp)
            except Exception as err:
                if _out_of_space(err):  # writers (safetensors) that report ENOSPC in their own types
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target)) from err
                raise
            if spec is not None:
                (tmp / "spec.json").write_text(json.dumps(spec, sort_keys=True, indent=1, default=str))
            (tmp / COMPLETE).write_text(json.dumps({"files": _manifest(tmp)}, indent=1))
            shutil.rmtree(target, ignore_errors=True)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("artifact %s: built in %.1f s", name, time.monotonic() - start)
    return target


class ArtifactCache:
    """`root/<stage>/<hash>/` directories built once per distinct spec."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, stage: str, spec: Mapping[str, Any]) -> Path:
        return self.root / stage / config_hash(spec)

    def get_or_build(self, stage: str, spec: Mapping[str, Any], build: Callable[[Path], None]) -> Path:
        return build_once(self.path(stage, spec), build, spec)
