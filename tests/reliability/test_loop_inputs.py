"""Bad input of the labelling loop, from the command line as a user meets it: one line naming
what is wrong, exit 2, and no labels written that a later run would trust. An LLM judge's
endpoint that cannot be reached or replies with something other than a chat completion; an
answer in the people's labels file to a comparison that was never asked; an export given to the
importer as another tool's format."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fake_openai import KEY, serve

pytestmark = pytest.mark.slow  # python -m harness in a subprocess, each a short run on model=tiny

BASE = ["experiment=smoke", "labels.n=8", "sampling.chunk=8", "eval.n_prompts=8", "logger.log_model=false"]


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness", *BASE, *args, f"hydra.run.dir={cwd / 'run'}"],
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)


def _one_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("harness: error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])


def _labels_written(cache: Path) -> list[Path]:
    return list((cache / "artifacts" / "labels").glob("*/labels.jsonl"))


def test_an_unreachable_judge(harness_env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cache = tmp_path / "cache"
    env = harness_env | {"OPENAI_API_KEY": KEY, "PREFHARNESS_CACHE": str(cache)}
    proc = _run(["labeler=llm_judge", f"labeler.base_url=http://127.0.0.1:{port}/v1", "labeler.model=judge",
                 "labeler.max_retries=0", "labeler.timeout=5", "labeler@judge=lexicon_panel"], env, tmp_path)
    _one_error(proc, f"http://127.0.0.1:{port}/v1 (judge) failed after 0 retries: APIConnectionError")
    assert not _labels_written(cache)


def test_a_judge_that_replies_with_no_chat_completion(harness_env: dict[str, str], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = harness_env | {"OPENAI_API_KEY": KEY, "PREFHARNESS_CACHE": str(cache)}
    with serve() as (url, fake):
        fake.garble = True
        proc = _run(["labeler=llm_judge", f"labeler.base_url={url}", "labeler.model=judge",
                     "labeler@judge=lexicon_panel"], env, tmp_path)
    _one_error(proc, f"{url} (judge) sent a malformed reply: expected a chat completion")
    assert not _labels_written(cache) and not list((cache / "judgements").rglob("*.json"))


def test_an_answer_to_a_comparison_never_asked(harness_env: dict[str, str], tmp_path: Path) -> None:
    cache, people = tmp_path / "cache", tmp_path / "people"
    env = harness_env | {"PREFHARNESS_CACHE": str(cache)}
    args = ["labeler=human", f"labeler.dir={people}", "labeler@judge=lexicon_panel"]
    assert _run(args, env, tmp_path).returncode == 3  # waiting for people: the queue is written
    item = json.loads((people / "queue.jsonl").read_text().splitlines()[0])
    answers = [{"id": "x/ann", "item": "0123456789abcdef", "prompt": "p", "responses": ["a", "b"], "choice": 0,
                "outcome": "choice", "annotator": "ann"},
               {"id": f"{item['id']}/ann", "item": item["id"], "prompt": item["prompt"],
                "responses": item["responses"], "choice": 0, "outcome": "choice", "annotator": "ann"}]
    (people / "labels.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))
    _one_error(_run(args, env, tmp_path), f"{people / 'labels.jsonl'}:1: item: an answer to '0123456789abcdef', "
               "which was never asked")
    answers[0] = answers[1] | {"id": f"{item['id']}/bob", "annotator": "bob", "choice": 5}
    (people / "labels.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))
    _one_error(_run(args, env, tmp_path), f"{people / 'labels.jsonl'}:1: choice: expected an index 0..1")
    assert not _labels_written(cache)


def test_an_export_given_as_another_format(tmp_path: Path) -> None:
    battles = tmp_path / "battles.jsonl"
    battles.write_text(json.dumps({"question_id": "q", "model_a": "x", "model_b": "y", "winner": "model_a",
                                   "conversation_a": [], "conversation_b": []}) + "\n")
    proc = subprocess.run([sys.executable, "-m", "harness.cli.label", "import", "label-studio", str(battles),
                           str(tmp_path / "out.jsonl")], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert str(battles) in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out.jsonl").exists()
