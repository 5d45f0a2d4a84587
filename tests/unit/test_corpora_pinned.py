"""The embedded corpora are pinned: the same seed gives byte-identical examples on every
machine and across refactors of the generators (e.g. moving their phrase tables to data
files). A change to a hash here means every cached artifact, label set and reported number
built on that corpus changes too, so update a hash only for a deliberate corpus change.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

import harness
from harness.tasks.base import Example

# Not harness.cli.run.CONFIG_DIR: importing the CLI pulls in the whole pipeline, which this
# fast test does not need.
CONFIG_DIR = str(Path(harness.__file__).resolve().parent / "conf")
HEAD = 20  # examples hashed per split

# task config -> (train hash, eval hash) of its first HEAD examples. A _tiny continuation task
# draws a shorter prefix of the same seeded sequence, so its train hash equals the full one's.
PINNED: dict[str, tuple[str, str]] = {
    "sentiment": (
        "ebfac4aad3707c3dc549048ad8a34f7bc4d409639d816a1c476e294000a04a39",
        "e68be897d0da1974ca82d6dc4719dc2f21a5c9f8d21e56d21eae792e9b372dbf",
    ),
    "sentiment_tiny": (
        "ebfac4aad3707c3dc549048ad8a34f7bc4d409639d816a1c476e294000a04a39",
        "29cc53e7dc349bd982eaaf7f4f5a0d627252961f04b51039e09e78ccc5faf00f",
    ),
    "descriptive": (
        "00871a230ceddb5c26e8813eb13fefbd8a3e396c3ab75309efec747ec7fb4c72",
        "12d3b09163e1acbfc83b44d6762281b0836f22792d566e48c7b56eb15e7c9530",
    ),
    "descriptive_tiny": (
        "00871a230ceddb5c26e8813eb13fefbd8a3e396c3ab75309efec747ec7fb4c72",
        "9c219adc1a36f0273729cbaaf96f0290bf0d3bdc4a2888db8ba185d81edc74f0",
    ),
    "tldr": (
        "82ec9e9f8f15e271f048976e90129b74467a56db52b9838ab3eb7674fc1cefaf",
        "105bae7b21ef2d35aa33cf970ad6b9b5d52bb4d1e7094d8f0cd9cac90c663781",
    ),
    "tldr_tiny": (
        "0ba81455f38d917c5d2290a6af6b41d31ac6e04b1ab0c555e46ba280d98d05be",
        "d3490d6fb13a8cc7da3745b381bd8b3562d5d7a3cfaf6af91c15fd597e871daa",
    ),
    "cnndm": (
        "a53746f81a03bcf8c5e712c710af88b6c31cf8409af10f9490eceba82facc340",
        "084d8b00702aa90ef1f254cec48805e10f305cbdd501d2b801ec302786066767",
    ),
    "cnndm_tiny": (
        "e649090d3dbb451168ff55f5179db9a688df685d153dc46004e04c678f2392ca",
        "012650fcdc6b83125d346b034b32368eb721c0e99aae1c7f27f062ec438edfd6",
    ),
}


def _digest(examples: list[Example]) -> str:
    canonical = json.dumps(
        [{"id": e.id, "prompt": e.prompt, "reference": e.reference, "meta": dict(e.meta)} for e in examples],
        sort_keys=True,
        ensure_ascii=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def corpus_digests(option: str) -> tuple[str, str]:
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        task = instantiate(compose(config_name="config", overrides=[f"task={option}"]).task)
    assert task.source == "embedded"
    return _digest(task.examples("train")[:HEAD]), _digest(task.examples("eval")[:HEAD])


@pytest.mark.parametrize("option", sorted(PINNED))
def test_embedded_corpus_is_pinned(option: str) -> None:
    assert corpus_digests(option) == PINNED[option]


def test_every_task_config_is_pinned() -> None:
    configs = sorted(p.stem for p in (Path(CONFIG_DIR) / "task").glob("*.yaml"))
    assert sorted(PINNED) == configs, "pin the new task's corpus here (see the module docstring)"
