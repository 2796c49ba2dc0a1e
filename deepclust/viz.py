"""Pictures: confusion matrices, cluster maps beside the ground truth, training curves, embeddings.

Every function writes a PNG with matplotlib's non-interactive Agg backend and returns the path.
One style for every scene picture (``run``'s ``cluster_map.png``, ``segment``'s
``segmentation.png``): the ground truth and the map side by side, each cluster in the colour of
its matched class, a legend (colour -> class / cluster), white where a pixel is unlabelled or not
clustered, and the scores (OA, NMI) in the title.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepclust.metrics import acc, contingency, match_labels

__all__ = ["plot_confusion", "plot_cluster_map", "plot_curves", "plot_embedding", "matched_colors", "BACKGROUND"]

#: The colour of unlabelled / unclustered pixels in every scene picture.
BACKGROUND = np.ones(3)


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
    image = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    bar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label("share of the class (row)", fontsize=7)
    bar.ax.tick_params(labelsize=6)
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
    score = acc(y_true, y_pred)
    head = title or "confusion after Hungarian matching"
    ax.set_title(f"{head}\nACC {score:.3f} (clusters matched to classes)", fontsize=9)
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


def _paint(grid: np.ndarray, colors: dict, background: np.ndarray = BACKGROUND) -> np.ndarray:
    img = np.tile(background, grid.shape + (1,)).astype(float)
    for k, c in colors.items():
        img[grid == k] = c
    return img


def _score_line(scores: dict | None) -> str:
    if not scores:
        return ""
    parts = []
    for key, name in (("oa", "OA"), ("acc", "ACC"), ("nmi", "NMI"), ("kappa", "kappa")):
        value = scores.get(key)
        if isinstance(value, int | float) and not (key == "acc" and "oa" in scores):
            parts.append(f"{name} {value:.3f}")
    return "  ".join(parts)


def cluster_map_figure(
    label_map: np.ndarray,
    gt: np.ndarray | None,
    *,
    title: str = "",
    full_map: np.ndarray | None = None,
    scores: dict | None = None,
    map_name: str = "clusters",
):
    """The figure :func:`plot_cluster_map` saves (returned open, for tests and notebooks)."""
    plt = _plt()
    from matplotlib.patches import Patch

    label_map = np.asarray(label_map)
    panels = []
    legend: list[tuple[np.ndarray, str]] = []
    if gt is not None:
        gt = np.asarray(gt)
        class_color, cluster_color = matched_colors(gt, label_map)
        panels.append(("ground truth", _paint(gt, class_color)))
        by_class: dict = {}
        for k, c in cluster_color.items():
            for cls, cc in class_color.items():
                if np.allclose(cc, c):
                    by_class.setdefault(cls, []).append(k)
                    break
        matched = {k for ks in by_class.values() for k in ks}
        for cls, color in class_color.items():
            ks = by_class.get(cls, [])
            legend.append((color, f"class {cls}" + (f" = cluster {', '.join(map(str, ks))}" if ks else "")))
        for k, color in cluster_color.items():
            if k not in matched:
                legend.append((color, f"cluster {k} (no class)"))
    else:
        clusters = np.unique(label_map[label_map >= 0])
        pal = _palette(clusters.size)
        cluster_color = {k.item(): pal[i] for i, k in enumerate(clusters)}
        legend += [(c, f"cluster {k}") for k, c in cluster_color.items()]
    panels.append((f"{map_name} (colours matched to the classes)" if gt is not None else map_name,
                   _paint(label_map, cluster_color)))
    if full_map is not None:
        full_map = np.asarray(full_map)
        extra = dict(cluster_color)
        new = [k.item() for k in np.unique(full_map) if k >= 0 and k.item() not in extra]
        pal = _palette(len(cluster_color) + len(new))
        for i, k in enumerate(new):
            extra[k] = pal[len(cluster_color) + i]
            legend.append((extra[k], f"cluster {k} (whole scene only)"))
        panels.append(("whole scene (predict)", _paint(full_map, extra)))
    legend.append((BACKGROUND, "unlabelled / not clustered"))

    h, w = label_map.shape
    scale = 4.0 / max(h, w)
    ncol = max(1, min(4, (len(legend) + 5) // 6))
    legend_rows = -(-len(legend) // ncol)
    size = (len(panels) * max(w * scale, 2.5) + 0.5, max(h * scale, 2.5) + 0.9 + 0.18 * legend_rows)
    fig, axes = plt.subplots(1, len(panels), figsize=size, squeeze=False)
    for ax, (name, img) in zip(axes[0], panels):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(name, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    head = "\n".join(t for t in (title, _score_line(scores)) if t)
    if head:
        fig.suptitle(head, fontsize=9)
    handles = [Patch(facecolor=c, edgecolor="0.6", label=text) for c, text in legend]
    fig.legend(handles=handles, loc="lower center", ncol=ncol, fontsize=6, frameon=False)
    fig.tight_layout(rect=(0, 0.04 + 0.045 * legend_rows / max(size[1] / 3, 1), 1, 1))
    return fig


def plot_cluster_map(
    label_map: np.ndarray,
    gt: np.ndarray | None,
    path: str | Path,
    *,
    title: str = "",
    full_map: np.ndarray | None = None,
    scores: dict | None = None,
    map_name: str = "clusters",
) -> Path:
    """The cluster map beside the ground truth, clusters coloured like their matched classes.

    ``label_map`` is (H, W) with -1 where no pixel was clustered; ``gt`` is (H, W) with 0 for
    unlabelled pixels. ``full_map`` (optional) is a prediction for every pixel, drawn third.
    ``scores`` (e.g. the run's metrics) puts OA (or ACC) and NMI in the title. Background
    (unlabelled or not clustered) is white in every panel; a legend maps colours to classes and
    clusters.
    """
    plt = _plt()
    fig = cluster_map_figure(label_map, gt, title=title, full_map=full_map, scores=scores, map_name=map_name)
    path = Path(path)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def _same_curve(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) and np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-6, atol=1e-12)


def curve_terms(terms: dict[str, list[float]]) -> dict[str, list[float]]:
    """The lines a stage's panel draws: ``loss`` is left out when it equals the only other term
    (a single-term loss would otherwise be drawn twice); that term is labelled ``NAME (= loss)``."""
    others = [k for k in terms if k != "loss"]
    if "loss" in terms and len(others) == 1 and _same_curve(terms["loss"], terms[others[0]]):
        return {f"{others[0]} (= loss)": terms[others[0]]}
    return dict(terms)


def _y_scale(terms: dict[str, list[float]]) -> str:
    """``log`` when the positive terms differ by more than two orders of magnitude (between terms
    or over the epochs), ``symlog`` when such terms include negative values, else ``linear``."""
    vals = [np.asarray(v, float) for v in terms.values() if len(v)]
    if not vals:
        return "linear"
    allv = np.concatenate(vals)
    allv = allv[np.isfinite(allv)]
    if allv.size == 0:
        return "linear"
    mags = np.abs(allv[allv != 0])
    if mags.size == 0 or mags.max() / mags.min() <= 100:
        return "linear"
    return "log" if np.all(allv > 0) else "symlog"


def plot_curves(history: dict, path: str | Path, *, title: str = "") -> Path:
    """Per-epoch loss terms of every stage (``History.to_dict()`` layout), one panel per stage.

    ``loss`` is not drawn twice when it is the only term (:func:`curve_terms`); the y axis is
    labelled and switches to a log scale when the terms span orders of magnitude (:func:`_y_scale`).
    """
    plt = _plt()
    from matplotlib.ticker import MaxNLocator

    stages = [s for s, terms in history.items() if terms]
    if not stages:
        raise ValueError("the history is empty: nothing to plot")
    fig, axes = plt.subplots(1, len(stages), figsize=(4.2 * len(stages), 3.2), squeeze=False)
    for ax, stage in zip(axes[0], stages):
        terms = curve_terms(history[stage])
        for name, values in terms.items():
            v = np.asarray(values, dtype=float)
            ax.plot(np.arange(1, v.size + 1), v, label=name, lw=1.2)
        ax.set_title(stage, fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("loss term (mean over the epoch)", fontsize=8)
        scale = _y_scale(terms)
        if scale == "symlog":
            mags = np.abs(np.concatenate([np.asarray(v, float) for v in terms.values()]))
            ax.set_yscale("symlog", linthresh=float(np.min(mags[mags > 0])))
        elif scale == "log":
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
