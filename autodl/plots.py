"""Pictures: a grid of a dataset's training examples with their labels; heatmaps of ALC tables;
the learning curve of a scored task.

The learning-curve figure (:func:`plot_learning_curve`) follows the organizers' layout
(transformed time on x with a second axis in seconds, 2*AUC-1 on y, step plot, ALC in the
legend) but is not meant to be pixel-identical; :func:`time_ticks` gives the seconds of its
top axis.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autodl.dataset import AutoDLDataset
from autodl.score_files import ScoreResult
from autodl.scoring import (
    CURVE_RULES,
    METRIC_NAMES,
    SCORE_NAMES,
    curve_points,
    transform_time,
    trapezoid_points,
)

logger = logging.getLogger(__name__)


def example_grid(dataset: AutoDLDataset, path: str | Path, n: int = 32, size: int = 64) -> Path:
    """Save a PNG grid of the first ``n`` training examples (first frame), titled by label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arr = dataset.load_numpy("train", size=size, limit=n)
    names = dataset.label_names()
    cols = 8
    rows = max(1, int(np.ceil(len(arr) / cols)))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.3, rows * 1.5), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, ax in enumerate(axes.ravel()[: len(arr)]):
        img = np.asarray(arr.x[i][0], dtype=np.float32)
        if arr.x[i].dtype == np.uint8:
            img = img / 255.0
        else:
            lo, hi = float(img.min()), float(img.max())
            img = (img - lo) / (hi - lo) if hi > lo else img * 0
        c = img.shape[-1]
        img = img[..., 0] if c == 1 else img[..., :3] if c >= 3 else img[..., 0]
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
        labels = np.flatnonzero(arr.y[i]).tolist()
        text = ",".join(names[j] if names else str(j) for j in labels)
        ax.set_title(text[:14], fontsize=7)
    fig.suptitle(f"{dataset.name}: first {len(arr)} training examples", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def alc_heatmap(values: Any, rows: Sequence[str], columns: Sequence[str], path: str | Path, *,
                framed: Sequence[tuple[int, int]] = (), empty_text: Sequence[Sequence[str]] | None = None,
                title: str = "", colorbar: str = "mean ALC", xlabel: str = "", ylabel: str = "",
                row_height: float = 0.4) -> Path:
    """A PNG of a table of ALCs (rows x columns): viridis over [0, 1], the value written in each
    cell, ``framed`` cells ``(row, column)`` outlined in red, cells without a value (NaN) grey
    with ``empty_text`` written in them. Used for the configuration grid and the cost matrix.
    """
    import matplotlib
    from matplotlib.figure import Figure  # no pyplot: no global state, Agg canvas
    from matplotlib.patches import Rectangle

    values = np.asarray(values, dtype=float)
    cmap = matplotlib.colormaps["viridis"].with_extremes(bad="#dddddd")
    fig = Figure(figsize=(1.0 * len(columns) + 3.5, row_height * len(rows) + 2.0))
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(columns)), columns, rotation=30, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    for i in range(len(rows)):
        for j in range(len(columns)):
            v = values[i, j]
            if np.isnan(v):
                text = empty_text[i][j] if empty_text is not None else ""
                ax.text(j, i, text, ha="center", va="center", fontsize=6, color="#555555")
            else:
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="black" if v > 0.6 else "white")
    for i, j in framed:
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=2))
    fig.colorbar(image, ax=ax, label=colorbar)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path


# --------------------------------------------------------------------------------------
# Learning-curve figure
# --------------------------------------------------------------------------------------
_NICE_SECONDS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 10800, 14400,
                 21600, 43200, 86400)


def time_ticks(T: float, t0: float, min_gap: float = 0.07) -> list[float]:
    """Ticks in seconds for the top axis: 0, t0, round values and T, not crowded."""
    must = [0.0, float(T)] + ([float(t0)] if 0 < t0 < T else [])
    ticks = sorted(must)
    pos = {t: float(transform_time(t, T, t0)) for t in ticks}
    for t in _NICE_SECONDS:
        if 0 < t < T:
            x = float(transform_time(t, T, t0))
            if all(abs(x - p) >= min_gap for p in pos.values()):
                pos[float(t)] = x
    return sorted(pos)


def _format_seconds(t: float) -> str:
    return f"{t:g}"


