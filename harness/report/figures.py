"""Figures from the figure-data tables of tables.py: one panel per task, one curve per method
(and per whatever else varies: label budget, β, model), error bars from the 95% intervals.

Figures are built with matplotlib's object API on an Agg canvas, never pyplot: no global
figure registry to leak memory into and no backend state for a caller to trip over.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness.report.tables import CURVES, describe

KL = r"KL($\pi\,\|\,\pi_{\mathrm{ref}}$) [nats]"
GOLD = "gold reward [panel utility]"
WINRATE = "win rate vs initial policy [%]"


def _errors(data: pd.DataFrame, column: str, scale: float = 1.0) -> np.ndarray | None:
    """[[below], [above]] for errorbar from `column_ci95_low/high`; none where no interval."""
    if f"{column}_ci95_low" not in data:
        return None
    value = data[column].astype(float)
    below = (value - data[f"{column}_ci95_low"].astype(float)).clip(lower=0).fillna(0)
    above = (data[f"{column}_ci95_high"].astype(float) - value).clip(lower=0).fillna(0)
    return scale * np.vstack([below.to_numpy(), above.to_numpy()])


def _curve_keys(data: pd.DataFrame, candidates: Sequence[str]) -> tuple[list[str], list[str]]:
    """(columns a curve is fixed by, those of them shown in the legend: the ones that vary)."""
    keys = [c for c in candidates if c in data]
    shown = [c for c in keys if c == "loss" or data[c].nunique(dropna=False) > 1]
    return keys, shown


def _label(key_values: dict[str, object], shown: Sequence[str]) -> str:
    return ", ".join(str(key_values[c]) if c in ("loss", "model", "curve") else describe(c, key_values[c]) for c in shown)


def _seeds(group: pd.DataFrame) -> str:
    if "n_seeds" not in group or group["n_seeds"].isna().all():
        return ""
    low, high = int(group["n_seeds"].min()), int(group["n_seeds"].max())
    count = f"{low}" if low == high else f"{low}–{high}"
    return f" ({count} seed{'s' if high > 1 else ''})"


def _plot_curves(ax: Axes, data: pd.DataFrame, x: str, ys: Sequence[tuple[str, str, str, str]],
                 curve_by: Sequence[str], x_scale: float = 1.0, y_scale: float = 1.0,
                 annotate: Sequence[str] = ()) -> None:
    """One errorbar line per curve and y; `ys` is (column, legend suffix, line style, marker). The
    legend says how many seeds each curve's points have; `annotate` names the knob columns whose
    value is written beside each point (the frontier's β)."""
    keys, shown = _curve_keys(data, curve_by)
    groups = data.groupby(keys, dropna=False, sort=True) if keys else [((), data)]
    for colour, (values, group) in enumerate(groups):
        values = values if isinstance(values, tuple) else (values,)
        group = group.sort_values(x)
        label = _label(dict(zip(keys, values)), shown) + _seeds(group)
        for column, suffix, style, marker in ys:
            ax.errorbar(x_scale * group[x].astype(float), y_scale * group[column].astype(float),
                        yerr=_errors(group, column, y_scale), xerr=_errors(group, x, x_scale),
                        color=f"C{colour % 10}", linestyle=style, marker=marker, capsize=3,
                        label=f"{label}{suffix}")
        for _, row in group.iterrows():
            text = ", ".join(describe(k, row[k]) for k in annotate if k in row and pd.notna(row[k]))
            if text:
                ax.annotate(text, (x_scale * float(row[x]), y_scale * float(row[ys[0][0]])), fontsize="x-small",
                            xytext=(4, 4), textcoords="offset points", color=f"C{colour % 10}")


def _panels(data: pd.DataFrame, columns: int = 1) -> tuple[Figure, list[tuple[str, list[Axes]]]]:
    tasks = sorted(data["task"].dropna().unique())
    fig = Figure(figsize=(5.5 * columns, 4.2 * len(tasks)), layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.subplots(len(tasks), columns, squeeze=False)
    return fig, [(task, list(grid[i])) for i, task in enumerate(tasks)]


def _finish(ax: Axes, task: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(task)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")


def frontier_figure(data: pd.DataFrame) -> Figure:
    """Gold reward against KL(π‖π_ref), one curve per method (DPO paper, Fig. 2 left)."""
    fig, panels = _panels(data)
    for task, (ax,) in panels:
        rows = data[data["task"] == task]
        _plot_curves(ax, rows, "eval/kl", [("eval/gold_reward", "", "-", "o")], CURVES["frontier"][1],
                     annotate=CURVES["frontier"][0])
        if "eval/gold_reward_init" in rows and rows["eval/gold_reward_init"].notna().any():
            ax.plot([0.0], [rows["eval/gold_reward_init"].astype(float).mean()], marker="*", markersize=12,
                    color="black", linestyle="none", label="initial policy (KL 0)")
        _finish(ax, task, KL, GOLD)
    return fig


def overoptimization_figure(data: pd.DataFrame) -> Figure:
    """Gold (solid) and proxy (dashed) reward against √KL, one curve per configuration (best-of-n
    along n, PPO along training), the fitted form dotted (Gao et al. 2022, Fig. 1)."""
    fig, panels = _panels(data)
    for task, (ax,) in panels:
        rows = data[data["task"] == task]
        keys, shown = _curve_keys(rows, ["curve", *CURVES["overoptimization"][1]])
        for colour, (values, group) in enumerate(rows.groupby(keys, dropna=False, sort=True)):
            values = values if isinstance(values, tuple) else (values,)
            group = group.sort_values("point")
            label = _label(dict(zip(keys, values)), shown) + _seeds(group)
            x = group["sqrt_kl"].astype(float)
            for column, suffix, style, marker in (("gold", "gold", "-", "o"), ("proxy", "proxy", "--", "s")):
                ax.errorbar(x, group[column].astype(float), yerr=_errors(group, column), color=f"C{colour % 10}",
                            linestyle=style, marker=marker, markersize=4, capsize=2, label=f"{label}: {suffix}")
            alpha, beta, origin = (float(group[c].iloc[0]) for c in ("fit_alpha", "fit_beta", "gold_at_0"))
            if np.isfinite(alpha) and np.isfinite(beta):
                d = np.linspace(1e-3, float(x.max()), 100)
                shape = d if group["curve"].iloc[0] == "best-of-n" else np.log(d)
                ax.plot(d, origin + d * (alpha - beta * shape), color=f"C{colour % 10}", linestyle=":",
                        label=f"{label}: fit {group['fit'].iloc[0]}, α={alpha:.3g}, β={beta:.3g}")
        _finish(ax, task, r"$\sqrt{\mathrm{KL}(\pi\,\|\,\pi_{\mathrm{ref}})}$ [$\sqrt{\mathrm{nats}}$]",
                "reward\n[gold: panel utility; proxy: RM s.d.]")
    return fig


def imbalance_figure(data: pd.DataFrame) -> Figure:
    """Gold reward and win rate against the share of desirable examples kept, KTO vs DPO
    (KTO paper, Fig. 4)."""
    fig, panels = _panels(data, columns=2)
    curves = CURVES["imbalance"][1]
    for task, (gold_ax, win_ax) in panels:
        rows = data[data["task"] == task]
        _plot_curves(gold_ax, rows, "labels.desirable_fraction", [("eval/gold_reward", "", "-", "o")], curves)
        _finish(gold_ax, task, "desirable examples kept [fraction]", GOLD)
        _plot_curves(win_ax, rows, "labels.desirable_fraction", [("eval/winrate_vs_init", "", "-", "o")], curves,
                     y_scale=100.0)
        _finish(win_ax, task, "desirable examples kept [fraction]", WINRATE)
    return fig


def label_count_figure(data: pd.DataFrame) -> Figure:
    """Gold reward against the number of labels per method (Ziegler et al. 2019, Fig. 4)."""
    fig, panels = _panels(data)
    for task, (ax,) in panels:
        _plot_curves(ax, data[data["task"] == task], "labels.n", [("eval/gold_reward", "", "-", "o")],
                     CURVES["label_count"][1])
        ax.set_xscale("log")
        _finish(ax, task, "labels [comparisons, log scale]", GOLD)
    return fig


FIGURES: dict[str, Callable[[pd.DataFrame], Figure]] = {
    "frontier": frontier_figure,
    "overoptimization": overoptimization_figure,
    "imbalance": imbalance_figure,
    "label_count": label_count_figure,
}
