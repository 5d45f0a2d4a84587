"""The sample pool: samples and labels are drawn chunk by chunk, so a smaller labels.n is a
prefix of a larger one and a label-budget sweep samples its largest budget once."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir

from harness.cache import ArtifactCache
from harness.cli.run import CONFIG_DIR, build_experiment
from harness.experiment import Labelled
from harness.pipeline import prepare
from harness.progress import progress_bar
from harness.stages import sampled_labels


def labelled(overrides: list[str], cache: Path, run_dir: Path) -> Labelled:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=["experiment=smoke", f"paths.cache_dir={cache}", *overrides])
    exp = build_experiment(cfg, run_dir, given=lambda key: False)
    with progress_bar() as progress:
        return sampled_labels(exp, prepare(exp), ArtifactCache(cache / "artifacts"), progress)


def built(cache: Path, stage: str) -> int:
    return sum(p.is_dir() for p in (cache / "artifacts" / stage).iterdir())


def test_a_smaller_budget_is_a_prefix_of_a_larger_one(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    small = labelled(["labels.n=20", "sampling.chunk=16"], cache, tmp_path)  # chunks 0–15, 16–31
    assert built(cache, "samples") == 2 and built(cache, "labels") == 2
    large = labelled(["labels.n=40", "sampling.chunk=16"], cache, tmp_path)  # and 32–47
    assert built(cache, "samples") == 3 and built(cache, "labels") == 3  # the first two reused
    assert len(small.responses) == 20 and len(large.responses) == 40
    assert large.prompt_ids[:20] == small.prompt_ids and large.responses[:20] == small.responses
    assert large.choices[:20] == small.choices
    # What identifies a run's data still depends on its budget (its labels, its reward model).
    assert small.choices_key != large.choices_key and small.artifacts["samples"] != large.artifacts["samples"]
    assert 0 <= small.meta["agreement"] <= 1 and small.meta["version"]
    # Another chunk size is another pool.
    other = labelled(["labels.n=20", "sampling.chunk=10"], cache, tmp_path)
    assert built(cache, "samples") == 5 and other.responses != small.responses
