"""Local (spatial) structure loss of SCDSC (eqs. 11-12): masked box filter of soft assignments.

The soft assignments of the ``N`` clustered pixels are put on the image grid (k, H, W); every
channel is box-filtered over a ``w x w`` window, counting only pixels inside the mask ``T``
(eq. 11): ``F_xy = sum_{uv in W_xy} t_uv S_uv / sum_{uv in W_xy} t_uv``. Pixels outside the image
count as ``t = 0``. Cost O(H W k) (two box filters via ``avg_pool2d``), no (N, N) matrix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from deepclust.losses.dec import kl_divergence
from deepclust.training import fp32_under_autocast

__all__ = ["to_grid", "masked_box_filter", "spatial_kl", "check_window"]


def check_window(window: int, shape: tuple[int, int]) -> int:
    """Validate a smoothing window: an odd integer >= 1 no larger than the scene."""
    if isinstance(window, bool) or not isinstance(window, int) or window < 1 or window % 2 == 0:
        raise ValueError(f"window must be an odd integer >= 1 (e.g. 3 or 7), got {window!r}")
    if window > min(shape):
        raise ValueError(
            f"window {window}x{window} is larger than the scene ({shape[0]}x{shape[1]}); "
            "use a smaller window"
        )
    return window


def to_grid(s: torch.Tensor, flat_index: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Scatter (N, k) values of the pixels at row-major ``flat_index`` (N,) to a (k, H, W) grid."""
    H, W = shape
    grid = torch.zeros(H * W, s.shape[1], device=s.device, dtype=s.dtype)
    grid = grid.index_copy(0, flat_index, s)
    return grid.T.reshape(s.shape[1], H, W)


def masked_box_filter(grid: torch.Tensor, mask: torch.Tensor, window: int) -> torch.Tensor:
    """Eq. 11 on a (k, H, W) grid with a (H, W) 0/1 mask; returns (k, H, W).

    Where the window holds no masked pixel the result is 0.
    """
    pad = window // 2
    t = mask.to(grid.dtype)[None, None]  # (1, 1, H, W)
    num = F.avg_pool2d((grid * t[0])[None], window, stride=1, padding=pad, count_include_pad=True)
    den = F.avg_pool2d(t, window, stride=1, padding=pad, count_include_pad=True)
    return (num / den.clamp_min(1e-12) * (den > 0))[0]


@fp32_under_autocast
def spatial_kl(
    s: torch.Tensor,
    flat_index: torch.Tensor,
    mask: torch.Tensor,
    window: int,
    *,
    reduction: str = "mean",
) -> torch.Tensor:
    """Eqs. 11-12: ``KL(F || S)`` with ``F`` the masked box filter of ``S`` (detached).

    ``s`` (N, k) are the soft assignments of the masked pixels, ``flat_index`` their row-major
    positions, ``mask`` (H, W). ``reduction="mean"`` divides by ``N*k`` as the authors' code
    does (so the paper's beta_2 carries over); ``"sum"`` is eq. 12 literally.
    """
    shape = (mask.shape[0], mask.shape[1])
    smooth = masked_box_filter(to_grid(s.detach(), flat_index, shape), mask, window)  # (k, H, W)
    target = smooth.reshape(s.shape[1], -1).T[flat_index]  # (N, k), F flattened in pixel order
    return kl_divergence(target, s, reduction=reduction)
