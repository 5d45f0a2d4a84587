"""Paper tables and figure data as pure functions of the selected runs (query.load_runs).

Each function takes the kept runs and returns a `TableResult`: the table (one row per
configuration, seeds aggregated), the runs in its scope left out for a missing metric, and a
caption naming the paper it follows. Every row carries provenance: `n_seeds`, `seeds`,
`runs` (run ids), `labeler` (name and version) and `config` (query.config_id).

Seeds: a row whose configuration was run with several seeds reports the mean across seeds
and a 95% t-interval across seeds; with one seed, the run's own logged interval (normal
approximation over eval prompts) where the metric has one. Value columns `x` come with
`x_ci95_low` and `x_ci95_high`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from harness.cache import config_hash
from harness.report.query import EXCLUDED_COLUMNS, config_id, excluded_frame, seed_of

SUMMARY_TASKS = ("tldr", "cnndm")
# Run column behind each axis a table can group by; the table column takes the axis name.
AXES = {
    "task": "tags.task", "model": "tags.model", "loss": "tags.loss", "init": "tags.init",
    "labels.n": "params.labels.n", "loss.beta": "params.loss.beta", "loss.n": "params.loss.n",
    "labels.desirable_fraction": "params.labels.desirable_fraction",
    "loss.balance_weights": "params.loss.balance_weights", "labels.rounds": "params.labels.rounds",
}
# What can tell two configurations of one method apart in a table row.
METHOD_AXES = ["model", "init", "labels.n", "labels.rounds", "labels.desirable_fraction", "loss.beta", "loss.n"]
PROVENANCE = ["n_seeds", "seeds", "runs", "labeler", "config"]
ROUGE = {"R-1": "rouge1", "R-2": "rouge2", "R-L": "rougeL", "R-AVG": "rouge_avg"}
PREFERRED = "% preferred vs reference"  # the summary table's panel column (win rate × 100)
SUMMARY_VALUES = (*ROUGE, PREFERRED)
NOT_POLICIES = ("reward_model",)  # evaluates the initial policy: no method of its own


@dataclass(frozen=True)
class TableResult:
    name: str
    data: pd.DataFrame  # empty: no run qualifies, and `skip_reason` says why
    caption: str
    excluded: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=EXCLUDED_COLUMNS))
    skip_reason: str = ""
    notes: tuple[str, ...] = ()  # what was left out of a figure and why (index.md lists them)


# Each figure: the knob its curves are swept over (what the runs set; KL is measured) and what
# tells its curves apart (each task is a panel of its own).
CURVES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "frontier": (("loss.beta", "loss.n"), ("model", "loss", "init", "labels.n", "labels.desirable_fraction")),
    "overoptimization": (("point",), ("model", "loss", "init", "labels.n", "loss.beta", "loss.n")),
    "imbalance": (("labels.desirable_fraction",), ("model", "loss", "init", "labels.n", "loss.beta",
                                                   "loss.balance_weights")),
    "label_count": (("labels.n",), ("model", "loss", "init", "labels.desirable_fraction", "loss.beta", "loss.n")),
}


# ---------------------------------------------------------------- shared steps


def numeric(values: pd.Series) -> pd.Series:
    """Params are logged as strings: numbers become numbers (whole ones Int64), text stays."""
    parsed = pd.to_numeric(values, errors="coerce")
    if parsed.notna().sum() < values.notna().sum():
        return values
    whole = parsed.dropna()
    return parsed.astype("Int64") if len(whole) and (whole == whole.round()).all() else parsed


def axis_values(runs: pd.DataFrame, axes: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({a: numeric(runs[AXES[a]]) if AXES[a] in runs else pd.Series(pd.NA, index=runs.index)
                         for a in axes}, index=runs.index)


def scope(runs: pd.DataFrame, losses: Sequence[str] | None = None, exclude: Sequence[str] = (),
          tasks: Sequence[str] | None = None) -> pd.DataFrame:
    keep = pd.Series(True, index=runs.index)
    loss = runs.get("tags.loss", pd.Series(pd.NA, index=runs.index))
    if losses is not None:
        keep &= loss.isin(losses)
    keep &= ~loss.isin(exclude)
    if tasks is not None:
        keep &= runs.get("tags.task", pd.Series(pd.NA, index=runs.index)).isin(tasks)
    return runs[keep]


def no_exclusions() -> pd.DataFrame:
    return pd.DataFrame(columns=EXCLUDED_COLUMNS)


def require(runs: pd.DataFrame, metrics: Sequence[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs with every metric, excluded runs with reason `missing metric <key>`)."""
    if runs.empty:
        return runs, no_exclusions()
    missing = pd.DataFrame({m: runs[f"metrics.{m}"].isna() if f"metrics.{m}" in runs else True
                            for m in metrics}, index=runs.index)
    reasons = missing.apply(lambda row: "; ".join(f"missing metric {m}" for m in metrics if row[m]), axis=1)
    bad = missing.any(axis=1)
    return runs[~bad], excluded_frame(runs[bad], reasons[bad])


