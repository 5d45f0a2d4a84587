"""The package as a user installs it: a wheel, in a fresh venv, run outside the repository.

The editable install the other tests use reads configs and data straight from the checkout, so it
cannot notice a YAML or JSON file missing from the wheel, or a config found only relative to the
working directory. Here the wheel is built from a copy of the sources, checked for its package
data, installed into a new venv, and `harness` is run from an empty directory.

To avoid reinstalling gigabytes of dependencies, the new venv sees this venv's site-packages
through a `.pth` path line. Python appends such a line after the venv's own site-packages and does
not process the .pth files it finds there, so this venv's editable finder for prefharness never
runs and `import harness` is the wheel's copy (asserted below).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import mlflow
import pytest
from omegaconf import OmegaConf

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 600  # s, per subprocess


def run(args: list[str | Path], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, f"{args}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Build from a copy of what an sdist holds: building in the checkout would leave build/ and
    # rewrite the egg-info of the editable install everyone else's tests use.
    src = tmp_path_factory.mktemp("src")
    shutil.copytree(REPO / "harness", src / "harness", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "-q", "-w", out, src], cwd=out)
    (whl,) = out.glob("prefharness-*.whl")
    return whl


def test_wheel_ships_configs_and_data(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"harness/conf/__init__.py", "harness/conf/config.yaml", "harness/conf/sweep/kl_coef.yaml",
            "harness/conf/experiment/smoke.yaml", "harness/conf/loss/dpo.yaml"} <= names
    in_repo = {f"harness/conf/{p.relative_to(REPO / 'harness/conf').as_posix()}"
               for p in (REPO / "harness/conf").rglob("*") if p.suffix in (".yaml", ".md")}
    assert in_repo <= names, sorted(in_repo - names)
    data = REPO / "harness" / "tasks" / "data"
    if data.is_dir():
        tables = {f"harness/tasks/data/{p.name}" for p in data.glob("*.json")}
        assert tables and tables <= names, sorted(tables - names)


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("venv")
    run([sys.executable, "-m", "venv", "--without-pip", root], cwd=root)
    python = root / "bin" / "python"
    site = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root).stdout.strip())
    ours = sysconfig.get_paths()
    (site / "_prefharness_test_deps.pth").write_text(
        "".join(f"{p}\n" for p in dict.fromkeys((ours["purelib"], ours["platlib"]))))
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
         "--disable-pip-version-check", "-q", wheel], cwd=root)
    return root


@pytest.fixture(scope="module")
def user_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A user's shell: nothing pointing at the checkout, throwaway stores."""
    tmp = tmp_path_factory.mktemp("user")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
    env["PREFHARNESS_CACHE"] = str(tmp / "cache")
    return env


def test_import_is_the_wheels_copy(venv: Path, user_env: dict[str, str], tmp_path: Path) -> None:
    out = run([venv / "bin" / "python", "-c", "import harness, harness.conf; print(harness.__file__)"],
              cwd=tmp_path, env=user_env).stdout.strip()
    assert Path(out).resolve().is_relative_to(venv.resolve()), out


def finished_run(env: dict[str, str], experiment: str) -> mlflow.entities.Run:
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    (r,) = client.search_runs([exp.experiment_id])
    assert r.info.status == "FINISHED"
    return r


def test_smoke_runs_outside_the_repo(venv: Path, user_env: dict[str, str], tmp_path: Path) -> None:
    env = user_env | {"MLFLOW_EXPERIMENT_NAME": "wheel-smoke"}
    cwd = tmp_path / "empty"
    cwd.mkdir()
    run([venv / "bin" / "harness", "experiment=smoke", f"hydra.run.dir={tmp_path / 'run'}"], cwd=cwd, env=env)
    r = finished_run(env, "wheel-smoke")
    assert r.data.tags["loss"] == "dpo" and "eval/gold_reward" in r.data.metrics


@pytest.fixture
def myconf(tmp_path: Path) -> Path:
    """A user's own config directory: a loss and an experiment preset beside the packaged ones."""
    conf = tmp_path / "myconf"
    dpo = OmegaConf.load(REPO / "harness" / "conf" / "loss" / "dpo.yaml")
    dpo.name, dpo.beta = "my_dpo", 0.25
    (conf / "loss").mkdir(parents=True)
    OmegaConf.save(dpo, conf / "loss" / "my_dpo.yaml")  # interpolations kept, not resolved
    (conf / "experiment").mkdir()
    preset = (REPO / "harness" / "conf" / "experiment" / "smoke.yaml").read_text()
    preset = preset.replace("preset: smoke", "preset: my_smoke")
    assert "preset: my_smoke" in preset
    (conf / "experiment" / "my_smoke.yaml").write_text(preset + "\nsweep:\n  name: mine\n")
    return conf


def test_user_loss_from_searchpath(venv: Path, user_env: dict[str, str], myconf: Path, tmp_path: Path) -> None:
    env = user_env | {"MLFLOW_EXPERIMENT_NAME": "wheel-searchpath"}
    cwd = tmp_path / "empty"
    cwd.mkdir()
    run([venv / "bin" / "harness", "experiment=smoke", "loss=my_dpo", f"hydra.searchpath=[file://{myconf}]",
         f"hydra.run.dir={tmp_path / 'run'}"], cwd=cwd, env=env)
    r = finished_run(env, "wheel-searchpath")
    assert r.data.tags["loss"] == "my_dpo"
    assert r.data.params["loss.beta"] == "0.25"


def test_user_experiment_preset_from_searchpath(venv: Path, user_env: dict[str, str], myconf: Path,
                                                tmp_path: Path) -> None:
    # Composition is what is under test; the run itself is the smoke run above.
    out = run([venv / "bin" / "harness", "experiment=my_smoke", "loss=my_dpo", f"hydra.searchpath=[file://{myconf}]",
               "--cfg", "job"], cwd=tmp_path, env=user_env).stdout
    cfg = OmegaConf.create(out)
    assert cfg.preset == "my_smoke" and cfg.sweep.name == "mine"
    assert cfg.loss.name == "my_dpo" and cfg.loss.beta == 0.25
    assert cfg.task.name == "sentiment" and cfg.model.name == "tiny" and cfg.labels.n == 32
