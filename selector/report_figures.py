"""The selector comparison's pictures (:mod:`selector.report` writes them beside its report).

- :func:`plot_accuracy`: identification accuracy against batch size, one line per selector;
- :func:`plot_regret`: leave-one-dataset-out regret per selector and held-out dataset (a heatmap);
- :func:`plot_cd`: autorank's critical-difference diagram (Friedman + Nemenyi, Demsar 2006);
- :func:`plot_embeddings`: the datasets' embeddings on their first two principal components.

Each returns the path it wrote, or None where there is nothing to draw. Matplotlib figures are
made without pyplot (no global state; the Agg canvas).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_accuracy", "plot_cd", "plot_embeddings", "plot_regret"]

def _figure(w: float, h: float) -> Any:
    from matplotlib.figure import Figure  # no pyplot: no global state, Agg canvas

    return Figure(figsize=(w, h))


def plot_accuracy(table: Sequence[Mapping[str, Any]], path: Path) -> Path | None:
    """Identification accuracy against batch size (log2 axis), one line per selector."""
    if not table:
        return None
    fig = _figure(7.5, 4.5)
    ax = fig.subplots()
    labels = list(dict.fromkeys(r["selector"] for r in table))
    for k, label in enumerate(labels):
        rs = sorted((r for r in table if r["selector"] == label), key=lambda r: r["batch_size"])
        style = "--" if rs[0].get("split") == "train-holdout" else "-"
        ax.plot([r["batch_size"] for r in rs], [r["accuracy"] for r in rs], style, marker="o", markersize=3,
                label=label + (" (train hold-out)" if style == "--" else ""), color=_color(k))
    chance = min(r["chance"] for r in table)
    ax.axhline(chance, color="grey", linestyle=":", linewidth=1, label=f"chance ({chance:.3f})")
    ax.set_xscale("log", base=2)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("batch size (samples of the held-out split)")
    ax.set_ylabel("identification accuracy")
    ax.set_title("naming the right dataset")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def _color(k: int) -> Any:
    import matplotlib

    return matplotlib.colormaps["tab20"](k % 20)


def plot_regret(table: Sequence[Mapping[str, Any]], path: Path) -> Path | None:
    """Regret (oracle ALC - selected ALC) per selector (rows) and held-out dataset (columns)."""
    from autodl.plots import alc_heatmap

    if not table:
        return None
    labels = list(dict.fromkeys(r["selector"] for r in table))
    datasets = list(dict.fromkeys(r["dataset"] for r in table))
    values = np.full((len(labels), len(datasets)), np.nan)
    for r in table:
        values[labels.index(r["selector"]), datasets.index(r["dataset"])] = r["regret"]
    empty = [["failed"] * len(datasets) for _ in labels]
    return alc_heatmap(values, labels, datasets, path, empty_text=empty, colorbar="regret (oracle ALC - selected ALC)",
                       title="leave-one-dataset-out regret", xlabel="held-out dataset", ylabel="selector")


def plot_cd(stats: Any, path: Path) -> Path | None:
    """autorank's critical-difference diagram (Friedman + Nemenyi), or None where there is none."""
    if stats.result is None or stats.test is None or stats.test.get("posthoc") != "nemenyi":
        return None
    import warnings

    from autorank import plot_stats

    fig = _figure(7.0, 1.0 + 0.35 * len(stats.selectors))
    ax = fig.subplots()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plot_stats(stats.result, allow_insignificant=True, ax=ax)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def plot_embeddings(points: Sequence[Mapping[str, Any]], path: Path) -> Path | None:
    """The datasets' embeddings on their first two principal components, centroids labelled."""
    if not points:
        return None
    fig = _figure(8.0, 6.0)
    ax = fig.subplots()
    names = list(dict.fromkeys(p["dataset"] for p in points))
    markers = "os^Dv<>P*X"
    for k, name in enumerate(names):
        xy = np.array([(p["x"], p["y"]) for p in points if p["dataset"] == name])
        ax.scatter(xy[:, 0], xy[:, 1], s=6, alpha=0.35, color=_color(k), marker=markers[(k // 20) % len(markers)])
        c = xy.mean(axis=0)
        ax.scatter([c[0]], [c[1]], s=60, color=_color(k), edgecolor="black", marker=markers[(k // 20) % len(markers)])
        ax.annotate(name, c, fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.set_title("training embeddings of each dataset (PCA), centroids labelled")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
