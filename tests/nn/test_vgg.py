"""VGG16-BN: shapes for any channel count and size, the cut, the head, torchvision key names."""

from __future__ import annotations

import pytest
import torch

from deepclust.nn.vgg import VGG16BN, auto_n_blocks, load_vgg16_bn_weights

# torchvision.models.vgg16_bn().features: index of each Conv2d (BN follows at +1), written from
# torchvision's layout (conv, bn, relu per layer, one max-pool per block), not from our code.
TV_CONV_IDX = [0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40]
TV_CONV_OUT = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]


def torchvision_style_state(in_ch: int = 3, gen: torch.Generator | None = None) -> dict:
    state = {}
    c_in = in_ch
    for idx, c_out in zip(TV_CONV_IDX, TV_CONV_OUT, strict=True):
        state[f"features.{idx}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=gen)
        state[f"features.{idx}.bias"] = torch.randn(c_out, generator=gen)
        state[f"features.{idx + 1}.weight"] = torch.rand(c_out, generator=gen) + 0.5
        state[f"features.{idx + 1}.bias"] = torch.randn(c_out, generator=gen)
        state[f"features.{idx + 1}.running_mean"] = torch.randn(c_out, generator=gen)
        state[f"features.{idx + 1}.running_var"] = torch.rand(c_out, generator=gen) + 0.5
        state[f"features.{idx + 1}.num_batches_tracked"] = torch.tensor(7)
        c_in = c_out
    # the ImageNet classifier, which RECAL replaces (must be ignored)
    state["classifier.0.weight"] = torch.zeros(8, 4)
    state["classifier.6.bias"] = torch.zeros(1000)
    return state


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize(("size", "blocks", "out_hw"),
                         [(16, 4, 1), (28, 4, 1), (32, 5, 1), (64, 5, 2), (8, 3, 1)])
def test_forward_shapes(channels, size, blocks, out_hw):
    model = VGG16BN(5, in_channels=channels, input_size=(size, size), width=0.125)
    assert model.n_blocks == blocks == auto_n_blocks(size, size)
    x = torch.randn(3, channels, size, size)
    z = model.forward_features(x)
    c_last = model.feature_shape[0]
    assert model.feature_shape[1:] == (out_hw, out_hw)
    assert z.shape == (3, c_last * out_hw * out_hw) == (3, model.feature_dim)
    logits = model(x)
    assert logits.shape == (3, 5)
    assert torch.isfinite(logits).all()
    # the paper's head ends in BN + ReLU: logits are non-negative
    assert (logits >= 0).all()


def test_width_and_cut_counts():
    full = VGG16BN(10, in_channels=3, input_size=(32, 32))
    convs = [m for m in full.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == TV_CONV_OUT
    small = VGG16BN(10, in_channels=1, input_size=(16, 16), width=0.25)
    convs = [m for m in small.features if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [16, 16, 32, 32, 64, 64, 64, 128, 128, 128]
    assert small.feature_dim == 128


def test_head_is_xavier_and_hidden_option():
    model = VGG16BN(4, in_channels=1, input_size=(16, 16), width=0.25, head_hidden=32)
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 4)
    lin = model.classifier[0]
    bound = (6.0 / (lin.in_features + lin.out_features)) ** 0.5
    assert lin.weight.abs().max() <= bound + 1e-6
    assert torch.all(lin.bias == 0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_blocks"):
        VGG16BN(3, in_channels=1, input_size=(16, 16), n_blocks=5)
    with pytest.raises(ValueError, match="width"):
        VGG16BN(3, width=0)
    model = VGG16BN(3, in_channels=1, input_size=(16, 16), width=0.125)
    with pytest.raises(ValueError, match="expected images"):
        model(torch.randn(2, 3, 16, 16))


def test_load_torchvision_state_dict(tmp_path):
    gen = torch.Generator().manual_seed(0)
    state = torchvision_style_state(3, gen)
    path = tmp_path / "vgg16_bn.pth"
    torch.save(state, path)
    model = VGG16BN(10, in_channels=3, input_size=(32, 32))
    loaded = load_vgg16_bn_weights(model, path)
    assert len(loaded) == 13 * 7
    assert torch.equal(model.features[0].weight, state["features.0.weight"])
    assert torch.equal(model.features[41].running_var, state["features.41.running_var"])
    assert torch.equal(model.features[24].weight, state["features.24.weight"])
    # a cut, grey network takes the first blocks and an averaged first kernel
    grey = VGG16BN(10, in_channels=1, input_size=(16, 16))
    load_vgg16_bn_weights(grey, path)
    assert torch.allclose(grey.features[0].weight,
                          state["features.0.weight"].sum(dim=1, keepdim=True))
    assert torch.equal(grey.features[30].weight, state["features.30.weight"])
    assert len(grey.features) == 34  # 4 blocks: 10 convs x 3 + 4 pools


def test_load_rejects_wrong_width(tmp_path):
    state = torchvision_style_state(3)
    model = VGG16BN(10, in_channels=3, input_size=(32, 32), width=0.5)
    with pytest.raises(ValueError, match="width=1.0"):
        load_vgg16_bn_weights(model, state)
    with pytest.raises(FileNotFoundError, match="vgg16_bn"):
        load_vgg16_bn_weights(model, tmp_path / "nope.pth")
