"""What a run trained, stored apart from the base model it started from, and put back on it.

A trained policy or reward model differs from its base (the `model.source` directory) only in
what training changed: the top `trainable_layers` blocks and the final norm (`loading.
freeze_lower_layers`), a reward model's head and normalisation, and, with init.policy=sft, what
the supervised start changed. `trained_state` keeps exactly the tensors that differ from the
base as `rebuild` builds it: frozen tensors are equal to the base's bit for bit and are left
out, so a SmolLM2 run that trains 15 of 30 blocks stores about 210 MB, not 540. A policy with
LoRA adapters (model.lora) is rebuilt with the same adapters (their shapes from the manifest's
`lora`, their initial values drawn from a fixed seed) and stores the adapters alone. This rule,
rather than `requires_grad`, decides because a reward model loaded from the cache has every
parameter trainable and PPO freezes all of its own. `restore` rebuilds the base, checks every
stored name and shape against it and copies the tensors in: the trained module, exactly.

On disk (a LoggedModel's artifacts, harness/logged_models.py): `trained.safetensors` and
`manifest.json` (kind, the base's `model.source` config, trainable_layers, every tensor's name
and shape, dtype, harness version).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from harness import __version__
from harness.errors import InputError
from harness.models.loading import load_causal_lm
from harness.models.lora import LoraSettings, apply_lora, lora_of
from harness.models.reward import RewardModel

KINDS = ("policy", "reward_model")
WEIGHTS = "trained.safetensors"
MANIFEST = "manifest.json"
FORMAT = 1  # manifest.json's layout; a reader refuses another


def rebuild(kind: str, base_dir: Path, pooling: str = "mean", lora: Mapping[str, Any] | None = None) -> nn.Module:
    """The module as training started it from the base directory: the causal LM (`policy`; with
    `lora`, a LoraSettings.manifest, its adapters drawn from a fixed seed), or a reward model on
    the base's trunk (`reward_model`; its fresh head is always stored, so its initial values do
    not matter, and drawing them leaves the global RNG as it was)."""
    if kind == "policy":
        model = load_causal_lm(base_dir)[0]
        if lora:
            settings = LoraSettings(**{k: v for k, v in lora.items() if k != "layers"})
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(0)
                apply_lora(model, settings, lora.get("layers"))
        return model
    if kind == "reward_model":
        with torch.random.fork_rng(devices=[]):
            return RewardModel.from_policy_dir(base_dir, pooling).eval()
    raise ValueError(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")


def state(module: nn.Module) -> dict[str, torch.Tensor]:
    """Parameters and persistent buffers by name, each tensor once: tied weights (the output
    layer tied to the embedding) under their first name, the one loading writes through."""
    seen: set[tuple[int, int, tuple[int, ...]]] = set()
    tensors = {}
    for name, tensor in module.state_dict().items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if key not in seen:
            seen.add(key)
            tensors[name] = tensor
    return tensors


def trained_state(module: nn.Module, base: nn.Module) -> dict[str, torch.Tensor]:
    """The tensors of `module` that `base` does not give exactly (CPU copies)."""
    reference = state(base)
    trained = {}
    for name, tensor in state(module).items():
        tensor = tensor.detach().cpu()
        before = reference.get(name)
        same = before is not None and before.shape == tensor.shape and before.dtype == tensor.dtype
        if not (same and torch.equal(before, tensor)):
            trained[name] = tensor.contiguous().clone()
    return trained


def save_trained(kind: str, module: nn.Module, base_dir: Path, out: Path,
                 manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Write what `module` changed from the base in `base_dir` to `out` (safetensors) with its
    manifest (`manifest` plus what this function knows: kind, tensors, dtype, size, version);
    returns the manifest written."""
    pooling, lora = getattr(module, "pooling", "mean"), lora_of(module)
    base = rebuild(kind, base_dir, pooling, lora)
    tensors = trained_state(module, base)
    del base
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / WEIGHTS), metadata={"kind": kind})
    written = dict(manifest) | {
        "format": FORMAT, "kind": kind, "harness_version": __version__, "weights": WEIGHTS,
        "dtype": ",".join(sorted({str(t.dtype).removeprefix("torch.") for t in tensors.values()})),
        "n_parameters": sum(t.numel() for t in tensors.values()),
        "n_base_parameters": sum(t.numel() for t in state(module).values()),
        "bytes": (out / WEIGHTS).stat().st_size,
        "parameters": {name: list(t.shape) for name, t in tensors.items()},
    } | ({"pooling": pooling} if kind == "reward_model" else {}) | ({"lora": lora} if lora else {})
    (out / MANIFEST).write_text(json.dumps(written, indent=1) + "\n")
    return written


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of a stored model, checked: its format, kind and tensor list."""
    file = directory / MANIFEST
    try:
        manifest = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{file}: expected the JSON manifest of a trained model, found {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise InputError(f"{file}: format: expected {FORMAT} (prefharness {__version__}), found {found!r}")
    if manifest.get("kind") not in KINDS:
        raise InputError(f"{file}: kind: expected one of {', '.join(KINDS)}, found {manifest.get('kind')!r}")
    if not isinstance(manifest.get("parameters"), dict):
        raise InputError(f"{file}: parameters: expected an object of tensor names to shapes")
    return manifest


def restore(directory: Path, base_dir: Path) -> nn.Module:
    """The trained module: the base in `base_dir` rebuilt, the stored tensors of `directory`
    copied in. Every stored tensor must name a tensor of the base with its shape and dtype,
    and the tensors must be those the manifest lists (InputError otherwise)."""
    manifest = read_manifest(directory)
    file = directory / WEIGHTS
    try:
        tensors = load_file(str(file))
    except (SafetensorError, OSError) as err:
        raise InputError(f"{file}: expected the trained tensors (safetensors), found {err}") from None
    listed = {name: tuple(shape) for name, shape in manifest["parameters"].items()}
    stored = {name: tuple(t.shape) for name, t in tensors.items()}
    if listed != stored:
        differ = sorted(set(listed) ^ set(stored)) or sorted(n for n in listed if listed[n] != stored[n])
        raise InputError(f"{file}: expected the tensors {directory / MANIFEST} lists, found another set "
                         f"(e.g. {differ[:3]})")
    module = rebuild(manifest["kind"], base_dir, manifest.get("pooling", "mean"), manifest.get("lora"))
    target = state(module)
    unknown = [n for n in tensors if n not in target]
    if unknown:
        raise InputError(f"{file}: {len(unknown)} tensors are not in the base model {base_dir} (e.g. {unknown[:3]}): "
                         "it is not the base this model was trained from")
    wrong = [f"{n} {tuple(t.shape)} {t.dtype} vs {tuple(target[n].shape)} {target[n].dtype}"
             for n, t in tensors.items() if t.shape != target[n].shape or t.dtype != target[n].dtype]
    if wrong:
        raise InputError(f"{file}: tensors do not fit the base model {base_dir}: {'; '.join(wrong[:3])}")
    with torch.no_grad():
        for name, tensor in tensors.items():
            target[name].copy_(tensor)
    return module.eval()