def plot_learning_curve(result: ScoreResult, path: str | Path) -> Path:
    """Draw the learning curve of a scored task and save it as a PNG.

    For the ALC (``result.metric == "alc"``): a step plot (``where='post'``) of the NAUC over
    the transformed time in [0, 1]. For ``"bac"``: the 2*BAC - 1 scores joined by straight
    lines from (0, 0), as the trapezoid rule integrates them. Either way the area is filled
    lightly, each prediction marked, a second x axis on top gives seconds, the legend holds
    the area and the title the task name and T/t0. Predictions made after T are drawn beyond
    t~ = 1, right of a dashed line at T (the ALC counts them; the BAC area does not, and
    they are drawn as open circles).

    Parameters
    ----------
    result
        What :func:`autodl.score_files.score_folder` returned.
    path
        Where to write the PNG (its folder is created if needed).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # no pyplot: no global state, thread-safe

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    T, t0 = result.time_budget, result.t0
    step = CURVE_RULES[result.metric] == "step"
    late: list[tuple[float, float]] = []
    if step:
        xs, ys = curve_points(result.timestamps, result.curve_scores, T, t0)
    else:
        xs, ys, late = trapezoid_points(result.timestamps, result.curve_scores, T, t0)
    late_xy = [(float(transform_time(t, T, t0)), v) for t, v in late]
    x_max = max([1.0, *xs, *(x for x, _ in late_xy)])
    if x_max > 1.0:  # a late prediction: leave room right of it
        x_max += 0.02

    fig = Figure(figsize=(7, 5.2), dpi=100)
    ax = fig.add_subplot(111)
    ax.set_xlim(0, x_max)
    ax.set_ylim(-0.01, 1)
    ax.grid(True, alpha=0.3)
    ax.set_xlabel("Transformed time  " + r"$\tilde{t} = \log(1 + t/t_0)\, /\, \log(1 + T/t_0)$")
    ax.set_ylabel(SCORE_NAMES[result.metric])

    label = f"{METRIC_NAMES[result.metric]} = {result.score:.4f}"
    # Curve: origin, predictions (drawn in time order), held to the end of the axis.
    pts = sorted(zip(xs[1:-1], ys[1:-1], strict=True))
    cx = [0.0] + [p[0] for p in pts] + [x_max if step else 1.0]
    cy = [0.0] + [p[1] for p in pts]
    cy.append(cy[-1])
    fill_x = [min(x, 1.0) for x in cx]
    if step:
        ax.fill_between(fill_x, cy, step="post", color="tab:blue", alpha=0.15, linewidth=0)
        ax.step(cx, cy, where="post", color="tab:blue", linewidth=1.8, marker="o", markersize=5,
                markevery=list(range(1, len(pts) + 1)), clip_on=False, label=label)
    else:
        ax.fill_between(fill_x, cy, color="tab:blue", alpha=0.15, linewidth=0)
        ax.plot(cx, cy, color="tab:blue", linewidth=1.8, marker="o", markersize=5,
                markevery=list(range(1, len(pts) + 1)), clip_on=False, label=label)
        if late_xy:
            ax.plot([x for x, _ in late_xy], [v for _, v in late_xy], linestyle="none", marker="o",
                    markersize=5, markerfacecolor="none", color="tab:blue", clip_on=False,
                    label="after T (not counted)")
    if pts:
        last_x, last_y = pts[-1]
        ax.annotate(f"{last_y:.4f}", (last_x, last_y), textcoords="offset points",
                    xytext=(5, -13 if last_y > 0.9 else 5), fontsize=8, color="tab:blue")
    if x_max > 1.0:
        ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
        ax.text(1.0, 0.97, "T ", color="grey", fontsize=9, ha="right", va="top")
    ax.legend(loc="lower right")

    top = ax.twiny()
    top.set_xlim(ax.get_xlim())
    ticks = time_ticks(T, t0)
    top.set_xticks([float(transform_time(t, T, t0)) for t in ticks])
    top.set_xticklabels([_format_seconds(t) for t in ticks], fontsize=8)
    top.set_xlabel("Time (s)", fontsize=9)

    ax.set_title(f"Learning curve: {result.task_name or 'task'}   (T = {T:g} s, t0 = {t0:g} s)",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    logger.debug("wrote learning curve %s", path)
    return path
