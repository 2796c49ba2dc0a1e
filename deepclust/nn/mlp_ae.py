"""The fully connected autoencoder of DEC/IDEC/EDESC: d-500-500-2000-z and its mirror."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["MLPAutoencoder"]


def _mlp(sizes: Sequence[int], *, last_act: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2 or last_act:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class MLPAutoencoder(nn.Module):
    """``in_dim -> hidden... -> latent`` encoder (ReLU between layers, linear code) and mirror.

    Parameters
    ----------
    in_dim : int
        Input features.
    hidden : sequence of int, default (500, 500, 2000)
    latent : int, default 10
    """

    def __init__(self, in_dim: int, hidden: Sequence[int] = (500, 500, 2000), latent: int = 10):
        super().__init__()
        if in_dim < 1 or latent < 1 or any(h < 1 for h in hidden):
            raise ValueError(f"layer sizes must be positive, got {in_dim}, {hidden}, {latent}")
        self.in_dim = int(in_dim)
        self.hidden = tuple(int(h) for h in hidden)
        self.latent = int(latent)
        self.latent_dim = self.latent
        self.encoder = _mlp([self.in_dim, *self.hidden, self.latent], last_act=False)
        self.decoder = _mlp([self.latent, *reversed(self.hidden), self.in_dim], last_act=False)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_dim) -> (N, latent)."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(N, latent) -> (N, in_dim)."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(z, x_hat)``."""
        z = self.encode(x)
        return z, self.decode(z)
