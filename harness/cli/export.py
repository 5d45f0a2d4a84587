"""`harness-export`: a run's trained policy or reward model, back as a model directory.

    harness-export RUN_ID OUT_DIR [--model policy|reward_model] [--tracking-uri URI]

Downloads the run's LoggedModel (harness/logged_models.py), rebuilds the base model its
manifest names (the run's `model.source` config, instantiated and materialised in the cache,
$PREFHARNESS_CACHE or ~/.cache/prefharness, as a run does), puts the trained tensors on it with
every name and shape checked (models/saved.py) and writes OUT_DIR:
- policy: a Hugging Face directory (config, safetensors, tokenizer):
  `transformers.AutoModelForCausalLM.from_pretrained(OUT_DIR)` is the trained policy;
- reward_model: `harness.models.reward.RewardModel.load(Path(OUT_DIR))` is the trained reward
  model (trunk/, head.safetensors, normalization.json), the tokenizer beside them
  (`AutoTokenizer.from_pretrained(OUT_DIR)`).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import mlflow
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from mlflow.tracking import MlflowClient

from harness.cache import check_cache_dir, content_digest
from harness.errors import InputError
from harness.logged_models import download, find_logged_model
from harness.models.loading import load_tokenizer
from harness.models.lora import merge_adapters
from harness.models.saved import KINDS, read_manifest, restore

PROG = "harness-export"
CACHE_VAR = "PREFHARNESS_CACHE"
log = logging.getLogger(PROG)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Write a run's trained policy (a Hugging Face model directory) or reward model "
                    "(RewardModel.load) from its MLflow LoggedModel and the base model it was trained from.")
    p.add_argument("run_id", metavar="RUN_ID", help="the MLflow run (its id, as in `mlflow ui`)")
    p.add_argument("out_dir", metavar="OUT_DIR", help="a new or empty directory to write")
    p.add_argument("--model", choices=KINDS, default="policy", help="which trained model (default: policy)")
    p.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI, else MLflow's default)")
    return p


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_VAR) or "~/.cache/prefharness").expanduser()


def check_out(out: Path) -> None:
    """OUT_DIR: a new path or an empty directory, so nothing of the user's is overwritten."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out}: expected a new or empty directory to write the model to, found "
                         f"{'a non-empty directory' if out.is_dir() else 'a file'}")


def open_store(uri: str) -> MlflowClient:
    """A client of an existing store: an SQLite file that does not exist is a wrong path, not a
    new empty store to create."""
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
        if not path.is_file():
            raise InputError(f"MLflow store {uri} (--tracking-uri, else MLFLOW_TRACKING_URI): {path} does not exist")
    try:
        return MlflowClient(uri)
    except Exception as err:
        raise InputError(f"MLflow store {uri} is not usable: {' '.join(str(err).split())[:300]}") from None


def _instantiate(config: Any, key: str, file: Path) -> Any:
    try:
        return instantiate(config)
    except InstantiationException as err:
        cause = err.__cause__
        if isinstance(cause, InputError):
            raise cause from None
        raise InputError(f"{file}: {key}: could not build {config.get('_target_')!r}: "
                         f"{' '.join(str(cause or err).split())[:300]}") from None


def base_dir(manifest: dict[str, Any], directory: Path, cache: Path) -> Path:
    """The base model directory the manifest names, materialised in `cache` as a run does; its
    local files must hold what they held during the run (their content digests)."""
    file = directory / "manifest.json"
    model = manifest.get("model") or {}
    if not isinstance(model.get("source"), dict):
        raise InputError(f"{file}: model.source: expected the base model's config, found {model.get('source')!r}")
    source = _instantiate(model["source"], "model.source", file)
    check_cache_dir(cache)
    for key, path in source.inputs().items():
        expected = (model.get("inputs") or {}).get(key)
        if expected is not None and content_digest(path, cache / "digests") != expected:
            raise InputError(f"model.{key}={path}: its content changed since the run (manifest {file}): the trained "
                             "tensors belong on the base as it was; restore that directory")
    task = manifest.get("task")

    def corpus() -> Iterable[str]:  # the prompts a source such as model=tiny trains its tokenizer on
        if not isinstance(task, dict):
            raise InputError(f"{file}: task: the base model {model.get('name')} is built from the task's prompts, "
                             "and the manifest names no task")
        return (e.prompt for e in _instantiate(task, "task", file).examples("train"))

    return source.materialize(cache, corpus)


def export(run_id: str, out: Path, kind: str, tracking_uri: str) -> None:
    """Write the run's trained `kind` to `out` (see the module docstring for what it holds)."""
    check_out(out)
    client = open_store(tracking_uri)
    model = find_logged_model(client, run_id, kind, tracking_uri)
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache, prefix=".export-") as tmp:
        directory = download(model, Path(tmp), tracking_uri)
        manifest = read_manifest(directory)
        if manifest["kind"] != kind:
            raise InputError(f"{directory / 'manifest.json'}: kind: expected {kind}, found {manifest['kind']}")
        base = base_dir(manifest, directory, cache)
        module = restore(directory, base)
        tokenizer = load_tokenizer(base)
        staging = Path(tmp) / "out"
        if kind == "policy":  # a LoRA policy's adapters folded into its weights: a plain model
            merge_adapters(module).save_pretrained(staging)
        else:
            module.save(staging)
        tokenizer.save_pretrained(staging)
        out.mkdir(parents=True, exist_ok=True)
        for item in staging.iterdir():
            shutil.move(str(item), out / item.name)
    log.info("%s of run %s (LoggedModel %s) on the base %s written to %s", kind, run_id, model.model_id,
             (manifest.get("model") or {}).get("name"), out)


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"{PROG}: %(message)s")
    out = Path(args.out_dir)
    try:
        export(args.run_id, out, args.model, args.tracking_uri or mlflow.get_tracking_uri())
    except InputError as err:
        # Bad input is the user's to fix: one line, no traceback.
        print(f"{PROG}: error: {' '.join(str(err).split())}", file=sys.stderr)
        sys.exit(2)
    if args.model == "policy":
        print(f"transformers.AutoModelForCausalLM.from_pretrained({str(out)!r}) loads the trained policy")
    else:
        print(f"harness.models.reward.RewardModel.load(pathlib.Path({str(out)!r})) loads the trained reward model")


if __name__ == "__main__":
    main()
