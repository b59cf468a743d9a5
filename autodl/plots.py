"""Pictures of datasets: a grid of training examples with their labels."""

from __future__ import annotations

from pathlib import Path

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
