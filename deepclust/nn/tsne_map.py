"""A map fitted to fixed features by the t-SNE objective alone: TDEC's DR-only stage (``dr_fit``).

TDEC's Algorithm 1 line 1 minimises L_stru = L_rec + beta L_dim over the encoder, the decoder and
the Dim-Reduction block v. L_rec does not depend on v, so with the pretrained encoder fixed,
minimising L_stru over v is minimising L_dim (eqs. 9-11) over v: a parametric t-SNE of the fixed
features. :func:`fit_tsne_map` finishes that minimisation cheaply, through the one training loop:
the features of the clean images are computed once and only the small map is trained.

* ``batch_size >= n``: every step is the whole set, whose input affinities (eq. 11 over the fixed
  features) are computed once (the step does not depend on the order of the points);
* ``fixed_batches``: one seeded partition into near-equal parts, the same in every epoch (and on
  resume); each part is a random subsample whose input affinities are computed once, so a step
  costs the map and the (B, B) Student-t terms only (O(n B) memory in all);
* otherwise new mini-batches every epoch, and their input affinities at every step;
* t-SNE's early exaggeration: for the first ``exaggeration_epochs`` epochs the input affinities
  are multiplied by ``exaggeration`` in L_dim's attraction term
  (:func:`deepclust.losses.tsne.dim_reduction_terms`); the history's ``"dim"`` is always the plain
  L_dim, ``"loss"`` the objective that was minimised.

:func:`tsne_map_summary` reports the stage as it ran, :func:`map_dim` measures a map's L_dim (a
label-free check), and :func:`check_dr_params` validates TDEC's ``dr_*`` settings of the stage.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from deepclust.losses.tsne import capped_perplexity, dim_reduction_loss, dim_reduction_terms, joint_gaussian_affinity
from deepclust.training import History, fit_loop, minibatches

__all__ = ["DR_BATCH_MAX", "TSNEMapFit", "check_dr_params", "fit_tsne_map", "map_dim", "tsne_map_summary"]

#: Largest batch of the fit: L_dim holds dense (B, B) affinities (float64 while the input
#: affinities are calibrated, several of them at once: about 0.5 GiB each at B = 8192).
DR_BATCH_MAX = 8192


@dataclass(frozen=True)
class TSNEMapFit:
    """Settings of :func:`fit_tsne_map` (TDEC's ``dr_*`` parameters, with their defaults resolved).

    epochs : epochs of the fit; batch_size : points per step (``>= n``: the whole set);
    perplexity : of eq. 11 (capped at (B - 1) / 3); lr : Adam's learning rate;
    exaggeration, exaggeration_epochs : t-SNE's early exaggeration (1.0: off);
    fixed_batches : one seeded partition into parts instead of new batches every epoch.
    """

    epochs: int
    batch_size: int
    perplexity: float
    lr: float
    exaggeration: float = 1.0
    exaggeration_epochs: int = 0
    fixed_batches: bool = False


def fit_tsne_map(
    settings: TSNEMapFit, *, model: nn.Module, mapping: nn.Module, features: Callable[[], torch.Tensor], n: int,
    seed: int, generator: torch.Generator, history: History, verbose: bool = False,
    checkpoint_path: str | None = None, resume: bool = False, stage: str = "dr_fit",
) -> None:
    """Train ``mapping`` (features (n, m) -> map (n, c)) on L_dim over the fixed ``features()``
    for ``settings.epochs`` epochs, with Adam on the mapping's parameters only.

    ``features`` is called at the first step (so not at all when a resumed fit has finished
    the stage) and gives the (n, m) inputs, without gradient. ``model`` (which holds ``mapping``)
    is what the checkpoints save: one every ~2 % of the epochs, as whole-set epochs are single
    steps (hundreds of them). ``seed`` fixes the partition of ``fixed_batches``.
    """
    epochs, batch_size, perplexity = settings.epochs, settings.batch_size, settings.perplexity
    exaggeration, exaggeration_epochs = settings.exaggeration, settings.exaggeration_epochs
    full = n <= batch_size  # one step per epoch, over the whole set
    fixed = bool(settings.fixed_batches) and not full
    feats: dict[str, torch.Tensor] = {}  # computed once (not on a skipped resume)
    parts_phi: dict[int, torch.Tensor] = {}  # fixed parts: part number -> its input affinities
    state = {"exaggeration": 1.0}

    def epoch_start(epoch: int) -> None:  # t-SNE's early exaggeration: the first epochs
        state["exaggeration"] = exaggeration if epoch < exaggeration_epochs else 1.0

    def step(idx) -> dict[str, torch.Tensor]:
        if "z_w" not in feats:
            feats["z_w"] = features()  # (n, m), no gradient
            if full:
                feats["phi"] = joint_gaussian_affinity(
                    feats["z_w"], capped_perplexity(n, perplexity)).to(feats["z_w"].dtype)
        device = feats["z_w"].device
        if full:  # the whole set: L_dim does not depend on the order of the points
            zw, phi = feats["z_w"], feats["phi"]
        elif fixed:  # (part number, rows): that part's input affinities, computed once
            j, rows = idx
            zw = feats["z_w"][rows.to(device)]
            if j not in parts_phi:
                parts_phi[j] = joint_gaussian_affinity(zw, capped_perplexity(len(rows), perplexity)).to(zw.dtype)
            phi = parts_phi[j]
        else:
            zw, phi = feats["z_w"][idx.to(device)], None
        obj, l_dim = dim_reduction_terms(zw, mapping(zw), perplexity, phi=phi,
                                         exaggeration=state["exaggeration"])  # eqs. 9-11
        return {"loss": obj, "dim": l_dim}

    if fixed:  # one seeded partition into near-equal parts, the same in every epoch (and on resume)
        n_parts = math.ceil(n / batch_size)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
        parts = [perm[j::n_parts] for j in range(n_parts)]

        def batches(epoch: int):
            for j in torch.randperm(n_parts, generator=generator).tolist():
                yield j, parts[j]
    else:
        def batches(epoch: int):
            return minibatches(n, batch_size, generator=generator)

    optimizer = torch.optim.Adam(mapping.parameters(), lr=settings.lr)
    fit_loop(model=model, optimizer=optimizer, step=step, epochs=int(epochs), stage=stage, batches=batches,
             on_epoch_start=epoch_start, history=history, generator=generator, verbose=verbose,
             checkpoint_path=checkpoint_path, resume=resume,
             checkpoint_every=max(1, int(epochs) // 50) if checkpoint_path else 0)


def tsne_map_summary(settings: TSNEMapFit, history: History, *, n: int, stage: str = "dr_fit") -> dict:
    """The fit as it ran: ``dr_batch_size``, ``dr_full_batch``, ``dr_perplexity`` (after the cap),
    ``dr_exaggeration_epochs_run``, ``dr_epochs_run`` and ``dr_dim_final`` (the last epoch's mean
    L_dim; with ``dr_full_batch`` the whole-set KL of the map)."""
    dims = history.stages.get(stage, {}).get("dim", [])
    b, exaggerated = settings.batch_size, settings.exaggeration != 1.0
    return {"dr_batch_size": min(b, n), "dr_full_batch": n <= b,
            "dr_perplexity": capped_perplexity(min(b, n), settings.perplexity),
            "dr_exaggeration_epochs_run": min(int(settings.exaggeration_epochs), len(dims)) if exaggerated else 0,
            "dr_epochs_run": len(dims), "dr_dim_final": dims[-1] if dims else None}


def map_dim(features: torch.Tensor, mapped: torch.Tensor, *, seed: int, sample: int = 2048) -> float:
    """L_dim (eqs. 9-11 at perplexity 30, capped) between ``features`` (n, m) and their map
    ``mapped`` (n, c) over the whole set, or over a seeded sample of ``sample`` points: a
    label-free check of how well the map keeps the features' neighbourhoods."""
    n = len(features)
    rows = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))[:sample].to(features.device)
    with torch.no_grad():
        return float(dim_reduction_loss(features[rows].double(), mapped[rows].double(), 30.0))


