"""The size of a demo-shaped SmolLM2-135M checkpoint (top 15 of 30 blocks trained, AdamW's two
moments for them) with every parameter, as checkpoints held them before, and with the trainable
ones only (data/resumable.py: Checkpointing), and with LoRA adapters (model.lora.r=16 on the same
15 blocks) in their place: the files torch.save writes for each.

    python -m bench.checkpoint_size     # the converted model from the cache ($PREFHARNESS_CACHE)
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

from bench.common import cache_dir
from harness.data.resumable import frozen_keys
from harness.models.loading import freeze_lower_layers, load_causal_lm
from harness.models.lora import LoraSettings, adapt


def main() -> None:
    found = [p for p in (cache_dir() / "models").glob("smollm2_135m-*") if p.is_dir()]
    if not found:
        raise SystemExit("no converted SmolLM2-135M in the cache: run `harness experiment=demo` once first")
    for lora in (False, True):
        model, _ = load_causal_lm(found[0])
        freeze_lower_layers(model, 15)
        if lora:
            adapt(model, LoraSettings(r=16), 15)
        state = model.state_dict()
        frozen = frozen_keys(model)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = {i: {"step": torch.tensor(1.0), "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
                     for i, p in enumerate(trainable)}
        kinds = (("every parameter", state),) if not lora else ()
        with tempfile.TemporaryDirectory() as tmp:
            for name, kept in (*kinds, ("LoRA r=16, trainable only" if lora else "trainable only",
                                        {k: v for k, v in state.items() if k not in frozen})):
                path = Path(tmp) / "stage.ckpt"
                torch.save({"state_dict": kept, "optimizer_states": [{"state": optimizer}]}, path)
                print(f"{name}: {os.path.getsize(path) / 1e6:.1f} MB ({len(kept)} tensors; trainable parameters: "
                      f"{sum(p.numel() for p in trainable):,} of {sum(p.numel() for p in model.parameters()):,})")


if __name__ == "__main__":
    main()
