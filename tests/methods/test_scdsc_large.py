"""Large scenes on SCDSC's path: tiles, per-batch patches, chunked predict, memmaps."""

import tracemalloc

import numpy as np
import pytest
import torch

from deepclust.base import check_data
from deepclust.data import hsi
from deepclust.data.hsi import extract_patches, is_memory_mapped
from deepclust.data.scene import ScenePatches, ScenePreprocessor, patch_pca_features
from deepclust.methods.scdsc import SCDSC

TINY = dict(
    n_components=4, patch=3, channels=4, finch_patch=5, finch_pca=10, window=3, epochs=1,
    pretrain_epochs=1, pretrain_batch_size=256, kmeans_n_init=1, beta2=1.0, device="cpu",
    random_state=0, chunk_size=2048,
)


def blocky_cube(h=40, w=30, bands=12, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    gt = (np.arange(h)[:, None] * 3 // h) * 2 + (np.arange(w)[None, :] * 2 // w) + 1  # 6 blocks
    spectra = rng.uniform(0.5, 2.0, size=(gt.max() + 1, bands))
    cube = spectra[gt] + 0.05 * rng.normal(size=(h, w, bands))
    return cube.astype(dtype), gt


def test_preprocessor_tiles_equal_one_piece():
    cube, _ = blocky_cube()
    one = ScenePreprocessor(4).fit(cube)  # 1,200 pixels <= default tile: one piece
    tiled = ScenePreprocessor(4, tile_pixels=70).fit(cube)  # 2 rows of 30 pixels per tile
    for a in ("mean_", "scale_", "pca_mean_"):
        np.testing.assert_allclose(getattr(tiled, a), getattr(one, a), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.abs(tiled.components_), np.abs(one.components_), atol=1e-8)
    np.testing.assert_allclose(tiled.transform(cube), one.transform(cube), rtol=1e-5, atol=1e-5)


def test_scene_patches_equal_materialised_patches():
    cube, _ = blocky_cube(h=9, w=7, bands=3)
    rows, cols = np.nonzero(np.ones((9, 7), bool))
    full = extract_patches(cube, np.stack([rows, cols], 1), 5)  # (N, 3, 5, 5), the original path
    src = ScenePatches(cube, rows, cols, 5)
    mean, scale = src.feature_stats()  # exact (one piece)
    np.testing.assert_array_equal(mean, full.reshape(63, -1).mean(0))
    m64, s64 = src.feature_stats(exact_below=0, chunk=10)  # chunked float64
    np.testing.assert_allclose(m64, mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s64, scale, rtol=1e-5)
    src.set_normalisation(mean, scale)
    want = (full - mean.reshape(3, 5, 5)) / scale.reshape(3, 5, 5)
    idx = np.array([5, 0, 62, 5])
    np.testing.assert_array_equal(src[torch.from_numpy(idx)].numpy(), want[idx])
    np.testing.assert_array_equal(src[slice(10, 20)].numpy(), want[10:20])
    assert src.shape == want.shape and src.numel() == want.size


def test_patch_pca_features_sample_is_exact_at_or_below_threshold():
    cube, _ = blocky_cube(h=12, w=10, bands=3)
    rows, cols = np.nonzero(np.ones((12, 10), bool))
    f = patch_pca_features(cube, rows, cols, patch=3, n_components=5)
    np.testing.assert_array_equal(patch_pca_features(cube, rows, cols, patch=3, n_components=5,
                                                     sample=120), f)
    g = patch_pca_features(cube, rows, cols, patch=3, n_components=5, sample=60, seed=1)
    assert g.shape == f.shape and np.allclose(np.linalg.norm(g, axis=1), 1.0, atol=1e-5)


@pytest.fixture(scope="module")
def fitted():
    cube, gt = blocky_cube()
    return SCDSC(6, **TINY).fit(cube), cube


def test_chunked_predict_equals_unchunked(fitted):
    model, cube = fitted
    whole = model.set_params(predict_chunk=10**9).predict(cube)
    chunked = model.set_params(predict_chunk=97).predict(cube)  # 13 chunks, last partial
    np.testing.assert_array_equal(chunked, whole)
    assert whole.shape == (cube.shape[0] * cube.shape[1],)
    mask = np.zeros(cube.shape[:2], bool)
    mask[3:9, 4:20] = True
    np.testing.assert_array_equal(model.predict(cube, mask=mask), whole.reshape(40, 30)[mask])
    with pytest.raises(ValueError, match="predict_chunk"):
        model.set_params(predict_chunk=0).predict(cube)
    model.set_params(predict_chunk=65536)


def test_sampled_kmeans_init_runs_on_every_pixel(fitted):
    _, cube = fitted
    m = SCDSC(6, **{**TINY, "kmeans_sample": 300, "ann_threshold": 500}).fit(cube)
    assert m.init_labels_.shape == (1200,) and set(np.unique(m.init_labels_)) <= set(range(6))
    assert "300 codes" in m.diagnostics_["kmeans_init"]
    search = m.diagnostics_["finch_search"]  # FINCH on 1,200 pixels > 500: approximate
    assert search[0]["method"] == "faiss IVF-Flat" and 0.0 <= search[0]["recall_at_1"] <= 1.0


def test_memmapped_cube_is_not_copied_and_matches_in_memory(tmp_path, monkeypatch):
    # many small BLAS calls: one thread (a loaded machine makes threaded runs ~30x slower)
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            _memmap_check(tmp_path, monkeypatch)
    finally:
        torch.set_num_threads(threads)


def _memmap_check(tmp_path, monkeypatch):
    # 100 x 100 pixels x 512 bands float64 on disk (41 MB; 20 MB as float32). The work
    # buffers are O(tile) and O(chunk) (~6 MB here); one whole copy would be >= 20 MB
    cube, _ = blocky_cube(h=100, w=100, bands=512, dtype=np.float64)
    np.save(tmp_path / "cube.npy", cube)
    mm = np.load(tmp_path / "cube.npy", mmap_mode="r")
    monkeypatch.setattr(hsi, "TILE_PIXELS", 200)  # small tiles, as a large scene would get
    kw = {**TINY, "finch_pca": 6, "kmeans_sample": 2000, "n_components": 3}
    checked = check_data(mm, kind="scene", lazy_scene=True)  # validated, not converted
    assert np.shares_memory(checked, mm) and checked.dtype == np.float64

    # the in-memory reference first: it also warms up one-off import-time allocations
    ref = SCDSC(6, **kw).fit(cube)  # in memory (converted to float32 as a whole)
    ref_full = ref.predict(cube)

    tracemalloc.start()  # numpy's allocations are traced (torch's are not: all small here)
    model = SCDSC(6, **kw).fit(mm)
    full = model.predict(mm)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    f32 = cube.size * 4
    # FINCH's exact search works on square blocks of at most 2048 x 2048 float32 distances (a
    # constant workspace of a few such blocks, independent of the cube): allowed on top
    finch_blocks = 2 * 2048 * 2048 * 4
    assert peak < 0.5 * f32 + finch_blocks, f"peak numpy allocation {peak / 2**20:.1f} MB vs cube {f32 / 2**20} MB"

    np.testing.assert_array_equal(model.labels_, ref.labels_)
    np.testing.assert_array_equal(full, ref_full)


def test_large_npy_file_is_memory_mapped(tmp_path, monkeypatch):
    from deepclust.data import files

    cube, gt = blocky_cube(h=10, w=8, bands=4)
    np.save(tmp_path / "cube.npy", cube)
    np.save(tmp_path / "gt.npy", gt)
    monkeypatch.setattr(files, "MMAP_BYTES", 0)
    ds = files.load_file(tmp_path / "cube.npy", gt=tmp_path / "gt.npy")
    assert ds.kind == "scene" and is_memory_mapped(ds.cube)
    np.testing.assert_array_equal(ds.cube, cube)


def test_init_bases_gram_matches_svd_bases():
    from deepclust.cluster.subspace import init_bases, init_bases_gram

    rng = np.random.default_rng(0)
    z = rng.normal(size=(300, 12)).astype(np.float32)
    z[:100] *= np.linspace(3, 0.1, 12)  # clear leading directions in cluster 0
    labels = np.repeat([0, 1, 2], 100)
    labels[-3:] = 3  # cluster 3 has 3 codes < d = 5 directions: random fill
    a = init_bases(z, labels, 5, 5, rng=np.random.default_rng(1))
    b = init_bases_gram(z, labels, 5, 5, rng=np.random.default_rng(1), chunk=7)
    # cluster 0 (distinct singular values) and cluster 3's 3 data directions: equal up to sign
    np.testing.assert_allclose(np.abs(a[:, :5]), np.abs(b[:, :5]), atol=1e-4)
    np.testing.assert_allclose(np.abs(a[:, 15:18]), np.abs(b[:, 15:18]), atol=1e-4)
    # clusters 1, 2: the same 5-dim subspaces (projectors), whatever the basis
    for j in (1, 2):
        A, B = a[:, 5 * j : 5 * j + 5], b[:, 5 * j : 5 * j + 5]
        np.testing.assert_allclose(A @ A.T, B @ B.T, atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(b, axis=0), 1.0, atol=1e-5)
    assert b.shape == (12, 25)
