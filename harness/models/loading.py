"""The one code path that loads a policy: `from_pretrained` on a model directory.

`check_model_dir` refuses a broken directory (InputError naming the file) without loading
the weights: the config must parse and name a model type transformers knows, and the weight
files transformers would read must be whole (safetensors headers only; pickles are not opened).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch
import transformers
from harness.errors import InputError
from safetensors import SafetensorError, safe_open
from transformers import (AutoConfig, AutoModelForCausalLM, AutoTokenizer, PretrainedConfig, PreTrainedModel,
                          PreTrainedTokenizerBase)
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

# In the order transformers prefers them; it reads the first one present.
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")

T = TypeVar("T")


def _first_line(err: BaseException, limit: int = 200) -> str:
    text = next((line.strip() for line in str(err).splitlines() if line.strip()), type(err).__name__)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_config(path: Path) -> PretrainedConfig:
    file = path / "config.json"
    try:
        config = json.loads(file.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{file}: expected a JSON model config, found invalid JSON ({_first_line(err)})") from None
    except OSError as err:
        raise InputError(f"{file}: expected a readable JSON model config, found {err.strerror or err}") from None
    if not isinstance(config, dict):
        raise InputError(f"{file}: expected a JSON model config, found a JSON {type(config).__name__}, not an object")
    model_type = config.get("model_type")
    if model_type is not None and (not isinstance(model_type, str) or model_type not in CONFIG_MAPPING):
        raise InputError(f"{file}: model_type: expected a model type transformers knows, found {model_type!r}, which "
                         f"transformers {transformers.__version__} does not know (a typo, or a newer model?)")
    try:
        return AutoConfig.from_pretrained(path)
    except Exception as err:
        if model_type is None:  # transformers then guesses the type from the path, and failed
            raise InputError(f"{file}: model_type: expected a model type transformers knows, found no model_type "
                             "key, so transformers does not know the model") from err
        raise InputError(f"{file}: transformers could not read the config: {_first_line(err)}") from err


def _declared_size(file: Path, size: int) -> int | None:
    """The file size a safetensors header declares (8 + header + tensor data), or None."""
    try:
        with file.open("rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if n > size - 8:
                return None
            header = json.loads(f.read(n))
        return 8 + n + max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None


def _check_safetensors(file: Path) -> None:
    """The header parses and the tensors' data offsets cover the file exactly. safe_open checks
    both (a truncated or padded file fails) and maps the file without reading the tensors."""
    if not file.is_file():
        raise InputError(f"{file}: expected a safetensors file, found no such file")
    size = file.stat().st_size
    try:
        with safe_open(str(file), framework="pt"):
            pass
    except (SafetensorError, OSError) as err:
        declared = _declared_size(file, size)
        if size == 0:
            found = "an empty file"
        elif declared is not None and declared != size:
            how = "cut short: a partial copy or download?" if size < declared else "bytes after the last tensor"
            found = f"{size} bytes where its header declares {declared} ({how})"
        else:
            found = f"{size} bytes that do not parse as one ({_first_line(err)})"
        raise InputError(f"{file}: expected a safetensors file, found {found}") from None


def _check_index(index: Path) -> None:
    """A sharded checkpoint: the index parses and every shard it names is there and whole."""
    try:
        content = json.loads(index.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        found = f"invalid JSON ({_first_line(err)})"
        raise InputError(f"{index}: expected a JSON index of weight shards, found {found}") from None
    weight_map = content.get("weight_map") if isinstance(content, dict) else None
    if not isinstance(weight_map, dict) or not weight_map or not all(isinstance(s, str) for s in weight_map.values()):
        raise InputError(f"{index}: weight_map: expected an object of tensor names to shard files, found "
                         f"{json.dumps(weight_map)[:80]}")
    for shard in sorted(set(weight_map.values())):
        file = index.parent / shard
        if shard.endswith(".safetensors"):
            _check_safetensors(file)
        elif not file.is_file() or file.stat().st_size == 0:
            raise InputError(f"{file}: expected a weight shard named in {index.name}, found "
                             f"{'an empty file' if file.is_file() else 'no such file'}")


def check_model_dir(path: Path) -> PretrainedConfig:
    """Refuse a directory transformers cannot load, without loading the weights; returns its config."""
    if not path.is_dir():
        raise InputError(f"model directory {path} does not exist")
    if not (path / "config.json").exists():
        raise InputError(f"model directory {path} has no config.json")
    weights = next((path / f for f in WEIGHT_FILES if (path / f).exists()), None)
    if weights is None:
        raise InputError(f"model directory {path} has no weights (expected one of {', '.join(WEIGHT_FILES)})")
    if not any((path / f).exists() for f in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")):
        raise InputError(f"model directory {path} has no tokenizer (tokenizer.json or tokenizer_config.json)")
    config = _check_config(path)
    if weights.name.endswith(".index.json"):
        _check_index(weights)
    elif weights.suffix == ".safetensors":
        _check_safetensors(weights)
    elif not weights.is_file() or weights.stat().st_size == 0:  # a pickle: not opened before from_pretrained
        found = "an empty file" if weights.is_file() else "a directory"
        raise InputError(f"{weights}: expected PyTorch weights, found {found}")
    return config


def _from_pretrained(path: Path, what: str, load: Callable[[], T]) -> T:
    """`load()`, with whatever transformers raises on this directory as one InputError line."""
    try:
        return load()
    except (InputError, MemoryError, torch.OutOfMemoryError):
        raise
    except Exception as err:
        raise InputError(f"{path}: transformers could not load the {what}: {_first_line(err)}") from err


def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    tokenizer = _from_pretrained(path, "tokenizer", lambda: AutoTokenizer.from_pretrained(path))
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
    model = _from_pretrained(path, "model", lambda: AutoModelForCausalLM.from_pretrained(path, dtype=dtype))
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