def check_dr_params(*, dr_batch_size, dr_perplexity, dr_exaggeration) -> None:
    """``ValueError`` for a ``dr_batch_size``, ``dr_perplexity`` or ``dr_exaggeration`` (TDEC's
    parameters of the stage) that the fit cannot use."""
    b = dr_batch_size
    if b is not None and (not isinstance(b, (int, np.integer)) or isinstance(b, bool) or b < 1):
        raise ValueError(f"dr_batch_size must be None (batch_size) or a positive integer, got {b!r}")
    if b is not None and b > DR_BATCH_MAX:
        raise ValueError(
            f"dr_batch_size={b} is above {DR_BATCH_MAX}: L_dim builds dense (B, B) affinity "
            f"matrices (float64 while eq. 11 is calibrated, about 0.5 GiB each at B = {DR_BATCH_MAX}, "
            "several at once), so the memory grows with the square of the batch; use at most "
            f"{DR_BATCH_MAX} (a larger set is fitted in batches of that size)"
        )
    if dr_perplexity is not None and not float(dr_perplexity) >= 1:
        raise ValueError(f"dr_perplexity must be None (perplexity) or >= 1, got {dr_perplexity!r}")
    if not float(dr_exaggeration) >= 1:
        raise ValueError(f"dr_exaggeration must be >= 1 (1: no early exaggeration), got {dr_exaggeration!r}")
