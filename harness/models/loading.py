"""The one code path that loads a policy: `from_pretrained` on a model directory."""

from __future__ import annotations

from pathlib import Path

import torch
from harness.errors import InputError
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def check_model_dir(path: Path) -> None:
    if not path.is_dir():
        raise InputError(f"model directory {path} does not exist")
    if not (path / "config.json").exists():
        raise InputError(f"model directory {path} has no config.json")
    if not any((path / f).exists() for f in WEIGHT_FILES):
        raise InputError(f"model directory {path} has no weights (expected one of {', '.join(WEIGHT_FILES)})")
    if not any((path / f).exists() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        raise InputError(f"model directory {path} has no tokenizer (tokenizer.json or tokenizer_config.json)")


def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(path)
    # Prompts are left-padded so that generated tokens line up at the same positions.
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(
    path: Path, dtype: torch.dtype = torch.float32
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Model and tokenizer from a directory, checked against each other."""
    check_model_dir(path)
    tokenizer = load_tokenizer(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    vocab = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > vocab:
        raise InputError(
            f"{path}: the tokenizer has {len(tokenizer)} tokens but the model's embedding has "
            f"{vocab} rows; they do not belong together"
        )
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def freeze_lower_layers(model: PreTrainedModel, trainable_layers: int | None, key: str = "model.trainable_layers",
                        minimum: int = 1) -> None:
    """Train only the top `trainable_layers` decoder blocks and the final norm.

    Embeddings (tied to the output layer in the models here) and the lower blocks stay frozen,
    so backpropagation stops at the lowest trainable block. None trains everything; 0 (where
    `minimum` allows it: a reward model's trunk under a trainable head) freezes the whole
    model. Works on a causal LM or on a bare trunk; `key` names the setting in errors.
    """
    if trainable_layers is None:
        return
    layers = getattr(model.get_decoder(), "layers", None)
    if layers is None:
        raise InputError(f"{type(model).__name__}: no decoder `layers` to freeze; set {key}=null")
    if not minimum <= trainable_layers <= len(layers):
        raise InputError(f"{key}={trainable_layers}: expected {minimum}..{len(layers)} or null")
    model.requires_grad_(False)
    if trainable_layers == 0:
        return
    for block in layers[len(layers) - trainable_layers :]:
        block.requires_grad_(True)
    norm = getattr(model.get_decoder(), "norm", None)
    if norm is not None:
        norm.requires_grad_(True)
