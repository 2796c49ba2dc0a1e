"""Contrastive Clustering estimator and its ResNet backbone."""

import numpy as np
import pytest
import torch

from deepclust.methods.cc import ContrastiveClustering
from deepclust.nn.resnet import ResNet


@pytest.mark.parametrize("c,size,stem", [(1, 16, "auto"), (3, 20, "cifar"), (8, 72, "auto")])
def test_resnet_any_input(c, size, stem):
    m = ResNet(arch="resnet18", in_chans=c, width=4, img_size=size, stem=stem)
    out = m(torch.rand(2, c, size, size))
    assert out.shape == (2, 32) and m.out_dim == 32
    assert sum(isinstance(b, torch.nn.Module) for b in m.stages[3]) == 2
    assert len(ResNet(arch="resnet34", width=4).stages[2]) == 6
    with pytest.raises(ValueError):
        ResNet(arch="resnet50")


def tiny_cc(**kw):
    args = dict(n_clusters=3, img_size=16, arch="resnet18", width=4, feature_dim=8, epochs=2,
                batch_size=8, lr=1e-3, device="cpu", random_state=0)
    args.update(kw)
    return ContrastiveClustering(**args)


def test_cc_fit_predict():
    rng = np.random.default_rng(0)
    X = rng.random((17, 3, 16, 16)).astype(np.float32)  # 17 % 8 == 1: the lone last sample is dropped
    m = tiny_cc().fit(X)
    h = m.history_.stages["train"]
    assert set(h) == {"loss", "ins", "clu", "clu_contrast", "entropy"} and len(h["loss"]) == 2
    assert np.allclose(np.array(h["loss"]), np.array(h["ins"]) + np.array(h["clu"]))
    assert m.labels_.shape == (17,) and m.labels_.dtype == np.int64
    assert np.array_equal(m.predict(X), m.labels_)
    assert np.array_equal(tiny_cc().fit(X).labels_, m.labels_)
    assert m.transform(X[:2]).shape == (2, 32)
    assert m.extra_labels_["kmeans_instance"].shape == (17,)


def test_cc_bad_params():
    X = np.random.default_rng(0).random((10, 1, 16, 16)).astype(np.float32)
    with pytest.raises(ValueError, match="epochs"):
        tiny_cc(epochs=0).fit(X)
    with pytest.raises(ValueError, match="batch_size"):
        tiny_cc(batch_size=1).fit(X)
