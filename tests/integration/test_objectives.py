"""Every offline objective end to end on the tiny model, and the data and module paths they
share: unpaired examples for KTO, the imbalance knob, reference log-probs cached or online."""

from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
import torch
from hydra import compose, initialize_config_dir

from harness.cli.run import CONFIG_DIR
from harness.data.preference import PairCollator, PreferencePair, UnpairedCollator, UnpairedExample
from harness.losses.dpo import dpo_loss
from harness.losses.kto import kto_loss
from harness.data.pairs import build_pairs, build_unpaired, desirable_prompts, kl_partners
from harness.models.loading import load_causal_lm
from harness.models.sources import TinyRandom
from harness.modules.offline_preference import OfflinePreferenceModule
from harness.models.forward import batched_logps

OFFLINE = "harness.methods.offline.OfflinePreference"


def offline_objectives() -> dict[str, str]:
    """The `loss` group's options (harness/conf/loss/*.yaml) trained by the offline method, with
    their `loss.method.reference` (cached, online, none)."""
    found = {}
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        for path in sorted((Path(CONFIG_DIR) / "loss").glob("*.yaml")):
            method = compose(config_name="config", overrides=[f"loss={path.stem}"]).loss.method
            if method._target_ == OFFLINE:
                found[path.stem] = method.reference
    return found


OBJECTIVES = offline_objectives()

# Metrics an objective logs besides train/loss and eval/*; an objective not named here is
# checked for those alone.
OBJECTIVE_METRICS = {
    "dpo": ["train/rewards/margin", "train/rewards/accuracy"],
    "ipo": ["train/rewards/margin", "train/rewards/accuracy"],
    "kto": ["train/rewards/chosen", "train/rewards/rejected", "train/kl/z0", "labels/desirable", "labels/undesirable"],
    "simpo": ["train/rewards/margin"],
    "orpo": ["train/nll", "train/log_odds_ratio"],
}


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_offline_objectives_are_found() -> None:
    assert {"dpo", "kto", "orpo"} <= set(OBJECTIVES) and "ppo" not in OBJECTIVES


