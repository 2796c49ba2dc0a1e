"""The SCDSC convolutional patch autoencoder (Li et al., SCDSC, section 4.2 and released code).

Input: (N, C, P, P) patches (C = 8 PCA components, P = 7 in the paper). Encoder: Conv1x1 C->ch,
Conv3x3 ch->ch, Conv3x3 ch->ch, each followed by BatchNorm + ReLU, spatial size kept (padding 1).
Decoder: ConvTranspose3x3 ch->ch + BatchNorm + ReLU, then ConvTranspose1x1 ch->C. The latent code
is the flattened encoder output, ``ch * P * P`` values (32 * 7 * 7 = 1,568 in the paper).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ConvPatchAutoencoder"]


def _conv_bn_relu(cin: int, cout: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, kernel, padding=kernel // 2), nn.BatchNorm2d(cout), nn.ReLU()
    )


class ConvPatchAutoencoder(nn.Module):
    """Patch autoencoder with a flattened convolutional latent code.

    Parameters
    ----------
    in_channels : int
        Channels of the input patches (8 PCA components in SCDSC).
    patch : int
        Spatial size of the (square) patches (7 in SCDSC).
    channels : int
        Feature maps of every hidden layer (32 in SCDSC).
    """

    def __init__(self, in_channels: int = 8, patch: int = 7, *, channels: int = 32):
        super().__init__()
        if in_channels < 1 or patch < 1 or channels < 1:
            raise ValueError("in_channels, patch and channels must be positive")
        self.in_channels = in_channels
        self.patch = patch
        self.channels = channels
        self.encoder = nn.Sequential(
            _conv_bn_relu(in_channels, channels, 1),
            _conv_bn_relu(channels, channels, 3),
            _conv_bn_relu(channels, channels, 3),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(channels, channels, 3, padding=1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.ConvTranspose2d(channels, in_channels, 1),
        )

    @property
    def latent_dim(self) -> int:
        """Length of the flattened code, ``channels * patch * patch``."""
        return self.channels * self.patch * self.patch

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, P, P) -> (N, ch, P, P) feature maps."""
        return self.encoder(x)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, P, P) -> (N, ch*P*P) flattened code."""
        return self.forward_features(x).flatten(1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(N, ch*P*P) -> (N, C, P, P) reconstruction."""
        return self.decoder(z.view(z.shape[0], self.channels, self.patch, self.patch))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns ``(z, x_hat)``: the (N, ch*P*P) code and the (N, C, P, P) reconstruction."""
        z = self.encode(x)
        return z, self.decode(z)
