"""ViT / MAE: masking, order restoration, any channel count, sin-cos embedding, loss."""

import numpy as np
import pytest
import torch

from deepclust.nn.vit import MaskedAutoencoderViT, n_kept, random_masking, sincos_pos_embed_2d


def tiny(**kw):
    args = dict(img_size=16, patch_size=4, in_chans=3, size=None, embed_dim=32, depth=1, num_heads=4,
                decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)
    args.update(kw)
    return MaskedAutoencoderViT(**args)


@pytest.mark.parametrize("ratio,length", [(0.5, 16), (0.75, 16), (0.5, 9), (0.25, 7)])
def test_random_masking_keeps_right_number(ratio, length):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5, length, 8)
    kept, mask, ids_restore = random_masking(x, ratio, generator=g)
    k = n_kept(length, ratio)
    assert k == int(round(length * (1 - ratio)))
    assert kept.shape == (5, k, 8)
    # exactly L - k patches masked per sample
    assert torch.equal(mask.sum(1), torch.full((5,), float(length - k)))
    # the kept tokens are exactly the unmasked ones of x
    for i in range(5):
        vis = x[i][mask[i] == 0]
        assert torch.allclose(torch.sort(vis, 0).values, torch.sort(kept[i], 0).values)
    # per-sample masks differ (uniform, per sample)
    assert not all(torch.equal(mask[0], mask[i]) for i in range(1, 5))


def test_ids_restore_puts_tokens_back_in_order():
    g = torch.Generator().manual_seed(1)
    x = torch.arange(2 * 10, dtype=torch.float32).reshape(2, 10, 1)
    kept, mask, ids_restore = random_masking(x, 0.6, generator=g)
    # append placeholders for the removed tokens and unshuffle as the decoder does
    filler = torch.full((2, 10 - kept.shape[1], 1), -1.0)
    seq = torch.gather(torch.cat([kept, filler], 1), 1, ids_restore.unsqueeze(-1))
    expected = torch.where(mask.unsqueeze(-1) == 0, x, torch.full_like(x, -1.0))
    assert torch.equal(seq, expected)


def test_decoder_restores_patch_order():
    """Strip the decoder to identities: its output must hold each visible token at its patch."""
    torch.manual_seed(0)
    m = tiny(decoder_embed_dim=32, decoder_depth=0)
    m.decoder_embed = torch.nn.Identity()
    m.decoder_norm = torch.nn.Identity()
    m.decoder_pred = torch.nn.Identity()
    with torch.no_grad():
        m.decoder_pos_embed.zero_()
        m.mask_token.fill_(-7.0)
    imgs = torch.rand(3, 3, 16, 16)
    latent, mask, ids = m.forward_encoder(imgs, 0.5, generator=torch.Generator().manual_seed(0))
    assert latent.shape == (3, 1 + 8, 32)
    out = m.forward_decoder(latent, ids)  # (3, 16, 32)
    ids_shuffle = torch.argsort(ids, dim=1)  # kept token j came from patch ids_shuffle[:, j]
    for i in range(3):
        for j in range(8):
            assert torch.equal(out[i, ids_shuffle[i, j]], latent[i, 1 + j])
        assert torch.all(out[i][mask[i] == 1] == -7.0)
        assert int((mask[i] == 0).sum()) == 8
        assert set(ids_shuffle[i, :8].tolist()) == set(torch.nonzero(mask[i] == 0).ravel().tolist())


def test_patchify_roundtrip_and_layout():
    m = tiny(in_chans=2)
    imgs = torch.rand(2, 2, 16, 16)
    p = m.patchify(imgs)
    assert p.shape == (2, 16, 4 * 4 * 2)
    assert torch.equal(m.unpatchify(p), imgs)
    # patch 1 (row 0, col 1), pixel (0, 0), channel 1
    assert p[0, 1, 1] == imgs[0, 1, 0, 4]


@pytest.mark.parametrize("chans", [1, 3, 8])
def test_forward_any_channels(chans):
    m = tiny(in_chans=chans, norm_pix_loss=chans == 8)
    imgs = torch.rand(4, chans, 16, 16)
    loss, pred, mask, cls = m(imgs, 0.5, generator=torch.Generator().manual_seed(0))
    assert pred.shape == (4, 16, 16 * chans)
    assert mask.shape == (4, 16) and cls.shape == (4, 32)
    assert torch.isfinite(loss)
    loss.backward()
    assert m.patch_embed.weight.grad is not None
    feats = m.forward_features(imgs)
    assert feats.shape == (4, 32)


def test_features_unmasked_are_deterministic():
    m = tiny().eval()
    imgs = torch.rand(2, 3, 16, 16)
    assert torch.equal(m.forward_features(imgs), m.forward_features(imgs))


def test_loss_only_on_masked_patches():
    m = tiny()
    imgs = torch.rand(2, 3, 16, 16)
    target = m.patchify(imgs)
    mask = torch.zeros(2, 16)
    mask[:, :4] = 1
    pred = target.clone()
    pred[:, 4:] += 10.0  # errors on visible patches do not count
    pred[:, :4] += 1.0
    assert torch.isclose(m.forward_loss(imgs, pred, mask), torch.tensor(1.0))


def test_rectangular_image_and_named_sizes():
    m = MaskedAutoencoderViT(img_size=(8, 16), patch_size=4, in_chans=1, size="tiny",
                             decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=2)
    assert m.embed_dim == 192 and len(m.blocks) == 4 and m.num_patches == 8
    out = m.forward_features(torch.rand(1, 1, 8, 16))
    assert out.shape == (1, 192)


def test_sincos_reference():
    emb = sincos_pos_embed_2d(8, 2, 3).numpy()
    assert emb.shape == (7, 8) and np.all(emb[0] == 0)
    # patch (row 1, col 2): first half encodes row=1, second half col=2, omega = 1/10000^(k/2)
    om = 1.0 / 10000 ** (np.arange(2) / 2.0)
    ref = np.concatenate([np.sin(1 * om), np.cos(1 * om), np.sin(2 * om), np.cos(2 * om)])
    assert np.allclose(emb[1 + 1 * 3 + 2], ref, atol=1e-6)


def test_bad_inputs():
    with pytest.raises(ValueError, match="divisible"):
        tiny(img_size=18)
    with pytest.raises(ValueError, match="unknown ViT size"):
        tiny(size="huge")
    with pytest.raises(ValueError, match="expected images"):
        tiny().forward_features(torch.rand(1, 1, 16, 16))
    with pytest.raises(ValueError, match="mask_ratio"):
        random_masking(torch.rand(1, 4, 2), 1.0)
