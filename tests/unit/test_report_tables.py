"""Report tables as pure functions of hand-made run frames: seed aggregation against
intervals worked out by hand, the selection's exclusions, missing-metric exclusions."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from harness.report.query import config_id, select_runs, with_defaults
from harness.report.render import display_frame, markdown_table
from harness.report.tables import (
    aggregate, frontier, human_eval_table, imbalance, label_count, seed_interval, summarization_table,
)

T0 = pd.Timestamp("2025-01-01", tz="UTC")
T_975 = {1: 12.706204736174707, 2: 4.302652729749464}  # t quantile 0.975 by degrees of freedom
ROUGE = ("rouge1", "rouge2", "rougeL", "rouge_avg")


def run(run_id: str, minute: int = 0, status: str = "FINISHED", task: str = "tldr", loss: str = "dpo",
        seed: int = 0, n: int = 1000, beta: float = 0.1, run_key: str | None = None, tags: dict | None = None,
        **metrics: float) -> dict[str, object]:
    """One row as query.fetch_runs builds it; metric kwargs use `__` for `/` (eval__kl)."""
    row: dict[str, object] = {
        "run_id": run_id, "status": status, "experiment": "e", "start_time": T0 + pd.Timedelta(minutes=minute),
        "tags.task": task, "tags.model": "tiny", "tags.loss": loss, "tags.labeler": "panel",
        "tags.labeler.version": "1", "tags.seed": str(seed),
        "params.seed": str(seed), "params.task.name": task, "params.loss.beta": str(beta), "params.labels.n": str(n),
        "params.labels.desirable_fraction": "1.0", "params.logger.experiment_name": "e",
    }
    if run_key:
        row["tags.run_key"] = run_key
    row |= {f"tags.{k}": v for k, v in (tags or {}).items()}
    row |= {f"metrics.{k.replace('__', '/')}": v for k, v in metrics.items()}
    return row


def frame(*rows: dict[str, object]) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def with_ci(key: str, value: float, half: float) -> dict[str, float]:
    return {key: value, f"{key}_ci95_low": value - half, f"{key}_ci95_high": value + half}


# ---------------------------------------------------------------- seeds


def test_seed_interval_two_and_three_seeds_by_hand() -> None:
    # [1, 3]: mean 2, s = √2, half = t(1) · √2/√2 = t(1)
    assert seed_interval([1.0, 3.0]) == pytest.approx((2.0, 2.0 - T_975[1], 2.0 + T_975[1]), rel=1e-12)
    # [1, 2, 3]: mean 2, s = 1, half = t(2)/√3
    half = T_975[2] / math.sqrt(3)
    assert seed_interval([1.0, 2.0, 3.0]) == pytest.approx((2.0, 2.0 - half, 2.0 + half), rel=1e-9)


def test_aggregate_means_seeds_and_keeps_single_run_intervals() -> None:
    runs = frame(
        run("a", seed=0, **{"eval/gold_reward": 1.0, "eval/gold_reward_ci95_low": 0.9, "eval/gold_reward_ci95_high": 1.1}),
        run("b", seed=1, **{"eval/gold_reward": 3.0}),
        run("c", beta=0.3, **with_ci("eval/gold_reward", 0.5, 0.2)),
    )
    table = aggregate(runs, ["loss", "loss.beta"], {"gold": "eval/gold_reward"}).set_index("loss.beta")
    assert table.at[0.1, "gold"] == 2.0
    assert table.at[0.1, "gold_ci95_low"] == pytest.approx(2.0 - T_975[1])  # across seeds, not the runs' own
    assert table.at[0.1, "gold_ci95_high"] == pytest.approx(2.0 + T_975[1])
    assert (table.at[0.1, "n_seeds"], table.at[0.1, "seeds"], table.at[0.1, "runs"]) == (2, "0,1", "a b")
    assert table.at[0.1, "labeler"] == "panel v1"
    # One seed: the run's logged interval.
    assert (table.at[0.3, "gold"], table.at[0.3, "gold_ci95_low"], table.at[0.3, "gold_ci95_high"]) == (0.5, 0.3, 0.7)
    assert table.at[0.3, "n_seeds"] == 1


def test_aggregate_keeps_configurations_apart() -> None:
    # Same table axes, different label budget: two rows, never averaged together.
    runs = frame(run("a", n=250, **{"eval/kl": 1.0}), run("b", n=1000, **{"eval/kl": 2.0}))
    table = aggregate(runs, ["loss"], {"kl": "eval/kl"})
    assert sorted(table["kl"]) == [1.0, 2.0] and table["config"].nunique() == 2


# ---------------------------------------------------------------- selection


def test_select_runs_excludes_failed_and_older_duplicates() -> None:
    runs = frame(
        run("old", minute=1, run_key="k1"), run("new", minute=2, run_key="k1"),
        run("failed", minute=3, status="FAILED", run_key="k2"), run("killed", minute=4, status="KILLED", run_key="k3"),
        run("seed1", minute=5, seed=1, run_key="k4"),
        # No run_key: the same full params make the same configuration.
        run("p_old", minute=6, task="cnndm"), run("p_new", minute=7, task="cnndm"),
    )
    kept, excluded = select_runs(runs)
    assert sorted(kept["run_id"]) == ["new", "p_new", "seed1"]
    reasons = dict(zip(excluded["run_id"], excluded["reason"]))
    assert reasons == {"old": "duplicate of new", "failed": "status FAILED", "killed": "status KILLED",
                       "p_old": "duplicate of p_new"}
    assert list(excluded.columns) == ["run_id", "experiment", "task", "loss", "seed", "status", "reason"]


def test_a_run_logged_before_a_setting_existed_has_its_default() -> None:
    older, offline, online = run("a"), run("b", seed=1), run("c", seed=1)
    offline["params.labels.rounds"], online["params.labels.rounds"] = "1", "4"
    ids = config_id(with_defaults(frame(older, offline, online)))
    assert ids[0] == ids[1] != ids[2]  # no labels.rounds param: the offline run it was


def test_select_runs_same_config_and_seed_under_two_run_keys() -> None:
    # One job logged to two experiments has two run_keys; counting both would fake a replicate.
    a, b = run("a", minute=1, run_key="k1"), run("b", minute=2, run_key="k2")
    b["params.logger.experiment_name"] = "other"  # bookkeeping only
    kept, excluded = select_runs(frame(a, b))
    assert list(kept["run_id"]) == ["b"]
    assert list(excluded["reason"]) == ["duplicate of b (same config and seed)"]


def test_failed_rerun_does_not_displace_finished_run() -> None:
    kept, excluded = select_runs(frame(run("done", minute=1, run_key="k"), run("retry", minute=2, status="FAILED", run_key="k")))
    assert list(kept["run_id"]) == ["done"] and list(excluded["reason"]) == ["status FAILED"]


# ---------------------------------------------------------------- tables


def test_missing_metric_excludes_the_run_with_its_reason() -> None:
    runs = frame(run("ok", **{"eval/kl": 1.0, "eval/gold_reward": 0.5}), run("no_kl", beta=0.3, **{"eval/gold_reward": 0.7}),
                 run("ok2", beta=1.0, **{"eval/kl": 0.5, "eval/gold_reward": 0.3}))
    result = frontier(runs)
    assert list(result.data["runs"]) == ["ok", "ok2"]
    assert list(zip(result.excluded["run_id"], result.excluded["reason"])) == [("no_kl", "missing metric eval/kl")]


def test_frontier_skips_with_reason_when_no_run_qualifies() -> None:
    result = frontier(frame(run("rm", loss="reward_model", **{"eval/kl": 0.0, "eval/gold_reward": 0.1})))
    assert result.data.empty and "eval/kl" in result.skip_reason


def summary_run(run_id: str, loss: str, task: str = "tldr", base: float = 0.2, **kw: object) -> dict[str, object]:
    metrics = {f"eval/{k}": base + i / 100 for i, k in enumerate(ROUGE)}
    metrics |= {f"eval/{k}_init": 0.1 + i / 100 for i, k in enumerate(ROUGE)}
    metrics |= {f"eval/lead3_{k}": 0.3 + i / 100 for i, k in enumerate(ROUGE)}
    return run(run_id, task=task, loss=loss, **kw, **metrics)


def test_summarization_rows_and_empty_cells() -> None:
    runs = frame(summary_run("sft", "sft", minute=1), summary_run("ppo250", "ppo", n=250, minute=2),
                 summary_run("ppo1k", "ppo", minute=3), summary_run("dpo", "dpo", task="cnndm", base=0.25, minute=4))
    table = summarization_table(runs).data.set_index("method")
    assert list(table.index) == ["zero-shot", "supervised", "lead-3", "RL (250 labels)", "RL (1000 labels)", "DPO"]
    assert table.at["supervised", "tldr R-1"] == 0.2 and table.at["DPO", "cnndm R-AVG"] == 0.25 + 0.03
    assert math.isnan(table.at["DPO", "tldr R-1"]) and math.isnan(table.at["supervised", "cnndm R-1"])  # never invented
    assert table.at["zero-shot", "tldr R-2"] == 0.11 and table.at["lead-3", "cnndm R-1"] == 0.3
    assert table.at["lead-3", "tldr runs"] == "ppo1k"  # the latest tldr run supplies the baseline


def test_summarization_panel_column_best_of_n_and_a_base_zero_shot() -> None:
    wins = {"eval/winrate_vs_reference": 0.4, "eval/winrate_init_vs_reference": 0.1,
            "eval/lead3_winrate_vs_reference": 0.3}
    sft_init = {"init": "sft"}
    runs = frame(summary_run("sft", "sft", minute=1, **{k.replace("/", "__"): v for k, v in wins.items()}),
                 summary_run("bon", "best_of_n", minute=2, tags=sft_init,
                             **{"eval__winrate_vs_reference": 0.45, "eval__winrate_init_vs_reference": 0.35,
                                "eval__lead3_winrate_vs_reference": 0.3, "eval__rouge1_init": 0.9}))
    runs["params.loss.n"] = ["null", "16"]
    table = summarization_table(runs).data.set_index("method")
    assert list(table.index) == ["zero-shot", "supervised", "lead-3", "best-of-n (n=16)"]
    assert table.at["supervised", "tldr % preferred vs reference"] == pytest.approx(40.0)
    assert table.at["best-of-n (n=16)", "tldr % preferred vs reference"] == pytest.approx(45.0)
    # Zero-shot is the base model: the run that started from the supervised policy does not supply it.
    assert table.at["zero-shot", "tldr runs"] == "sft" and table.at["zero-shot", "tldr R-1"] == 0.1
    assert table.at["zero-shot", "tldr % preferred vs reference"] == pytest.approx(10.0)
    # Lead-3 is every run's alike: the latest run supplies it.
    assert table.at["lead-3", "tldr runs"] == "bon"
    assert table.at["lead-3", "tldr % preferred vs reference"] == pytest.approx(30.0)


def test_summarization_supervised_plus_rl_only_when_such_runs_exist() -> None:
    runs = frame(summary_run("rl", "ppo"), summary_run("sft_rl", "ppo", n=250, tags={"init": "sft"}))
    table = summarization_table(runs).data.set_index("method")
    assert "supervised + RL (250 labels)" in table.index and "RL (1000 labels)" in table.index


def test_summarization_excludes_method_runs_without_rouge() -> None:
    runs = frame(summary_run("ok", "sft"), run("bare", loss="kto", **{"eval/rouge1": 0.2}))
    result = summarization_table(runs)
    assert "KTO" not in set(result.data["method"])
    assert result.excluded.set_index("run_id").at["bare", "reason"] == (
        "missing metric eval/rouge2; missing metric eval/rougeL; missing metric eval/rouge_avg")


def test_human_eval_percentages_and_varying_columns() -> None:
    runs = frame(
        run("a", n=250, **with_ci("eval/winrate_vs_init", 0.6, 0.05), **{"eval/n": 100.0}),
        run("b", n=1000, **with_ci("eval/winrate_vs_init", 0.7, 0.05), **{"eval/n": 100.0}),
        run("c", loss="kto", **with_ci("eval/winrate_vs_init", 0.55, 0.05)),  # no eval/n
    )
    result = human_eval_table(runs)
    table = result.data.set_index("runs")
    assert table.at["a", "% preferred vs initial"] == 100 * 0.6
    assert table.at["a", "% preferred vs initial_ci95_low"] == 100 * (0.6 - 0.05)
    assert table.at["b", "comparisons"] == 100.0
    assert "labels.n" in table.columns and "loss.beta" not in table.columns  # only what varies
    assert "% preferred vs reference" not in table.columns  # no run has a reference
    assert list(result.excluded["reason"]) == ["missing metric eval/n"]


def test_imbalance_and_label_count_need_two_axis_values() -> None:
    runs = frame(run("a", loss="kto", **{"eval/gold_reward": 0.1, "eval/winrate_vs_init": 0.6}))
    assert "labels.desirable_fraction" in imbalance(runs).skip_reason
    assert "labels.n" in label_count(runs).skip_reason
    two = frame(run("a", n=250, **{"eval/gold_reward": 0.1}), run("b", n=1000, **{"eval/gold_reward": 0.2}))
    assert list(label_count(two).data["labels.n"]) == [250, 1000]


def test_a_curve_needs_two_values_of_its_knob_counted_per_curve_not_across_curves() -> None:
    # One budget per method: two budgets in the selection, but no curve (the old check passed it).
    one_each = frame(run("d", loss="dpo", n=400, **{"eval/gold_reward": 0.1}),
                     run("p", loss="ppo", n=1000, **{"eval/gold_reward": 0.2}))
    skipped = label_count(one_each)
    assert skipped.data.empty
    assert "per curve" in skipped.skip_reason and "curve tldr, dpo" in skipped.skip_reason
    # A curve with two budgets is drawn; the single point of another method is named, not drawn.
    mixed = frame(*one_each.to_dict("records"), run("d2", loss="dpo", n=800, **{"eval/gold_reward": 0.3}))
    result = label_count(mixed)
    assert list(result.data["runs"]) == ["d", "d2"]
    assert result.notes == ("curve tldr, ppo: one value of labels.n (labels.n=1000), not a curve",)
    # The frontier's knob is β: one β per method is no frontier, whatever the KLs.
    betas = frame(run("a", beta=0.1, **{"eval/kl": 1.0, "eval/gold_reward": 0.5}),
                  run("b", loss="kto", beta=0.3, **{"eval/kl": 2.0, "eval/gold_reward": 0.6}))
    assert "loss.beta / loss.n per curve" in frontier(betas).skip_reason


def test_display_merges_intervals_and_escapes_markdown() -> None:
    table = pd.DataFrame({"method": ["a|b"], "x": [0.5], "x_ci95_low": [0.25], "x_ci95_high": [float("nan")],
                          "y": [1.0], "y_ci95_low": [0.5], "y_ci95_high": [1.5], "runs": ["0123456789abcdef fedcba9876543210"]})
    shown = display_frame(table)
    assert list(shown.columns) == ["method", "x", "y", "runs"]
    assert list(shown.iloc[0]) == ["a|b", "0.5", "1 [0.5, 1.5]", "01234567 fedcba98"]
    assert markdown_table(shown).splitlines()[2] == "| a\\|b | 0.5 | 1 [0.5, 1.5] | 01234567 fedcba98 |"
