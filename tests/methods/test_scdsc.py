import numpy as np
import pytest
import torch

from deepclust.data.hsi import extract_patches
from deepclust.data.scene import patch_pca_features
from deepclust.methods.scdsc import SCDSC, _train_scdsc, confident_share, select_epoch
from deepclust.nn import seeded_init
from deepclust.nn.mlp_ae import MLPAutoencoder
from deepclust.nn.subspace import BasisClusteringNet
from deepclust.training import History

TINY = dict(
    n_components=4,
    patch=3,
    channels=4,
    finch_patch=5,
    finch_pca=10,
    window=3,
    epochs=3,
    pretrain_epochs=1,
    pretrain_batch_size=64,
    kmeans_n_init=2,
    beta2=1.0,
    device="cpu",
)


def tiny_scene(seed=0):
    rng = np.random.default_rng(seed)
    gt = np.zeros((14, 12), dtype=int)
    gt[:7, :6], gt[:7, 6:], gt[7:, :] = 1, 2, 3
    spectra = rng.uniform(0.5, 2.0, size=(4, 10))
    cube = spectra[gt] + 0.05 * rng.normal(size=(14, 12, 10))
    mask = np.ones_like(gt, dtype=bool)
    mask[0, :3] = False
    return cube.astype(np.float32), gt, mask


def test_extract_patches_reflect():
    cube = np.arange(20, dtype=np.float32).reshape(4, 5, 1)
    p = extract_patches(cube, np.array([[0, 0], [2, 3]]), 3)
    assert p.shape == (2, 1, 3, 3)
    # reflect padding: row -1 is row 1, col -1 is col 1
    np.testing.assert_array_equal(p[0, 0], [[6, 5, 6], [1, 0, 1], [6, 5, 6]])
    np.testing.assert_array_equal(p[1, 0], cube[1:4, 2:5, 0])


def test_patch_pca_features_match_dense_pca():
    rng = np.random.default_rng(0)
    cube = rng.normal(size=(9, 8, 3)).astype(np.float32)
    rows, cols = np.nonzero(np.ones((9, 8), bool))
    f = patch_pca_features(cube, rows, cols, patch=3, n_components=5, chunk=13)
    P = extract_patches(cube, np.stack([rows, cols], 1), 3).reshape(len(rows), -1).astype(np.float64)
    P = (P - P.mean(0)) / P.std(0)
    U, S, Vt = np.linalg.svd(P, full_matrices=False)
    ref = P @ Vt[:5].T
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    # equal up to the sign of each component
    signs = np.sign((f * ref).sum(0))
    np.testing.assert_allclose(f * signs, ref, atol=1e-4)
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, rtol=1e-5)


def test_label_free_epoch_rule():
    s = torch.tensor([[0.95, 0.05], [0.6, 0.4], [0.08, 0.92], [0.5, 0.5]])
    assert confident_share(s, 0.9) == 0.5
    assert select_epoch([0.1, 0.5, 0.5, 0.3]) == 1
    with pytest.raises(ValueError):
        select_epoch([])


@pytest.mark.parametrize("local,nonlocal_", [(True, True), (False, False)])
def test_fit_predict_and_selection(local, nonlocal_):
    cube, gt, mask = tiny_scene()
    m = SCDSC(n_clusters=3, local=local, nonlocal_=nonlocal_, random_state=0, **TINY)
    m.fit(cube, mask=mask)
    assert m.labels_.shape == (mask.sum(),) and m.labels_.dtype == np.int64
    assert m.labels_last_.shape == m.labels_.shape
    shares = m.history_.stages["train"]["confident_share"]
    if max(shares) > 0:
        assert m.diagnostics_["selected_epoch"] == select_epoch(shares) + 1
        best = select_epoch(shares)
        assert m.diagnostics_["confident_share_selected"] == pytest.approx(shares[best])
    else:  # no confident pixel in any epoch: the rule is undefined, the last epoch is reported
        assert m.diagnostics_["selected_epoch"] == TINY["epochs"]
        np.testing.assert_array_equal(m.labels_, m.labels_last_)
    assert "label-free" in m.selection_
    full = m.predict_scene()
    assert full.shape == gt.shape and full.min() >= 0 and full.max() < 3
    assert m.predict(cube, mask=mask).shape == m.labels_.shape
    if nonlocal_:
        assert m.mini_clusters_.shape == m.labels_.shape
    # same seed, same result
    m2 = SCDSC(n_clusters=3, local=local, nonlocal_=nonlocal_, random_state=0, **TINY)
    np.testing.assert_array_equal(m2.fit(cube, mask=mask).labels_, m.labels_)


def test_chunked_gradient_equals_full_batch():
    rng = np.random.default_rng(1)
    H, W, k = 6, 5, 3
    mask = np.ones((H, W), bool)
    mask[0, 0] = False
    rows, cols = np.nonzero(mask)
    X = torch.tensor(rng.normal(size=(rows.size, 7)), dtype=torch.float32)
    mini = torch.tensor(rng.integers(0, 6, rows.size))
    params = []
    for chunk in (None, 4):
        with seeded_init(0):
            net = BasisClusteringNet(MLPAutoencoder(7, hidden=(6,), latent=4), n_clusters=k, d=1)
            torch.nn.init.normal_(net.D)
        _train_scdsc(
            net=net,
            X=X,
            flat_index=torch.tensor(rows * W + cols),
            mask=torch.tensor(mask),
            mini_index=mini,
            local=True,
            window=3,
            beta=1e-3,
            beta1=3.0,
            beta2=2.0,
            epochs=3,
            lr=1e-2,
            chunk_size=chunk,
            threshold=0.9,
            generator=torch.Generator(),
            history=History(),
            verbose=False,
        )
        params.append(torch.cat([p.detach().flatten() for p in net.parameters()]))
    torch.testing.assert_close(params[0], params[1], rtol=1e-4, atol=1e-5)


