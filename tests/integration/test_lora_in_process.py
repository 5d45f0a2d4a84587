"""model.lora on model=tiny, end to end: DPO and PPO train the adapters alone, against the base
with the adapters left out as the reference (no second copy of the weights); the logged policy
holds the adapters; a run without adapters keeps the identity it had before the option."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import open_dict
from transformers import AutoModelForCausalLM

from harness.cli.export import main as export_main
from harness.cli.run import CONFIG_DIR, run_key
from harness.modules.offline_preference import OfflinePreferenceModule
from harness.tracking import RunTracker
from tests.integration.in_process import run_in_process

BASE = ["experiment=smoke", "labels.n=16", "sampling.chunk=16", "eval.n_prompts=8", "model.lora.r=4"]


def test_dpo_trains_the_adapters_alone_against_the_shared_base(tiny_cache: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, object] = {}
    init = OfflinePreferenceModule.__init__

    def spy(self, policy, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        seen["trainable"] = [n for n, p in policy.named_parameters() if p.requires_grad]
        seen["before"] = {n: p.detach().clone() for n, p in policy.named_parameters()}
        seen["policy"] = policy
        return init(self, policy, *args, **kwargs)

    monkeypatch.setattr(OfflinePreferenceModule, "__init__", spy)
    metrics, exp, run, client = run_in_process("lora-dpo", [*BASE, "loss=dpo", f"paths.cache_dir={tiny_cache}"],
                                               tmp_path, monkeypatch)
    assert run.info.status == "FINISHED" and "eval/kl" in metrics
    assert seen["trainable"] and all("lora_" in n for n in seen["trainable"])
    after = dict(seen["policy"].named_parameters())
    moved = [n for n, before in seen["before"].items() if not torch.equal(before, after[n])]
    assert moved and all("lora_" in n for n in moved)  # the adapters trained; no base tensor moved
    assert run.data.params["model.lora.r"] == "4"
    [output] = client.get_run(run.info.run_id).outputs.model_outputs
    stored = Path(client.get_logged_model(output.model_id).artifact_location)
    manifest = json.loads((stored / "manifest.json").read_text())
    assert manifest["lora"]["r"] == 4 and set(manifest["parameters"]) == set(seen["trainable"])
    # harness-export folds the adapters in: a plain transformers model with the policy's outputs.
    try:
        export_main([run.info.run_id, str(tmp_path / "out")])
    except SystemExit as stop:
        assert not stop.code
    exported = AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    ids = torch.arange(1, 20).unsqueeze(0)
    with torch.no_grad():
        torch.testing.assert_close(exported(ids).logits, seen["policy"].eval()(ids).logits, rtol=1e-5, atol=1e-5)


def test_ppo_trains_the_adapters_alone(tiny_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    metrics, _, run, _ = run_in_process("lora-ppo", [*BASE, "loss=ppo", "loss.method.episodes=16",
                                                     "logger.log_model=false", f"paths.cache_dir={tiny_cache}"],
                                        tmp_path, monkeypatch)
    assert run.info.status == "FINISHED" and "eval/proxy_reward" in metrics


def test_without_adapters_a_job_keeps_its_identity(tmp_path: Path) -> None:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=smoke"])
        adapted = compose(config_name="config", overrides=["experiment=smoke", "model.lora.r=4"])
    tracker = RunTracker("x", "y", f"sqlite:///{tmp_path / 'm.db'}")
    before = cfg.copy()
    with open_dict(before):
        del before.model["lora"]  # the config as it was before model.lora existed
    assert run_key(cfg, tracker) == run_key(before, tracker) != run_key(adapted, tracker)
