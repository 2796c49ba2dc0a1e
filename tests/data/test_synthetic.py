import numpy as np
import pytest

from deepclust.data.synthetic import synthetic_scene, tile_layout


def test_tile_layout_exact_count():
    gt = np.array([[0, 1, 2], [2, 0, 1]])
    big = tile_layout(gt, 11)
    assert (big > 0).sum() == 11
    assert big.shape[0] % 2 == 0 and big.shape[1] % 3 == 0


def test_synthetic_scene_from_array_layout():
    gt = np.zeros((12, 10), dtype=int)
    gt[:6, :5], gt[6:, 5:], gt[:6, 5:] = 1, 2, 3
    cube, g = synthetic_scene(gt, n_bands=20, random_state=0)
    assert cube.shape == (12, 10, 20) and cube.dtype == np.float32
    assert np.isfinite(cube).all()
    # pixels of one class are closer to their class mean than to another class's mean
    m1, m2 = cube[g == 1].mean(0), cube[g == 2].mean(0)
    d_own = np.linalg.norm(cube[g == 1] - m1, axis=1).mean()
    assert d_own < np.linalg.norm(m1 - m2)
    cube2, _ = synthetic_scene(gt, n_bands=20, random_state=0)
    np.testing.assert_array_equal(cube, cube2)


def test_real_layout_tiled():
    pytest.importorskip("scipy")
    try:
        cube, gt = synthetic_scene("salinas-a", n_pixels=6000, n_bands=8)
    except FileNotFoundError:
        pytest.skip("shared data not present")
    assert (gt > 0).sum() == 6000 and cube.shape[:2] == gt.shape
    with pytest.raises(ValueError, match="unknown layout"):
        synthetic_scene("nowhere")
