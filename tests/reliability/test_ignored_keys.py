"""A key the chosen method does not read is refused, not silently dropped; and no config carries
a key that nothing reads."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from harness.cli.run import CONFIG_DIR, refuse_ignored
from harness.errors import InputError
from tests.reliability.test_bad_input import refused

LOSSES = sorted(p.stem for p in (Path(CONFIG_DIR) / "loss").glob("*.yaml"))


def composed(*overrides: str):  # noqa: ANN201
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=["experiment=smoke", *overrides])


@pytest.mark.parametrize("loss", LOSSES)
def test_ignored_keys_exist_and_are_refused_when_given(loss: str) -> None:
    """Every key a method declares it ignores is a real key of the config, and naming it for
    the job is refused in one line that names the key and the objective."""
    cfg = composed(f"loss={loss}")
    method = instantiate(cfg.loss.method)
    for key in method.ignores:
        assert OmegaConf.select(cfg, key, default=KeyError) is not KeyError, key
        with pytest.raises(InputError) as err:
            refuse_ignored(cfg, method, given=lambda k, key=key: k == key)
        assert str(err.value).startswith(f"{key}=") and f"loss={loss} does not read it" in str(err.value)
    refuse_ignored(cfg, method, given=lambda k: False)  # set by a preset, not by the user: fine


def test_offline_objectives_read_the_train_settings() -> None:
    cfg = composed("loss=dpo")
    refuse_ignored(cfg, instantiate(cfg.loss.method), given=lambda k: k.startswith("train."))


def test_init_settings_need_a_supervised_init() -> None:
    cfg = composed()
    with pytest.raises(InputError, match=r"init.lr=1e-05: init.policy=base does not fine-tune"):
        refuse_ignored(cfg, instantiate(cfg.loss.method), given=lambda k: k == "init.lr")
    sft = composed("task=tldr_tiny", "init.policy=sft")
    refuse_ignored(sft, instantiate(sft.loss.method), given=lambda k: k.startswith("init."))


@pytest.mark.parametrize("loss", ["best_of_n", "reward_model", "sft"])
def test_no_unused_beta(loss: str) -> None:
    """Objectives without a KL knob have no loss.beta (it used to be a required, unused 1.0 that
    went into the run name and the job's identity)."""
    assert "beta" not in composed(f"loss={loss}").loss


@pytest.mark.slow
@pytest.mark.parametrize("args,expected", [
    (["loss=ppo", "train.lr=1e-4"], ["train.lr=0.0001", "loss=ppo does not read it"]),
    (["loss=best_of_n", "train.batch_size=2"], ["train.batch_size=2", "loss=best_of_n"]),
    (["init.epochs=3"], ["init.epochs=3", "init.policy=base"]),
])
def test_refused_from_the_command_line(args: list[str], expected: list[str], tmp_path: Path) -> None:
    refused(args, tmp_path, expected)
