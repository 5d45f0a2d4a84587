"""Bad input gets one line naming the file, line or key and what was expected, a non-zero exit,
and nothing written: no stage artifact, no MLflow run. Every case is refused before training."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from transformers import AutoTokenizer

from harness.models.sources import TinyRandom

GOOD = {"prompt": "Review: the hotel by the river was", "responses": [" lovely.", " dirty."], "choice": 0}
CORPUS = ["the food was great", "the room was small and loud", "we loved the quiet beach"] * 10


def jsonl(*rows: object) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


LABEL_FILES = {
    "bad_json": (jsonl(GOOD, b'{"prompt": "x", "responses": ["a", "b"], "choice": 0'), [":2: json", "invalid JSON"]),
    "missing_field": (jsonl(GOOD, {"prompt": "x", "responses": ["a", "b"]}), [":2: choice", "no such key"]),
    "choice_out_of_range": (jsonl(GOOD, GOOD | {"choice": 2}), [":2: choice", "0..1"]),
    "empty_response": (jsonl(GOOD | {"responses": [" fine.", "  "]}), [":1: responses[1]", "blank"]),
    "duplicate_id": (jsonl(GOOD | {"id": "a"}, GOOD | {"id": "a"}), [":2: id", "already used on line 1"]),
    "wrong_encoding": (jsonl(GOOD) + b'{"prompt": "caf\xe9", "responses": ["a", "b"], "choice": 0}\n',
                       [":2: encoding", "UTF-8"]),
    "one_response": (jsonl(GOOD | {"responses": [" only."]}), [":1: responses"]),
    "array_file": (json.dumps([GOOD, GOOD]).encode() + b"\n", [":1: record", "one object per line"]),
    "mixed_k": (jsonl(GOOD, GOOD | {"responses": [" a.", " b.", " c.", " d."]}),
                [":2: responses", "expected 2 responses like line 1, found 4"]),
    "huge_line": (jsonl(GOOD, GOOD | {"responses": [" fine.", " word" * 600_000]}),
                  [":2: line", "at most 1 MB", "found 3.0 MB"]),
}

# args, expected fragments of the one error line
CONFIG_CASES = {
    "beta_zero": (["loss.beta=0"], ["loss.beta", "> 0"]),
    "beta_negative": (["loss.beta=-0.1"], ["loss.beta", "> 0"]),
    "labels_beyond_prompts": (["labels.n=100000"], ["labels.n=100000", "64 train prompts"]),
    "labels_k_one": (["labels.k=1"], ["labels.k", "≥ 2"]),
    "desirable_fraction": (["labels.desirable_fraction=0"], ["labels.desirable_fraction", "(0, 1]"]),
    "response_beyond_context": (["task.max_new_tokens=100000"], ["task.max_new_tokens", "context"]),
    "trainable_layers": (["model.trainable_layers=99"], ["model.trainable_layers=99", "1..2"]),
    "sampling_temperature": (["sampling.temperature=0"], ["sampling.temperature", "> 0"]),
    "train_lr": (["train.lr=0"], ["train.lr", "> 0"]),
    "train_bucket": (["train.bucket=-1"], ["train.bucket", "≥ 0"]),
    "eval_prompts": (["eval.n_prompts=0"], ["eval.n_prompts", "≥ 1"]),
    "stop_in_no_token": (["task.stop=qqqzzz"], ["task.stop='qqqzzz'", "no token"]),
    "stop_after_beyond_length": (["task.stop=.", "task.stop_after=8"], ["task.stop_after", "0..7", "8"]),
    "stop_empty": (["task.stop=''"], ["task.stop", "non-empty"]),
    "ppo_whitening": (["loss=ppo", "loss.method.settings.whiten_advantages=true"],
                      ["loss.method.settings.whiten_advantages", "'batch', 'minibatch', 'off'", "True"]),
    "ppo_value_head": (["loss=ppo", "loss.method.settings.value_head_init=xavier"],
                       ["loss.method.settings.value_head_init", "'zero', 'normal'", "xavier"]),
    "rm_pooling": (["loss=ppo", "loss.reward_model.pooling=max"], ["loss.reward_model.pooling", "mean, last"]),
    "rm_lr": (["loss=best_of_n", "loss.reward_model.lr=0"], ["loss.reward_model.lr", "> 0"]),
    "reference_mode": (["loss.method.reference=sometimes"], ["loss.method.reference", "cached, online, none"]),
    "sft_targets": (["loss=sft", "loss.targets=summaries"], ["loss.targets", "'references' or 'chosen'"]),
    "sft_without_references": (["loss=sft", "loss.targets=references"], ["loss.targets=references", "no reference"]),
    "init_policy": (["init.policy=rlhf"], ["init.policy", "base, sft"]),
    "gpu_without_gpu": (["trainer=gpu"], ["trainer.accelerator=gpu", "no CUDA GPU", "trainer=cpu"]),
    "two_processes": (["+trainer.strategy=ddp", "trainer.devices=2"], ["trainer.strategy=ddp", "only as trainer.strategy=ddp_fork"]),
    "human_without_judge": (["labeler=human"], ["labeler=human", "labeler@judge="]),
    "init_sft_without_references": (["init.policy=sft"], ["init.policy=sft", "references"]),
    "labels_file_missing": (["labeler=file", "labeler.path=/nonexistent/labels.jsonl", "labeler@judge=lexicon_panel"],
                            ["/nonexistent/labels.jsonl", "no such file"]),
    "file_labels_without_judge": (["labeler=file", "labeler.path={labels}"], ["labeler=file", "labeler@judge"]),
    "dataset_column_missing": (["task.source={dataset}", "task.columns.prompt=review"], ["review", "text"]),
    # Wrong types: refused by the type the code declares, never coerced (typecheck.py).
    "labels_n_text": (["labels.n=abc"], ["labels.n", "expected an integer", "'abc'"]),
    "labels_n_fraction": (["labels.n=10.5"], ["labels.n", "expected an integer", "10.5"]),
    "beta_text": (["loss.beta=abc"], ["loss.beta", "a finite number", "'abc'"]),
    "beta_inf": (["loss.beta=inf"], ["loss.beta", "a finite number", "inf"]),
    "beta_nan": (["loss.beta=nan"], ["loss.beta", "a finite number", "nan"]),
    "kto_weight_text": (["loss=kto", "loss.desirable_weight=high"], ["loss.desirable_weight", "a finite number"]),
    "ppo_setting_text": (["loss=ppo", "loss.method.settings.minibatch=4.5"], ["loss.method.settings.minibatch",
                                                                              "an integer"]),
    "task_setting_text": (["task.n_train=many"], ["task.n_train", "an integer"]),
    "trainer_setting_text": (["trainer.log_every_n_steps=often"], ["trainer.log_every_n_steps", "an integer"]),
    "threads_text": (["threads=abc"], ["threads", "an integer or null", "'abc'"]),
    "threads_negative": (["threads=-1"], ["threads", "≥ 1", "-1"]),
    "threads_zero": (["threads=0"], ["threads", "≥ 1", "got 0"]),
    "seed_negative": (["seed=-1"], ["seed", "0..4294967295", "-1"]),
    "seed_fraction": (["seed=1.5"], ["seed", "an integer", "1.5"]),
    "resume_no": (["resume=no"], ["resume", "true or false", "'no'"]),
    "resume_maybe": (["resume=maybe"], ["resume", "true or false", "'maybe'"]),
    "trainable_layers_text": (["model.trainable_layers=top"], ["model.trainable_layers", "an integer or null"]),
    "unknown_argument": (["+loss.method.colour=red"], ["loss.method", "colour"]),
    "model_path_missing": (["model=hf"], ["model.name_or_path", "a value is required"]),
    # Values that would fail only after compute: refused before any run.
    "max_new_tokens_zero": (["task.max_new_tokens=0"], ["task.max_new_tokens", "≥ 1", "0"]),
    "max_steps_zero": (["trainer.max_steps=0"], ["trainer.max_steps", "≥ 1", "got 0"]),
    "max_epochs_zero": (["trainer.max_epochs=0", "trainer.max_steps=-1"], ["trainer.max_epochs", "≥ 1", "got 0"]),
    "val_fraction_all": (["train.val_fraction=0.99"], ["train.val_fraction=0.99", "labels.n=32", "none left"]),
    "sft_val_fraction_all": (["loss=sft", "loss.targets=chosen", "train.val_fraction=0.99"],
                             ["train.val_fraction=0.99", "none left"]),
    "desirable_none": (["labels.desirable_fraction=0.01"], ["labels.desirable_fraction=0.01", "none of the"]),
    "kto_desirable_none": (["loss=kto", "labels.desirable_fraction=0.01"], ["labels.desirable_fraction=0.01"]),
    "reward_model_too_few": (["loss=reward_model", "labels.n=1"], ["labels.n=1", "reward model"]),
    "eval_prompts_beyond": (["eval.n_prompts=100000"], ["eval.n_prompts=100000", "eval prompts"]),
    "file_k_mismatch": (["labeler=file", "labeler.path={labels_k4}", "labeler@judge=lexicon_panel", "labels.n=2"],
                        ["labels.k=2", "compares 4 responses", "set labels.k=4"]),
    "file_all_ties": (["labeler=file", "labeler.path={ties}", "labeler@judge=lexicon_panel", "labels.n=2"],
                      ["ties.jsonl", "identical responses"]),
    "file_beyond_context": (["labeler=file", "labeler.path={long}", "labeler@judge=lexicon_panel", "labels.n=2"],
                            ["long.jsonl:2: responses", "context of 512 tokens"]),
    # The artifact cache must be a directory this process can write.
    "cache_is_file": (["paths.cache_dir={file}"], ["paths.cache_dir=", "expected a directory, found a file"]),
    "cache_not_creatable": (["paths.cache_dir={unwritable}"], ["paths.cache_dir=", "cannot"]),
}


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    small = TinyRandom(vocab_size=300).materialize(root, lambda: CORPUS)
    out = {}
    for name, drop in (("no_weights", "model.safetensors"), ("no_tokenizer", "tokenizer")):
        out[name] = root / name
        shutil.copytree(small, out[name])
        for f in out[name].glob(f"{drop}*"):
            f.unlink()
    out["vocab_mismatch"] = root / "vocab_mismatch"  # a tokenizer with more tokens than the embedding has rows
    shutil.copytree(small, out["vocab_mismatch"])
    tokenizer = AutoTokenizer.from_pretrained(small)
    tokenizer.add_tokens([f"<extra_{i}>" for i in range(400)])
    tokenizer.save_pretrained(out["vocab_mismatch"])
    return out


def refused(args: list[str], tmp_path: Path, expected: list[str], code: int = 2) -> None:
    env_cache, db = tmp_path / "cache", tmp_path / "mlflow.db"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_EXPERIMENT_NAME"}
    env |= {"PREFHARNESS_CACHE": str(env_cache), "MLFLOW_TRACKING_URI": f"sqlite:///{db}"}
    proc = subprocess.run([sys.executable, "-m", "harness", "experiment=smoke", *args, f"hydra.run.dir={tmp_path / 'run'}"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == code, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("harness: error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    for fragment in expected:
        assert fragment in errors[0], (fragment, errors[0])
    artifacts = env_cache / "artifacts"
    assert not artifacts.exists() or not any(p.is_dir() for p in artifacts.glob("*/*")), "an artifact was written"
    if db.exists():
        client = mlflow.MlflowClient(f"sqlite:///{db}")
        assert not client.search_runs([e.experiment_id for e in client.search_experiments()]), "a run was created"


@pytest.mark.parametrize("case", sorted(LABEL_FILES))
def test_malformed_label_files(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, expected = LABEL_FILES[case]
    path = tmp_path / f"{case}.jsonl"
    path.write_bytes(data)
    refused_in_process(["labeler=file", f"labeler.path={path}", "labeler@judge=lexicon_panel", "labels.n=1"],
                       tmp_path, monkeypatch, [str(path), *expected])


@pytest.mark.slow  # python -m harness; every case in process above (the same code path, minus the interpreter)
def test_a_malformed_label_file_from_the_command_line(tmp_path: Path) -> None:
    data, expected = LABEL_FILES["bad_json"]
    path = tmp_path / "labels.jsonl"
    path.write_bytes(data)
    refused(["labeler=file", f"labeler.path={path}", "labeler@judge=lexicon_panel", "labels.n=1"], tmp_path,
            [str(path), *expected])


def _case_args(case: str, tmp_path: Path) -> list[str]:
    labels = tmp_path / "labels.jsonl"
    labels.write_bytes(jsonl(GOOD, GOOD | {"id": "b"}))
    dataset = tmp_path / "reviews.jsonl"
    dataset.write_text("\n".join(json.dumps({"text": f"review {i} of the place was"}) for i in range(80)) + "\n")
    files = {"labels": labels, "dataset": dataset, "file": tmp_path / "a-file", "unwritable": unwritable(tmp_path)}
    files["file"].write_text("not a directory")
    for name, rows in {"labels_k4": [GOOD | {"responses": [" a.", " b.", " c.", " d."]}] * 2,
                       "ties": [GOOD | {"responses": [" same.", " same."], "id": str(i)} for i in range(2)],
                       "long": [GOOD, GOOD | {"id": "long", "responses": [" fine.", " word" * 3000]}]}.items():
        files[name] = tmp_path / f"{name}.jsonl"
        files[name].write_bytes(jsonl(*rows))
    return [a.format(**files) for a in CONFIG_CASES[case][0]]


def unwritable(tmp_path: Path) -> Path:
    """A directory that cannot be created: under a read-only directory, or for root (who may
    write anywhere) under /sys, where mkdir fails with EPERM."""
    if os.geteuid() == 0:
        return Path("/sys/prefharness-cache")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500, exist_ok=True)
    return locked / "cache"


def refused_in_process(overrides: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                       expected: list[str]) -> None:
    """In process (the CLI's own path minus the interpreter start-up): composing, building and
    preparing the experiment raises InputError naming the key, before any artifact or run."""
    from hydra import compose, initialize_config_dir

    from harness.cli.run import CONFIG_DIR, build_experiment
    from harness.errors import InputError
    from harness.pipeline import run_experiment

    db = tmp_path / "mlflow.db"
    monkeypatch.setenv("PREFHARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    with pytest.raises(InputError) as err:
        with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
            cfg = compose(config_name="config", overrides=["experiment=smoke", *overrides])
        run_experiment(build_experiment(cfg, tmp_path / "run"))
    message = str(err.value)
    assert "\n" not in message
    for fragment in expected:
        assert fragment in message, (fragment, message)
    artifacts = tmp_path / "cache" / "artifacts"
    assert not artifacts.exists() or not any(p.is_dir() for p in artifacts.glob("*/*")), "an artifact was written"
    if db.exists():
        client = mlflow.MlflowClient(f"sqlite:///{db}")
        assert not client.search_runs([e.experiment_id for e in client.search_experiments()]), "a run was created"


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_bad_settings(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refused_in_process(_case_args(case, tmp_path), tmp_path, monkeypatch, CONFIG_CASES[case][1])


@pytest.mark.slow  # python -m harness; in process: test_bad_settings
@pytest.mark.parametrize("case", ["labels_n_text", "dataset_column_missing"])
def test_bad_settings_from_the_command_line(case: str, tmp_path: Path) -> None:
    """The same refusals as the user sees them: one line on stderr, exit 2."""
    refused(_case_args(case, tmp_path), tmp_path, CONFIG_CASES[case][1])


@pytest.mark.parametrize("case,expected", [
    ("no_weights", ["has no weights"]),
    ("no_tokenizer", ["has no tokenizer"]),
    ("vocab_mismatch", ["tokenizer has", "do not belong together"]),
])
def test_bad_model_directories(case: str, expected: list[str], tiny_dirs: dict[str, Path], tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    refused_in_process(["model=hf", f"model.name_or_path={tiny_dirs[case]}"], tmp_path, monkeypatch,
                       [str(tiny_dirs[case]), *expected])


@pytest.mark.slow  # python -m harness -m
def test_unknown_launcher_is_refused_by_hydra(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "harness", "-m", "experiment=smoke", "hydra/launcher=nowhere",
                           f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode != 0
    assert "hydra/launcher/nowhere" in proc.stderr and "Available options" in proc.stderr
    assert not (tmp_path / "sweep").exists()


@pytest.mark.slow  # harness-report in a subprocess
def test_report_selection_matching_no_runs(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    client = mlflow.MlflowClient(f"sqlite:///{db}")
    client.create_run(client.create_experiment("somewhere"))
    out = tmp_path / "reports"
    proc = subprocess.run([sys.executable, "-m", "harness.cli.report", "--tracking-uri", f"sqlite:///{db}",
                           "--experiment", "somewhere", "--tag", "sweep.name=nothing-like-this", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if line.startswith("harness-report: error:")]
    assert len(errors) == 1 and "sweep.name=nothing-like-this" in errors[0]
    assert not out.exists() or not any(out.iterdir())
