"""Reconstruction error of an autoencoder, TDEC's eq. 8: ``L_rec = 1/B sum_i ||x_i - x_i'||^2``.

The squared error of each sample is summed over its pixels (eq. 8 as written) or averaged over
them (``reduction="mean"``, Keras / PyTorch ``mse``), then averaged over the batch.
"""

from __future__ import annotations

import torch

__all__ = ["reconstruction_loss"]


def reconstruction_loss(rec: torch.Tensor, x: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """Eq. 8: squared error summed over each sample's pixels (``"sum"``) or averaged over them
    (``"mean"``, Keras/PyTorch ``mse``), then averaged over the batch."""
    err = (rec - x).pow(2).flatten(1)  # (B, d)
    return (err.sum(1) if reduction == "sum" else err.mean(1)).mean()
