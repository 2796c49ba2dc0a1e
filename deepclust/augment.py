"""Batch augmentations on the device (kornia): the views of the contrastive methods (PICI, CC) and
TDEC's rotations and shifts.

* weak view (PICI section 4.1): resize and normalise only;
* strong view: ResizedCrop, ColorJitter, Grayscale, HorizontalFlip, GaussianBlur (each applied
  with a probability, as in CC / SimCLR), then normalise;
* :func:`random_rotation_shift` (TDEC, Appendix A): a random rotation and shift of each image,
  its parameters drawn from the caller's generator.

ColorJitter (saturation, hue) and Grayscale are defined for RGB; for other channel counts the
strong view uses brightness/contrast jitter per image instead (our choice, the papers only use
RGB images).

kornia draws its parameters from torch's global generator. To honour the library's rule (no
global seeding, reproducible from ``random_state``), every call forks the global RNG state, seeds
it from the caller's local generator and restores it afterwards.
"""

from __future__ import annotations

from collections.abc import Sequence

import kornia.augmentation as K
import numpy as np
import torch
from kornia.geometry.transform import get_rotation_matrix2d, warp_affine
from torch import nn

__all__ = ["ViewAugmenter", "channel_stats", "prepare_images", "random_rotation_shift"]


def prepare_images(X: np.ndarray) -> np.ndarray:
    """Images are expected in [0, 1]; other ranges are min-max scaled with a warning."""
    lo, hi = float(X.min()), float(X.max())
    if lo < 0.0 or hi > 1.0:
        import warnings

        warnings.warn(
            f"images are expected in [0, 1] but range over [{lo:.3g}, {hi:.3g}]; rescaling them "
            "(divide uint8 images by 255 to silence this)",
            stacklevel=3,
        )
        X = (X - lo) / max(hi - lo, 1e-12)
    return X.astype(np.float32, copy=False)


def channel_stats(X: np.ndarray, max_samples: int = 2048) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of images (N, C, H, W), from at most ``max_samples`` images."""
    if X.ndim != 4:
        raise ValueError(f"expected images (N, C, H, W), got shape {X.shape}")
    step = max(1, X.shape[0] // max_samples)
    sub = X[::step].astype(np.float64)
    mean = sub.mean(axis=(0, 2, 3))
    std = sub.std(axis=(0, 2, 3))
    std = np.where(std > 1e-6, std, 1.0)
    return mean.tolist(), std.tolist()


def random_rotation_shift(
    x: torch.Tensor, generator: torch.Generator, *, max_rotation: float = 10.0,
    max_shift: float = 0.1,
) -> torch.Tensor:
    """Random rotation up to ``max_rotation`` degrees and shift up to ``max_shift * H`` pixels
    (TDEC, Appendix A) of images (B, C, H, W), drawn from the local ``generator`` and applied
    with kornia's ``warp_affine`` (zero padding)."""
    B, _, H, W = x.shape
    u = torch.rand(B, 3, generator=generator) * 2.0 - 1.0  # (B, 3) in [-1, 1)
    angle = (u[:, 0] * max_rotation).to(x)
    shift = torch.stack([u[:, 1] * max_shift * W, u[:, 2] * max_shift * H], 1).to(x)
    center = torch.tensor([(W - 1) / 2.0, (H - 1) / 2.0], dtype=x.dtype, device=x.device)
    center = center.expand(B, 2)
    M = get_rotation_matrix2d(center, angle, torch.ones(B, 2, dtype=x.dtype, device=x.device))
    M = M.clone()
    M[:, :, 2] += shift
    return warp_affine(x, M, dsize=(H, W), padding_mode="zeros", align_corners=True)


class _RandomBrightnessContrast(nn.Module):
    """Brightness/contrast jitter for any channel count (applied with probability ``p``)."""

    def __init__(self, brightness: float, contrast: float, p: float):
        super().__init__()
        self.brightness, self.contrast, self.p = brightness, contrast, p

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x (N, C, H, W) in [0, 1]
        n = x.shape[0]
        on = (torch.rand(n, 1, 1, 1, device=x.device) < self.p).to(x.dtype)
        b = 1 + (torch.rand(n, 1, 1, 1, device=x.device) * 2 - 1) * self.brightness
        c = 1 + (torch.rand(n, 1, 1, 1, device=x.device) * 2 - 1) * self.contrast
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        y = ((x * b - mean) * c + mean).clamp(0, 1)
        return on * y + (1 - on) * x


class ViewAugmenter(nn.Module):
    """Weak and strong views of an image batch (N, C, H, W) in [0, 1] -> (N, C, S, S) normalised.

    Parameters
    ----------
    size : int or (H, W)
        Output size (the network's input size).
    mean, std : per-channel normalisation (length C).
    crop_scale : range of the area fraction kept by ResizedCrop.
    jitter : strength of ColorJitter (brightness, contrast, saturation = jitter; hue = jitter/4).
    blur : whether the strong view includes GaussianBlur.
    flip : whether the strong view includes HorizontalFlip (p = 0.5); a switch for data whose
        mirror image is not an image of the same kind (handwriting).
    """

    def __init__(
        self,
        *,
        size: int | tuple[int, int],
        mean: Sequence[float],
        std: Sequence[float],
        crop_scale: tuple[float, float] = (0.2, 1.0),
        jitter: float = 0.4,
        blur: bool = True,
        flip: bool = True,
    ):
        super().__init__()
        size = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.size = size
        mean_t = torch.as_tensor(mean, dtype=torch.float32)
        std_t = torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-6)
        self.n_channels = int(mean_t.numel())
        self.register_buffer("mean", mean_t.view(1, -1, 1, 1))
        self.register_buffer("std", std_t.view(1, -1, 1, 1))
        ops: list[nn.Module] = [K.RandomResizedCrop(size, scale=crop_scale)]
        if flip:
            ops.append(K.RandomHorizontalFlip())
        if self.n_channels == 3:
            ops += [
                K.ColorJitter(jitter, jitter, jitter, jitter / 4, p=0.8),
                K.RandomGrayscale(p=0.2),
            ]
        else:
            ops.append(_RandomBrightnessContrast(jitter, jitter, p=0.8))
        if blur:
            k = max(3, (min(size) // 10) | 1)  # odd kernel ~ 10 % of the side, as SimCLR
            ops.append(K.RandomGaussianBlur((k, k), (0.1, 2.0), p=0.5))
        self.strong_ops = nn.Sequential(*ops)

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.n_channels:
            raise ValueError(f"expected images (N, {self.n_channels}, H, W), got {tuple(x.shape)}")

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def weak(self, x: torch.Tensor) -> torch.Tensor:
        """Resize (bilinear, antialiased) and normalise: the weak view and the test-time input."""
        self._check(x)
        if tuple(x.shape[2:]) != self.size:
            x = torch.nn.functional.interpolate(
                x, size=self.size, mode="bilinear", align_corners=False, antialias=True
            )
        return self.normalize(x)

    def strong(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Strong view; reproducible from ``generator`` without touching the global RNG state."""
        self._check(x)
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            if generator is not None:
                seed = int(torch.randint(0, 2**62, (1,), generator=generator))
                torch.manual_seed(seed)
            out = self.strong_ops(x)
        return self.normalize(out.clamp(0, 1))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.strong(x, generator)
