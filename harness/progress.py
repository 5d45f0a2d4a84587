"""Progress that reaches a log file as well as a terminal.

rich's live display redraws in place, so when stderr is not a terminal (nohup, a batch job's log)
it renders only when the display stops: a 16-minute sampling stage left "samples: building" and
nothing else. `progress_bar()` keeps rich on a terminal and otherwise writes plain log lines
through `logging` (logger "harness.progress"), so whatever handlers the run configured (Hydra's
console and job-log file) carry them.

Only the part of rich's `Progress` that the harness calls is provided: `add_task`, `advance`,
`update`, and use as a context manager.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

log = logging.getLogger("harness.progress")

EVERY_ENV = "PREFHARNESS_PROGRESS_EVERY"
DEFAULT_EVERY = 30.0  # seconds: often enough to see a stage move, rare enough to keep a log readable


class ProgressBar(Protocol):
    """What the harness uses of a progress display; rich's `Progress` and `LogProgress` both fit."""

    def __enter__(self) -> ProgressBar: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None: ...

    def add_task(self, description: str, start: bool = True, total: float | None = 100.0,
                 completed: int = 0, visible: bool = True, **fields: Any) -> TaskID: ...

    def advance(self, task_id: TaskID, advance: float = 1) -> None: ...

    def update(self, task_id: TaskID, *, total: float | None = None, completed: float | None = None,
               advance: float | None = None, description: str | None = None, visible: bool | None = None,
               refresh: bool = False, **fields: Any) -> None: ...


def progress_bar(stream: TextIO | None = None) -> ProgressBar:
    """rich's bars when `stream` (default stderr) is a terminal, periodic log lines otherwise."""
    stream = sys.stderr if stream is None else stream
    if stream.isatty():
        # The bars go to the stream that was checked, so the choice and the output agree.
        return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=Console(file=stream))
    return LogProgress(every=report_interval())


def report_interval() -> float:
    """Seconds between a task's progress lines: $PREFHARNESS_PROGRESS_EVERY, else 30."""
    raw = os.environ.get(EVERY_ENV)
    if raw is None or raw.strip() == "":
        return DEFAULT_EVERY
    try:
        every = float(raw)
    except ValueError:
        every = -1.0
    if not every >= 0:  # also catches nan
        # A typo in a logging knob should not cost a long run; say so and carry on.
        log.warning("%s=%r is not a number of seconds >= 0; using %g", EVERY_ENV, raw, DEFAULT_EVERY)
        return DEFAULT_EVERY
    return every


def clock_time(seconds: float) -> str:
    """1:23 or 1:02:03."""
    s = max(0, int(round(seconds)))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _count(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.1f}"


@dataclass
class _Task:
    description: str
    total: float | None
    completed: float
    started: float
    last_line: float
    done: bool = False


class LogProgress:
    """`Progress`'s interface as log lines: one when a task starts, then at most one every
    `every` seconds while it advances, and one when it completes (or, unfinished, when the
    context exits, so a log shows where a failed stage stopped)."""

    def __init__(self, every: float = DEFAULT_EVERY, clock: Callable[[], float] = time.monotonic,
                 logger: logging.Logger = log) -> None:
        self.every = every
        self.clock = clock
        self.log = logger
        self._tasks: dict[TaskID, _Task] = {}

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for task in self._tasks.values():
            if not task.done:
                task.done = True
                self.log.info("%s: stopped at %s after %s", task.description, self._of(task),
                              clock_time(self.clock() - task.started))

    def add_task(self, description: str, start: bool = True, total: float | None = 100.0,
                 completed: int = 0, visible: bool = True, **fields: Any) -> TaskID:
        now = self.clock()
        task_id = TaskID(len(self._tasks))
        task = self._tasks[task_id] = _Task(description, total, completed, now, now)
        self.log.info("%s: started, %s", description, self._of(task))
        self._check_done(task)
        return task_id

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def update(self, task_id: TaskID, *, total: float | None = None, completed: float | None = None,
               advance: float | None = None, description: str | None = None, visible: bool | None = None,
               refresh: bool = False, **fields: Any) -> None:
        task = self._tasks[task_id]
        if description is not None:
            task.description = description
        if total is not None:
            task.total = total
        if completed is not None:
            task.completed = completed
        if advance is not None:
            task.completed += advance
        if task.done or self._check_done(task):
            return
        now = self.clock()
        if now - task.last_line >= self.every:
            task.last_line = now
            elapsed = now - task.started
            line = f"{task.description}: {self._of(task)}, {clock_time(elapsed)} elapsed"
            if task.total and task.completed > 0:
                left = elapsed * (task.total - task.completed) / task.completed
                line += f", ~{clock_time(left)} left"
            self.log.info("%s", line)

    def _check_done(self, task: _Task) -> bool:
        if task.done or task.total is None or task.completed < task.total:
            return False
        task.done = True
        self.log.info("%s: done, %s in %s", task.description, _count(task.completed),
                      clock_time(self.clock() - task.started))
        return True

    @staticmethod
    def _of(task: _Task) -> str:
        if task.total is None:
            return _count(task.completed)
        pct = f" ({100 * task.completed / task.total:.0f}%)" if task.total else ""
        return f"{_count(task.completed)}/{_count(task.total)}{pct}"
