"""Fully connected networks: the ``mlp`` builder and the DEC/IDEC/EDESC autoencoder
d-500-500-2000-z with its mirrored decoder.

Hidden layers use ReLU; the code and the reconstruction are linear, as in DEC (Xie et al. 2016,
sec. 3.2) and IDEC's reference set-up. TDEC's encoding/decoding layers and Dim-Reduction block are
built with the same :func:`mlp`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["mlp", "MLPAutoencoder"]


def mlp(dims: Sequence[int], *, last_activation: bool = False) -> nn.Sequential:
    """Linear layers ``dims[0] -> dims[1] -> ... -> dims[-1]`` with ReLU between them."""
    if len(dims) < 2:
        raise ValueError(f"an MLP needs at least an input and an output size, got {list(dims)}")
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(int(dims[i]), int(dims[i + 1])))
        if i < len(dims) - 2 or last_activation:
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
        self.encoder = mlp([self.in_dim, *self.hidden, self.latent])
        self.decoder = mlp([self.latent, *reversed(self.hidden), self.in_dim])

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, in_dim) -> (N, latent)."""
        return self.encoder(x)

    #: The embedding used for clustering (same as :meth:`encode`).
    forward_features = encode

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(N, latent) -> (N, in_dim)."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(z, x_hat)``."""
        z = self.encode(x)
        return z, self.decode(z)
