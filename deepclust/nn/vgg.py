"""VGG16 with batch normalisation (Simonyan & Zisserman 2014), written here.

torchvision does not import on the machines this library targets, so the feature layers are
built from the same configuration, **in the same module order**: ``features.<i>`` of
:class:`VGG16BN` has the key names of ``torchvision.models.vgg16_bn().features.<i>``, and a
state dict saved from torchvision loads with :func:`load_vgg16_bn_weights` (classifier keys are
dropped because the clustering head replaces them).

Used by RECAL (``deepclust.methods.recal``):

* ``width`` scales every channel count (``width=1`` is VGG16; ``0.25`` is a CPU-sized network);
* ``in_channels`` is any number (grey 1, RGB 3, multispectral B);
* ``n_blocks`` keeps the first blocks (each block is its convolutions then a 2x2 max-pool),
  "auto" keeping as many as fit the input so small inputs end at 1x1 ("we decapitate feature
  layers of VGG16 to get an output of size 1x1", RECAL section 3.4 / section 4);
* the head is the paper's classification layers: one fully connected layer, BatchNorm, ReLU, and
  the K-way softmax (eq. 2) applied by the caller; Xavier-initialised (section 3.4).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["VGG16_BN_CFG", "VGG16BN", "auto_n_blocks", "load_vgg16_bn_weights"]

#: The VGG16 configuration ("D"): channel counts of 3x3 convolutions, "M" for a 2x2 max-pool.
VGG16_BN_CFG: tuple = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                       512, 512, 512, "M", 512, 512, 512, "M")


def auto_n_blocks(height: int, width: int, max_blocks: int = 5) -> int:
    """Number of VGG blocks (each halving the size) that keep the output at least 1x1.

    16x16 (USPS) -> 4 blocks (1x1 output), 28x28 -> 4 (1x1), 32 -> 5 (1x1), 8 -> 3 (1x1),
    64 -> 5 (2x2), 128 -> 5 (4x4).
    """
    side = min(int(height), int(width))
    if side < 2:
        raise ValueError(f"inputs of {height}x{width} pixels are too small for VGG (need >= 2)")
    return max(1, min(max_blocks, int(math.floor(math.log2(side)))))


def _scaled(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


class VGG16BN(nn.Module):
    """VGG16-BN feature layers (optionally cut) and RECAL's classification layers.

    Parameters
    ----------
    n_classes : int
        K, the number of clusters (output logits).
    in_channels : int
        Channels of the input images.
    input_size : (int, int)
        (H, W) of the inputs; fixes ``n_blocks="auto"`` and the size of the flattened features.
    width : float
        Channel multiplier (1.0 = VGG16).
    n_blocks : int or "auto"
        Blocks of the feature stack kept (1..5).
    head_hidden : int or None
        None (the paper): ``Linear(d, K) -> BatchNorm1d(K) -> ReLU`` gives the logits ``r`` of
        eq. 2. An int inserts a hidden layer ``Linear(d, h) -> BN -> ReLU -> Linear(h, K)``.
    """

    def __init__(
        self,
        n_classes: int,
        *,
        in_channels: int = 3,
        input_size: Sequence[int] = (32, 32),
        width: float = 1.0,
        n_blocks: int | str = "auto",
        head_hidden: int | None = None,
    ) -> None:
        super().__init__()
        if int(n_classes) < 1 or int(in_channels) < 1:
            raise ValueError(
                f"n_classes and in_channels must be >= 1, got {n_classes}, {in_channels}"
            )
        if not float(width) > 0:
            raise ValueError(f"width must be a positive multiplier, got {width}")
        h, w = int(input_size[0]), int(input_size[1])
        if n_blocks == "auto":
            n_blocks = auto_n_blocks(h, w)
        n_blocks = int(n_blocks)
        if not 1 <= n_blocks <= 5:
            raise ValueError(f"n_blocks must be 'auto' or an integer in 1..5, got {n_blocks}")
        if min(h, w) >> n_blocks < 1:
            raise ValueError(
                f"{n_blocks} VGG blocks shrink a {h}x{w} input below 1x1; use n_blocks<="
                f"{auto_n_blocks(h, w)} or n_blocks='auto'"
            )
        self.n_classes = int(n_classes)
        self.in_channels = int(in_channels)
        self.input_size = (h, w)
        self.width = float(width)
        self.n_blocks = n_blocks

        layers: list[nn.Module] = []
        c_in = self.in_channels
        pools = 0
        for v in VGG16_BN_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                pools += 1
                if pools == n_blocks:
                    break
            else:
                c_out = _scaled(v, self.width)
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out),
                           nn.ReLU(inplace=True)]
                c_in = c_out
        self.features = nn.Sequential(*layers)
        self.feature_shape = (c_in, h >> n_blocks, w >> n_blocks)  # (C', H', W')
        self.feature_dim = int(c_in * (h >> n_blocks) * (w >> n_blocks))  # d of z in R^d

        if head_hidden is None:
            head: list[nn.Module] = [nn.Linear(self.feature_dim, self.n_classes),
                                     nn.BatchNorm1d(self.n_classes), nn.ReLU(inplace=True)]
        else:
            head = [nn.Linear(self.feature_dim, int(head_hidden)), nn.BatchNorm1d(int(head_hidden)),
                    nn.ReLU(inplace=True), nn.Linear(int(head_hidden), self.n_classes)]
        self.head_hidden = head_hidden
        self.classifier = nn.Sequential(*head)
        self._init_weights()

    def _init_weights(self) -> None:
        # Convolutions as torchvision's VGG (Kaiming normal, fan_out); fully connected layers by
        # Xavier (Glorot & Bengio 2010), as RECAL section 3.4 says.
        for m in self.features.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.classifier.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Embedding z = f_theta1(x): (N, C, H, W) -> (N, d) (flattened feature maps)."""
        if x.ndim != 4 or x.shape[1] != self.in_channels or tuple(x.shape[2:]) != self.input_size:
            raise ValueError(
                f"expected images of shape (N, {self.in_channels}, {self.input_size[0]}, "
                f"{self.input_size[1]}), got {tuple(x.shape)}"
            )
        return self.features(x).flatten(1)  # (N, d)

    def forward_head(self, z: torch.Tensor) -> torch.Tensor:
        """Logits r = f_theta2(z): (N, d) -> (N, K); softmax gives p_ml of eq. 2."""
        return self.classifier(z)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, K)."""
        return self.forward_head(self.forward_features(x))


def load_vgg16_bn_weights(
    model: VGG16BN, source: str | os.PathLike | dict, *, strict_features: bool = True
) -> list[str]:
    """Load torchvision-named VGG16-BN weights into ``model.features``.

    ``source`` is a path to a ``.pth`` state dict (loaded with ``weights_only=True``, so no code is
    unpickled) or a state dict. Keys ``features.<i>.<param>`` map one to one (the module order is
    torchvision's); ``classifier.*`` keys are ignored (RECAL replaces the classifier). Blocks cut
    away by ``n_blocks`` are skipped. If the model's first convolution takes ``C != 3`` channels,
    the RGB kernel is averaged over its input channels and repeated C times, scaled by 3/C so the
    response to a flat input is unchanged (our choice; the paper used RGB and grey inputs only).
    A ``width`` other than 1 cannot take ImageNet weights (shapes differ) and raises.

    Returns the list of keys that were loaded.
    """
    if isinstance(source, dict):
        state = source
    else:
        try:
            state = torch.load(source, map_location="cpu", weights_only=True)
        except FileNotFoundError as exc:
            raise FileNotFoundError(
                f"pretrained weights file {source} not found; pass the path of a torchvision "
                "vgg16_bn state dict (e.g. vgg16_bn-6c64b313.pth) or pretrained=None"
            ) from exc
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
    if not isinstance(state, dict):
        raise TypeError(f"pretrained weights must be a state dict, got {type(state).__name__}")
    own = model.features.state_dict()
    new: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if not key.startswith("features."):
            continue
        sub = key[len("features."):]
        if sub not in own:
            continue  # a layer of a block cut away by n_blocks
        target = own[sub]
        if sub == "0.weight" and value.shape[1] != target.shape[1] and value.shape[1] == 3:
            c = target.shape[1]
            value = value.mean(dim=1, keepdim=True).repeat(1, c, 1, 1) * (3.0 / c)
        if value.shape != target.shape:
            raise ValueError(
                f"pretrained tensor features.{sub} has shape {tuple(value.shape)} but the model "
                f"expects {tuple(target.shape)}; ImageNet weights need width=1.0"
            )
        new[sub] = value.to(target.dtype)
    missing = sorted(set(own) - set(new))
    if strict_features and missing:
        raise ValueError(
            f"pretrained state dict lacks {len(missing)} feature tensor(s) of the model, e.g. "
            f"features.{missing[0]}; is it a torchvision vgg16_bn state dict?"
        )
    own.update(new)
    model.features.load_state_dict(own)
    return [f"features.{k}" for k in new]
