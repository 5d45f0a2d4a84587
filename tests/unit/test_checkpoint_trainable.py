"""A checkpoint holds what trains: the frozen parameters are left out, a resume rebuilds them from
the base and loads the rest, and a checkpoint of another module is refused (data/resumable.py)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from harness.data.resumable import Checkpointing


class Two(L.LightningModule):
    """A frozen layer under a trained one, as a policy with its bottom blocks frozen."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.bottom = torch.nn.Linear(16, 16)
        self.bottom.requires_grad_(False)
        self.top = torch.nn.Linear(16, width)

    def training_step(self, batch, batch_idx):  # noqa: ANN001, ANN201
        (x,) = batch
        return self.top(self.bottom(x)).pow(2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW([p for p in self.parameters() if p.requires_grad], lr=0.1)


def loader() -> DataLoader:
    # Two batches an epoch: the first fit ends on an epoch boundary, where a plain loader resumes exactly.
    return DataLoader(TensorDataset(torch.randn(4, 16, generator=torch.Generator().manual_seed(1))), batch_size=2)


def trainer(path: Path, steps: int) -> L.Trainer:
    return L.Trainer(max_steps=steps, callbacks=[Checkpointing(path, 1)], logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")


def test_the_checkpoint_leaves_out_frozen_parameters_and_resumes_as_a_whole_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "stage.ckpt"
    first = Two()
    trainer(path, 2).fit(first, loader())
    saved = torch.load(path, weights_only=False)
    assert set(saved["state_dict"]) == {"top.weight", "top.bias"}
    assert saved["optimizer_states"]
    # Resumed from the base (a fresh module) for 2 more steps ...
    resumed = Two()
    trainer(path, 4).fit(resumed, loader(), ckpt_path=str(path), weights_only=False)
    torch.testing.assert_close(resumed.bottom.weight, first.bottom.weight)  # never trained, never stored
    # ... exactly as from a checkpoint that holds every parameter.
    monkeypatch.setattr(Checkpointing, "on_save_checkpoint", lambda self, trainer, module, checkpoint: None)
    monkeypatch.setattr(Checkpointing, "on_load_checkpoint", lambda self, trainer, module, checkpoint: None)
    whole = tmp_path / "whole.ckpt"
    trainer(whole, 2).fit(Two(), loader())
    assert "bottom.weight" in torch.load(whole, weights_only=False)["state_dict"]
    reference = Two()
    trainer(whole, 4).fit(reference, loader(), ckpt_path=str(whole), weights_only=False)
    torch.testing.assert_close(resumed.top.weight, reference.top.weight, rtol=0, atol=0)


def test_a_checkpoint_of_another_module_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "stage.ckpt"
    trainer(path, 1).fit(Two(), loader())
    saved = torch.load(path, weights_only=False)
    saved["state_dict"]["extra.weight"] = torch.zeros(1)
    torch.save(saved, path)
    with pytest.raises(ValueError, match=r"does not match the module it resumes .*unexpected \['extra.weight'\]"):
        trainer(path, 2).fit(Two(), loader(), ckpt_path=str(path), weights_only=False)


def test_every_name_of_a_tied_frozen_parameter_is_left_out() -> None:
    from harness.data.resumable import frozen_keys

    module = Two()
    module.head = torch.nn.Linear(16, 16, bias=False)
    module.head.weight = module.bottom.weight  # tied, as SmolLM2's output layer is its embedding
    assert frozen_keys(module) == {"bottom.weight", "bottom.bias", "head.weight"}
