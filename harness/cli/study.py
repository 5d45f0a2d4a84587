"""`harness-study`: run a named study (harness/studies/<name>.yaml) resumably, keep its runs in a
committed MLflow store, and regenerate its report from that store.

    harness-study status NAME      # what is done, what is left, the time left
    harness-study run NAME [--only SWEEP ...] [--limit N] [--dry-run] [--keep-going]
    harness-study export NAME      # copy finished runs into the committed store (run does it per job)
    harness-study report NAME [--out DIR]

`run` launches each job that is not done as its own `harness` process, one after another with
all threads (two one-thread jobs side by side gained nothing on 2 cores: reports/benchmarks.md),
so a job that fails or is killed takes nothing else down; rerun the command to continue: finished
jobs are skipped, a killed job resumes from its checkpoint. The working store is the one
`harness` logs to (--tracking-uri, else MLFLOW_TRACKING_URI, else MLflow's default here); the
committed store (the study file's `store`) counts as done too, so a fresh clone holding it has
nothing to run. Run from the repository's root: the study's paths are relative to it.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import mlflow
from hydra import compose, initialize_config_module
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from harness.cache import config_hash
from harness.cli.run import CONFIG_MODULE, NOT_IDENTITY
from harness.errors import InputError
from harness.study import JOB_TAG, NAME_TAG, Job, Progress, Scrubber, Study, committed_uri, export_runs, \
    finished_runs, load_study, progress

PROG = "harness-study"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (("status", "what is done and what is left, with the time left"),
                       ("run", "run the jobs that are not done, one after another"),
                       ("export", "copy finished runs into the committed store"),
                       ("report", "write the study's tables and figures from the committed store")):
        cmd = sub.add_parser(name, help=text, description=text)
        cmd.add_argument("study", metavar="NAME", help="a study in harness/studies/ (e.g. findings) or a YAML path")
        if name != "report":
            cmd.add_argument("--tracking-uri", help="the working MLflow store (default: MLFLOW_TRACKING_URI, "
                                                    "else MLflow's default)")
        if name == "run":
            cmd.add_argument("--only", nargs="+", action="extend", default=[], metavar="SWEEP",
                             help="run the jobs of these sweeps only")
            cmd.add_argument("--limit", type=int, help="stop after this many jobs (a chunk of the study)")
            cmd.add_argument("--dry-run", action="store_true", help="print the jobs' commands, run nothing")
            cmd.add_argument("--keep-going", action="store_true", help="go on past a failed job")
            cmd.add_argument("--no-export", action="store_true",
                             help="do not copy each finished job into the committed store")
        if name == "report":
            cmd.add_argument("--out", help="output directory (default: the study file's `out`)")
    return p


class Identity:
    """A job's resolved config without the keys that do not change results (cli/run.py's
    NOT_IDENTITY), hashed: two jobs declared with different overrides but the same config are
    one job. Composed with Hydra as `harness` composes it."""

    def __init__(self) -> None:
        self._context = initialize_config_module(CONFIG_MODULE, version_base="1.3")
        self._context.__enter__()
        self._seen: dict[tuple[str, ...], str] = {}

    def __call__(self, overrides: tuple[str, ...]) -> str:
        if overrides not in self._seen:
            try:
                cfg = compose("config", overrides=list(overrides))
                plain = OmegaConf.to_container(cfg, resolve=True)
            except (HydraException, OmegaConfBaseException) as err:
                message = " ".join(str(err).split())
                raise InputError(f"study job {' '.join(overrides)}: the config does not compose: {message}") from None
            self._seen[overrides] = config_hash({k: v for k, v in plain.items() if k not in NOT_IDENTITY})
        return self._seen[overrides]

    def check(self, study: Study, job: Job) -> None:
        """The job built and checked as `harness` would before running it (run.build_experiment,
        pipeline.check): a bad point stops the launch before any job runs, as with `harness -m`."""
        from harness.cli.run import build_experiment, overrides_name
        from harness.pipeline import check

        overrides = [o for o in study.command(job) if not o.startswith("hydra.")]
        try:
            cfg = compose("config", overrides=overrides)
            check(build_experiment(cfg, Path("outputs") / f"study-{study.name}" / job.id,
                                   given=lambda key: overrides_name(job.overrides, key)))
        except (HydraException, OmegaConfBaseException, InputError) as err:
            raise InputError(f"study job {job.id} ({job.sweep}, seed {job.seed}: {job.describe()}): "
                             f"{' '.join(str(err).split())}; no job was launched") from None

    def close(self) -> None:
        self._context.__exit__(None, None, None)


def _stores(study: Study, working: str) -> list[str]:
    committed = committed_uri(study)
    return [working] if committed == working else [working, committed]


def _progress(study: Study, working: str, identity: Identity) -> Progress:
    return progress(study, _stores(study, working), identity)


def _harness() -> str:
    return shutil.which("harness") or str(Path(sys.executable).with_name("harness"))


def _scrubber() -> Scrubber:
    cache = os.environ.get("PREFHARNESS_CACHE")
    return Scrubber.here(Path.cwd(), Path(cache) if cache else Path("~/.cache/prefharness"))


def run(study: Study, working: str, args: argparse.Namespace) -> int:
    identity = Identity()
    try:
        state = _progress(study, working, identity)
        for line in state.lines():
            print(line)
        chosen = [j for j in state.pending if not args.only or set(j.sweeps) & set(args.only)]
        for name in args.only:
            study.sweep(name)  # an unknown sweep is an error, not an empty selection
        if not chosen:
            print(f"{PROG}: nothing to launch: every job{' of ' + ', '.join(args.only) if args.only else ''} "
                  "is done")
            return 0
        if args.limit is not None:
            chosen = chosen[: max(args.limit, 0)]
        print(f"{PROG}: checking the {len(chosen)} job(s) to launch", flush=True)
        for job in chosen:
            identity.check(study, job)
        print(f"{PROG}: the {len(chosen)} job(s) to launch are checked", flush=True)
        env = os.environ | ({"MLFLOW_TRACKING_URI": working})
        env.pop("MLFLOW_EXPERIMENT_NAME", None)
        failed = []
        for number, job in enumerate(chosen, start=1):
            command = [_harness(), *study.command(job)]
            print(f"\n[{number}/{len(chosen)}] {job.sweep} · seed {job.seed} · job {job.id}\n$ "
                  f"{shlex.join(['harness', *command[1:]])}", flush=True)
            if args.dry_run:
                continue
            started = time.perf_counter()
            job_process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
            try:
                code = job_process.wait()
            except KeyboardInterrupt:  # stopped: the job is stopped too, and marks its run KILLED
                code = _stop(job_process)
            minutes = (time.perf_counter() - started) / 60
            if code in (128 + signal.SIGINT, 128 + signal.SIGTERM, -signal.SIGINT, -signal.SIGTERM):
                print(f"{PROG}: job {job.id} was stopped after {minutes:.1f} min; the same command resumes it")
                return 128 + signal.SIGINT
            if code != 0:
                failed.append(job)
                print(f"{PROG}: job {job.id} failed (exit {code}) after {minutes:.1f} min; its log is in "
                      f"outputs/study-{study.name}/{job.id}/")
                if not args.keep_going:
                    break
                continue
            if job.id not in finished_runs(working, study):
                raise InputError(f"job {job.id} ({job.describe()}) exited 0 but no FINISHED run is tagged "
                                 f"{JOB_TAG}={job.id} in {working}: its configuration is another job's run, which the "
                                 "harness did not run again; the study file declares one configuration twice")
            print(f"{PROG}: job {job.id} done in {minutes:.1f} min")
            if not args.no_export:
                export_runs(study, working, _scrubber(), [job.id])
        if args.dry_run:
            return 0
        for line in _progress(study, working, identity).lines():
            print(line)
        if failed:
            print(f"{PROG}: {len(failed)} job(s) failed: {', '.join(j.id for j in failed)}", file=sys.stderr)
            return 1
        return 0
    finally:
        identity.close()


def report(study: Study, out: str | None, given: str) -> list[str]:
    """Every output from the committed store; `given` is the study as named on the command line
    (its name, or a path), so the files' regenerate line is the command that made them."""
    from harness.report.query import Selection, load_runs
    from harness.report.render import Provenance, write_report

    identity = Identity()
    try:
        jobs = study.jobs(identity)
    finally:
        identity.close()
    sweeps_of = {j.id: set(j.sweeps) for j in jobs}
    selection = Selection(committed_uri(study), (study.experiment,), tags={NAME_TAG: study.name})
    runs, excluded = load_runs(selection)
    # A job the study file no longer declares (a sweep removed or changed) is not reported.
    declared = runs[f"tags.{JOB_TAG}"].isin(sweeps_of.keys())
    for run_id in runs.loc[~declared, "run_id"]:
        print(f"{PROG}: run {run_id} is not a job of {study.path} (any more): left out")
    runs = runs[declared].reset_index(drop=True)

    def scope(output: str, frame):  # noqa: ANN001, ANN202 - pandas frames
        sweeps = set(study.outputs.get(output, ()))
        if not sweeps:
            return frame.iloc[0:0]
        return frame[frame[f"tags.{JOB_TAG}"].map(lambda j: bool(sweeps_of.get(j, set()) & sweeps))]

    target = out or study.out
    command = shlex.join([PROG, "report", given, *(["--out", out] if out else [])])
    return write_report(runs, excluded, Path(target), Provenance(command, selection.describe()), scope)


