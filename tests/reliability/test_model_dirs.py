"""A broken model directory (model=hf model.name_or_path=DIR) is refused with one line naming
the directory and the file, before any compute: a config that is not JSON or names a model type
transformers does not know, safetensors weights that are random, cut short or empty, and
weights whose shapes do not match the config. Everything but the last is found without loading
the weights (`check_model_dir`); the last when transformers loads them (`load_causal_lm`)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest
from transformers import AutoModelForCausalLM

from harness.errors import InputError
from harness.models import loading
from harness.models.loading import check_model_dir, load_causal_lm
from harness.models.sources import TinyRandom

CORPUS = ["the food was great", "the room was small and loud", "we loved the quiet beach"] * 10


def edit_config(path: Path, **changes: object) -> None:
    """Set (or, for None, remove) keys of the directory's config.json."""
    config = json.loads((path / "config.json").read_text())
    config.update(changes)
    (path / "config.json").write_text(json.dumps({k: v for k, v in config.items() if v is not None}))


def cut(file: Path, keep: Callable[[int], int]) -> None:
    """Keep the first keep(size) bytes of the file."""
    file.write_bytes(file.read_bytes()[: keep(file.stat().st_size)])


# How each case breaks a copy of a good directory, and fragments of the one-line error (the
# directory's path is checked too). CLI_CASES are also run from the command line.
BREAK: dict[str, tuple[Callable[[Path], object], list[str]]] = {
    "config_not_json": (lambda d: (d / "config.json").write_text('{"model_type": "llama",'),
                        ["config.json: expected a JSON model config, found invalid JSON ("]),
    "unknown_model_type": (lambda d: edit_config(d, model_type="nonsense"),
                           ["config.json: model_type: ", "'nonsense'", "does not know"]),
    "random_weights": (lambda d: (d / "model.safetensors").write_bytes(os.urandom(4096)),
                       ["model.safetensors: expected a safetensors file, found 4096 bytes that do not parse"]),
    "truncated_weights": (lambda d: cut(d / "model.safetensors", lambda size: size // 2),
                          ["model.safetensors: expected a safetensors file, found ", "cut short"]),
    "empty_weights": (lambda d: (d / "model.safetensors").write_bytes(b""),
                      ["model.safetensors: expected a safetensors file, found an empty file"]),
    "shape_mismatch": (lambda d: edit_config(d, hidden_size=32),
                       [": transformers could not load the model: "]),
    # in process only
    "config_not_an_object": (lambda d: (d / "config.json").write_text("[1, 2]"),
                             ["config.json: expected a JSON model config, found a JSON list"]),
    "no_model_type": (lambda d: edit_config(d, model_type=None), ["config.json: model_type: ", "no model_type key"]),
    "weights_one_byte_short": (lambda d: cut(d / "model.safetensors", lambda size: size - 1), ["cut short"]),
    "weights_one_byte_long": (lambda d: (d / "model.safetensors").write_bytes(
        (d / "model.safetensors").read_bytes() + b"\0"), ["safetensors file, found ", "bytes after the last tensor"]),
    "empty_pytorch_bin": (lambda d: ((d / "model.safetensors").unlink(), (d / "pytorch_model.bin").write_bytes(b"")),
                          ["pytorch_model.bin: expected PyTorch weights, found an empty file"]),
}
CLI_CASES = ["config_not_json", "truncated_weights", "shape_mismatch"]  # one per check: config, header, loading
LOADED = {"shape_mismatch"}  # found by from_pretrained; the rest before it


def shard(small: Path, out: Path) -> Path:
    """The same model saved in several safetensors shards with an index."""
    shutil.copytree(small, out)
    (out / "model.safetensors").unlink()
    AutoModelForCausalLM.from_pretrained(small).save_pretrained(out, max_shard_size="100KB")
    assert len(list(out.glob("model-*.safetensors"))) > 1
    return out


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    small = TinyRandom(vocab_size=300).materialize(root, lambda: CORPUS)
    out = {"good": small, "sharded": shard(small, root / "sharded")}
    for case, (breaks, _) in BREAK.items():
        out[case] = root / case
        shutil.copytree(small, out[case])
        breaks(out[case])
    for case, breaks in {
        "shard_missing": lambda f: f.unlink(),
        "shard_truncated": lambda f: cut(f, lambda size: size - 100),
    }.items():
        out[case] = shard(small, root / case)
        breaks(sorted(out[case].glob("model-*.safetensors"))[-1])
    out["index_not_json"] = shard(small, root / "index_not_json")
    (out["index_not_json"] / "model.safetensors.index.json").write_text("{")
    return out


def refusal(call: Callable[[Path], object], path: Path) -> str:
    with pytest.raises(InputError) as err:
        call(path)
    message = str(err.value)
    assert "\n" not in message, message
    assert str(path) in message, message
    return message


@pytest.mark.parametrize("case", [c for c in BREAK if c not in LOADED])
def test_refused_without_loading_the_weights(case: str, model_dirs: dict[str, Path],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    message = refusal(check_model_dir, model_dirs[case])
    for fragment in BREAK[case][1]:
        assert fragment in message, (fragment, message)

    def no_loading(*args: object, **kwargs: object) -> None:
        raise AssertionError("the weights were loaded")

    monkeypatch.setattr(loading.AutoModelForCausalLM, "from_pretrained", no_loading)
    assert refusal(load_causal_lm, model_dirs[case]) == message


def test_shapes_that_do_not_match_the_config(model_dirs: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    path = model_dirs["shape_mismatch"]
    check_model_dir(path)  # the config and the safetensors header are each fine on their own
    with pytest.raises(InputError) as err:
        load_causal_lm(path)
    message = str(err.value)
    assert message.startswith(f"{path}: transformers could not load the model: "), message
    assert "\n" not in message and len(message) < len(str(path)) + 260
    assert isinstance(err.value.__cause__, RuntimeError)  # chained, for a traceback under a debugger
    # Only errors: an interrupt or running out of memory while loading is not the input's fault.
    for interrupt in (KeyboardInterrupt, MemoryError):
        def stop(*args: object, interrupt: type[BaseException] = interrupt, **kwargs: object) -> None:
            raise interrupt()

        monkeypatch.setattr(loading.AutoModelForCausalLM, "from_pretrained", stop)
        with pytest.raises(interrupt):
            load_causal_lm(model_dirs["good"])


def test_sharded_checkpoints(model_dirs: dict[str, Path]) -> None:
    check_model_dir(model_dirs["good"])
    check_model_dir(model_dirs["sharded"])
    assert load_causal_lm(model_dirs["sharded"])[0].config.hidden_size == 64
    for case, expected in [
        ("shard_missing", "expected a safetensors file, found no such file"),
        ("shard_truncated", "expected a safetensors file, found "),
        ("index_not_json", "model.safetensors.index.json: expected a JSON index of weight shards, found invalid JSON"),
    ]:
        message = refusal(check_model_dir, model_dirs[case])
        assert expected in message, message
        if case != "index_not_json":  # the broken shard is named, not just the index
            index = json.loads((model_dirs[case] / "model.safetensors.index.json").read_text())
            assert f"{max(index['weight_map'].values())}: " in message, message


@pytest.mark.slow  # python -m harness per case; the same checks in process above
@pytest.mark.parametrize("case", CLI_CASES)
def test_refused_from_the_command_line(case: str, model_dirs: dict[str, Path], tmp_path: Path,
                                       harness_env: dict[str, str]) -> None:
    path, cache, db = model_dirs[case], tmp_path / "cache", tmp_path / "mlflow.db"
    env = harness_env | {"PREFHARNESS_CACHE": str(cache), "MLFLOW_TRACKING_URI": f"sqlite:///{db}"}
    args = ["experiment=smoke", "model=hf", f"model.name_or_path={path}", f"hydra.run.dir={tmp_path / 'run'}"]
    proc = subprocess.run([sys.executable, "-m", "harness", *args], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("harness: error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert str(path) in errors[0], errors[0]
    for fragment in BREAK[case][1]:
        assert fragment in errors[0], (fragment, errors[0])
    artifacts = cache / "artifacts"
    assert not artifacts.exists() or not any(p.is_dir() for p in artifacts.glob("*/*")), "an artifact was written"
    if db.exists():
        client = mlflow.MlflowClient(f"sqlite:///{db}")
        assert not client.search_runs([e.experiment_id for e in client.search_experiments()]), "a run was created"
