"""A run whose policy trains only its top blocks records the boundary states while sampling
(an artifact per chunk of the pool) and trains DPO and KTO from them (KTO's mismatched pairs'
states computed once): the same run as one that runs the frozen blocks at every step, to
rounding."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import stages
from tests.integration.in_process import run_in_process

OVERRIDES = ["experiment=smoke", "model.trainable_layers=1", "sampling.chunk=16"]


def _run(name: str, loss: str, cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    metrics, *_ = run_in_process(name, [*OVERRIDES, f"loss={loss}", f"paths.cache_dir={cache}"], tmp_path, monkeypatch)
    return metrics


@pytest.mark.parametrize("loss", ["dpo", "kto"])
def test_training_from_the_samplers_boundary_states_is_the_full_forward_run(loss: str, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    used = []
    attach = stages.StateTable.attach

    def spy(self, batch):  # noqa: ANN001, ANN202
        used.append(self.k)
        return attach(self, batch)

    monkeypatch.setattr(stages.StateTable, "attach", spy)
    with_states = _run(f"states-on-{loss}", loss, tmp_path / "a", tmp_path, monkeypatch)
    boundary = tmp_path / "a" / "artifacts" / "boundary"
    assert sum(p.is_dir() for p in boundary.iterdir()) == 2  # labels.n=32: two chunks of 16, each with its states
    assert used and set(used) == {1}  # every training and validation batch, at block 1
    used.clear()
    monkeypatch.setattr(stages, "STATES_BUDGET", 0)  # nothing recorded: every step runs every block
    without = _run(f"states-off-{loss}", loss, tmp_path / "b", tmp_path, monkeypatch)
    assert not used and not (tmp_path / "b" / "artifacts" / "boundary").exists()
    assert with_states.keys() == without.keys()
    for key, value in without.items():
        assert with_states[key] == pytest.approx(value, rel=1e-3, abs=1e-3), key