def seed_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval across seeds: mean ± t_{0.975, n−1} · s / √n (n ≥ 2)."""
    x = np.asarray(values, dtype=np.float64)
    mean = float(x.mean())
    half = float(stats.t.ppf(0.975, x.size - 1)) * float(x.std(ddof=1)) / math.sqrt(x.size)
    return mean, mean - half, mean + half


def _estimate(group: pd.DataFrame, metric: str) -> tuple[float, float, float]:
    column = f"metrics.{metric}"
    values = group[column].dropna() if column in group else pd.Series(dtype=float)
    if len(values) >= 2:
        return seed_interval(values.to_numpy())
    if len(values) == 1:
        row = group.loc[values.index[0]]
        low, high = (row.get(f"metrics.{metric}_ci95_{side}", np.nan) for side in ("low", "high"))
        return float(values.iloc[0]), float(low), float(high)
    return np.nan, np.nan, np.nan


def _provenance(group: pd.DataFrame, config: str) -> dict[str, object]:
    seeds = seed_of(group).astype(str)
    order = sorted(group.index, key=lambda i: (_seed_sort(seeds[i]), group.at[i, "run_id"]))
    labelers = {f"{group.at[i, 'tags.labeler']} v{group.at[i, 'tags.labeler.version']}"
                if "tags.labeler" in group and "tags.labeler.version" in group else "unknown"
                for i in group.index}
    return {"n_seeds": len(group), "seeds": ",".join(seeds[i] for i in order),
            "runs": " ".join(group.at[i, "run_id"] for i in order),
            "labeler": ",".join(sorted(labelers)), "config": config}


def _seed_sort(seed: str) -> tuple[int, float | str]:
    try:
        return 0, float(seed)
    except ValueError:
        return 1, seed


def aggregate(runs: pd.DataFrame, axes: Sequence[str], values: Mapping[str, str],
              totals: Mapping[str, str] | None = None) -> pd.DataFrame:
    """One row per configuration (query.config_id): the axes, each value (column name →
    metric key) with its interval, each total (column → metric key) summed over seeds, and
    provenance. Runs of one configuration differ only in seed."""
    columns = [*axes, *(f"{v}{s}" for v in values for s in ("", "_ci95_low", "_ci95_high")),
               *(totals or {}), *PROVENANCE]
    if runs.empty:
        return pd.DataFrame(columns=columns)
    keys = axis_values(runs, axes)
    ids = config_id(runs)
    rows = []
    for config, index in ids.groupby(ids, sort=False).groups.items():
        group = runs.loc[index]
        row: dict[str, object] = keys.loc[index[0]].to_dict()
        for name, metric in values.items():
            row[name], row[f"{name}_ci95_low"], row[f"{name}_ci95_high"] = _estimate(group, metric)
        for name, metric in (totals or {}).items():
            row[name] = float(group[f"metrics.{metric}"].sum()) if f"metrics.{metric}" in group else np.nan
        rows.append(row | _provenance(group, str(config)))
    table = pd.DataFrame(rows, columns=columns)
    for axis in axes:  # keep Int64 / float dtypes from axis_values
        table[axis] = table[axis].astype(keys[axis].dtype) if len(table) else table[axis]
    return table.sort_values([*axes, "config"], na_position="first", kind="stable").reset_index(drop=True)


def varying(table: pd.DataFrame, columns: Sequence[str], within: Sequence[str] = ()) -> list[str]:
    """The columns that take more than one value (within some group of `within`)."""
    if table.empty:
        return []
    groups = table.groupby(list(within), dropna=False) if within else [(None, table)]
    return [c for c in columns if c in table and any(g[c].nunique(dropna=False) > 1 for _, g in groups)]


def _figure_data(name: str, runs: pd.DataFrame, losses: Sequence[str] | None, needed: Sequence[str],
                 axes: Sequence[str], values: Mapping[str, str], caption: str, what: str) -> TableResult:
    in_scope = scope(runs, losses, exclude=NOT_POLICIES)
    usable, excluded = require(in_scope, needed)
    data = aggregate(usable, axes, values)
    # Axes no run of this table has (e.g. `init`, `loss.n` outside best-of-n) are dropped.
    data = data.drop(columns=[a for a in axes if a not in ("task", "loss") and data[a].isna().all()])
    skip = "" if len(data) else f"no run {what} logged {', '.join(needed)}"
    return TableResult(name, data, caption, excluded, skip)


# ---------------------------------------------------------------- the tables


def summarization_table(runs: pd.DataFrame) -> TableResult:
    """ROUGE on TL;DR and CNN/Daily Mail in the layout of Ziegler et al. (2019), Table 5, and the
    panel's preference over the reference summary: zero-shot (the base model), supervised,
    lead-3, RL from N labels, supervised + RL, DPO / KTO and best-of-n rows; columns `<task> R-1`,
    `R-2`, `R-L`, `R-AVG`, `% preferred vs reference` per task. Cells no run logged stay empty."""
    caption = ("ROUGE F1 of summaries on held-out prompts (Ziegler et al. 2019, Table 5 layout) and % of "
               "them the simulated panel prefers to the reference summary (the reference itself: 50% by "
               "definition); zero-shot is the base model, lead-3 the first three sentences of the source.")
    summaries = scope(runs, tasks=SUMMARY_TASKS)
    methods = scope(summaries, ("sft", "ppo", "dpo", "kto", "best_of_n"))
    usable, excluded = require(methods, [f"eval/{m}" for m in ROUGE.values()])
    base_init = summaries[summaries.get("tags.init", pd.Series("base", index=summaries.index)).fillna("base") == "base"]
    cells = [*_method_cells(usable),
             *_baseline_cells(base_init, "zero-shot", {n: f"eval/{k}_init" for n, k in ROUGE.items()}
                              | {PREFERRED: "eval/winrate_init_vs_reference"}, ("task", "model"), order=0),
             *_baseline_cells(summaries, "lead-3", {n: f"eval/lead3_{k}" for n, k in ROUGE.items()}
                              | {PREFERRED: "eval/lead3_winrate_vs_reference"}, ("task",), order=2)]
    if not cells:
        skip = f"no {'/'.join(SUMMARY_TASKS)} run logged ROUGE (eval/rouge1 … or their _init / lead3_ versions)"
        return TableResult("summarization", pd.DataFrame(), caption, excluded, skip)
    return TableResult("summarization", _layout(cells), caption, excluded)


def _cell(stats_row: pd.Series, label: str, order: tuple) -> dict[str, object]:
    scale = {PREFERRED: 100.0}
    return {"label": label, "order": order, "task": stats_row["task"], "config": stats_row["config"],
            "values": {name: [scale.get(name, 1.0) * float(stats_row.get(f"{name}{s}", np.nan))
                              for s in ("", "_ci95_low", "_ci95_high")] for name in SUMMARY_VALUES},
            "provenance": {p: stats_row[p] for p in PROVENANCE}}


METHOD_NAMES = {"sft": "supervised", "dpo": "DPO", "kto": "KTO", "best_of_n": "best-of-n"}


def _method_cells(runs: pd.DataFrame) -> list[dict[str, object]]:
    table = aggregate(runs, ["task", "model", "loss", "init", "labels.n", "loss.beta", "labels.desirable_fraction",
                             "loss.n"],
                      {name: f"eval/{key}" for name, key in ROUGE.items()} | {PREFERRED: "eval/winrate_vs_reference"})
    if table.empty:
        return []
    rl_after_sft = table["init"].astype(str) == "sft"
    table["method"] = np.where(table["loss"] == "ppo", np.where(rl_after_sft, "supervised + RL", "RL"),
                               table["loss"].map(METHOD_NAMES))
    rank = {"supervised": 1, "RL": 3, "supervised + RL": 4, "DPO": 5, "KTO": 6, "best-of-n": 7}
    cells = []
    for method, rows in table.groupby("method", sort=False):
        # RL rows always name their label budget (the paper's "RL from N labels"), best-of-n its n.
        shown = varying(rows, ["model", "loss.beta", "labels.desirable_fraction",
                               *([] if "RL" in method else ["labels.n"])])
        for _, row in rows.iterrows():
            parts = [f"{row['labels.n']} labels"] if "RL" in method else []
            parts += [f"n={row['loss.n']}"] if method == "best-of-n" and pd.notna(row["loss.n"]) else []
            parts += [describe(c, row[c]) for c in shown]
            label = f"{method} ({', '.join(parts)})" if parts else method
            cells.append(_cell(row, label, (rank[method], _sortable(row["labels.n"]), _sortable(row["loss.beta"]))))
    return cells


def _baseline_cells(runs: pd.DataFrame, label: str, keys: Mapping[str, str], axes: tuple[str, ...],
                    order: int) -> list[dict]:
    """A baseline that every run of a task evaluates alike (initial policy, lead-3): per seed
    the latest run that logged it, aggregated over seeds like a method. Runs that did not log
    its ROUGE are not excluded from the report; they just do not supply it (its other values,
    `keys` beyond ROUGE, may be missing from older runs: those cells stay empty)."""
    usable, _ = require(runs, [keys[name] for name in ROUGE])
    if usable.empty:
        return []
    # What fixes the baseline's numbers: its axes, the task's data and the eval settings.
    basis_columns = sorted(c for c in usable.columns if c.startswith(("params.task.", "params.eval."))
                           or ("model" in axes and c.startswith("params.model.")))
    basis = pd.concat([axis_values(usable, axes), usable[basis_columns]], axis=1).astype(str).agg("|".join, axis=1)
    picked = (usable.assign(_basis=basis, _seed=seed_of(usable).astype(str))
              .sort_values(["start_time", "run_id"], ascending=[False, True])
              .drop_duplicates(["_basis", "_seed"]))
    several_models = "model" in axes and picked["tags.model"].nunique() > 1
    cells = []
    for basis_id, group in picked.groupby("_basis", sort=True):
        row: dict[str, object] = axis_values(group, axes).iloc[0].to_dict()
        for name, metric in keys.items():
            row[name], row[f"{name}_ci95_low"], row[f"{name}_ci95_high"] = _estimate(group, metric)
        row |= _provenance(group, config_hash({"baseline": label, "basis": basis_id})[:8])
        name = f"{label} ({row['model']})" if several_models else label
        cells.append(_cell(pd.Series(row), name, (order, 0, 0)))
    return cells


def _layout(cells: list[dict[str, object]]) -> pd.DataFrame:
    """Cells (label × task) → one row per label, the tasks' columns side by side. Two cells
    for one label and task (configurations the label does not tell apart) get the config id
    in their label rather than one of them being dropped."""
    seen: dict[tuple, int] = {}
    for cell in cells:
        seen[(cell["label"], cell["task"])] = seen.get((cell["label"], cell["task"]), 0) + 1
    for cell in cells:
        if seen[(cell["label"], cell["task"])] > 1:
            cell["label"] = f"{cell['label']} [config {cell['config']}]"
    tasks = [t for t in SUMMARY_TASKS if any(c["task"] == t for c in cells)]
    rows: dict[str, dict[str, object]] = {}
    for cell in sorted(cells, key=lambda c: (c["order"], c["label"])):
        row = rows.setdefault(cell["label"], {"method": cell["label"]})
        for name, (value, low, high) in cell["values"].items():
            row |= {f"{cell['task']} {name}": value, f"{cell['task']} {name}_ci95_low": low,
                    f"{cell['task']} {name}_ci95_high": high}
        row |= {f"{cell['task']} {p}": v for p, v in cell["provenance"].items()}
    columns = ["method"]
    for task in tasks:
        columns += [f"{task} {name}{s}" for name in SUMMARY_VALUES for s in ("", "_ci95_low", "_ci95_high")]
        columns += [f"{task} {p}" for p in PROVENANCE]
    table = pd.DataFrame(list(rows.values()), columns=columns)
    for task in tasks:
        table[f"{task} n_seeds"] = table[f"{task} n_seeds"].astype("Int64")
    return table


def describe(axis: str, value: object) -> str:
    names = {"loss.beta": "β", "labels.n": "labels", "loss.n": "n", "labels.desirable_fraction": "desirable fraction",
             "loss.balance_weights": "λ_D rule", "labels.rounds": "rounds"}
    """An axis value as a legend or row label shows it: `1000 labels`, `β=0.1`."""
    return f"{value} labels" if axis == "labels.n" else f"{names.get(axis, axis)}={value}"


def _sortable(value: object) -> float:
    return float(value) if pd.notna(value) and isinstance(value, (int, float, np.number)) else -math.inf


def human_eval_table(runs: pd.DataFrame) -> TableResult:
    """Simulated human evaluation as in Ziegler et al. (2019, Fig. 2 / Table 4) and the DPO
    paper's win rates: % of eval prompts on which the panel prefers the method's response to
    the initial policy's and to the reference (where the task has references), with 95% CIs
    and the number of comparisons (eval/n, summed over seeds)."""
    caption = ("% preferred by the simulated panel (noise-free, ties count half) over the initial "
               "policy and over the reference summary, 95% CI; comparisons = eval prompts judged.")
    in_scope = scope(runs, exclude=NOT_POLICIES)
    usable, excluded = require(in_scope, ["eval/winrate_vs_init", "eval/n"])
    axes = ["task", "loss", *METHOD_AXES]
    values = {"% preferred vs initial": "eval/winrate_vs_init", "% preferred vs reference": "eval/winrate_vs_reference"}
    table = aggregate(usable, axes, values, {"comparisons": "eval/n"})
    if table.empty:
        return TableResult("human_eval", table, caption, excluded,
                           "no run logged eval/winrate_vs_init and eval/n")
    for name in values:
        for suffix in ("", "_ci95_low", "_ci95_high"):
            # A t-interval over a few seeds can pass 0 or 100%; a share cannot (the logged
            # per-run intervals are clipped the same way, eval/metrics.py:win_rate).
            table[f"{name}{suffix}"] = (100 * table[f"{name}{suffix}"]).clip(0, 100)
    if table["% preferred vs reference"].isna().all():
        table = table.drop(columns=[f"% preferred vs reference{s}" for s in ("", "_ci95_low", "_ci95_high")])
    shown = varying(table, METHOD_AXES, within=["task", "loss"])
    dropped = [a for a in METHOD_AXES if a not in shown]
    return TableResult("human_eval", table.drop(columns=dropped), caption, excluded)


def frontier(runs: pd.DataFrame) -> TableResult:
    """Gold reward against KL(π‖π_ref) per method over its loss.beta grid (best-of-n: loss.n),
    the reward–KL frontier of Rafailov et al. (2023, DPO), Fig. 2 left."""
    return two_per_curve(_figure_data(
        "frontier", runs, None, ["eval/kl", "eval/gold_reward"],
        ["task", "model", "loss", "init", "labels.n", "labels.desirable_fraction", "loss.beta", "loss.n"],
        {"eval/kl": "eval/kl", "eval/gold_reward": "eval/gold_reward",
         "eval/gold_reward_init": "eval/gold_reward_init"},
        "Gold reward against KL(π‖π_ref) per method over its β grid (DPO paper, Fig. 2 left); the "
        "initial policy at KL 0; each point labelled with its β (best-of-n: n) and seeds.",
        "(other than loss=reward_model)"))


# The over-optimisation curves: best-of-n along n (bon/*, one pool per run) and PPO along its
# iterations (series/*), each with the functional form Gao et al. (2022) fit to it, in d = √KL:
# best-of-n R(d) = d(α − βd), RL R(d) = d(α − β log d), R the gold reward gained over d = 0.
CURVE_KINDS = {"best_of_n": ("bon/", "best-of-n", "d(α − βd)"), "ppo": ("series/", "RL", "d(α − β log d)")}
OVEROPT_VALUES = {"kl": "kl", "gold": "gold_reward", "proxy": "proxy_reward"}


def _run_curve(row: pd.Series, prefix: str) -> dict[int, dict[str, float]] | None:
    curves = {name: row.get(f"curve.{prefix}{key}") for name, key in OVEROPT_VALUES.items()}
    if any(not isinstance(c, tuple) or not c for c in curves.values()):
        return None
    points: dict[int, dict[str, float]] = {}
    for name, curve in curves.items():
        for step, value in curve:
            points.setdefault(int(step), {})[name] = float(value)
    return {step: v for step, v in points.items() if len(v) == len(OVEROPT_VALUES)}


def fit_overoptimization(d: np.ndarray, gain: np.ndarray, kind: str) -> tuple[float, float]:
    """Least squares of the gold gained, `gain`, on d = √KL without intercept (R(0) = 0):
    best-of-n R = αd − βd², RL R = αd − β d log d (Gao et al. 2022, eqs. 1–2); (α, β), NaN with
    fewer than two points at d > 0."""
    keep = d > 0
    if keep.sum() < 2:
        return math.nan, math.nan
    d, gain = d[keep], gain[keep]
    second = d**2 if kind == "best_of_n" else d * np.log(d)
    (alpha, beta), *_ = np.linalg.lstsq(np.column_stack([d, -second]), gain, rcond=None)
    return float(alpha), float(beta)


def overoptimization(runs: pd.DataFrame) -> TableResult:
    """Gold (panel) and proxy (reward-model) reward against √KL(π‖π_ref): best-of-n along n from
    one pool of samples (loss=best_of_n with loss.pool, the bon/* curve) and PPO along training
    (its series/* curve), one curve per configuration, points averaged over seeds at each n or
    iteration, and the fitted α, β of Gao et al. (2022, Fig. 1 and eqs. 1–2)."""
    caption = ("Gold (panel) and proxy (reward model) reward against √KL(π‖π_ref) for best-of-n along n "
               "(unbiased estimator over one pool) and PPO along training, with Gao et al.'s (2022) forms "
               "fitted to the gold gained: best-of-n d(α − βd), RL d(α − β log d), d = √KL.")
    in_scope = scope(runs, tuple(CURVE_KINDS), exclude=NOT_POLICIES)
    curves, bad = {}, []
    for index, row in in_scope.iterrows():
        prefix = CURVE_KINDS[row["tags.loss"]][0]
        curve = _run_curve(row, prefix)
        if curve:
            curves[index] = curve
        else:
            bad.append(index)
    excluded = excluded_frame(in_scope.loc[bad], pd.Series(
        [f"no {CURVE_KINDS[in_scope.at[i, 'tags.loss']][0]}* curve logged (best-of-n: loss.pool; PPO: eval.every)"
         for i in bad], index=bad, dtype=object)) if bad else no_exclusions()
    usable = in_scope.loc[list(curves)]
    axes = ["task", "model", "loss", "init", "labels.n", "loss.beta", "loss.n"]
    rows = []
    if len(usable):
        keys, ids = axis_values(usable, axes), config_id(usable)
        for config, index in ids.groupby(ids, sort=False).groups.items():
            group = usable.loc[index]
            base = keys.loc[index[0]].to_dict()
            loss = str(base["loss"])
            steps = sorted(set.intersection(*(set(curves[i]) for i in index)))
            points = []
            for step in steps:
                point = {"point": step}
                for name in OVEROPT_VALUES:
                    values = [curves[i][step][name] for i in index]
                    point[name], point[f"{name}_ci95_low"], point[f"{name}_ci95_high"] = (
                        seed_interval(values) if len(values) >= 2 else (values[0], math.nan, math.nan))
                points.append(point)
            d = np.sqrt(np.clip([p["kl"] for p in points], 0, None))
            origin = points[int(np.argmin(d))]["gold"]
            alpha, beta = fit_overoptimization(d, np.array([p["gold"] for p in points]) - origin, loss)
            provenance = _provenance(group, str(config))
            for point in points:
                rows.append(base | {"curve": CURVE_KINDS[loss][1]} | point |
                            {"fit": CURVE_KINDS[loss][2], "fit_alpha": alpha, "fit_beta": beta,
                             "gold_at_0": origin} | provenance)
    columns = [*axes, "curve", "point", *(f"{v}{s}" for v in OVEROPT_VALUES for s in ("", "_ci95_low", "_ci95_high")),
               "fit", "fit_alpha", "fit_beta", "gold_at_0", *PROVENANCE]
    data = pd.DataFrame(rows, columns=columns)
    data = data.drop(columns=[a for a in axes if a not in ("task", "loss") and data[a].isna().all()])
    for suffix in ("", "_ci95_low", "_ci95_high"):
        data[f"sqrt_kl{suffix}"] = np.sqrt(data[f"kl{suffix}"].astype(float).clip(lower=0))
    skip = "" if len(data) else ("no PPO run logged its series (eval.every > 0) and no best-of-n run its pool curve "
                                 "(loss.pool)")
    return two_per_curve(TableResult("overoptimization", data.reset_index(drop=True), caption, excluded, skip))


def imbalance(runs: pd.DataFrame) -> TableResult:
    """KTO against DPO as desirable examples are dropped (labels.desirable_fraction): gold
    reward and win rate vs the initial policy, as in Ethayarajh et al. (2024, KTO), Fig. 4."""
    result = _figure_data(
        "imbalance", runs, ("kto", "dpo"), ["eval/gold_reward", "eval/winrate_vs_init"],
        ["task", "model", "loss", "init", "labels.n", "loss.beta", "loss.balance_weights", "labels.desirable_fraction"],
        {"eval/gold_reward": "eval/gold_reward", "eval/winrate_vs_init": "eval/winrate_vs_init"},
        "KTO and DPO against the share of desirable examples kept (KTO paper, Fig. 4): gold reward "
        "and win rate vs the initial policy.",
        "with loss kto or dpo")
    return two_per_curve(result)


def label_count(runs: pd.DataFrame) -> TableResult:
    """Gold reward against the label budget labels.n per method (Ziegler et al. 2019, Fig. 4:
    performance by number of human labels)."""
    result = _figure_data(
        "label_count", runs, None, ["eval/gold_reward"],
        ["task", "model", "loss", "init", "labels.desirable_fraction", "loss.beta", "loss.n", "labels.n"],
        {"eval/gold_reward": "eval/gold_reward"},
        "Gold reward against the number of labels per method (Ziegler et al. 2019, Fig. 4).",
        "(other than loss=reward_model)")
    return two_per_curve(result)


def curves(data: pd.DataFrame, name: str) -> list[tuple[dict[str, object], pd.DataFrame]]:
    """The figure's curves: (the values that fix it, its rows), one per task and curve key."""
    _, by = CURVES[name]
    keys = [c for c in ("task", *by) if c in data]
    if not keys:
        return [({}, data)]
    return [(dict(zip(keys, values if isinstance(values, tuple) else (values,))), group)
            for values, group in data.groupby(keys, dropna=False, sort=True)]


def curve_label(key: dict[str, object], data: pd.DataFrame) -> str:
    """Task, method and whatever else tells this curve from the others in `data`."""
    shown = [k for k in key if k in ("task", "loss") or data[k].nunique(dropna=False) > 1]
    return ", ".join(str(key[k]) if k in ("task", "loss", "model") else describe(k, key[k])
                     for k in shown if pd.notna(key[k]))


def two_per_curve(result: TableResult) -> TableResult:
    """A curve needs two or more values of its knob (the DPO β, a label budget): a single point is
    not a curve. Curves with one are left out and named in the result's notes; with none left the
    figure is skipped."""
    if result.skip_reason or result.data.empty:
        return result
    knobs = [k for k in CURVES[result.name][0] if k in result.data]
    kept, notes = [], []
    for key, group in curves(result.data, result.name):
        values = group[knobs].drop_duplicates() if knobs else group
        if len(values) >= 2:
            kept.append(group)
        else:
            shown = ", ".join(f"{k}={v}" for k, v in values.iloc[0].items() if pd.notna(v)) if knobs else "none"
            notes.append(f"curve {curve_label(key, result.data)}: one value of {' / '.join(CURVES[result.name][0])} ({shown}), "
                         "not a curve")
    if not kept:
        return TableResult(result.name, result.data.iloc[0:0], result.caption, result.excluded,
                           f"needs two or more values of {' / '.join(CURVES[result.name][0])} per curve; "
                           + "; ".join(notes))
    data = pd.concat(kept).sort_index()
    return TableResult(result.name, data.reset_index(drop=True), result.caption, result.excluded, "", tuple(notes))


TABLES = (summarization_table, human_eval_table)
FIGURE_DATA = (frontier, overoptimization, imbalance, label_count)
# Each output's name (the TableResult's, its files' stem) → the function that builds it.
OUTPUTS = {"summarization": summarization_table, "human_eval": human_eval_table, "frontier": frontier,
           "overoptimization": overoptimization, "imbalance": imbalance, "label_count": label_count}
