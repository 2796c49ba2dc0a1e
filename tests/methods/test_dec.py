"""DEC / IDEC on a tiny separable set, target distribution, input validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepclust.losses.dec import target_distribution
from deepclust.methods.dec import DEC, IDEC
from deepclust.metrics import acc


def _blobs(n_per: int = 40, d: int = 20, k: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 3, size=(k, d))
    X = np.concatenate([m + 0.3 * rng.normal(size=(n_per, d)) for m in means]).astype(np.float32)
    y = np.repeat(np.arange(k), n_per)
    return X, y


TINY = dict(hidden_dims=(32, 32), latent_dim=3, pretrain_epochs=15, pretrain_lr=1e-2, lr=1e-3,
            batch_size=32, max_iter=30, update_interval=5, n_init=3, device="cpu")


def test_target_distribution_matches_numpy():
    rng = np.random.default_rng(1)
    q = rng.random((6, 3))
    q /= q.sum(1, keepdims=True)
    f = q.sum(0)
    w = q**2 / f
    p_ref = w / w.sum(1, keepdims=True)
    p = target_distribution(torch.from_numpy(q)).numpy()
    np.testing.assert_allclose(p, p_ref, rtol=1e-10)
    # sharpening: the largest entry of every row grows
    assert np.all(p.max(1) >= q.max(1) - 1e-12)


@pytest.mark.parametrize("cls", [DEC, IDEC])
def test_dec_idec_cluster_separable_blobs(cls):
    X, y = _blobs()
    est = cls(n_clusters=3, random_state=0, **TINY).fit(X)
    assert est.labels_.dtype == np.int64 and est.labels_.shape == (len(X),)
    assert acc(y, est.labels_) > 0.95
    assert est.cluster_centers_.shape == (3, 3)
    assert "pretrain" in est.history_.stages and "cluster" in est.history_.stages
    assert est.n_iter_ <= TINY["max_iter"]
    np.testing.assert_array_equal(est.predict(X), est.labels_)
    assert "label-free" in est.selection_


def test_dec_reproducible_with_seed():
    X, _ = _blobs(seed=2)
    a = DEC(n_clusters=3, random_state=5, **TINY).fit(X)
    b = DEC(n_clusters=3, random_state=5, **TINY).fit(X)
    np.testing.assert_array_equal(a.labels_, b.labels_)
    np.testing.assert_allclose(a.cluster_centers_, b.cluster_centers_, rtol=1e-5, atol=1e-6)


def test_dec_keeps_decoder_frozen_and_idec_trains_it():
    X, _ = _blobs()
    dec = DEC(n_clusters=3, random_state=0, **{**TINY, "pretrain_epochs": 0}).fit(X)
    assert "rec" not in dec.history_.stages["cluster"]
    idec = IDEC(n_clusters=3, random_state=0, **{**TINY, "pretrain_epochs": 0}).fit(X)
    assert "rec" in idec.history_.stages["cluster"]


def test_tolerance_stops_early():
    X, _ = _blobs()
    est = IDEC(n_clusters=3, random_state=0, **{**TINY, "max_iter": 10_000, "tol": 0.5}).fit(X)
    # the second refresh already sees < 50% label change on separable blobs
    assert est.diagnostics_["converged"] and est.n_iter_ == TINY["update_interval"]


def test_bad_parameters_raise():
    X, _ = _blobs()
    with pytest.raises(ValueError, match="update_interval"):
        DEC(n_clusters=3, update_interval=0).fit(X)
    with pytest.raises(ValueError, match="gamma"):
        IDEC(n_clusters=3, gamma=0.0, **TINY).fit(X)
    with pytest.raises(ValueError, match="2-D"):
        DEC(n_clusters=3).fit(X[0])


def test_get_params_roundtrip():
    from sklearn.base import clone

    from deepclust.methods.tdec import TDEC

    for est in (DEC(n_clusters=4, tol=0.01), IDEC(n_clusters=4, gamma=0.2),
                TDEC(n_clusters=4, dim_reduction=False, neighbor_mode="bank")):
        c = clone(est)
        assert c.get_params() == est.get_params()


def test_pretraining_stops_at_the_plateau_and_the_cap_holds_without_tol():
    """``pretrain_epochs`` is a cap once ``pretrain_tol`` is set (the plateau rule reads only the
    reconstruction history); with ``pretrain_tol=None`` every epoch runs."""
    X, _ = _blobs()
    base = {**TINY, "pretrain_epochs": 12, "max_iter": 2}
    capped = DEC(3, **base, pretrain_tol=None, random_state=0).fit(X)
    assert capped.diagnostics_["pretrain_epochs_run"] == 12
    # tol 0.99: two epochs that do not cut the best error by 99 % end it at the first chance
    early = DEC(3, **base, pretrain_tol=0.99, pretrain_patience=1, random_state=0).fit(X)
    assert early.diagnostics_["pretrain_epochs_run"] == 2
    assert len(early.history_.stages["pretrain"]["rec"]) == 2


@pytest.mark.parametrize("cls", [DEC, IDEC])
def test_batch_target_trains_on_each_batch_own_target(cls, monkeypatch):
    """``target="batch"``: every step's KL is taken against DEC eq. 3 applied to that step's own
    Q (f_j over the mini-batch), never to a stored whole-set target."""
    import deepclust.methods.dec as dec_mod

    seen = []
    real_kl = dec_mod.kl_divergence

    def spy(p, q, **kw):
        seen.append(torch.allclose(p, target_distribution(q.detach()), atol=1e-7))
        return real_kl(p, q, **kw)

    monkeypatch.setattr(dec_mod, "kl_divergence", spy)
    X, y = _blobs()
    est = cls(3, **TINY, target="batch", random_state=0).fit(X)
    assert len(seen) == est.n_iter_ > 0 and all(seen)
    assert acc(y, est.labels_) > 0.9
    np.testing.assert_array_equal(est.predict(X), est.labels_)
    # the whole-set target of the default mode is not the batch's own (a non-vacuous check)
    seen.clear()
    cls(3, **TINY, target="full", random_state=0).fit(X)
    assert seen and not all(seen)


def test_target_and_pretrain_tol_are_validated():
    with pytest.raises(ValueError, match="target must be"):
        DEC(3, target="epoch").fit(_blobs()[0])
    with pytest.raises(ValueError, match="pretrain_tol"):
        DEC(3, pretrain_tol=-0.1).fit(_blobs()[0])


@pytest.mark.parametrize("cls", [DEC, IDEC])
def test_umap_start_centres_are_the_mean_embeddings_of_its_clusters(cls, monkeypatch):
    """``init="umap"``: the start is the umap-kmeans baseline on the pretrained embedding and the
    centres are the mean embedding of each of its clusters (checked before any clustering step)."""
    pytest.importorskip("umap")
    import deepclust.methods.dec as dec_mod

    seen = {}
    real = dec_mod._umap_start

    def spy(z, k, n_init, seed):
        centres, labels = real(z, k, n_init, seed)
        seen.update(z=z.copy(), centres=centres.copy(), labels=labels.copy())
        return centres, labels

    monkeypatch.setattr(dec_mod, "_umap_start", spy)
    X, y = _blobs()
    est = cls(n_clusters=3, random_state=0, init="umap", **TINY).fit(X)
    z, centres, labels = seen["z"], seen["centres"], seen["labels"]
    for c in range(3):
        np.testing.assert_allclose(centres[c], z[labels == c].mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(est.extra_labels_["umap"], labels)
    assert est.diagnostics_["init"] == "umap"
    # separable blobs: every cluster's mean is nearest to its own members
    assert est.diagnostics_["start_nearest_centre_agreement"] == 1.0
    assert acc(y, labels) > 0.95 and acc(y, est.labels_) > 0.95


def test_kmeans_start_is_the_default_and_init_is_validated():
    X, _ = _blobs()
    est = DEC(n_clusters=3, random_state=0, **TINY).fit(X)
    assert est.diagnostics_["init"] == "kmeans" and "kmeans" in est.extra_labels_
    # k-means' partition is the Voronoi partition of its own centres
    assert est.diagnostics_["start_nearest_centre_agreement"] == 1.0
    with pytest.raises(ValueError, match="init must be"):
        DEC(3, init="random").fit(X)


@pytest.mark.parametrize("cls", [DEC, IDEC])
def test_fused_adam_is_the_default_and_agrees_with_the_default_adam(cls, monkeypatch):
    """Both stages build their Adam through training.fused_adam with fused=True (False when asked);
    the fused kernel is the same update rule, so the fit agrees with the per-tensor Adam's to
    float rounding on this well-separated problem."""
    from deepclust.methods import dec as dec_mod

    X, _ = _blobs()
    seen = []
    real = dec_mod.fused_adam

    def spy(params, lr, *, fused=True, **kw):
        opt = real(params, lr, fused=fused, **kw)
        seen.append(bool(opt.defaults.get("fused")))
        return opt

    monkeypatch.setattr(dec_mod, "fused_adam", spy)
    fused = cls(n_clusters=3, random_state=0, **TINY).fit(X)
    assert seen == [True, True]  # pretraining and clustering stage, fused on the CPU
    seen.clear()
    plain = cls(n_clusters=3, random_state=0, fused_adam=False, **TINY).fit(X)
    assert seen == [False, False]
    np.testing.assert_array_equal(fused.labels_, plain.labels_)
    np.testing.assert_allclose(fused.cluster_centers_, plain.cluster_centers_, atol=1e-4)
    with pytest.raises(ValueError, match="fused_adam must be True or False"):
        cls(3, fused_adam="yes").fit(X)
