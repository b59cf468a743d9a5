"""Pictures: a grid of a dataset's training examples with their labels; heatmaps of ALC tables."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autodl.dataset import AutoDLDataset


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
