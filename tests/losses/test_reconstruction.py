"""Eq. 8 of TDEC (reconstruction) against NumPy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepclust.losses.reconstruction import reconstruction_loss


def test_reconstruction_loss_reductions_match_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.random((5, 1, 4, 3)), rng.random((5, 1, 4, 3))
    ref_sum = ((a - b) ** 2).reshape(5, -1).sum(1).mean()  # eq. 8
    ref_mean = ((a - b) ** 2).mean()
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    assert float(reconstruction_loss(ta, tb)) == pytest.approx(ref_sum)
    assert float(reconstruction_loss(ta, tb, "mean")) == pytest.approx(ref_mean)
