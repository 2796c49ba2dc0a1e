"""The estimator contract: validation, generators, devices."""

import numpy as np
import pytest
import torch

from deepclust.base import check_data, check_n_clusters, make_generators, resolve_device


def test_resolve_device_auto_and_errors():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("gpu0")
    with pytest.raises(TypeError):
        resolve_device(3)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            resolve_device("cuda")


def test_generators_are_local_and_reproducible():
    state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    r1, g1, s1 = make_generators(7)
    r2, g2, s2 = make_generators(7)
    assert s1 == s2 == 7
    assert r1.integers(0, 10**9) == r2.integers(0, 10**9)
    assert torch.equal(torch.randn(3, generator=g1), torch.randn(3, generator=g2))
    assert torch.equal(state, torch.get_rng_state())  # global state untouched
    assert np.array_equal(np_state, np.random.get_state()[1])
    with pytest.raises(ValueError):
        make_generators(-1)
    with pytest.raises(TypeError):
        make_generators("seed")


@pytest.mark.parametrize(
    "k,n,err,msg",
    [(1, 10, ValueError, "at least 2"), (11, 10, ValueError, "larger than the number"),
     (2.0, 10, TypeError, "float"), ("3", 10, TypeError, "integer"), (True, 10, TypeError, "integer")],
)
def test_check_n_clusters(k, n, err, msg):
    with pytest.raises(err, match=msg):
        check_n_clusters(k, n)


def test_check_data_messages():
    with pytest.raises(ValueError, match="NaN"):
        check_data(np.array([[0.0, np.nan], [1, 2]]))
    with pytest.raises(ValueError, match="empty"):
        check_data(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="at least 2"):
        check_data(np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"\(H, W, B\)"):
        check_data(np.zeros((4, 4)), kind="scene")
    with pytest.raises(ValueError, match="reshape"):
        check_data(np.zeros(5), kind="vectors")
    with pytest.raises(TypeError, match="numeric"):
        check_data(np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(ValueError, match="different shapes"):
        check_data([np.zeros(3), np.zeros(4)])
    assert check_data(np.zeros((3, 2, 2)), kind="vectors").shape == (3, 4)
    assert check_data(np.zeros((3, 5, 5)), kind="images").shape == (3, 1, 5, 5)
