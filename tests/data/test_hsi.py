"""Hyperspectral helpers against straightforward NumPy references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepclust.data import hsi

RNG = np.random.default_rng(1)
CUBE = RNG.random((6, 9, 4)).astype(np.float32)


def test_standardize_bands_matches_numpy():
    z = hsi.standardize_bands(CUBE)
    flat = CUBE.reshape(-1, 4).astype(np.float64)
    ref = (flat - flat.mean(0)) / flat.std(0)
    np.testing.assert_allclose(z.reshape(-1, 4), ref, rtol=1e-5, atol=1e-5)
    const = CUBE.copy()
    const[..., 2] = 7.0
    assert np.all(hsi.standardize_bands(const)[..., 2] == 0)  # constant band -> 0
    mask = np.zeros((6, 9), bool)
    mask[:3] = True
    zm = hsi.standardize_bands(CUBE, mask=mask)
    sel = CUBE[mask].astype(np.float64)
    np.testing.assert_allclose(zm[mask], (sel - sel.mean(0)) / sel.std(0), rtol=1e-5, atol=1e-5)


def test_pca_bands_matches_svd():
    out, pca = hsi.pca_bands(CUBE, 2, return_model=True)
    assert out.shape == (6, 9, 2) and out.dtype == np.float32
    flat = CUBE.reshape(-1, 4).astype(np.float64)
    centred = flat - flat.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    ref = centred @ vt[:2].T
    # principal axes are defined up to sign
    for k in range(2):
        a, b = out.reshape(-1, 2)[:, k], ref[:, k]
        assert min(np.abs(a - b).max(), np.abs(a + b).max()) < 1e-4
    with pytest.raises(ValueError, match=r"\[1, 4\]"):
        hsi.pca_bands(CUBE, 5)


def test_patches_equal_explicit_reflect_pad():
    p = 5
    r = p // 2
    padded_ref = np.pad(CUBE, ((r, r), (r, r), (0, 0)), mode="reflect")
    index = np.array([[0, 0], [5, 8], [2, 3], [0, 8]])
    out = hsi.extract_patches(CUBE, index, p)
    assert out.shape == (4, 4, p, p)
    for i, (row, col) in enumerate(index):
        ref = padded_ref[row : row + p, col : col + p].transpose(2, 0, 1)
        np.testing.assert_array_equal(out[i], ref)
    np.testing.assert_array_equal(out[:, :, r, r], CUBE[index[:, 0], index[:, 1]])  # centred
    torch_out = hsi.extract_patches_torch(torch.from_numpy(CUBE), torch.from_numpy(index), p)
    np.testing.assert_array_equal(torch_out.numpy(), out)
    padded = hsi.pad_cube_torch(torch.from_numpy(CUBE), r)
    again = hsi.extract_patches_torch(None, torch.from_numpy(index), p, padded=padded)
    np.testing.assert_array_equal(again.numpy(), out)
    with pytest.raises(IndexError):
        hsi.extract_patches_torch(None, torch.tensor([[6, 0]]), p, padded=padded)
    batches = list(hsi.iter_patches(CUBE, index, p, batch_size=3))
    np.testing.assert_array_equal(np.concatenate(batches), out)
    assert hsi.extract_patches(CUBE, index, p, channels_last=True).shape == (4, p, p, 4)


def test_patch_view_is_a_view_without_copies():
    padded = hsi.pad_cube(CUBE, 1)
    view = hsi.patch_view(CUBE, 3, padded=padded)
    assert view.shape == (6, 9, 4, 3, 3)
    assert np.shares_memory(view, padded)
    assert view.base is not None and view.nbytes > padded.nbytes  # logically larger, no copy


def test_patch_errors():
    with pytest.raises(ValueError, match="odd"):
        hsi.extract_patches(CUBE, np.array([[0, 0]]), 4)
    with pytest.raises(ValueError, match="outside"):
        hsi.extract_patches(CUBE, np.array([[6, 0]]), 3)
    with pytest.raises(ValueError, match="smaller patch"):
        hsi.extract_patches(CUBE, np.array([[0, 0]]), 15)


def test_gt_checks_and_mask():
    gt = np.zeros((6, 9), dtype=np.int64)
    gt[1, 2] = 3
    gt[4, 0] = -1
    assert hsi.labelled_mask(gt).sum() == 1
    checked = hsi.check_gt(CUBE, gt)
    assert checked.min() == 0 and checked.dtype == np.int64
    with pytest.raises(ValueError, match=r"\(9, 6\).*\(6, 9, 4\)"):
        hsi.check_gt(CUBE, gt.T)
    with pytest.raises(ValueError, match="no labelled pixel"):
        hsi.labelled_mask(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="integer class ids"):
        hsi.check_gt(CUBE, gt + 0.5)


def test_scene_dataset_and_label_map():
    gt = np.zeros((6, 9), dtype=np.int64)
    gt[0, 1], gt[3, 3], gt[5, 8] = 2, 1, 2
    ds = hsi.scene_dataset("toy", CUBE, gt)
    np.testing.assert_array_equal(ds.index, [[0, 1], [3, 3], [5, 8]])
    np.testing.assert_array_equal(ds.y, [2, 1, 2])
    np.testing.assert_array_equal(ds.X, CUBE[[0, 3, 5], [1, 3, 8]])
    lm = ds.label_map(np.array([7, 8, 9]))
    assert lm[3, 3] == 8 and (lm == -1).sum() == 6 * 9 - 3
    bad = CUBE.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        hsi.scene_dataset("bad", bad, gt)


def test_dataset_repr_is_short():
    gt = np.zeros((6, 9), dtype=np.int64)
    gt[0, 1] = 1
    text = repr(hsi.scene_dataset("toy", CUBE, gt))
    assert text == (
        "Dataset(name='toy', kind='scene', X=(1, 4) float32, y=(1,) int64, n_classes=1, "
        "cube=(6, 9, 4) float32)"
    )