def test_bad_input():
    cube, gt, mask = tiny_scene()
    m = SCDSC(n_clusters=3, **TINY)
    bad = cube.copy()
    bad[..., 4] = np.nan
    with pytest.raises(ValueError, match=r"band\(s\) \[4\]"):
        m.fit(bad, mask=mask)
    with pytest.raises(ValueError, match="selects no pixel"):
        m.fit(cube, mask=np.zeros_like(mask))
    few = np.zeros_like(mask)
    few[3, 3:5] = True
    with pytest.raises(ValueError, match="larger than the number of samples"):
        m.fit(cube, mask=few)
    with pytest.raises(ValueError, match="larger than the scene"):
        SCDSC(n_clusters=3, **{**TINY, "window": 15}).fit(cube, mask=mask)
    with pytest.raises(ValueError, match="mask has shape"):
        m.fit(cube, mask=mask[:5])


def _patches_and_untrained_ae(cube, mask):
    from deepclust.data.scene import ScenePatches, ScenePreprocessor
    from deepclust.nn.conv_ae import ConvPatchAutoencoder

    rows, cols = np.nonzero(mask)
    src = ScenePatches(ScenePreprocessor(4).fit(cube).transform(cube), rows, cols, 3)
    src.set_normalisation(*src.feature_stats(scaling="global"))
    with seeded_init(0):
        ae = ConvPatchAutoencoder(4, 3, channels=4)
    return src, src.materialize(), ae


def test_umap_init_is_umap_kmeans_on_the_codes():
    pytest.importorskip("umap")
    from deepclust.methods.scdsc_init import umap_partition
    from deepclust.methods.umap_kmeans import UMAPKMeans
    from deepclust.nn.pretrain import encode_all
    from deepclust.presets.umap_kmeans import PRESETS

    cube, gt, mask = tiny_scene()
    src, X, ae = _patches_and_untrained_ae(cube, mask)
    labels, info, codes = umap_partition(ae, src, X, 3, sample=None, seed=0, device="cpu")
    z = encode_all(ae, X, batch_size=64, device="cpu")
    ref = UMAPKMeans(n_clusters=3, random_state=0, **PRESETS["fast"]["default"]).fit(z).labels_
    np.testing.assert_array_equal(labels, ref)
    np.testing.assert_array_equal(codes, z)  # handed on to the bases, not encoded again
    assert "all 165 pixels" in info["init_umap"]
    # above ``sample``: UMAP on a sample, every pixel to the nearest sample-cluster mean code
    lab_s, info_s, none = umap_partition(ae, src, X, 3, sample=100, seed=0, device="cpu")
    assert none is None
    assert lab_s.shape == (165,) and set(np.unique(lab_s)) <= {0, 1, 2} and "sample of 100" in info_s["init_umap"]
    # the whole fit with the UMAP start: labels_ as predict gives them
    m = SCDSC(n_clusters=3, random_state=0, init="umap", **TINY).fit(cube, mask=mask)
    assert "init_umap" in m.diagnostics_
    np.testing.assert_array_equal(m.labels_, m.predict(cube, mask=mask))


def test_given_initial_partition_is_used():
    from deepclust.nn.subspace import initial_bases

    cube, gt, mask = tiny_scene()
    src, X, ae = _patches_and_untrained_ae(cube, mask)
    given = (gt[mask] - 1).astype(np.int64)
    kw = dict(mini=None, sample=None, n_init=2, seed=0, backend="sklearn", min_size=0, repair=False,
              rng=np.random.default_rng(0), device="cpu")
    labels, D0, _ = initial_bases(ae, src, X, 3, 2, init="given", labels=given, **kw)
    np.testing.assert_array_equal(labels, given)
    assert D0.shape == (ae.latent_dim, 3 * 2)
    np.testing.assert_allclose(np.linalg.norm(D0, axis=0), 1.0, atol=1e-5)  # SVD bases: unit columns
    with pytest.raises(ValueError, match="needs labels for all"):
        initial_bases(ae, src, X, 3, 2, init="given", labels=given[:5], **kw)


def test_restarts_record_their_attempts():
    cube, gt, mask = tiny_scene()
    m = SCDSC(n_clusters=3, random_state=0, restarts=2, **TINY).fit(cube, mask=mask)
    attempts = m.diagnostics_["attempts"]
    assert 1 <= len(attempts) <= 3 and attempts[0]["seed"] == 0 and m.seed_ == 0
    if len(attempts) == 1:  # a clean first attempt: the same fit as without restarts
        m0 = SCDSC(n_clusters=3, random_state=0, **TINY).fit(cube, mask=mask)
        np.testing.assert_array_equal(m.labels_, m0.labels_)
    np.testing.assert_array_equal(m.labels_, m.predict(cube, mask=mask))
    with pytest.raises(ValueError, match="restarts"):
        SCDSC(n_clusters=3, restarts=-1, **TINY).fit(cube, mask=mask)
