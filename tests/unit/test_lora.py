"""LoRA adapters on the policy (harness/models/lora.py): only the adapters train, in the top
`trainable_layers` blocks; at the start the adapted model is the base exactly; the reference is
the base with the adapters left out, sharing the policy's tensors; what is stored of a LoRA policy
is its adapters, and exporting folds them into a plain model with the same outputs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from harness.errors import InputError
from harness.models.loading import freeze_lower_layers, load_causal_lm
from harness.models.lora import LoraSettings, adapt, lora_of, merge_adapters, reference_of
from harness.models.saved import restore, save_trained
from harness.models.sources import TinyRandom
from harness.models.trunk import frozen_blocks

CORPUS = ["the film was good and the food was bad"] * 20 + ["a quiet year in the old town"] * 20
LAYERS = 4
IDS = torch.tensor([[3, 4, 5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, 16, 17, 18]])


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return TinyRandom(vocab_size=300, num_layers=LAYERS).materialize(tmp_path_factory.mktemp("cache"), lambda: CORPUS)


def adapted(tiny_dir: Path, trainable_layers: int | None = 2, r: int = 4) -> torch.nn.Module:
    model, _ = load_causal_lm(tiny_dir)
    freeze_lower_layers(model, trainable_layers)
    return adapt(model, LoraSettings(r=r, alpha=8.0, target_modules=["q_proj", "v_proj", "down_proj"]),
                 trainable_layers)


def logits(model: torch.nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return model(IDS).logits


def perturb(model: torch.nn.Module) -> None:
    """What training does to the adapters: B (zero at the start) moves."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(name)))


def test_only_the_adapters_of_the_top_blocks_train_and_start_as_the_base(tiny_dir: Path) -> None:
    base, _ = load_causal_lm(tiny_dir)
    model = adapted(tiny_dir)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_A" in n or "lora_B" in n for n in trainable)
    assert {n.split(".")[2] for n in trainable} == {"2", "3"}  # the top 2 of 4 blocks
    assert {n.split(".")[-4] for n in trainable} == {"q_proj", "v_proj", "down_proj"}
    # r·(in + out) per adapted layer: q (64→64), v (64→32: 2 kv heads of 16), down (128→64).
    assert sum(p.numel() for n, p in model.named_parameters() if p.requires_grad) == 2 * 4 * (128 + 96 + 192)
    assert frozen_blocks(model) == 2  # the boundary states below stay valid
    torch.testing.assert_close(logits(model), logits(base), rtol=0, atol=0)  # B = 0: the base exactly
    assert lora_of(model)["layers"] == [2, 3] and lora_of(base) is None
    everywhere = adapted(tiny_dir, trainable_layers=None)
    assert {n.split(".")[2] for n, p in everywhere.named_parameters() if p.requires_grad} == {"0", "1", "2", "3"}


def test_the_reference_is_the_base_and_shares_the_policys_tensors(tiny_dir: Path) -> None:
    base, _ = load_causal_lm(tiny_dir)
    model = adapted(tiny_dir)
    reference = reference_of(model)
    held = {p.data_ptr() for p in model.parameters()}
    assert all(p.data_ptr() in held for p in reference.parameters())  # no second copy
    assert not any(p.requires_grad for p in reference.parameters())
    assert all(p.requires_grad for n, p in model.named_parameters() if "lora_" in n)  # the policy still trains
    perturb(model)
    assert not torch.equal(logits(model), logits(base))
    torch.testing.assert_close(logits(reference), logits(base), rtol=0, atol=0)
    assert reference.lm_head.weight is reference.get_input_embeddings().weight  # the tie kept


def test_a_lora_policy_is_stored_as_its_adapters_and_exported_as_a_plain_model(tiny_dir: Path, tmp_path: Path) -> None:
    model = adapted(tiny_dir)
    perturb(model)
    manifest = save_trained("policy", model, tiny_dir, tmp_path / "saved", {})
    assert manifest["lora"]["r"] == 4 and manifest["lora"]["layers"] == [2, 3]
    assert manifest["parameters"] and all("lora_" in name for name in manifest["parameters"])
    assert manifest["n_parameters"] == 2 * 4 * (128 + 96 + 192)
    restored = restore(tmp_path / "saved", tiny_dir)
    torch.testing.assert_close(logits(restored), logits(model), rtol=0, atol=0)
    plain = merge_adapters(restored)
    assert lora_of(plain) is None and not any("lora_" in n for n, _ in plain.named_parameters())
    torch.testing.assert_close(logits(plain), logits(model), rtol=1e-5, atol=1e-5)
    plain.save_pretrained(tmp_path / "plain")  # what harness-export writes: transformers loads it as is
    again = AutoModelForCausalLM.from_pretrained(tmp_path / "plain")
    torch.testing.assert_close(logits(again), logits(model), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("settings", "message"), [
    ({"r": -1}, r"model\.lora\.r: expected an integer ≥ 0"),
    ({"r": 4, "alpha": 0}, r"model\.lora\.alpha: expected a scale > 0"),
    ({"r": 4, "dropout": 1.0}, r"model\.lora\.dropout: expected a probability in \[0, 1\)"),
])
def test_bad_settings_are_refused(settings: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        LoraSettings(**settings)


def test_a_target_that_names_no_layer_is_refused(tiny_dir: Path) -> None:
    model, _ = load_causal_lm(tiny_dir)
    with pytest.raises(InputError, match=r"model\.lora\.target_modules: \['qkv'\] name no linear layer"):
        adapt(model, LoraSettings(r=4, target_modules=["q_proj", "qkv"]), None)
