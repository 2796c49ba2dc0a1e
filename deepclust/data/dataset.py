"""The container every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = ["Dataset"]


@dataclass
class Dataset:
    """A loaded dataset.

    Attributes
    ----------
    name
        Catalog name (or the file name for a user's file).
    kind
        ``"images"``: ``X`` is (N, C, H, W) float32 in [0, 1];
        ``"vectors"``: ``X`` is (N, D) float32;
        ``"scene"``: a hyperspectral cube. ``X`` is then the spectra of the *clustered* pixels
        (N, B) in row-major order, ``cube`` the (H, W, B) float32 scene, ``gt`` the (H, W) int64
        ground truth with 0 for unlabelled pixels (other conventions such as -1 are mapped to 0),
        ``mask`` the (H, W) bool of clustered pixels (labelled pixels by default) and ``index`` the
        (N, 2) int64 (row, col) of each sample.
    y
        (N,) int64 labels, or None. For scenes the class ids of the ground truth (1..K).
    """

    name: str
    kind: Literal["images", "vectors", "scene"]
    X: np.ndarray
    y: np.ndarray | None = None
    cube: np.ndarray | None = None
    gt: np.ndarray | None = None
    mask: np.ndarray | None = None
    index: np.ndarray | None = None
    class_names: list[str] | None = None
    info: dict = field(default_factory=dict)

    def __repr__(self) -> str:  # concise: never print the arrays
        parts = [f"name={self.name!r}", f"kind={self.kind!r}", f"X={_shape(self.X)}"]
        if self.y is not None:
            parts.append(f"y={_shape(self.y)}, n_classes={self.n_clusters}")
        if self.cube is not None:
            parts.append(f"cube={_shape(self.cube)}")
        return f"Dataset({', '.join(parts)})"

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_clusters(self) -> int | None:
        """Number of ground-truth classes (None without labels)."""
        if self.y is None:
            return None
        return int(np.unique(self.y).size)

    def label_map(self, labels: np.ndarray) -> np.ndarray:
        """Put one label per clustered pixel back on the (H, W) grid; -1 elsewhere."""
        if self.kind != "scene" or self.mask is None:
            raise ValueError(f"dataset {self.name!r} is not a scene: it has no pixel grid")
        labels = np.asarray(labels)
        if labels.shape[0] != self.index.shape[0]:
            raise ValueError(
                f"got {labels.shape[0]} labels for {self.index.shape[0]} clustered pixels"
            )
        out = np.full(self.mask.shape, -1, dtype=np.int64)
        out[self.index[:, 0], self.index[:, 1]] = labels
        return out


def _shape(a: np.ndarray) -> str:
    return f"{tuple(a.shape)} {a.dtype}"