@pytest.mark.slow  # the CLI in a subprocess; test_objectives_in_process.py runs every objective in process
@pytest.mark.parametrize("loss", ["kto", "simpo"])  # the checks of their own below; the others: in process
def test_objective_end_to_end(loss: str, harness_env: dict[str, str], workdir: Path) -> None:
    name = f"objective-{loss}"
    env = harness_env | {"MLFLOW_EXPERIMENT_NAME": name}
    extra = ["labels.desirable_fraction=0.5", "loss.balance_weights=true"] if loss == "kto" else []
    proc = run(["experiment=smoke", f"loss={loss}", "loss.beta=0.2", *extra, f"hydra.run.dir={workdir / name}"],
               env, workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    (r,) = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    assert r.info.status == "FINISHED" and r.data.params["loss.beta"] == "0.2"
    for key in ["train/loss", "eval/gold_reward", "eval/winrate_vs_init", "eval/kl", *OBJECTIVE_METRICS.get(loss, [])]:
        assert key in r.data.metrics, key
    if loss == "kto":
        m = r.data.metrics
        # 32 prompts × k=2, 10% held out: about half the chosen kept, the rest undesirable.
        assert m["labels/desirable"] < m["labels/undesirable"]
        ratio = m["labels/desirable_weight"] * m["labels/desirable"] / (m["labels/undesirable_weight"] * m["labels/undesirable"])
        assert 1.0 <= ratio <= 4 / 3 + 1e-9
    if OBJECTIVES[loss] == "none":  # simpo, orpo
        assert "artifact.ref_logps" not in r.data.tags  # reference-free: no reference pass


def test_pairs_and_unpaired_examples_from_best_of_k() -> None:
    prompts = [[1], [2], [3]]
    responses = [[[10], [11], [12]], [[20], [21], [20]], [[30], [31], [32]]]
    choices = [0, 0, 2]
    ref = [[-1.0, -2.0, -3.0], [-4.0, -5.0, -6.0], [-7.0, -8.0, -9.0]]
    pairs = build_pairs(prompts, responses, choices, ref)
    assert [(i, p.chosen_ids, p.rejected_ids) for i, p in pairs] == [
        (0, (10,), (11,)), (0, (10,), (12,)), (1, (20,), (21,)), (2, (32,), (30,)), (2, (32,), (31,))]  # [20] vs [20] skipped
    assert [i for i, _ in build_pairs(prompts, responses, choices, ref, keep={1})] == [1]

    partners = kl_partners(3, seed=0)
    assert sorted(partners) == [0, 1, 2] and all(p != i for i, p in enumerate(partners))
    rows = build_unpaired(prompts, responses, choices, ref, partners, ref, keep={0, 1, 2})
    desirable = [(i, e.response_ids) for i, e in rows if e.desirable]
    assert desirable == [(0, (10,)), (1, (20,)), (2, (32,))]
    assert sum(not e.desirable for _, e in rows) == 5  # the duplicate of prompt 1's chosen is not undesirable
    for i, e in rows:  # every mismatched response answers another prompt
        assert e.kl_ids in {tuple(r) for r in responses[partners[i]]}
    dropped = build_unpaired(prompts, responses, choices, ref, partners, ref, keep={2})
    assert [i for i, e in dropped if e.desirable] == [2] and sum(not e.desirable for _, e in dropped) == 5


def test_desirable_fraction_keeps_a_seeded_share() -> None:
    kept = desirable_prompts(1000, 0.1, seed=3)
    assert len(kept) == 100 and kept == desirable_prompts(1000, 0.1, seed=3)
    assert kept != desirable_prompts(1000, 0.1, seed=4)
    assert desirable_prompts(5, 1.0, seed=0) == set(range(5))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    corpus = ["the food was great", "the room was small and loud", "we loved the quiet beach"] * 10
    return TinyRandom(vocab_size=300).materialize(tmp_path_factory.mktemp("cache"), lambda: corpus)


def test_online_reference_matches_cached(tiny: Path) -> None:
    """Reference log-probs computed once and cached give the same loss as computing them per batch."""
    policy, _ = load_causal_lm(tiny)
    torch.manual_seed(0)
    prompts, chosen, rejected = [[5, 6, 7], [8, 9]], [[10, 11], [12, 13, 14]], [[15], [16, 17]]
    ref_c = batched_logps(policy, prompts, chosen, 0, 8)
    ref_r = batched_logps(policy, prompts, rejected, 0, 8)
    with torch.no_grad():  # move the policy away from the reference so the loss is not log 2
        for p in policy.parameters():
            p.add_(0.05 * torch.randn_like(p))
    pairs = [PreferencePair(tuple(p), tuple(c), tuple(r), rc, rr)
             for p, c, r, rc, rr in zip(prompts, chosen, rejected, ref_c, ref_r)]
    batch = PairCollator(0)(pairs)
    loss = functools.partial(dpo_loss, beta=0.5)
    reference, _ = load_causal_lm(tiny)
    cached = OfflinePreferenceModule(policy, loss, lr=1e-3)._loss(batch)[0]
    online = OfflinePreferenceModule(policy, loss, lr=1e-3, reference=reference)._loss(batch)[0]
    assert cached.item() == pytest.approx(online.item(), abs=1e-5)
    assert abs(cached.item() - 0.6931) > 1e-3

    examples = [UnpairedExample(tuple(p), tuple(c), tuple(r), d, rc, rr)
                for p, c, r, d, rc, rr in zip(prompts, chosen, rejected, [True, False], ref_c, ref_r)]
    kto = functools.partial(kto_loss, beta=0.5)
    ubatch = UnpairedCollator(0)(examples)
    cached = OfflinePreferenceModule(policy, kto, lr=1e-3)._loss(ubatch)
    online = OfflinePreferenceModule(policy, kto, lr=1e-3, reference=reference)._loss(ubatch)
    assert cached[0].item() == pytest.approx(online[0].item(), abs=1e-5)
    assert cached[1]["kl/z0"].item() == pytest.approx(online[1]["kl/z0"].item(), abs=1e-5)
