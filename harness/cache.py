"""Artifact directories keyed by a hash of the config that determines them.

An artifact becomes visible only when complete: it is built in a temporary directory and
renamed into place, under a file lock so that concurrent runs wait instead of building it
twice. A killed build leaves nothing a later run would trust. The completion marker lists a
SHA-256 of every file; an artifact whose files no longer match (truncated, edited, a disk
fault) is never loaded: it is rebuilt.

Jobs of a sweep on one machine run with a share of its cores each (`threads`). A job that
waits for an artifact another job is building sleeps on its lock and leaves its cores idle,
so it signs in as waiting (`.<name>.waiting/<host>-<pid>`, holding its thread count) and the
builder, between batches of its work (`lend_idle_threads`), runs with its own threads plus
those of every live waiter on its host; it returns to its own count when the build ends.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import socket
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

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


def _torch_threads(n: int | None = None) -> int:
    import torch  # only when a build runs: the cache itself needs no torch

    if n is not None and n != torch.get_num_threads():
        torch.set_num_threads(n)
    return torch.get_num_threads()


def _usable_cores() -> int:
    """The cores this process may run on (its affinity: a Slurm or taskset share), never more
    threads than that however many are lent."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _waiting_room(target: Path) -> Path:
    return target.with_name(f".{target.name}.waiting")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def _signed_in(target: Path) -> Iterator[None]:
    """While waiting for another job's build of `target`, offer this job's threads to it."""
    room = _waiting_room(target)
    me = room / f"{socket.gethostname()}-{os.getpid()}"
    try:
        room.mkdir(parents=True, exist_ok=True)
        me.write_text(str(_torch_threads()))
    except OSError:  # a read-only or full disk: wait without lending
        pass
    try:
        yield
    finally:
        me.unlink(missing_ok=True)
        try:
            room.rmdir()  # the last to leave takes the room away: nothing stays beside the artifacts
        except OSError:  # others still wait, or it is gone already
            pass


@contextmanager
def _exclusive(target: Path) -> Iterator[None]:
    lock = FileLock(str(target) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("artifact %s/%s: another job is building it; waiting", target.parent.name, target.name)
        with _signed_in(target):
            lock.acquire()
    try:
        yield
    finally:
        lock.release()


class _Lending:
    """The build this process is running, and the threads it has borrowed for it."""

    room: Path | None = None
    own = 0
    checked = 0.0


def lend_idle_threads(every: float = 1.0) -> int:
    """Between batches of an artifact build: run with this job's threads plus those of the live
    jobs on this host waiting for the artifact (checked at most every `every` seconds).
    Outside a build it does nothing. Returns the thread count in use."""
    room = _Lending.room
    if room is None:
        return _torch_threads()
    now = time.monotonic()
    if now - _Lending.checked < every:
        return _torch_threads()
    _Lending.checked = now
    lent, waiters, host = 0, 0, socket.gethostname()
    try:
        entries = list(room.iterdir())
    except OSError:
        entries = []
    for entry in entries:
        who, _, pid = entry.name.rpartition("-")
        try:
            if who == host and pid.isdigit() and _alive(int(pid)):
                lent += max(0, int(entry.read_text() or 0))
                waiters += 1
        except (OSError, ValueError):  # left meanwhile, or half-written: counted next time
            continue
    before = _torch_threads()
    now_threads = _torch_threads(max(_Lending.own, min(_Lending.own + lent, _usable_cores())))
    if now_threads != before:
        log.info("artifact %s: %d threads (%d own, %d lent by %d waiting job%s)", room.name[1:-len(".waiting")],
                 now_threads, _Lending.own, lent, waiters, "" if waiters == 1 else "s")
    return now_threads


@contextmanager
def _lending(target: Path) -> Iterator[None]:
    outer = (_Lending.room, _Lending.own)  # a build inside a build lends to the inner one
    own = _torch_threads(_Lending.own) if outer[0] is not None else _torch_threads()
    _Lending.room, _Lending.own, _Lending.checked = _waiting_room(target), own, 0.0
    try:
        yield
    finally:
        _torch_threads(own)
        _Lending.room, _Lending.own, _Lending.checked = outer[0], outer[1], 0.0


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
                with _lending(target):
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
