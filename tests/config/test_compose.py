"""Every config group option and every experiment composes and instantiates."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from harness.cli.run import CONFIG_DIR, build_experiment

CONF = Path(CONFIG_DIR)
# experiment and sweep are added with experiment=… and +sweep=…; hydra holds launchers.
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir() and p.name not in ("experiment", "sweep", "hydra"))


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_with(overrides: list[str], hydra: bool = False):  # noqa: ANN201
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=overrides, return_hydra_config=hydra)


def test_every_group_has_options() -> None:
    for group in ("task", "model", "loss", "labeler", "trainer", "logger"):
        assert options(group), group


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_group_option_composes(group: str, option: str) -> None:
    overrides = [f"{group}={option}"]
    if group == "model" and option == "hf":
        overrides.append("model.name_or_path=/nonexistent/model")
    cfg = compose_with(overrides)
    assert cfg[group] is not None


@pytest.mark.parametrize("experiment", options("experiment"))
def test_experiment_composes_and_builds(experiment: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = compose_with([f"experiment={experiment}"])
    if cfg.trainer.accelerator == "gpu":  # a GPU recipe (experiment=gpu_lora): built as on a one-GPU machine
        monkeypatch.setattr("torch.cuda.is_available", lambda: True)
        monkeypatch.setattr("torch.cuda.device_count", lambda: 1)
    exp = build_experiment(cfg, tmp_path)
    assert exp.labels.n >= 1
    assert exp.task.examples("eval")
    assert exp.tags["preset"] == experiment


def test_objects_are_chosen_by_target() -> None:
    cfg = compose_with([])
    task, labeler, loss = instantiate(cfg.task), instantiate(cfg.labeler), instantiate(cfg.loss.method).loss_fn
    assert task.name == "sentiment" and task.max_new_tokens == 24
    assert [a.name for a in labeler.annotators] == ["vader", "textblob", "minilm"]
    assert loss.keywords["beta"] == cfg.loss.beta


def test_loss_beta_is_the_one_knob() -> None:
    cfg = compose_with(["loss.beta=0.3"])
    assert instantiate(cfg.loss.fn).keywords["beta"] == 0.3


@pytest.mark.parametrize("loss", options("loss"))
def test_every_loss_builds_its_method(loss: str) -> None:
    cfg = compose_with([f"loss={loss}", "model=tiny"])
    method = instantiate(cfg.loss.method)
    assert callable(getattr(method, "fit"))


def test_ppo_kl_is_adaptive_or_fixed() -> None:
    from harness.rl.kl_control import AdaptiveKL, FixedKL

    assert isinstance(instantiate(compose_with(["loss=ppo", "model=tiny"]).loss.method).kl, AdaptiveKL)
    fixed = instantiate(compose_with(["loss=ppo", "model=tiny", "loss.kl.target=null", "loss.beta=0.3"]).loss.method).kl
    assert isinstance(fixed, FixedKL) and fixed.beta == 0.3


@pytest.mark.parametrize("sweep", options("sweep"))
def test_sweep_composes_with_its_launcher_and_grid(sweep: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every committed sweep (harness/conf/sweep/, the `sweep` group) composes, names its launcher and grid,
    and its jobs build (the first value of each swept key, as the sweeper would pass it)."""
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    cfg = compose_with([f"+sweep={sweep}"], hydra=True)
    params = dict(cfg.hydra.sweeper.params)
    assert params and cfg.sweep.name and cfg.hydra.launcher.n_jobs == 2
    first = [f"{key}={str(values).split(',')[0]}" for key, values in params.items()]
    if "model" in params:  # tiny: the others convert a pretrained model when built
        first = [o for o in first if not o.startswith("model=")] + ["model=tiny"]
    job = compose_with([f"+sweep={sweep}", *first])
    exp = build_experiment(job, tmp_path)
    assert exp.tags["sweep.name"] == cfg.sweep.name
    assert exp.tracker.experiment_name == f"sweep-{cfg.sweep.name}"


@pytest.mark.parametrize("launcher", options("hydra/launcher"))
def test_launcher_composes(launcher: str) -> None:
    if launcher == "ray_cluster":
        pytest.importorskip("hydra_plugins.hydra_ray_launcher", reason="the optional [ray] extra")
    cfg = compose_with([f"hydra/launcher={launcher}"], hydra=True)
    assert cfg.hydra.launcher._target_.startswith("hydra_plugins.")


@pytest.mark.parametrize("loss,normalised", [("dpo", False), ("kto", False), ("ipo", True), ("simpo", True),
                                             ("orpo", True)])
def test_objectives_on_per_token_averages(loss: str, normalised: bool) -> None:
    """IPO, SimPO and ORPO train on per-token average log-probs (TRL, HALOs, their papers'
    results); DPO and KTO on sums."""
    assert compose_with([f"loss={loss}"]).loss.method.length_normalized is normalised


def test_ppo_sentiment_has_the_papers_implementation_details(tmp_path: Path) -> None:
    """Ziegler et al.'s code (lm-human-preferences launch.py, train_policy.py): stop at the first
    '.' after 16 tokens, −1 for a response without one, vf_coef .1, rewards whitened (std),
    advantages over the batch, zero value head, Adam ε 1e-5 without weight decay."""
    cfg = compose_with(["experiment=ppo_sentiment", f"paths.cache_dir={tmp_path}"])
    assert (cfg.task.stop, cfg.task.stop_after, cfg.task.max_new_tokens) == (".", 16, 24)
    settings = instantiate(cfg.loss.method.settings)
    assert settings.unfinished_score == -1.0 and settings.vf_coef == 0.1 and settings.whiten_rewards
    assert (settings.whiten_advantages, settings.value_head_init) == ("batch", "zero")
    assert (settings.adam_eps, settings.weight_decay, settings.temperature) == (1e-5, 0.0, 0.7)
    default = instantiate(compose_with(["loss=ppo"]).loss.method.settings)
    assert default.unfinished_score is None and compose_with(["loss=ppo"]).task.stop is None  # free length
