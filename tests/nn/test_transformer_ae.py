"""Shapes and eq. 1 of TDEC's networks."""

from __future__ import annotations

import math

import pytest
import torch

from deepclust.nn.transformer_ae import (
    MLPImageAE,
    TransformerAE,
    TransformerBlock,
    default_heads,
    sinusoidal_positions,
)


@pytest.mark.parametrize("C,H,W", [(1, 8, 8), (1, 16, 16), (3, 32, 32), (1, 32, 32)])
def test_transformer_ae_shapes(C, H, W):
    torch.manual_seed(0)
    ae = TransformerAE(C, (H, W), depth=1, hidden_dims=(32, 32, 64), latent_dim=10)
    assert ae.encoder.embed_dim == max(C * (H // 4) * (W // 4), 32)
    assert ae.encoder.n_patches == 16
    x = torch.rand(5, C, H, W)
    z, rec = ae(x)
    assert z.shape == (5, 10) and rec.shape == x.shape
    assert ae.encoder.patchify(x).shape == (5, 16, ae.encoder.embed_dim)
    assert len(ae.encoder.blocks) == 1 and len(ae.decoder.blocks) == 1


def test_block_is_post_norm_eq1():
    torch.manual_seed(0)
    blk = TransformerBlock(8, 2).eval()
    z = torch.randn(3, 16, 8)
    a, _ = blk.attn(z, z, z, need_weights=False)
    z1 = torch.nn.functional.layer_norm(a + z, (8,), blk.norm1.weight, blk.norm1.bias)
    m = blk.mlp[2](torch.nn.functional.gelu(blk.mlp[0](z1)))
    ref = torch.nn.functional.layer_norm(m + z1, (8,), blk.norm2.weight, blk.norm2.bias)
    torch.testing.assert_close(blk(z), ref)


def test_sinusoidal_positions_and_heads():
    pe = sinusoidal_positions(16, 6)
    assert pe.shape == (16, 6)
    assert pe[3, 0].item() == pytest.approx(math.sin(3.0))
    assert pe[3, 1].item() == pytest.approx(math.cos(3.0))
    assert pe[5, 2].item() == pytest.approx(math.sin(5.0 / 10000 ** (2 / 6)), rel=1e-5)
    with pytest.raises(ValueError, match="even"):
        sinusoidal_positions(4, 5)
    assert default_heads(64) == 8 and default_heads(16) == 2 and default_heads(4) == 1


def test_mlp_image_ae():
    ae = MLPImageAE((1, 8, 8), hidden_dims=(16,), latent_dim=3)
    z, rec = ae(torch.rand(4, 1, 8, 8))
    assert z.shape == (4, 3) and rec.shape == (4, 1, 8, 8)
