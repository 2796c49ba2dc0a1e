"""TDEC's networks (sec. 3.1): T-Encoder, T-Decoder and the Dim-Reduction block.

T-Encoder: patch embedding by a convolution with patch size (H/4, W/4) (16 patches of
``embed_dim`` features; by default ``embed_dim = max(C * H/4 * W/4, 32)``, the pixel count of a
patch but at least 32, so the encoding layer's input is ``d = 16 * embed_dim``, = C*H*W for
16x16 and larger images), sinusoidal position encodings,
``depth`` post-norm Transformer blocks (eq. 1), then the encoding layer [d-512-512-3072-m].

T-Decoder: decoding layer [m-3072-512-512-d], position encodings, ``decoder_depth`` blocks, and a
transposed convolution back to (C, H, W).

Dim-Reduction block: [m-50-50-100-2] to the 2-D clustering space. :class:`TDECNet` holds the
autoencoder (:class:`TransformerAE`, or :class:`MLPImageAE` without Transformer blocks) and the
Dim-Reduction block.

Every shape is derived from the constructor arguments (channels included); :func:`target_size`
gives the image size the T-Encoder takes for an image of any size (TDEC, Appendix A). The paper
leaves the number of heads and the MLP width open: ``n_heads`` defaults to the largest of 8, 4, 2
whose head size is at least 8 (else 1) and ``mlp_ratio`` to 4 (the original Transformer).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from deepclust.nn.mlp_ae import mlp

__all__ = [
    "sinusoidal_positions",
    "TransformerBlock",
    "TEncoder",
    "TDecoder",
    "TransformerAE",
    "MLPImageAE",
    "TDECNet",
    "default_heads",
    "target_size",
]


def sinusoidal_positions(n_positions: int, dim: int) -> torch.Tensor:
    """(n_positions, dim) sinusoidal encodings (Vaswani et al.): sin on even, cos on odd."""
    if dim % 2:
        raise ValueError(f"sinusoidal encodings need an even embedding size, got {dim}")
    pos = torch.arange(n_positions, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(n_positions, dim)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)
    return pe


def default_heads(embed_dim: int) -> int:
    """Largest of 8, 4, 2 dividing ``embed_dim`` with heads of at least 8 features, else 1."""
    for h in (8, 4, 2):
        if embed_dim % h == 0 and embed_dim // h >= 8:
            return h
    return 1


def target_size(h: int, w: int) -> tuple[int, int]:
    """Appendix A: an image whose patch (H/4, W/4) is not an even integer is resized to the next
    multiple of 8 in that dimension (28 -> 32; 8, 16, 32, 64 unchanged)."""
    return (math.ceil(h / 8) * 8, math.ceil(w / 8) * 8)


class TransformerBlock(nn.Module):
    """Post-norm block of eq. 1: ``z' = LN(MSA(z) + z)``, ``z'' = LN(MLP(z') + z')`` (GELU)."""

    def __init__(self, dim: int, n_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"embed_dim={dim} is not divisible by n_heads={n_heads}")
        self.attn = nn.MultiheadAttention(dim, n_heads, batch_first=True)
        self.norm1 = nn.LayerNorm(dim)
        hidden = max(1, int(round(dim * mlp_ratio)))
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, P, E) -> (B, P, E)."""
        a, _ = self.attn(z, z, z, need_weights=False)
        z = self.norm1(a + z)  # eq. 1, first line
        return self.norm2(self.mlp(z) + z)  # eq. 1, second line


class TEncoder(nn.Module):
    """Patch embedding + positions + ``depth`` blocks + encoding layer -> (B, latent_dim)."""

    def __init__(
        self,
        in_channels: int,
        image_size: tuple[int, int],
        *,
        embed_dim: int | None = None,
        depth: int = 4,
        n_heads: int | None = None,
        mlp_ratio: float = 4.0,
        hidden_dims: Sequence[int] = (512, 512, 3072),
        latent_dim: int = 10,
        grid: int = 4,
        min_embed: int = 32,
    ):
        super().__init__()
        H, W = image_size
        if H % grid or W % grid:
            raise ValueError(f"image size {image_size} must be divisible by {grid} (patch grid)")
        self.patch = (H // grid, W // grid)
        self.n_patches = grid * grid
        # Paper: a patch's C*(H/4)*(W/4) values. We keep that but never go below ``min_embed``:
        # a post-norm LayerNorm over 4 features (8x8 Digits) discards each patch's mean and
        # scale, and the autoencoder then barely learns (measured on Digits, see
        # docs/methods/tdec.md).
        patch_values = in_channels * self.patch[0] * self.patch[1]
        self.embed_dim = int(embed_dim or max(patch_values, min_embed))
        self.patch_embed = nn.Conv2d(in_channels, self.embed_dim, self.patch, stride=self.patch)
        self.register_buffer("pos", sinusoidal_positions(self.n_patches, self.embed_dim))
        heads = int(n_heads or default_heads(self.embed_dim))
        self.blocks = nn.Sequential(
            *[TransformerBlock(self.embed_dim, heads, mlp_ratio) for _ in range(depth)]
        )
        self.encoding = mlp([self.n_patches * self.embed_dim, *hidden_dims, latent_dim])

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, P=16, E) patch embeddings plus position encodings."""
        t = self.patch_embed(x).flatten(2).transpose(1, 2)  # (B, P, E)
        return t + self.pos

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, latent_dim)."""
        t = self.blocks(self.patchify(x))  # (B, P, E)
        return self.encoding(t.flatten(1))  # (B, P*E) -> (B, m)


class TDecoder(nn.Module):
    """Decoding layer + positions + ``depth`` blocks + transposed convolution -> (B, C, H, W)."""

    def __init__(self, encoder: TEncoder, out_channels: int, *, depth: int = 1,
                 n_heads: int | None = None, mlp_ratio: float = 4.0,
                 hidden_dims: Sequence[int] = (512, 512, 3072), latent_dim: int = 10):
        super().__init__()
        self.n_patches, self.embed_dim = encoder.n_patches, encoder.embed_dim
        self.grid = int(round(math.sqrt(self.n_patches)))
        d = self.n_patches * self.embed_dim
        self.decoding = mlp([latent_dim, *reversed(list(hidden_dims)), d])
        self.register_buffer("pos", sinusoidal_positions(self.n_patches, self.embed_dim))
        heads = int(n_heads or default_heads(self.embed_dim))
        self.blocks = nn.Sequential(
            *[TransformerBlock(self.embed_dim, heads, mlp_ratio) for _ in range(depth)]
        )
        self.unpatch = nn.ConvTranspose2d(
            self.embed_dim, out_channels, encoder.patch, stride=encoder.patch
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, latent_dim) -> (B, C, H, W)."""
        B = z.shape[0]
        t = self.decoding(z).reshape(B, self.n_patches, self.embed_dim) + self.pos  # (B, P, E)
        t = self.blocks(t)
        t = t.transpose(1, 2).reshape(B, self.embed_dim, self.grid, self.grid)  # (B, E, 4, 4)
        return self.unpatch(t)


