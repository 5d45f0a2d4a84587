"""labels.rounds on model=tiny: each round samples the current policy, labels the new prompts and
trains on every label so far; metrics carry the round; a run stopped in a round resumes there."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import mlflow
import pytest

from harness.errors import InputError, Stopped
from harness.methods.offline import OfflinePreference
from harness.methods.ppo import PPO
from tests.integration.in_process import run_in_process

BASE = ["experiment=smoke", "labels.n=24", "sampling.chunk=8", "eval.n_prompts=8", "logger.log_model=false"]


def _history(client: mlflow.MlflowClient, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


@pytest.mark.parametrize("loss", ["dpo", "kto"])
def test_rounds_sample_the_current_policy_and_train_on_every_label_so_far(
        loss: str, tiny_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trained_on: list[tuple[str, int]] = []
    fit = OfflinePreference.fit

    def spy(self, ctx):  # noqa: ANN001, ANN202
        trained_on.append((ctx.stage, len(ctx.labelled.choices)))
        return fit(self, ctx)

    monkeypatch.setattr(OfflinePreference, "fit", spy)
    metrics, exp, run, client = run_in_process(f"online-{loss}", [*BASE, f"loss={loss}", "labels.rounds=3",
                                                                  f"paths.cache_dir={tiny_cache}"],
                                               tmp_path / "run", monkeypatch)
    assert run.info.status == "FINISHED" and "eval/gold_reward" in metrics
    assert trained_on == [("train-round0", 8), ("train-round1", 16), ("train-round2", 24)]
    assert _history(client, run.info.run_id, "online/labels") == [(0, 8.0), (1, 16.0), (2, 24.0)]
    assert [s for s, _ in _history(client, run.info.run_id, "online/gold")] == [0, 1, 2]
    # Rounds 2 and 3 drew new samples of the policy being trained, as artifacts of their own.
    tags = run.data.tags
    assert {"artifact.online_samples.1", "artifact.online_samples.2", "artifact.online_labels.2"} <= set(tags)
    for key in ("online_samples.1", "online_samples.2"):
        assert (tiny_cache / "artifacts" / "online_samples" / tags[f"artifact.{key}"]).is_dir()
    # Each round's Trainer counts from 0: its steps follow the last round's, none repeated.
    steps = [s for s, _ in _history(client, run.info.run_id, "train/loss")]
    assert steps == sorted(set(steps)) and len(steps) >= 3
    inputs = {d.dataset.name: d.dataset for d in run.inputs.dataset_inputs}
    assert '"rounds": 3' in inputs["labels"].source


def test_a_run_stopped_in_a_round_resumes_there(tiny_cache: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    overrides = [*BASE, "loss=dpo", "labels.rounds=3", f"paths.cache_dir={tiny_cache}", "seed=7"]
    stages: list[str] = []
    stopped_once: list[bool] = []
    fit = OfflinePreference.fit

    def stop_in_round_two(self, ctx):  # noqa: ANN001, ANN202
        stages.append(ctx.stage)
        if ctx.stage == "train-round1" and not stopped_once:
            stopped_once.append(True)
            raise Stopped(signal.SIGTERM)  # killed while training round 2
        return fit(self, ctx)

    monkeypatch.setattr(OfflinePreference, "fit", stop_in_round_two)
    with pytest.raises(Stopped):
        run_in_process("online-resume", overrides, tmp_path / "run", monkeypatch)
    client = mlflow.MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    [stopped] = client.search_runs([client.get_experiment_by_name("online-resume").experiment_id])
    assert stopped.info.status == "KILLED"
    samples = set((tiny_cache / "artifacts" / "online_samples").iterdir())

    stages.clear()
    _, _, run, _ = run_in_process("online-resume", overrides, tmp_path / "again", monkeypatch)
    assert run.info.run_id == stopped.info.run_id and run.info.status == "FINISHED"
    assert stages == ["train-round1", "train-round2"]  # round 1 was not trained again
    # Round 2's samples were read back, not drawn again from a policy that no longer exists.
    assert tiny_cache / "artifacts" / "online_samples" / run.data.tags["artifact.online_samples.1"] in samples
    assert _history(client, run.info.run_id, "online/labels")[-1] == (2, 24.0)


@pytest.mark.parametrize(("overrides", "message"), [
    (["loss=best_of_n", "labels.rounds=2"], r"labels\.rounds=2: the method of this loss trains once, offline"),
    (["loss=ppo", "loss.method.episodes=2", "labels.rounds=3"], r"fewer than one episode per round"),
    (["loss=dpo", "labels.rounds=25"], r"labels\.rounds: expected an integer in 1\.\.labels\.n \(24\)"),
])
def test_settings_online_rounds_cannot_take_are_refused(overrides: list[str], message: str, tiny_cache: Path,
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError, match=message):
        run_in_process("online-refused", [*BASE, *overrides, f"paths.cache_dir={tiny_cache}"], tmp_path,
                       monkeypatch)


def test_ppo_online_refits_the_reward_model_each_round_and_carries_its_value_head(
        tiny_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ziegler et al.'s online mode: each round's reward model is trained on every comparison so
    far; the policy, its value head and β continue; killed in round 2, the run resumes there with
    the value head round 1 left."""
    overrides = [*BASE, "loss=ppo", "loss.method.episodes=32", "labels.rounds=2", f"paths.cache_dir={tiny_cache}",
                 "seed=3"]
    seen: list[tuple[str, int, bool]] = []
    stopped_once: list[bool] = []
    fit = PPO.fit

    def spy(self, ctx):  # noqa: ANN001, ANN202
        seen.append((f"round{ctx.round}", len(ctx.labelled.choices), self._value_head is not None))
        if ctx.round == 1 and not stopped_once:
            stopped_once.append(True)
            raise Stopped(signal.SIGTERM)
        return fit(self, ctx)

    monkeypatch.setattr(PPO, "fit", spy)
    with pytest.raises(Stopped):
        run_in_process("online-ppo", overrides, tmp_path / "run", monkeypatch)
    assert seen == [("round0", 12, False), ("round1", 24, True)]
    seen.clear()
    metrics, _, run, client = run_in_process("online-ppo", overrides, tmp_path / "again", monkeypatch)
    assert run.info.status == "FINISHED" and "eval/proxy_reward" in metrics
    assert seen == [("round1", 24, True)]  # round 1 not rerun; its value head came back from the round's state
    # Two reward models: one on round 1's 12 comparisons, one refit on all 24.
    history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "online/labels"))
    assert history == [(0, 12.0), (1, 24.0)]
    rm_tags = [t for t in run.data.tags if t == "artifact.reward_model"]
    assert rm_tags and len(list((tiny_cache / "artifacts" / "reward_model").iterdir())) >= 2
