import pytest
import torch

from deepclust.nn.conv_ae import ConvPatchAutoencoder
from deepclust.nn.mlp_ae import MLPAutoencoder


def test_conv_ae_shapes_and_paper_latent():
    ae = ConvPatchAutoencoder(8, 7, channels=32)
    x = torch.randn(5, 8, 7, 7)
    z, x_hat = ae(x)
    assert z.shape == (5, 1568) and ae.latent_dim == 1568
    assert x_hat.shape == x.shape
    convs = [m for m in ae.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(1, 1), (3, 3), (3, 3)]
    z.sum().backward()


def test_conv_ae_other_sizes():
    ae = ConvPatchAutoencoder(3, 5, channels=4)
    z, x_hat = ae(torch.randn(2, 3, 5, 5))
    assert z.shape == (2, 100) and x_hat.shape == (2, 3, 5, 5)


def test_mlp_ae():
    ae = MLPAutoencoder(20, hidden=(8, 6), latent=3)
    z, x_hat = ae(torch.randn(4, 20))
    assert z.shape == (4, 3) and x_hat.shape == (4, 20)
    lin = [m.out_features for m in ae.modules() if isinstance(m, torch.nn.Linear)]
    assert lin == [8, 6, 3, 6, 8, 20]
    assert MLPAutoencoder(784).latent == 10
    with pytest.raises(ValueError):
        MLPAutoencoder(0)
