"""Projection heads of the contrastive clustering methods (CC, PICI).

Instance head G_I: two-layer MLP to ``feature_dim`` (128), L2-normalised (PICI eq. 4).
Cluster head G_C: two-layer MLP to ``n_clusters`` with a softmax (PICI section 3.2.2).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["InstanceHead", "ClusterHead", "embed_with_heads"]


class InstanceHead(nn.Module):
    """h (N, D) -> z (N, feature_dim), unit norm."""

    def __init__(self, in_dim: int, feature_dim: int = 128, hidden_dim: int | None = None):
        super().__init__()
        hidden = hidden_dim or in_dim
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, feature_dim))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(h), dim=1)


class ClusterHead(nn.Module):
    """h (N, D) -> soft assignments (N, n_clusters), rows sum to one."""

    def __init__(self, in_dim: int, n_clusters: int, hidden_dim: int | None = None):
        super().__init__()
        hidden = hidden_dim or in_dim
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, n_clusters))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h).softmax(dim=1)


@torch.no_grad()
def embed_with_heads(model: nn.Module, X: torch.Tensor, *, view, device, batch_size: int = 256):
    """Features ``h``, instance projections ``z`` and cluster probabilities ``c`` of the rows of
    ``X`` seen through ``view`` (the un-augmented view, e.g. ``ViewAugmenter.weak``), the model in
    eval mode, in batches; ``z`` / ``c`` are None where the model has no such head (``model``
    has ``forward_features`` and the attributes ``instance_head`` and ``cluster_head``)."""
    model.eval()
    hs, zs, cs = [], [], []
    for start in range(0, X.shape[0], batch_size):
        h = model.forward_features(view(X[start : start + batch_size].to(device)))
        hs.append(h.cpu())
        if model.instance_head is not None:
            zs.append(model.instance_head(h).cpu())
        if model.cluster_head is not None:
            cs.append(model.cluster_head(h).cpu())
    return torch.cat(hs), (torch.cat(zs) if zs else None), (torch.cat(cs) if cs else None)
