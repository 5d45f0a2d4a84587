"""harness/distributed.py across two real processes (gloo), worked by hand: shares of 3 and 2
rows of a 5-row batch; the share weights n·W/N make the average of the
processes' means the mean over the five rows; the global mean (KTO's z0) is over all five."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from harness.distributed import global_mean, processes, rank_and_world, share_weight

ROWS = [[1.0, 2.0, 6.0], [3.0, 8.0]]  # process 0's share, process 1's


def _worker(rank: int, store: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        values = torch.tensor(ROWS[rank])
        weight = share_weight(len(ROWS[rank]))
        loss = values.mean() * weight  # what a module returns; DDP averages it over the processes
        total = loss.clone()
        dist.all_reduce(total)
        torch.save({"rank": rank_and_world(), "weight": weight, "average": total.item() / 2,
                    "z0": global_mean(values).item()}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_share_weights_and_the_global_mean_by_hand(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(str(tmp_path / "store"), str(tmp_path / "out")), nprocs=2, join=True)
    first, second = (torch.load(tmp_path / f"out.{r}") for r in (0, 1))
    assert first["rank"] == (0, 2) and second["rank"] == (1, 2)
    assert first["weight"] == 3 * 2 / 5 and second["weight"] == 2 * 2 / 5  # n·W/N
    # By hand: process means 3 and 5.5, weighted 1.2 and 0.8, averaged: (3.6 + 4.4) / 2 = 4 = 20 / 5
    assert first["average"] == second["average"] == 4.0
    assert first["z0"] == second["z0"] == 4.0  # (1 + 2 + 6 + 3 + 8) / 5, not (3 + 5.5) / 2
    assert rank_and_world() == (0, 1) and share_weight(7) == 1.0  # alone
    assert global_mean(torch.tensor(ROWS[0])).item() == 3.0


def test_processes_counts_devices_and_nodes() -> None:
    assert processes({"devices": 1}) == 1 and processes({"devices": 2, "num_nodes": 2}) == 4
    assert processes({"devices": "0,1"}) == 2 and processes({"devices": [0, 1, 2]}) == 3
    assert processes({"devices": "auto"}) == 1
