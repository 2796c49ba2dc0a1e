"""The fully connected autoencoder of DEC / IDEC: d-500-500-2000-10, mirrored decoder.

Kept separate from ``mlp_ae`` (written in parallel for SCDSC) so the two can be unified later.
Hidden layers use ReLU; the embedding and the reconstruction are linear, as in DEC (Xie et al.
2016, sec. 3.2) and IDEC's reference set-up.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["mlp", "DECAutoencoder"]


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


class DECAutoencoder(nn.Module):
    """Symmetric MLP autoencoder ``in_dim - hidden... - latent_dim - ...hidden reversed - in_dim``.

    Parameters
    ----------
    in_dim : int
        Input features d.
    hidden_dims : sequence of int, default (500, 500, 2000)
    latent_dim : int, default 10
    """

    def __init__(
        self, in_dim: int, hidden_dims: Sequence[int] = (500, 500, 2000), latent_dim: int = 10
    ):
        super().__init__()
        self.in_dim = int(in_dim)
        self.latent_dim = int(latent_dim)
        dims = [self.in_dim, *map(int, hidden_dims), self.latent_dim]
        self.encoder = mlp(dims)
        self.decoder = mlp(dims[::-1])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, d) -> (B, latent_dim) embedding."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) -> (B, d) reconstruction."""
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(z, x_rec)``."""
        z = self.forward_features(x)
        return z, self.decode(z)
