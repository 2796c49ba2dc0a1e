"""A small ResNet (ResNet-18/34 layout with basic blocks) for any channel count and input size.

Used as the backbone of Contrastive Clustering (Li et al. 2021, ResNet-34). ``width`` scales
every stage (64 is the standard network; 16-32 fits a CPU). Small inputs (<= 64 px by default) use
a CIFAR-style stem (3x3 conv, stride 1, no max-pool) so the feature maps are not reduced to 1x1
too early; larger inputs use the ImageNet stem (7x7 conv, stride 2, max-pool).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

__all__ = ["ResNet", "BasicBlock", "RESNET_LAYERS"]

RESNET_LAYERS: dict[str, tuple[int, int, int, int]] = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3)}


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """ResNet feature extractor: (N, C, H, W) -> (N, 8 * width) after global average pooling.

    Parameters
    ----------
    arch : {"resnet18", "resnet34"}
    in_chans : int
    width : int
        Channels of the first stage (64 in the standard network); stages use width x (1, 2, 4, 8).
    stem : {"auto", "cifar", "imagenet"}
        ``auto`` picks ``cifar`` for inputs up to ``small_input`` pixels.
    """

    def __init__(
        self,
        *,
        arch: Literal["resnet18", "resnet34"] = "resnet34",
        in_chans: int = 3,
        width: int = 64,
        stem: Literal["auto", "cifar", "imagenet"] = "auto",
        img_size: int = 224,
        small_input: int = 64,
    ):
        super().__init__()
        if arch not in RESNET_LAYERS:
            raise ValueError(f"unknown ResNet {arch!r}; choose one of {sorted(RESNET_LAYERS)}")
        if stem not in ("auto", "cifar", "imagenet"):
            raise ValueError(f"stem must be 'auto', 'cifar' or 'imagenet', got {stem!r}")
        if stem == "auto":
            stem = "cifar" if img_size <= small_input else "imagenet"
        if stem == "cifar":
            self.stem = nn.Sequential(
                nn.Conv2d(in_chans, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
            )
        else:
            self.stem = nn.Sequential(
                nn.Conv2d(in_chans, width, 7, stride=2, padding=3, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(3, stride=2, padding=1),
            )
        stages = []
        in_ch = width
        for i, n_blocks in enumerate(RESNET_LAYERS[arch]):
            out_ch = width * 2**i
            blocks = [BasicBlock(in_ch, out_ch, stride=1 if i == 0 else 2)]
            blocks += [BasicBlock(out_ch, out_ch) for _ in range(n_blocks - 1)]
            stages.append(nn.Sequential(*blocks))
            in_ch = out_ch
        self.stages = nn.Sequential(*stages)
        self.out_dim = in_ch
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, out_dim)."""
        return self.stages(self.stem(x)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)