def _stop(job: subprocess.Popen) -> int:
    """Stop a job as Ctrl-C would: a terminal's Ctrl-C has reached it already; a signal sent to
    this process alone (kill, a scheduler's SIGTERM) has not, so it gets SIGINT once it has not
    ended within a few seconds; killed when it does not end within two minutes."""
    try:
        job.wait(timeout=5)
    except subprocess.TimeoutExpired:
        job.send_signal(signal.SIGINT)
        try:
            job.wait(timeout=120)
        except subprocess.TimeoutExpired:
            job.kill()
    return 128 + signal.SIGINT


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the study as Ctrl-C does


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        study = load_study(args.study)
        working = getattr(args, "tracking_uri", None) or mlflow.get_tracking_uri()
        if args.command == "status":
            identity = Identity()
            try:
                lines = _progress(study, working, identity).lines()
            finally:
                identity.close()
            print("\n".join(lines))
        elif args.command == "run":
            sys.exit(run(study, working, args))
        elif args.command == "export":
            copied = export_runs(study, working, _scrubber())
            print(f"{PROG}: {len(copied)} finished job(s) copied from {working} into {study.store}")
        else:
            for line in report(study, args.out, args.study):
                print(line)
    except InputError as err:
        print(f"{PROG}: error: {' '.join(str(err).split())}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print(f"{PROG}: stopped; the same command continues", file=sys.stderr)
        sys.exit(128 + signal.SIGINT)


if __name__ == "__main__":
    main()
