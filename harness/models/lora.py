"""LoRA adapters on the policy (`model.lora.r` > 0), through `peft`.

The policy's linear layers named in `model.lora.target_modules`, in the top
`model.trainable_layers` decoder blocks (all blocks when null), get a low-rank update
W x + (α / r) · B A x (Hu et al. 2021; A drawn, B zero, so training starts from the initial
policy exactly); every weight of the base is frozen and only A and B train. Adapters are
injected in place (`peft.inject_adapter_in_model`): the model stays a transformers model with
the same module paths, so the sampler, the boundary states below the lowest adapted block
(models/trunk.py) and the Trainer see nothing new.

The reference (the initial policy) is the base with the adapters left out: `reference_of`
builds a second module whose every tensor *is* the policy's frozen base tensor (shared, not
copied), so KL terms and the eval KL cost no second copy of the weights. What a run stores of
a LoRA policy (its resumable checkpoints, the cached and logged policy) is the adapters: the
base tensors are equal to the base model's and are left out (models/saved.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from harness.errors import InputError

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
MARK = "lora_"  # in the name of every adapter tensor


@dataclass(frozen=True)
class LoraSettings:
    """`model.lora.*`: rank `r` (0: no adapters, the whole block trains as `trainable_layers`
    says), scale `alpha` (the update is multiplied by alpha / r), `dropout` on the adapter's
    input, and the linear layers adapted, by name."""

    r: int = 0
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: Sequence[str] = field(default=TARGETS)

    def __post_init__(self) -> None:
        if not isinstance(self.r, int) or self.r < 0:
            raise InputError(f"model.lora.r: expected an integer ≥ 0 (0: no adapters), got {self.r!r}")
        if not self.alpha > 0:
            raise InputError(f"model.lora.alpha: expected a scale > 0, got {self.alpha!r}")
        if not 0 <= self.dropout < 1:
            raise InputError(f"model.lora.dropout: expected a probability in [0, 1), got {self.dropout!r}")
        if not self.target_modules or not all(isinstance(t, str) and t for t in self.target_modules):
            raise InputError(f"model.lora.target_modules: expected a list of module names, got {self.target_modules!r}")
        object.__setattr__(self, "target_modules", tuple(self.target_modules))

    @property
    def enabled(self) -> bool:
        return self.r > 0

    def manifest(self, layers: Sequence[int] | None) -> dict[str, Any]:
        """What rebuilds the adapters' shapes on a base: stored beside a saved LoRA policy."""
        return asdict(self) | {"target_modules": list(self.target_modules), "layers": list(layers) if layers else None}


def adapted_layers(model: nn.Module, trainable_layers: int | None) -> list[int] | None:
    """The decoder blocks that get adapters: the top `trainable_layers`, or None for all."""
    if trainable_layers is None:
        return None
    n = len(model.get_decoder().layers)
    return list(range(n - trainable_layers, n))


def apply_lora(model: nn.Module, settings: LoraSettings, layers: Sequence[int] | None) -> nn.Module:
    """Inject the adapters into `model` in place (blocks `layers`, None: all) and freeze everything
    else; returns the model. Names in target_modules that match no layer are refused."""
    from peft import LoraConfig, inject_adapter_in_model

    present = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, nn.Linear)}
    missing = [t for t in settings.target_modules if t not in present]
    if missing:
        raise InputError(f"model.lora.target_modules: {missing} name no linear layer of {type(model).__name__} "
                         f"(it has {sorted(present)})")
    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=list(settings.target_modules), bias="none",
                        layers_to_transform=list(layers) if layers else None, layers_pattern="layers" if layers else None)
    model.requires_grad_(False)
    inject_adapter_in_model(config, model)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(MARK in name)
    model._harness_lora = settings.manifest(layers)  # noqa: SLF001 - read by saved.py and reference_of
    return model


def adapt(model: nn.Module, settings: LoraSettings, trainable_layers: int | None) -> nn.Module:
    """`model` with adapters when `settings` asks for them (r > 0), else as it is."""
    if settings.enabled:
        apply_lora(model, settings, adapted_layers(model, trainable_layers))
    return model


def lora_of(model: nn.Module) -> dict[str, Any] | None:
    """The adapters' manifest (LoraSettings.manifest) of a model with adapters, else None."""
    return getattr(model, "_harness_lora", None)


def reference_of(policy: nn.Module) -> nn.Module:
    """The base model under `policy`'s adapters, as a module of its own whose tensors are the
    policy's frozen base tensors (no copy): the initial policy, for the reference passes."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        base = AutoModelForCausalLM.from_config(policy.config)
    source = dict(policy.named_parameters(remove_duplicate=False)) | dict(policy.named_buffers(remove_duplicate=False))
    for kind, named in (("parameter", base.named_parameters(remove_duplicate=False)),
                        ("buffer", base.named_buffers(remove_duplicate=False))):
        for name, _ in list(named):
            owner, _, leaf = name.rpartition(".")
            tensor = source.get(f"{owner}.base_layer.{leaf}", source.get(name))
            if tensor is None:
                raise InputError(f"{type(policy).__name__}: {name} has no counterpart in the adapted policy")
            module = base.get_submodule(owner) if owner else base
            if kind == "parameter":
                setattr(module, leaf, tensor if isinstance(tensor, nn.Parameter) else nn.Parameter(tensor, False))
            else:
                module._buffers[leaf] = tensor  # noqa: SLF001 - keeps the buffer's persistence flag
    base.generation_config = policy.generation_config
    return base.eval().requires_grad_(False)


def merge_adapters(model: nn.Module) -> nn.Module:
    """`model` with its adapters folded into the weights they adapt (W + (α/r) B A) and removed: a
    plain transformers model again, as `save_pretrained` should write it. In place; returns it."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for name, module in list(model.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge()
            owner, _, leaf = name.rpartition(".")
            setattr(model.get_submodule(owner) if owner else model, leaf, module.get_base_layer())
    if hasattr(model, "_harness_lora"):
        del model._harness_lora
    return model


def initial_reference(policy_dir: Path, policy: nn.Module) -> nn.Module:
    """The initial policy as the reference: with adapters, the policy's own base (shared tensors);
    otherwise loaded again from `policy_dir`."""
    if lora_of(policy) is not None:
        return reference_of(policy)
    from harness.models.loading import load_causal_lm

    return load_causal_lm(policy_dir)[0]
