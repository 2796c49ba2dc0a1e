"""Pictures: confusion matrices, cluster maps beside the ground truth, training curves, embeddings.

Every function writes a PNG with matplotlib's non-interactive Agg backend and returns the path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepclust.metrics import contingency, match_labels

__all__ = ["plot_confusion", "plot_cluster_map", "plot_curves", "plot_embedding", "matched_colors"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _palette(n: int) -> np.ndarray:
    plt = _plt()
    cmap = plt.get_cmap("tab20" if n > 10 else "tab10")
    return np.array([cmap(i % cmap.N)[:3] for i in range(n)])


def plot_confusion(y_true, y_pred, path: str | Path, *, title: str = "") -> Path:
    """Contingency table of classes (rows) x clusters (columns, reordered by the matching)."""
    plt = _plt()
    table, classes, clusters = contingency(np.asarray(y_true), np.asarray(y_pred))
    mapping = match_labels(y_true, y_pred)
    class_pos = {c.item(): i for i, c in enumerate(classes)}
    order = sorted(range(clusters.size), key=lambda j: class_pos.get(mapping.get(clusters[j].item()), 10**9 + j))
    table = table[:, order]
    fig, ax = plt.subplots(figsize=(1 + 0.45 * max(table.shape[1], 4), 1 + 0.45 * max(table.shape[0], 4)))
    norm = table / np.maximum(table.sum(1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    if table.size <= 900:
        for i in range(table.shape[0]):
            for j in range(table.shape[1]):
                if table[i, j]:
                    ax.text(j, i, str(table[i, j]), ha="center", va="center", fontsize=6,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(table.shape[1]), [str(clusters[j]) for j in order], fontsize=7)
    ax.set_yticks(range(table.shape[0]), [str(c) for c in classes], fontsize=7)
    ax.set_xlabel("cluster (ordered by matched class)")
    ax.set_ylabel("class")
    ax.set_title(title or "confusion after Hungarian matching", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def matched_colors(gt_labels: np.ndarray, label_map: np.ndarray) -> tuple[dict, dict]:
    """Colours for classes and for clusters, clusters coloured like their matched class."""
    classes = np.unique(gt_labels[gt_labels > 0])
    clusters = np.unique(label_map[label_map >= 0])
    pal = _palette(max(classes.size, clusters.size) + clusters.size)
    class_color = {c.item(): pal[i] for i, c in enumerate(classes)}
    sel = (gt_labels > 0) & (label_map >= 0)
    mapping = match_labels(gt_labels[sel], label_map[sel]) if sel.any() else {}
    cluster_color = {}
    spare = classes.size
    for k in clusters:
        k = k.item()
        if k in mapping:
            cluster_color[k] = class_color[mapping[k]]
        else:
            cluster_color[k] = pal[spare % len(pal)]
            spare += 1
    return class_color, cluster_color


def _paint(grid: np.ndarray, colors: dict, background: np.ndarray) -> np.ndarray:
    img = np.tile(background, grid.shape + (1,)).astype(float)
    for k, c in colors.items():
        img[grid == k] = c
    return img


def plot_cluster_map(
    label_map: np.ndarray,
    gt: np.ndarray | None,
    path: str | Path,
    *,
    title: str = "",
    full_map: np.ndarray | None = None,
) -> Path:
    """The cluster map beside the ground truth, clusters coloured like their matched classes.

    ``label_map`` is (H, W) with -1 where no pixel was clustered; ``gt`` is (H, W) with 0 for
    unlabelled pixels. ``full_map`` (optional) is a prediction for every pixel, drawn third.
    """
    plt = _plt()
    label_map = np.asarray(label_map)
    panels = []
    black = np.zeros(3)
    if gt is not None:
        class_color, cluster_color = matched_colors(np.asarray(gt), label_map)
        panels.append(("ground truth", _paint(np.asarray(gt), class_color, black)))
    else:
        clusters = np.unique(label_map[label_map >= 0])
        pal = _palette(clusters.size)
        cluster_color = {k.item(): pal[i] for i, k in enumerate(clusters)}
    panels.append(("clusters (matched colours)", _paint(label_map, cluster_color, black)))
    if full_map is not None:
        extra = {k: c for k, c in cluster_color.items()}
        for k in np.unique(full_map):
            if k.item() not in extra:
                extra[k.item()] = _palette(len(extra) + 1)[-1]
        panels.append(("whole scene (predict)", _paint(np.asarray(full_map), extra, black)))
    h, w = label_map.shape
    scale = 4.0 / max(h, w)
    size = (len(panels) * max(w * scale, 2.5) + 0.5, max(h * scale, 2.5) + 0.6)
    fig, axes = plt.subplots(1, len(panels), figsize=size)
    axes = np.atleast_1d(axes)
    for ax, (name, img) in zip(axes, panels):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_curves(history: dict, path: str | Path, *, title: str = "") -> Path:
    """Per-epoch loss terms of every stage (``History.to_dict()`` layout), one panel per stage."""
    plt = _plt()
    stages = [s for s, terms in history.items() if terms]
    if not stages:
        raise ValueError("the history is empty: nothing to plot")
    fig, axes = plt.subplots(1, len(stages), figsize=(4.2 * len(stages), 3.2), squeeze=False)
    for ax, stage in zip(axes[0], stages):
        for name, values in history[stage].items():
            v = np.asarray(values, dtype=float)
            ax.plot(np.arange(1, v.size + 1), v, label=name, lw=1.2)
        ax.set_title(stage, fontsize=9)
        ax.set_xlabel("epoch")
        vals = np.concatenate([np.asarray(v, float) for v in history[stage].values()])
        if vals.size and np.all(vals > 0) and vals.max() / max(vals.min(), 1e-12) > 100:
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_embedding(emb: np.ndarray, labels: np.ndarray, path: str | Path, *, title: str = "",
                   max_points: int = 20000, seed: int = 0) -> Path:
    """Scatter of a 2-D embedding coloured by cluster (a random subset above ``max_points``)."""
    plt = _plt()
    emb = np.asarray(emb)
    if emb.ndim != 2 or emb.shape[1] != 2:
        raise ValueError(f"embedding must be (N, 2), got {emb.shape}")
    labels = np.asarray(labels)
    idx = np.arange(emb.shape[0])
    if idx.size > max_points:
        idx = np.random.default_rng(seed).choice(idx, max_points, replace=False)
    fig, ax = plt.subplots(figsize=(5, 5))
    ks = np.unique(labels)
    pal = _palette(ks.size)
    colors = pal[np.searchsorted(ks, labels[idx])]
    ax.scatter(emb[idx, 0], emb[idx, 1], c=colors, s=3, linewidths=0)
    ax.set_title(title or "clustering space", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
