"""Data parallelism on model=tiny (`+trainer.strategy=ddp_fork trainer.devices=2`, two CPU
processes over gloo): DPO, KTO, the reward model and SFT each end as one MLflow run whose
training curve and evaluation are the single-process run's on the same data. The batch of
`train.batch_size` is the global one, shared out between the processes (each loss weighted by
its share, KTO's reference point all-reduced), so the two differ only by the order of float
sums: the tolerance is 1e-5 relative on the losses and 1e-4 on the evaluation. PPO refuses."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from harness.errors import InputError
from tests.integration.in_process import run_in_process

BASE = ["experiment=smoke", "labels.n=16", "sampling.chunk=16", "eval.n_prompts=8", "logger.log_model=false",
        "train.batch_size=5"]  # 5 rows over 2 processes: unequal shares
DDP = ["+trainer.strategy=ddp_fork", "trainer.devices=2", "threads=1"]
CURVES = {"dpo": "train/loss", "kto": "train/loss", "reward_model": "rm_train/loss", "sft": "train/loss"}


def _curve(client: mlflow.MlflowClient, run_id: str, key: str) -> list[float]:
    return [m.value for m in sorted(client.get_metric_history(run_id, key), key=lambda m: m.step)]


@pytest.mark.parametrize("loss", sorted(CURVES))
def test_two_processes_train_as_one(loss: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = {}
    for name, extra in (("one", []), ("two", DDP)):
        # Each with its own cache: the reward model would otherwise be the first run's artifact.
        metrics, _, run, client = run_in_process(f"ddp-{loss}-{name}", [*BASE, f"loss={loss}", *extra,
                                                                        f"paths.cache_dir={tmp_path / name}"],
                                                 tmp_path / f"run-{name}", monkeypatch)
        assert run.info.status == "FINISHED"
        assert len(client.search_runs([run.info.experiment_id])) == 1  # one MLflow run, not one per process
        results[name] = (metrics, _curve(client, run.info.run_id, CURVES[loss]))
    (one, one_curve), (two, two_curve) = results["one"], results["two"]
    assert len(one_curve) >= 3 and two_curve == pytest.approx(one_curve, rel=1e-5)
    for key in ("eval/gold_reward", "eval/kl", "eval/winrate_vs_init"):
        assert two[key] == pytest.approx(one[key], rel=1e-4, abs=1e-6), key


def test_ppo_refuses_several_processes(tiny_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match=r"loss=ppo does not train as several processes yet"):
        run_in_process("ddp-ppo", [*BASE, "loss=ppo", *DDP, f"paths.cache_dir={tiny_cache}"], tmp_path, monkeypatch)
