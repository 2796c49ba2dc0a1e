"""The patch grid of RECAL's scene segmentation and the AVIRIS band selection."""

from __future__ import annotations

import numpy as np

from deepclust.data.patch_grid import aviris_band_indices, blocks_to_map, grid_patches


def test_aviris_liss4_indices():
    g, r, nir = aviris_band_indices(n_bands=204)
    assert g == list(range(12, 20)) and r == list(range(22, 29)) and nir == list(range(37, 47))
    assert aviris_band_indices(n_bands=224) == [g, r, nir]
    # in the corrected cube, a band after the first removed water bands (0-based 107..111)
    # shifts by 5: 1.6 um is band 120 of 224
    (late,) = aviris_band_indices([(1.6, 1.6)], n_bands=204)
    assert late == [120 - 5]


def test_patches_and_block_map():
    cube = np.arange(10 * 12 * 2, dtype=np.float32).reshape(10, 12, 2)
    patches, centres, grid = grid_patches(cube, patch=4, stride=3)
    assert grid == (4, 4) and patches.shape == (16, 2, 4, 4)
    # the patch of block (1, 2) holds the centre pixel (4, 7) at offset (2, 2)
    k = 1 * 4 + 2
    assert tuple(centres[k]) == (4, 7)
    np.testing.assert_array_equal(patches[k][:, 2, 2], cube[4, 7])
    lab = blocks_to_map(np.arange(16), grid, 3, (10, 12))
    assert lab.shape == (10, 12) and lab[4, 7] == k and lab[9, 11] == 15
