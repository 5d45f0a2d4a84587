"""`harness-report`: paper-style tables and figures regenerated from MLflow runs alone.

    harness-report [--tracking-uri URI] [--experiment NAME ...] [--filter "MLflow filter"]
                   [--tag key=value ...] [--parent RUN] [--out reports/]

No Hydra here: a report has a handful of flags and no config tree to compose.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import mlflow

from harness.errors import InputError
from harness.report.query import Selection, load_runs
from harness.report.render import Provenance, write_report

PROG = "harness-report"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Write Markdown/LaTeX/CSV tables and PNG figures from MLflow runs (FINISHED runs; "
                    "the latest of each configuration), with index.md listing outputs and excluded runs.")
    p.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI, else MLflow's default)")
    p.add_argument("--experiment", nargs="+", action="extend", default=[], metavar="NAME",
                   help="MLflow experiment name(s) to read (default: every experiment)")
    p.add_argument("--filter", default="", help='MLflow search filter, e.g. "params.`labels.n` = \'1000\'"')
    p.add_argument("--tag", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="keep runs whose tag KEY equals VALUE (repeatable), e.g. sweep.name=methods")
    p.add_argument("--parent", default="", metavar="RUN",
                   help="keep the runs of one sweep: its parent run's id or name (e.g. sweep-kl_coef)")
    p.add_argument("--out", default="reports", help="output directory (default: reports/)")
    return p


def parse_tags(items: Sequence[str], p: argparse.ArgumentParser) -> dict[str, str]:
    tags = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            p.error(f"--tag expects KEY=VALUE, got {item!r}")
        tags[key] = value
    return tags


def check_out(out: Path) -> None:
    """--out must be a directory or a path one can create as such: refused before any run is read."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: expected a directory (or a new path), found a file")
    above = out.absolute().parent
    while not above.exists() and above != above.parent:
        above = above.parent
    if not above.is_dir():
        raise InputError(f"--out {out}: expected a directory (or a new path), but {above} is a file")


def command_line(selection: Selection, out: str) -> str:
    """The command that regenerates this report, with the store spelled out (the environment
    that supplied it may be gone when someone reruns it)."""
    args = [PROG, "--tracking-uri", selection.tracking_uri]
    if selection.experiments:
        args += ["--experiment", *selection.experiments]
    if selection.filter:
        args += ["--filter", selection.filter]
    for key, value in selection.tags.items():
        args += ["--tag", f"{key}={value}"]
    if selection.parent:
        args += ["--parent", selection.parent]
    return shlex.join([*args, "--out", out])


def main(argv: Sequence[str] | None = None) -> None:
    p = parser()
    args = p.parse_args(argv)
    # mlflow.get_tracking_uri() reads MLFLOW_TRACKING_URI and otherwise gives MLflow's default.
    selection = Selection(tracking_uri=args.tracking_uri or mlflow.get_tracking_uri(),
                          experiments=tuple(args.experiment), filter=args.filter, tags=parse_tags(args.tag, p),
                          parent=args.parent)
    try:
        check_out(Path(args.out))
        runs, excluded = load_runs(selection)
        lines = write_report(runs, excluded, Path(args.out),
                             Provenance(command_line(selection, args.out), selection.describe()))
    except InputError as err:
        # Bad input is the user's to fix: one line, no traceback.
        print(f"{PROG}: error: {' '.join(str(err).split())}", file=sys.stderr)
        sys.exit(2)
    print(f"{len(runs)} runs selected, {len(excluded)} left out by the selection")
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
