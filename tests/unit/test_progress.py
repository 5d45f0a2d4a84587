"""Progress off a terminal: plain log lines at start, every so often, and at the end."""

from __future__ import annotations

import io
import logging

import pytest
from rich.progress import Progress

from harness.progress import LogProgress, clock_time, progress_bar, report_interval

DESC = "sampling 2 responses × 400 prompts"


class NotATerminal(io.StringIO):
    def isatty(self) -> bool:
        return False


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "harness.progress"]


def run_task(progress, total: int = 400, step: int = 40) -> None:  # noqa: ANN001
    with progress as p:
        task = p.add_task(DESC, total=total)
        for _ in range(total // step):
            p.advance(task, step)


def test_every_zero_logs_start_each_step_and_done(monkeypatch, caplog) -> None:  # noqa: ANN001
    monkeypatch.setenv("PREFHARNESS_PROGRESS_EVERY", "0")
    caplog.set_level(logging.INFO, logger="harness.progress")
    bar = progress_bar(NotATerminal())
    assert isinstance(bar, LogProgress)
    run_task(bar)
    out = lines(caplog)
    assert out[0] == f"{DESC}: started, 0/400 (0%)"
    assert len(out) == 1 + 9 + 1  # start, 9 intermediate (the 10th step completes), done
    assert out[3].startswith(f"{DESC}: 120/400 (30%), 0:00 elapsed, ~0:00 left")
    assert out[-1].startswith(f"{DESC}: done, 400 in ")


def test_large_interval_logs_only_start_and_done(monkeypatch, caplog) -> None:  # noqa: ANN001
    monkeypatch.setenv("PREFHARNESS_PROGRESS_EVERY", "3600")
    caplog.set_level(logging.INFO, logger="harness.progress")
    run_task(progress_bar(NotATerminal()))
    out = lines(caplog)
    assert len(out) == 2
    assert "started" in out[0] and "done, 400 in" in out[1]


def test_lines_at_most_every_interval_with_elapsed_and_eta(caplog) -> None:  # noqa: ANN001
    now = [0.0]
    caplog.set_level(logging.INFO, logger="harness.progress")
    with LogProgress(every=30, clock=lambda: now[0]) as p:
        task = p.add_task(DESC, total=400)
        for _ in range(9):  # 40 prompts every 20 s: a line at most every 30 s
            now[0] += 20
            p.advance(task, 40)
        now[0] += 23
        p.update(task, completed=400)
    out = lines(caplog)
    assert out == [
        f"{DESC}: started, 0/400 (0%)",
        f"{DESC}: 80/400 (20%), 0:40 elapsed, ~2:40 left",
        f"{DESC}: 160/400 (40%), 1:20 elapsed, ~2:00 left",
        f"{DESC}: 240/400 (60%), 2:00 elapsed, ~1:20 left",
        f"{DESC}: 320/400 (80%), 2:40 elapsed, ~0:40 left",
        f"{DESC}: done, 400 in 3:23",
    ]


def test_unfinished_task_says_where_it_stopped(caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.INFO, logger="harness.progress")
    with pytest.raises(RuntimeError), LogProgress(every=3600, clock=lambda: 0.0) as p:
        task = p.add_task("labelling with panel", total=1)
        p.update(task, description="labelling with panel (retry)")
        raise RuntimeError
    assert lines(caplog)[-1] == "labelling with panel (retry): stopped at 0/1 (0%) after 0:00"


def test_unknown_total_and_empty_task(caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.INFO, logger="harness.progress")
    with LogProgress(every=0, clock=lambda: 0.0) as p:
        p.add_task("nothing to do", total=0)
        t = p.add_task("open-ended", total=None)
        p.advance(t, 3)
    assert lines(caplog) == [
        "nothing to do: started, 0/0", "nothing to do: done, 0 in 0:00",
        "open-ended: started, 0", "open-ended: 3, 0:00 elapsed", "open-ended: stopped at 3 after 0:00",
    ]


def test_terminal_gets_rich_bars() -> None:
    assert isinstance(progress_bar(Terminal()), Progress)


@pytest.mark.parametrize("value,expected", [(None, 30.0), ("", 30.0), ("5", 5.0), ("0", 0.0), ("x", 30.0), ("-1", 30.0)])
def test_interval_from_environment(monkeypatch, value, expected) -> None:  # noqa: ANN001
    if value is None:
        monkeypatch.delenv("PREFHARNESS_PROGRESS_EVERY", raising=False)
    else:
        monkeypatch.setenv("PREFHARNESS_PROGRESS_EVERY", value)
    assert report_interval() == expected


def test_clock_time() -> None:
    assert [clock_time(s) for s in (0, 83, 194.4, 3723)] == ["0:00", "1:23", "3:14", "1:02:03"]
