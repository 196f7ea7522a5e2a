"""One look for every figure in the book (all chapters).

Figures are drawn from the tidy tables the experiments return; each helper takes a table and an optional
``ax`` and returns the ``Axes``, so a chapter can compose figures without restyling them.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

PALETTE = "colorblind"
CHANCE_STYLE = {"color": "0.4", "linestyle": ":", "linewidth": 1.2}


def use_theme() -> None:
    """The book's seaborn theme: white grid, colour-blind-safe palette, readable sizes, crisp PNGs."""
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE)
    plt.rcParams.update(
        {
            "figure.figsize": (6.4, 3.8),
            "figure.dpi": 110,
            "savefig.dpi": 150,
            "axes.titleweight": "bold",
            "axes.spines.top": False,
            "axes.spines.right": False,
        }
    )


def _axes(ax):
    if ax is None:
        _, ax = plt.subplots()
    return ax


def rate_with_interval(
    table: pd.DataFrame,
    x: str,
    y: str = "rate",
    *,
    low: str = "low",
    high: str = "high",
    hue: str | None = None,
    chance: float | None = None,
    ax=None,
    label: str | None = None,
):
    """A rate per category of ``x`` with its 95% interval as error bars, optionally split by ``hue``."""
    ax = _axes(ax)
    groups = [(label, table)] if hue is None else list(table.groupby(hue, sort=False))
    colors = sns.color_palette(PALETTE, len(groups))
    for color, (name, g) in zip(colors, groups, strict=True):
        xs = g[x].astype(str).tolist()
        yerr = [g[y] - g[low], g[high] - g[y]]
        ax.errorbar(xs, g[y], yerr=yerr, marker="o", capsize=3, color=color, label=name)
    if chance is not None:
        ax.axhline(chance, **CHANCE_STYLE, label="chance")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    if hue is not None or chance is not None or label is not None:
        ax.legend(frameon=False)
    return ax


def lines_over_steps(table: pd.DataFrame, y: str, hue: str, *, ax=None, title: str | None = None):
    """One line per ``hue`` value: ``y`` against training ``step`` (e.g. accuracy per exposure bucket)."""
    ax = _axes(ax)
    sns.lineplot(data=table, x="step", y=y, hue=hue, marker="o", ax=ax, palette=PALETTE)
    ax.set_ylim(-0.03, 1.03)
    if title:
        ax.set_title(title)
    ax.legend(title=hue, frameon=False, fontsize="small")
    return ax


def reliability_diagram(table: pd.DataFrame, *, ax=None, label: str | None = None):
    """Accuracy against mean confidence per bin (from :func:`halluc_lib.core.metrics.reliability_table`)."""
    ax = _axes(ax)
    t = table.dropna()
    ax.plot([0, 1], [0, 1], **CHANCE_STYLE)
    ax.scatter(t["confidence"], t["accuracy"], s=10 + 200 * t["count"] / t["count"].max(), label=label, alpha=0.8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    if label:
        ax.legend(frameon=False)
    return ax


def flow_diagram(
    nodes: dict[str, tuple[float, float]],
    edges: Sequence[tuple[str, str]],
    *,
    highlight: Sequence[str] = (),
    ax=None,
    figsize: tuple[float, float] = (8, 3),
):
    """A box-and-arrow diagram drawn with matplotlib, so it renders offline at build time (no mermaid CDN).

    ``nodes`` maps a label to its (x, y) centre in a unit square; ``highlight`` nodes are drawn in the
    warning colour.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    missing = {n for e in edges for n in e} - set(nodes)
    if missing:
        raise ValueError(f"edges name nodes that are not in nodes: {sorted(missing)}")
    base, warn = sns.color_palette(PALETTE)[0], sns.color_palette(PALETTE)[3]
    for a, b in edges:
        ax.annotate(
            "",
            xy=nodes[b],
            xytext=nodes[a],
            arrowprops={"arrowstyle": "-|>", "color": "0.3", "lw": 1.5, "shrinkA": 38, "shrinkB": 38},
        )
    for label, (x, y) in nodes.items():
        color = warn if label in highlight else base
        ax.text(
            x,
            y,
            label,
            ha="center",
            va="center",
            fontsize=10,
            color="white",
            bbox={"boxstyle": "round,pad=0.5", "facecolor": color, "edgecolor": "none"},
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.axis("off")
    return ax
