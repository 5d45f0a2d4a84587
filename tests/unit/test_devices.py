"""trainer=gpu on a machine without a GPU, and more than one process other than forked CPU
processes (trainer.strategy=ddp_fork), are refused in one line before anything runs
(cli/run.py: check_devices), instead of failing deep in a run or hanging on the job lock."""

from __future__ import annotations

import pytest
import torch

from harness.cli.run import check_devices
from harness.errors import InputError


def test_a_gpu_where_torch_sees_none_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(InputError, match=r"trainer\.accelerator=gpu: torch .* sees no CUDA GPU .*use trainer=cpu"):
        check_devices({"accelerator": "gpu", "devices": "auto"})
    check_devices({"accelerator": "cpu", "devices": 1})
    check_devices({"accelerator": "cpu", "devices": "auto"})


@pytest.mark.parametrize("trainer", [
    {"accelerator": "cpu", "devices": 2},
    {"accelerator": "cpu", "devices": 1, "strategy": "ddp"},
    {"accelerator": "cpu", "devices": 1, "num_nodes": 2},
    {"accelerator": "gpu", "devices": "auto"},  # two GPUs visible
    {"accelerator": "gpu", "devices": "0,1"},
    {"accelerator": "gpu", "devices": 2, "strategy": "ddp_fork"},  # forked after the parent used CUDA
])
def test_more_than_one_process_is_refused_rather_than_left_to_hang(trainer: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(InputError, match=r"several processes train together only as trainer\.strategy=ddp_fork"):
        check_devices(trainer)
    check_devices({"accelerator": "gpu", "devices": 1})


def test_forked_cpu_processes_are_the_data_parallel_path() -> None:
    check_devices({"accelerator": "cpu", "devices": 2, "strategy": "ddp_fork"})
    for refused in ({"accelerator": "cpu", "devices": 2, "strategy": "ddp_fork", "num_nodes": 2},
                    {"accelerator": "cpu", "devices": 2, "strategy": "ddp_spawn"}):
        with pytest.raises(InputError, match="trainer.strategy=ddp_fork with trainer.accelerator=cpu"):
            check_devices(refused)