class TransformerAE(nn.Module):
    """T-Encoder and T-Decoder of TDEC for images (C, H, W)."""

    def __init__(
        self,
        in_channels: int,
        image_size: tuple[int, int],
        *,
        embed_dim: int | None = None,
        depth: int = 4,
        decoder_depth: int = 1,
        n_heads: int | None = None,
        mlp_ratio: float = 4.0,
        hidden_dims: Sequence[int] = (512, 512, 3072),
        latent_dim: int = 10,
    ):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.encoder = TEncoder(in_channels, image_size, embed_dim=embed_dim, depth=depth,
                                n_heads=n_heads, mlp_ratio=mlp_ratio, hidden_dims=hidden_dims,
                                latent_dim=latent_dim)
        self.decoder = TDecoder(self.encoder, in_channels, depth=decoder_depth, n_heads=n_heads,
                                mlp_ratio=mlp_ratio, hidden_dims=hidden_dims, latent_dim=latent_dim)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, m), the feature space Z_w."""
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.forward_features(x)
        return z, self.decode(z)


class MLPImageAE(nn.Module):
    """The ablation without Transformer blocks (Table 4, ST off): the same encoding/decoding
    layers [d-512-512-3072-m] applied to the flattened image (also TDEC's vector mode)."""

    def __init__(self, in_shape: Sequence[int], *, hidden_dims: Sequence[int] = (512, 512, 3072),
                 latent_dim: int = 10):
        super().__init__()
        self.in_shape = tuple(int(s) for s in in_shape)
        self.latent_dim = int(latent_dim)
        d = math.prod(self.in_shape)
        self.encoder = mlp([d, *hidden_dims, latent_dim])
        self.decoder = mlp([latent_dim, *reversed(list(hidden_dims)), d])

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x.flatten(1))

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z).reshape(z.shape[0], *self.in_shape)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.forward_features(x)
        return z, self.decode(z)


class TDECNet(nn.Module):
    """Autoencoder (T-Encoder/T-Decoder or MLP) plus the Dim-Reduction block (optional)."""

    def __init__(self, ae: nn.Module, dim_reduction: nn.Module | None):
        super().__init__()
        self.ae = ae
        self.dr = dim_reduction
        self.centers: nn.Parameter | None = None  # only when the clustering head is off

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x -> ``(z_w (B, m), z_v (B, 2))``; ``z_v = z_w`` without the Dim-Reduction block."""
        z_w = self.ae.forward_features(x)
        z_v = self.dr(z_w) if self.dr is not None else z_w
        return z_w, z_v

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x -> ``(z_w, z_v, x_rec)``."""
        z_w, z_v = self.forward_features(x)
        return z_w, z_v, self.ae.decode(z_w)
