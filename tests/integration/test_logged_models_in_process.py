"""The trained result is findable: a run on the tiny model logs what it trained as MLflow
LoggedModels linked to the run (only what differs from the base: the trainable tensors), and
`harness-export` (its main, in process) writes it back from MLflow and the manifest alone, in a
fresh cache, as the model the run trained."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM

from harness import pipeline
from harness.cli.export import main as export_main
from harness.data.collate import pack
from harness.logged_models import KIND_TAG, log_trained_models
from harness.models.loading import freeze_lower_layers
from harness.models.reward import RewardModel
from harness.models.saved import MANIFEST, WEIGHTS
from tests.integration.in_process import run_in_process

# experiment=smoke with the top one of the tiny model's two blocks trained: a frozen block and
# embedding that must not be stored.
SMALL = ["experiment=smoke", "model.trainable_layers=1"]


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What the run's method trained (its EvalPolicy's trained_modules), as the pipeline hands
    it to log_trained_models."""
    modules: dict[str, Any] = {}

    def capture(exp: Any, trained: Any) -> list[str]:
        modules.update(trained.trained_modules())
        return log_trained_models(exp, trained)

    monkeypatch.setattr(pipeline, "log_trained_models", capture)
    return modules


def logged(client: Any, run: Any) -> dict[str, Any]:
    """The run's LoggedModels by kind, read back through the run's outputs (the Models column)."""
    models = [client.get_logged_model(o.model_id) for o in client.get_run(run.info.run_id).outputs.model_outputs]
    assert all(m.status == "READY" and m.source_run_id == run.info.run_id for m in models)
    return {m.tags[KIND_TAG]: m for m in models}


def manifest(model: Any) -> dict[str, Any]:
    return json.loads((Path(model.artifact_location) / MANIFEST).read_text())


def export(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """harness-export's exit code (0: wrote the model) and its stderr (its own alone)."""
    capsys.readouterr()
    try:
        export_main(args)
    except SystemExit as stop:
        return int(stop.code or 0), capsys.readouterr().err
    return 0, capsys.readouterr().err


def test_a_run_logs_its_trained_policy_and_export_gives_it_back(
        tiny_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, captured: dict[str, Any],
        capsys: pytest.CaptureFixture[str]) -> None:
    _, exp, run, client = run_in_process("logged-models-dpo", [*SMALL, "loss=dpo", f"paths.cache_dir={tiny_cache}"],
                                         tmp_path / "run", monkeypatch)
    models = logged(client, run)
    assert set(models) == {"policy"} and set(captured) == {"policy"}
    policy = captured["policy"].eval()
    stored = manifest(models["policy"])
    trainable = {name: p for name, p in policy.named_parameters() if p.requires_grad}
    assert set(stored["parameters"]) == set(trainable)  # the top block and final norm, no frozen tensor
    assert stored["n_parameters"] == sum(p.numel() for p in trainable.values()) < stored["n_base_parameters"]
    assert stored["kind"] == "policy" and stored["trainable_layers"] == 1 and stored["model"]["name"] == "tiny"
    assert stored["model"]["source"]["_target_"] == "harness.models.sources.TinyRandom"
    assert (Path(models["policy"].artifact_location) / WEIGHTS).is_file()

    # From MLflow and the manifest alone: another machine's empty cache rebuilds the base.
    monkeypatch.setenv("PREFHARNESS_CACHE", str(tmp_path / "fresh-cache"))
    code, err = export([run.info.run_id, str(tmp_path / "out")], capsys)
    assert code == 0, err
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    ids = torch.arange(1, 20).unsqueeze(0)
    with torch.no_grad():
        torch.testing.assert_close(exported(ids).logits, policy(ids).logits, rtol=0, atol=0)

    # A model the run did not train, a run that does not exist: one line each, exit 2.
    code, err = export([run.info.run_id, str(tmp_path / "rm"), "--model", "reward_model"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"harness-export: error: run {run.info.run_id} (loss=dpo) logged no reward_model"), err
    code, err = export(["0123456789abcdef0123456789abcdef", str(tmp_path / "none")], capsys)
    assert code == 2 and err.count("\n") == 1
    assert "run 0123456789abcdef0123456789abcdef: no such run in the MLflow store" in err, err
    assert not (tmp_path / "none").exists() and not (tmp_path / "rm").exists()


def test_best_of_n_logs_its_reward_model_alone(tiny_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               captured: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    _, exp, run, client = run_in_process("logged-models-best-of-n",
                                         [*SMALL, "loss=best_of_n", f"paths.cache_dir={tiny_cache}"],
                                         tmp_path / "run", monkeypatch)
    models = logged(client, run)
    assert set(models) == {"reward_model"}  # the policy is the initial one, untrained
    rm = captured["reward_model"].eval()
    # What the reward-model stage trains: the trunk's top block and norm, the head, the normalisation.
    base = exp.model_source.materialize(exp.cache_dir, lambda: (e.prompt for e in exp.task.examples("train")))
    fresh = RewardModel.from_policy_dir(base)
    freeze_lower_layers(fresh.trunk, 1, minimum=0)
    trainable = {n for n, p in fresh.named_parameters() if p.requires_grad} | {"offset", "scale"}
    stored = manifest(models["reward_model"])
    assert set(stored["parameters"]) == trainable and stored["pooling"] == rm.pooling

    code, err = export([run.info.run_id, str(tmp_path / "out"), "--model", "reward_model"], capsys)
    assert code == 0, err
    loaded = RewardModel.load(tmp_path / "out")
    prompts, responses = [list(range(1, 9))] * 2, [list(range(9, 15)), list(range(20, 23))]
    batch = pack(prompts, responses, 0)
    with torch.no_grad():
        torch.testing.assert_close(loaded(batch), rm(batch), rtol=0, atol=0)
    code, err = export([run.info.run_id, str(tmp_path / "policy")], capsys)
    assert code == 2 and "logged no policy, only reward_model: use --model reward_model" in err, err


def test_log_model_false_logs_nothing() -> None:
    """logger.log_model=false: the trained modules are neither asked for nor stored."""
    class Trained:
        def trained_modules(self) -> dict[str, Any]:
            raise AssertionError("asked for the trained modules with logger.log_model=false")

    assert log_trained_models(SimpleNamespace(log_model=False), Trained()) == []  # type: ignore[arg-type]
