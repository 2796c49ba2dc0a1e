"""TDEC on tiny image sets: the full model, the Table 4 ablations, vector mode, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepclust.methods.tdec import TDEC, augment, target_size
from deepclust.metrics import acc


def _images(n_per=30, k=3, size=8, seed=0):
    """k classes of 8x8 images: a bright bar in a class-specific place, plus noise."""
    rng = np.random.default_rng(seed)
    X = 0.05 * rng.random((n_per * k, 1, size, size)).astype(np.float32)
    for c in range(k):
        X[c * n_per : (c + 1) * n_per, 0, :, 2 * c + 1 : 2 * c + 3] += 0.9
    return np.clip(X, 0, 1), np.repeat(np.arange(k), n_per)


TINY = dict(depth=1, embed_dim=8, hidden_dims=(32, 32, 32), latent_dim=4, dr_dims=(16, 16),
            n_neighbors=5, pretrain_epochs=4, epochs=2, batch_size=32, perplexity=5.0, lr=3e-3,
            device="cpu")


def test_tdec_full_model_runs_and_sets_attributes():
    X, y = _images()
    m = TDEC(n_clusters=3, random_state=0, **TINY).fit(X)
    assert m.labels_.shape == (90,) and m.labels_.dtype == np.int64
    assert set(np.unique(m.labels_)) <= {0, 1, 2}
    assert m.embedding_.shape == (90, 2) and m.cluster_centers_.shape == (3, 2)
    # density-peak centres are samples of the clustering space
    np.testing.assert_allclose(m.embedding_[m.center_indices_], m.cluster_centers_, atol=1e-5)
    assert {"pretrain", "cluster"} <= set(m.history_.stages)
    assert {"rec", "dim", "clu"} <= set(m.history_.stages["cluster"])
    assert isinstance(m.model_, torch.nn.Module) and "label-free" in m.selection_
    assert acc(y, m.labels_) > 0.6  # three trivially separable classes after a few epochs
    assert m.predict(X[:7]).shape == (7,)
    m2 = TDEC(n_clusters=3, random_state=0, **TINY).fit(X)
    np.testing.assert_array_equal(m.labels_, m2.labels_)


@pytest.mark.parametrize("switch", ["transformer", "clustering_head", "dim_reduction", "bank"])
def test_tdec_ablations(switch):
    X, _ = _images()
    kw = {"neighbor_mode": "bank"} if switch == "bank" else {switch: False}
    m = TDEC(n_clusters=3, random_state=1, **{**TINY, **kw}).fit(X)
    assert m.labels_.shape == (90,)
    if switch == "dim_reduction":
        assert m.embedding_.shape == (90, 4)
        assert "dim" not in m.history_.stages["pretrain"]
    if switch == "clustering_head":
        assert m.model_.centers is not None
    assert m.predict(X).shape == (90,)


def test_tdec_vector_mode_and_resize():
    rng = np.random.default_rng(0)
    V = np.concatenate([rng.normal(c * 4, 0.5, size=(30, 12)) for c in range(3)]).astype(np.float32)
    m = TDEC(n_clusters=3, random_state=0, **TINY).fit(V)
    assert m.labels_.shape == (90,) and m.predict(V[:3]).shape == (3,)
    assert target_size(28, 28) == (32, 32) and target_size(16, 16) == (16, 16)
    X28 = np.random.default_rng(1).random((40, 28, 28)).astype(np.float32)
    m = TDEC(n_clusters=2, random_state=0,
             **{**TINY, "pretrain_epochs": 1, "epochs": 1, "embed_dim": None}).fit(X28)
    assert m.diagnostics_["image_size"] == [32, 32]
    assert m.model_.ae.encoder.embed_dim == 64


def test_augment_is_seeded_and_bounded():
    x = torch.zeros(4, 1, 20, 20)
    x[:, :, 8:12, 8:12] = 1.0
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a, b = augment(x, g1), augment(x, g2)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, x)
    # a shift of at most 2 px and 10 degrees keeps the square's mass inside the image
    assert torch.allclose(a.sum((1, 2, 3)), x.sum((1, 2, 3)), rtol=0.15)


def test_tdec_bad_input():
    X, _ = _images()
    with pytest.raises(ValueError, match="too small"):
        TDEC(n_clusters=3, **TINY).fit(np.random.default_rng(0).random((10, 1, 4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="neighbor_mode"):
        TDEC(n_clusters=3, **{**TINY, "neighbor_mode": "x"}).fit(X)
    with pytest.raises(ValueError, match="neighbor_rate"):
        TDEC(n_clusters=3, **{**TINY, "neighbor_rate": 2.0}).fit(X)
    with pytest.raises(ValueError, match="NaN"):
        TDEC(n_clusters=3, **TINY).fit(np.full((10, 1, 8, 8), np.nan, np.float32))


def test_rec_loss_reductions_match_numpy():
    from deepclust.methods.tdec import _rec_loss

    rng = np.random.default_rng(0)
    a, b = rng.random((5, 1, 4, 3)), rng.random((5, 1, 4, 3))
    ref_sum = ((a - b) ** 2).reshape(5, -1).sum(1).mean()  # eq. 8
    ref_mean = ((a - b) ** 2).mean()
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    assert float(_rec_loss(ta, tb)) == pytest.approx(ref_sum)
    assert float(_rec_loss(ta, tb, "mean")) == pytest.approx(ref_mean)


def _dr_params(m):
    return [p.detach().clone() for p in m.model_.dr.parameters()]


def test_clu_to_dr_off_keeps_dr_block_out_of_the_clustering_loss():
    """With beta = 0 the DR block only gets gradient from L_clu; clu_to_dr=False blocks it."""
    X, _ = _images()
    kw = {**TINY, "beta": 0.0, "pretrain_epochs": 1, "epochs": 2, "tol": 0.0}
    init = TDEC(n_clusters=3, random_state=0, **{**kw, "pretrain_epochs": 0, "epochs": 0}).fit(X)
    off = TDEC(n_clusters=3, random_state=0, clu_to_dr=False, **kw).fit(X)
    on = TDEC(n_clusters=3, random_state=0, **kw).fit(X)
    for p0, p1 in zip(_dr_params(init), _dr_params(off), strict=True):
        torch.testing.assert_close(p0, p1)
    assert any(not torch.equal(p0, p1) for p0, p1 in zip(_dr_params(init), _dr_params(on),
                                                         strict=True))
    assert off.n_iter_ > 0 and off.labels_.shape == (90,)


def test_dr_lr_is_a_separate_adam_group():
    X, _ = _images()
    kw = {**TINY, "pretrain_epochs": 2, "epochs": 0}
    init = TDEC(n_clusters=3, random_state=0, **{**kw, "pretrain_epochs": 0}).fit(X)
    slow = TDEC(n_clusters=3, random_state=0, dr_lr=1e-9, **kw).fit(X)
    fast = TDEC(n_clusters=3, random_state=0, **kw).fit(X)
    d_slow = max(float((a - b).abs().max()) for a, b in zip(_dr_params(init), _dr_params(slow),
                                                              strict=True))
    d_fast = max(float((a - b).abs().max()) for a, b in zip(_dr_params(init), _dr_params(fast),
                                                              strict=True))
    assert d_slow < 1e-7 < d_fast  # Adam steps are ~lr in size
    enc0 = next(init.model_.ae.parameters())
    assert not torch.equal(enc0, next(slow.model_.ae.parameters()))  # encoder still trains
    with pytest.raises(ValueError, match="dr_lr"):
        TDEC(n_clusters=3, **{**TINY, "dr_lr": 0.0}).fit(X)
    with pytest.raises(ValueError, match="rec_reduction"):
        TDEC(n_clusters=3, **{**TINY, "rec_reduction": "max"}).fit(X)


def test_dr_epochs_fits_only_the_dr_block_on_fixed_features():
    """The DR-only stage (Algorithm 1 line 1 over v with w fixed) lowers L_dim, leaves the
    autoencoder untouched."""
    X, _ = _images()
    kw = {**TINY, "pretrain_epochs": 2, "epochs": 0, "dr_lr": 1e-2}
    init = TDEC(n_clusters=3, random_state=0, **kw).fit(X)
    m = TDEC(n_clusters=3, random_state=0, dr_epochs=30, **kw).fit(X)
    for a, b in zip(init.model_.ae.parameters(), m.model_.ae.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    dims = m.history_.stages["dr_fit"]["dim"]
    assert len(dims) == 30 and dims[-1] < 0.8 * dims[0], dims
    with pytest.raises(ValueError, match="dr_epochs"):
        TDEC(n_clusters=3, **{**TINY, "dr_epochs": -1}).fit(X)
