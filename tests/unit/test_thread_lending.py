"""Jobs waiting for a shared artifact lend their torch threads to the job building it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from filelock import FileLock

from harness import cache
from harness.cache import build_once, lend_idle_threads


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _sign_in(room: Path, name: str, threads: int) -> None:
    room.mkdir(parents=True, exist_ok=True)
    (room / name).write_text(str(threads))


def test_builder_takes_the_threads_of_live_waiters_on_its_host_and_gives_them_back(tmp_path: Path, one_thread,
                                                                                  monkeypatch) -> None:
    monkeypatch.setattr(cache, "_usable_cores", lambda: 8)
    target = tmp_path / "samples" / "abc"
    room = tmp_path / "samples" / ".abc.waiting"
    host = socket.gethostname()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _sign_in(room, f"{host}-{sleeper.pid}", 3)  # alive, this host: counted
        _sign_in(room, f"other-node-{sleeper.pid}", 5)  # another machine's cores are not ours
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        _sign_in(room, f"{host}-{dead.pid}", 7)  # killed while waiting: not counted
        seen = []

        def build(out: Path) -> None:
            seen.append(lend_idle_threads())
            (room / f"{host}-{sleeper.pid}").unlink()  # the waiter leaves
            seen.append(lend_idle_threads(every=0))
            (out / "x").write_text("1")

        build_once(target, build)
    finally:
        sleeper.kill()
    assert seen == [1 + 3, 1]
    assert torch.get_num_threads() == 1  # back to its own after the build


def test_outside_a_build_nothing_changes(tmp_path: Path, one_thread) -> None:
    assert lend_idle_threads(every=0) == 1
    assert cache._Lending.room is None


def test_a_waiting_job_signs_in_with_its_threads_until_it_gets_the_lock(tmp_path: Path, one_thread) -> None:
    target = tmp_path / "eval_initial" / "k"
    target.parent.mkdir(parents=True)
    room = tmp_path / "eval_initial" / ".k.waiting"
    me = room / f"{socket.gethostname()}-{os.getpid()}"
    holder = FileLock(str(target) + ".lock")
    holder.acquire()  # another job is building it

    def build(out: Path) -> None:
        (out / "x").write_text("1")

    waiter = threading.Thread(target=build_once, args=(target, build))
    waiter.start()
    for _ in range(200):
        if me.exists():
            break
        time.sleep(0.01)
    assert me.read_text() == "1"  # signed in, offering its one thread
    holder.release()
    waiter.join(timeout=30)
    assert not waiter.is_alive()
    assert not me.exists() and not room.exists()  # signed out once it had the lock, room taken away
    assert (target / "x").read_text() == "1"


def test_a_build_inside_a_build_lends_to_the_inner_one_then_restores_the_outer(tmp_path: Path, one_thread) -> None:
    host = socket.gethostname()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    seen = []
    try:
        _sign_in(tmp_path / "a" / ".outer.waiting", f"{host}-{sleeper.pid}", 1)

        def inner(out: Path) -> None:
            seen.append(lend_idle_threads(every=0))  # nobody waits for the inner artifact
            (out / "x").write_text("1")

        def outer(out: Path) -> None:
            seen.append(lend_idle_threads(every=0))
            build_once(tmp_path / "b" / "inner", inner)
            seen.append(lend_idle_threads(every=0))
            (out / "x").write_text("1")

        build_once(tmp_path / "a" / "outer", outer)
    finally:
        sleeper.kill()
    assert seen == [2, 1, 2]
    assert torch.get_num_threads() == 1


def test_lent_threads_never_exceed_the_cores_this_process_may_use(tmp_path: Path, one_thread, monkeypatch) -> None:
    monkeypatch.setattr(cache, "_usable_cores", lambda: 2)
    host = socket.gethostname()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    seen = []
    try:
        # a job left at torch's default (every core) waits: lending all of them would oversubscribe
        _sign_in(tmp_path / "s" / ".x.waiting", f"{host}-{sleeper.pid}", 8)

        def build(out: Path) -> None:
            seen.append(lend_idle_threads(every=0))
            (out / "x").write_text("1")

        build_once(tmp_path / "s" / "x", build)
    finally:
        sleeper.kill()
    assert seen == [2]
