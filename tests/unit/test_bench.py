"""The benchmark's shared pieces: data that both sides tokenise alike, the clock, the report file."""

import pytest

from bench.common import BATCH, StepClock, mean_tokens, model_dir, records, write_section


@pytest.fixture(scope="module")
def tokenizer():
    from harness.models.loading import load_tokenizer

    return load_tokenizer(model_dir())


def test_records_retokenise_to_their_ids(tokenizer):
    recs = records(tokenizer, n=40)
    assert len(recs) == 40
    for r in recs:
        assert 32 <= len(r.prompt_ids) <= 64
        for text, ids in ((r.prompt, r.prompt_ids), (r.chosen, r.chosen_ids), (r.rejected, r.rejected_ids)):
            assert tuple(tokenizer(text, add_special_tokens=False)["input_ids"]) == ids
    assert records(tokenizer, n=40) == recs  # seeded
    pair = mean_tokens(recs, "pair")
    expected = sum(2 * len(r.prompt_ids) + len(r.chosen_ids) + len(r.rejected_ids) + 2 for r in recs) / 40
    assert pair == pytest.approx(expected)
    shared = sum(len(r.prompt_ids) + len(r.chosen_ids) + len(r.rejected_ids) + 2 for r in recs) / 40
    assert mean_tokens(recs, "pair_shared_prompt") == pytest.approx(shared)


def test_step_clock_times_only_steps_after_warmup(monkeypatch):
    times = iter([1.0, 2.0, 4.0, 7.0])
    monkeypatch.setattr("bench.common.time.perf_counter", lambda: next(times))
    clock = StepClock(warmup=1)
    for _ in range(4):
        clock.tick()
    assert clock.timed_steps == 3
    assert clock.seconds == 6.0
    with pytest.raises(RuntimeError, match="warm-up"):
        _ = StepClock(warmup=2).seconds


def test_write_section_keeps_the_rest(tmp_path):
    path = tmp_path / "b.md"
    path.write_text("# Benchmarks\n\nprose\n")
    write_section(path, "throughput", "table 1")
    write_section(path, "sweep", "sweep 1")
    write_section(path, "throughput", "table 2")
    text = path.read_text()
    assert text.startswith("# Benchmarks\n\nprose\n")
    assert "table 2" in text and "table 1" not in text and "sweep 1" in text
    assert text.index("table 2") < text.index("sweep 1")


def test_harness_side_runs_a_dpo_step():
    from bench.harness_side import run

    result = run("dpo", steps=1, warmup=1)
    assert result.items == BATCH and result.seconds > 0 and result.peak_mb > 0


def test_table_reads_the_median_of_per_round_ratios_with_their_spread():
    from bench.__main__ import Comparison, Job, Measurements, table

    ours, theirs = Job("harness", "dpo"), Job("trl", "dpo")
    m = Measurements({ours: [{"items": i, "seconds": 1.0, "peak_mb": 1.0, "tokens_per_item": 10} for i in (2, 3, 4)],
                      theirs: [{"items": 1, "seconds": 1.0, "peak_mb": 1.0, "tokens_per_item": 10}] * 3})
    row = table(m, [Comparison("DPO", "pairs/s", ours, theirs, 2.5)], peak=100.0, n_params=1).splitlines()[-1]
    # Per-round ratios 2, 3, 4: the median 3 meets 2.5, and the minimum 2 is shown beside it.
    assert "| **3.00** (2.00–4.00) | 2.00, 3.00, 4.00 | ≥ 2.5 | yes |" in row


def test_evidence_is_read_back_per_job_and_written_beside_the_report(tmp_path):
    import json

    from bench.__main__ import evidence_from_log, write_evidence

    log = tmp_path / "last_run.log"
    result = {"side": "trl", "objective": "rloo", "items": 16, "seconds": 2.0, "tokens_per_item": 90.0,
              "peak_mb": 600.0, "extra": {"tokenization": {"mismatches": 0}}}
    log.write_text(
        "\n$ python -m bench.trl_side rloo --steps 8 --warmup 2 --num-iterations 4 --frozen 2\n"
        "{'train_runtime': '5.8'}\n" + json.dumps(result) + "\n\n"
        "\n$ python -m bench.harness_side dpo --steps 8 --warmup 2\n" + json.dumps(result | {"side": "harness"}) + "\n"
        "\n$ python -m bench.trl_side rloo --steps 8 --warmup 2 --num-iterations 4 --frozen 2\n" + json.dumps(result))
    found = evidence_from_log(log)
    assert list(found) == ["trl:rloo --num-iterations 4 --frozen 2", "harness:dpo"]  # the labels of the table
    assert len(found["trl:rloo --num-iterations 4 --frozen 2"]) == 2 and found["harness:dpo"][0]["side"] == "harness"
    out = write_evidence(tmp_path / "reports" / "benchmarks.md", "frozen", "python -m bench --only frozen", found)
    assert out == tmp_path / "reports" / "bench" / "frozen.json"
    written = json.loads(out.read_text())
    assert written["command"] == "python -m bench --only frozen" and written["results"] == found


def test_wilson_interval_by_hand() -> None:
    from bench.judge_agreement import wilson

    # 8 of 10: centre (0.8 + z²/20)/(1 + z²/10) = 0.71674, half-width 0.22658 (z = 1.96).
    low, high = wilson(8, 10)
    assert low == pytest.approx(0.49016, abs=1e-4) and high == pytest.approx(0.94332, abs=1e-4)
    assert wilson(0, 10)[0] == pytest.approx(0.0, abs=1e-12)
