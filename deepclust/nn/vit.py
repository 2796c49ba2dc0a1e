"""Vision Transformer encoder and MAE decoder, written here in the style of MAE (He et al. 2022).

Any channel count and image size (divisible by the patch size), a [CLS] token, fixed 2-D
sine-cosine position embeddings, pre-norm transformer blocks, per-sample uniform random masking
and an MAE decoder with mask tokens whose loss is the MSE on the masked patches (optionally on
per-patch normalised pixels).

PICI (section 3.2.1) says "standard learnable 1-D position embeddings"; the MAE it builds on uses
fixed 2-D sine-cosine ones. We follow MAE (fixed 2-D sin-cos) by default and keep the learnable
variant one flag away (``pos_embed="learned"``).

Shapes: ``N`` images, ``C`` channels, ``L`` patches, ``p`` patch size, ``D`` encoder width,
``Dd`` decoder width.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "VIT_SIZES",
    "sincos_pos_embed_2d",
    "Block",
    "MaskedAutoencoderViT",
    "random_masking",
    "n_kept",
]

#: Named encoder sizes (width, depth, heads). Tiny/small/base as in PICI's Table 5.
VIT_SIZES: dict[str, dict[str, int]] = {
    "tiny": {"embed_dim": 192, "depth": 4, "num_heads": 12},
    "small": {"embed_dim": 384, "depth": 6, "num_heads": 12},
    "base": {"embed_dim": 768, "depth": 12, "num_heads": 12},
}


def _pair(x: int | tuple[int, int]) -> tuple[int, int]:
    if isinstance(x, (tuple, list)):
        if len(x) != 2:
            raise ValueError(f"expected an int or a pair (H, W), got {x!r}")
        return int(x[0]), int(x[1])
    return int(x), int(x)


def _sincos_1d(dim: int, pos: np.ndarray) -> np.ndarray:
    """1-D sine-cosine embedding of positions ``pos`` (M,) -> (M, dim)."""
    omega = np.arange(dim // 2, dtype=np.float64) / (dim / 2.0)
    omega = 1.0 / 10000**omega  # (dim/2,)
    out = np.einsum("m,d->md", pos.reshape(-1).astype(np.float64), omega)  # (M, dim/2)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def sincos_pos_embed_2d(dim: int, grid_h: int, grid_w: int, *, cls_token: bool = True) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embedding, (1 + gh*gw, dim) with a zero row for [CLS].

    Half of the channels encode the row, half the column (``dim`` must be divisible by 4).
    """
    if dim % 4 != 0:
        raise ValueError(f"the embedding width must be divisible by 4 for 2-D sin-cos, got {dim}")
    gh, gw = np.meshgrid(np.arange(grid_h), np.arange(grid_w), indexing="ij")  # (gh, gw)
    emb = np.concatenate([_sincos_1d(dim // 2, gh), _sincos_1d(dim // 2, gw)], axis=1)  # (L, dim)
    if cls_token:
        emb = np.concatenate([np.zeros((1, dim)), emb], axis=0)
    return torch.from_numpy(emb).float()


def random_masking(
    x: torch.Tensor, mask_ratio: float, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep a uniformly random subset of ``round(L * (1 - mask_ratio))`` tokens per sample.

    Parameters
    ----------
    x : (N, L, D) tokens (without [CLS]).
    mask_ratio : fraction of tokens to drop, in [0, 1).
    generator : local CPU generator for the noise (drawn on the CPU, moved to ``x.device``).

    Returns
    -------
    x_kept : (N, L_keep, D) the kept tokens, in a random order per sample.
    mask : (N, L) 0 for kept, 1 for removed, in the original patch order.
    ids_restore : (N, L) indices that put a (kept + mask tokens) sequence back in patch order.
    """
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    n, length, dim = x.shape
    len_keep = max(1, int(round(length * (1.0 - mask_ratio))))
    noise = torch.rand(n, length, generator=generator).to(x.device)  # (N, L)
    ids_shuffle = torch.argsort(noise, dim=1)  # ascending: small noise is kept
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :len_keep]
    x_kept = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, dim))  # (N, L_keep, D)
    mask = torch.ones(n, length, device=x.device)
    mask[:, :len_keep] = 0
    mask = torch.gather(mask, 1, ids_restore)  # back to patch order
    return x_kept, mask, ids_restore


class Attention(nn.Module):
    """Multi-head self-attention (fused scaled-dot-product kernel)."""

    def __init__(self, dim: int, num_heads: int, *, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"width {dim} is not divisible by the number of heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.num_heads, d // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (N, heads, T, d_head)
        out = F.scaled_dot_product_attention(q, k, v)  # (N, heads, T, d_head)
        return self.proj(out.transpose(1, 2).reshape(n, t, d))


class Block(nn.Module):
    """Pre-norm transformer block: x + MHSA(LN(x)); x + MLP(LN(x))."""

    def __init__(self, dim: int, num_heads: int, *, mlp_ratio: float = 4.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MaskedAutoencoderViT(nn.Module):
    """ViT encoder with an MAE decoder.

    Parameters
    ----------
    img_size : int or (H, W)
        Input size; both sides must be divisible by ``patch_size``.
    patch_size : int
    in_chans : int
        Any number of channels (1 for MNIST, 3 for RGB, B for multispectral).
    size : {"tiny", "small", "base"} or None
        Named encoder size (see :data:`VIT_SIZES`); overrides ``embed_dim``/``depth``/``num_heads``.
    embed_dim, depth, num_heads : int
        Encoder width, number of blocks and heads when ``size`` is None.
    decoder_embed_dim, decoder_depth, decoder_num_heads : int
        MAE decoder (PICI: 512 wide, 8 blocks, 16 heads).
    mlp_ratio : float
    norm_pix_loss : bool
        Reconstruct per-patch normalised pixels (MAE's option).
    pos_embed : {"sincos", "learned"}
        Fixed 2-D sine-cosine (MAE) or learnable (PICI's text) position embeddings.
    """

    def __init__(
        self,
        *,
        img_size: int | tuple[int, int] = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        size: Literal["tiny", "small", "base"] | None = "small",
        embed_dim: int = 384,
        depth: int = 6,
        num_heads: int = 12,
        decoder_embed_dim: int = 512,
        decoder_depth: int = 8,
        decoder_num_heads: int = 16,
        mlp_ratio: float = 4.0,
        norm_pix_loss: bool = False,
        pos_embed: Literal["sincos", "learned"] = "sincos",
    ):
        super().__init__()
        if size is not None:
            if size not in VIT_SIZES:
                raise ValueError(f"unknown ViT size {size!r}; choose one of {sorted(VIT_SIZES)}")
            embed_dim, depth, num_heads = (VIT_SIZES[size][k] for k in ("embed_dim", "depth", "num_heads"))
        if pos_embed not in ("sincos", "learned"):
            raise ValueError(f"pos_embed must be 'sincos' or 'learned', got {pos_embed!r}")
        h, w = _pair(img_size)
        if h % patch_size or w % patch_size:
            raise ValueError(
                f"image size {(h, w)} is not divisible by patch_size={patch_size}; "
                "resize the images or pick a patch size that divides both sides"
            )
        self.img_size = (h, w)
        self.patch_size = int(patch_size)
        self.in_chans = int(in_chans)
        self.grid = (h // patch_size, w // patch_size)
        self.num_patches = self.grid[0] * self.grid[1]
        self.embed_dim = int(embed_dim)
        self.norm_pix_loss = bool(norm_pix_loss)
        patch_dim = patch_size * patch_size * in_chans

        # -- encoder
        self.patch_embed = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        learn = pos_embed == "learned"
        self.pos_embed = nn.Parameter(
            sincos_pos_embed_2d(embed_dim, *self.grid).unsqueeze(0), requires_grad=learn
        )  # (1, 1 + L, D)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio=mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)

        # -- decoder
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(
            sincos_pos_embed_2d(decoder_embed_dim, *self.grid).unsqueeze(0), requires_grad=learn
        )  # (1, 1 + L, Dd)
        self.decoder_blocks = nn.ModuleList(
            [Block(decoder_embed_dim, decoder_num_heads, mlp_ratio=mlp_ratio) for _ in range(decoder_depth)]
        )
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_embed_dim, patch_dim)
        self._init_weights()

    def _init_weights(self) -> None:
        w = self.patch_embed.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    # -- patches ---------------------------------------------------------------------------
    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, L, p*p*C), patches in row-major order, pixels as (p, p, C)."""
        n, c, h, w = imgs.shape
        p = self.patch_size
        gh, gw = h // p, w // p
        x = imgs.reshape(n, c, gh, p, gw, p)
        x = torch.einsum("nchpwq->nhwpqc", x)
        return x.reshape(n, gh * gw, p * p * c)

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(N, L, p*p*C) -> (N, C, H, W); inverse of :meth:`patchify`."""
        n = x.shape[0]
        p, c = self.patch_size, self.in_chans
        gh, gw = self.grid
        x = x.reshape(n, gh, gw, p, p, c)
        x = torch.einsum("nhwpqc->nchpwq", x)
        return x.reshape(n, c, gh * p, gw * p)

    def _check_input(self, imgs: torch.Tensor) -> None:
        if imgs.ndim != 4 or imgs.shape[1] != self.in_chans or tuple(imgs.shape[2:]) != self.img_size:
            raise ValueError(
                f"expected images of shape (N, {self.in_chans}, {self.img_size[0]}, {self.img_size[1]}), "
                f"got {tuple(imgs.shape)}"
            )

    # -- encoder ---------------------------------------------------------------------------
    def forward_encoder(
        self, imgs: torch.Tensor, mask_ratio: float = 0.0, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode the visible patches.

        Returns ``latent`` (N, 1 + L_keep, D) with [CLS] first, ``mask`` (N, L) and
        ``ids_restore`` (N, L). With ``mask_ratio=0`` every patch is kept in its order.
        """
        self._check_input(imgs)
        x = self.patch_embed(imgs).flatten(2).transpose(1, 2)  # (N, L, D)
        x = x + self.pos_embed[:, 1:, :]
        if mask_ratio > 0:
            x, mask, ids_restore = random_masking(x, mask_ratio, generator=generator)
        else:
            n, length = x.shape[:2]
            mask = torch.zeros(n, length, device=x.device)
            ids_restore = torch.arange(length, device=x.device).expand(n, length)
        cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1)  # (N, 1, D)
        x = torch.cat([cls, x], dim=1)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), mask, ids_restore

    def forward_features(
        self, imgs: torch.Tensor, mask_ratio: float = 0.0, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """The [CLS] representation h (N, D); unmasked by default (PICI's test-time rule)."""
        latent, _, _ = self.forward_encoder(imgs, mask_ratio, generator=generator)
        return latent[:, 0]

    # -- decoder ---------------------------------------------------------------------------
    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """Predict every patch's pixels (N, L, p*p*C) from the encoded visible tokens."""
        x = self.decoder_embed(latent)  # (N, 1 + L_keep, Dd)
        n, t, dd = x.shape
        n_mask = ids_restore.shape[1] + 1 - t
        mask_tokens = self.mask_token.expand(n, n_mask, -1)
        x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)  # (N, L, Dd), shuffled order
        x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).expand(-1, -1, dd))  # patch order
        x = torch.cat([x[:, :1, :], x_], dim=1) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_norm(x)
        return self.decoder_pred(x)[:, 1:, :]  # drop [CLS]

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error on the masked patches (on all patches when none is masked)."""
        target = self.patchify(imgs)
        if self.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1e-6).sqrt()
        per_patch = ((pred - target) ** 2).mean(dim=-1)  # (N, L)
        weight = mask if mask.sum() > 0 else torch.ones_like(mask)
        return (per_patch * weight).sum() / weight.sum()

    def forward(
        self, imgs: torch.Tensor, mask_ratio: float = 0.5, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns ``(loss, pred (N, L, p*p*C), mask (N, L), cls (N, D))``."""
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio, generator=generator)
        pred = self.forward_decoder(latent, ids_restore)
        return self.forward_loss(imgs, pred, mask), pred, mask, latent[:, 0]


def n_kept(num_patches: int, mask_ratio: float) -> int:
    """Number of visible patches for a mask ratio (what :func:`random_masking` keeps)."""
    return max(1, int(round(num_patches * (1.0 - mask_ratio))))

