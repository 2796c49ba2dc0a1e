"""Weak/strong views: shapes, normalisation, reproducibility, no global RNG side effect; TDEC's
rotations and shifts."""

import numpy as np
import pytest
import torch

from deepclust.augment import ViewAugmenter, channel_stats, random_rotation_shift


@pytest.mark.parametrize("c", [1, 3, 8])
def test_views(c):
    aug = ViewAugmenter(size=12, mean=[0.5] * c, std=[0.5] * c)
    x = torch.rand(6, c, 16, 16)
    w = aug.weak(x)
    assert w.shape == (6, c, 12, 12)
    same = ViewAugmenter(size=16, mean=[0.5] * c, std=[0.5] * c).weak(x)
    assert torch.allclose(same, (x - 0.5) / 0.5)  # weak = resize + normalise only
    state = torch.get_rng_state()
    s1 = aug.strong(x, torch.Generator().manual_seed(3))
    s2 = aug.strong(x, torch.Generator().manual_seed(3))
    assert torch.equal(state, torch.get_rng_state())
    assert s1.shape == (6, c, 12, 12) and torch.equal(s1, s2)
    assert not torch.equal(s1, aug.strong(x, torch.Generator().manual_seed(4)))
    with pytest.raises(ValueError):
        aug.weak(torch.rand(2, c + 1, 16, 16))


def test_channel_stats():
    X = np.stack([np.zeros((4, 5, 5)), np.ones((4, 5, 5)) * 2], axis=1).astype(np.float32)
    X[:, 1, 0, 0] = 4.0
    mean, std = channel_stats(X)
    assert mean[0] == 0 and std[0] == 1.0  # constant channel: std falls back to 1
    ref = X[:, 1].astype(np.float64)
    assert mean[1] == pytest.approx(ref.mean()) and std[1] == pytest.approx(ref.std())


def test_random_rotation_shift_is_seeded_and_bounded():
    x = torch.zeros(4, 1, 20, 20)
    x[:, :, 8:12, 8:12] = 1.0
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a, b = random_rotation_shift(x, g1), random_rotation_shift(x, g2)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, x)
    # a shift of at most 2 px and 10 degrees keeps the square's mass inside the image
    assert torch.allclose(a.sum((1, 2, 3)), x.sum((1, 2, 3)), rtol=0.15)


def test_flip_off_never_mirrors():
    """``flip=False``: no strong view is a mirror image. A bright left third stays on the left in
    every view (crops keep most of the image, jitter and blur keep the order); with the flip on,
    about half the views have it on the right."""
    x = torch.zeros(200, 1, 16, 16)
    x[..., :6] = 1.0

    def left_brighter(aug):
        y = aug.strong(x, torch.Generator().manual_seed(0))
        return (y[..., :8].mean((1, 2, 3)) > y[..., 8:].mean((1, 2, 3))).float().mean().item()

    kw = dict(size=16, mean=[0.0], std=[1.0], crop_scale=(0.9, 1.0))
    assert left_brighter(ViewAugmenter(flip=False, **kw)) == 1.0
    assert 0.35 < left_brighter(ViewAugmenter(flip=True, **kw)) < 0.65
    assert not any("Flip" in type(op).__name__ for op in ViewAugmenter(flip=False, **kw).strong_ops)
