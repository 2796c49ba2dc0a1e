"""TDEC: Transformer-based deep embedded clustering with a density-peak clustering head.

Paper: ``shared/papers/002_c764a4a1ec066737.txt`` (sections 3.1-3.3, Algorithm 1, sec. 4, Table 4,
Appendix A). Equation -> code:

* eq. 1 (post-norm Transformer block) ........ ``deepclust.nn.transformer_ae.TransformerBlock``
* eqs. 2-4 (density, delta, gamma; centres) .. ``deepclust.cluster.density_peaks.density_peaks``
* eqs. 5-6 (neighbour-weighted Student-t) .... ``deepclust.cluster.density_peaks``
  ``.neighbor_assignment``; over the whole set ``deepclust.cluster.tdec_head.head_assign``
* eq. 7 (target P, KL clustering loss) ........ ``deepclust.losses.dec`` (``target_distribution``,
  ``kl_divergence``), used in :func:`_train_tdec` ``step``
* eq. 8 (reconstruction) ...................... ``deepclust.losses.reconstruction``
* eqs. 9-11 (t-SNE dimension-reduction loss) .. ``deepclust.losses.tsne.dim_reduction_loss``
* eqs. 12-13 (L_stru, L) ....................... :func:`_train_tdec` ``step``
* Algorithm 1 .................................. :func:`_train_tdec` (``refresh`` = lines 3-9; the
  stop test of line 7: ``deepclust.cluster.matching.label_change``)
* Appendix A (augmentation, image size) ....... ``deepclust.augment.random_rotation_shift``,
  ``deepclust.nn.transformer_ae.target_size``

Choices the paper leaves open, each explained with its measurements in ``docs/methods/tdec.md``:
refreshes every ``update_interval`` mini-batches (1 is the literal algorithm), on the clean images
(steps on augmented ones); eq. 6 in a mini-batch step from the last refresh's neighbours
(``neighbor_mode``); Phi (eq. 11) without gradient, perplexity 30 capped at (batch - 1) / 3;
``L_rec`` summed over pixels, ``L_clu`` averaged, both over the batch; ``tol = 0.001`` as in IDEC,
the stop test comparing partitions and ``track_centers`` keeping the clusters' numbers; eqs. 5-6
over each point's k nearest *other* points, in the fit and in :meth:`TDEC.predict`; images resized
(bilinear) to the next multiple of 8 (Appendix A). Label-free switches, off by default and in
``paper``: ``pretrain_tol`` (pretraining ends at the reconstruction plateau), the DR-only stage
(``dr_epochs``, ``deepclust.nn.tsne_map``), and ``clu_to_dr=False`` / ``dim_loss_in_clustering=False``
(deviations from line 11 that the ``fast`` preset uses).

Ablations of Table 4 are constructor switches: ``transformer=False`` (ST off: the same
encoding/decoding layers on flattened pixels), ``clustering_head=False`` (CH off: Student-t to
learnable centres initialised by k-means, as IDEC), ``dim_reduction=False`` (DR off: cluster in
the m = 10-D feature space, no ``L_dim``). 2-D input (n_samples, n_features) is the paper's
vector mode (STL-10 features, Reuters): the MLP encoder, no augmentation.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepclust import distributed as ddp
from deepclust.augment import random_rotation_shift
from deepclust.base import DeepClusterer, check_bool
from deepclust.cluster.density_peaks import neighbor_assignment
from deepclust.cluster.kmeans import kmeans_codes
from deepclust.cluster.matching import label_change
from deepclust.cluster.tdec_head import head_assign, head_predict
from deepclust.losses.dec import kl_divergence, student_t_assignment, target_distribution
from deepclust.losses.reconstruction import reconstruction_loss
from deepclust.losses.tsne import dim_reduction_loss
from deepclust.nn.mlp_ae import mlp
from deepclust.nn.transformer_ae import MLPImageAE, TDECNet, TransformerAE, target_size
from deepclust.nn.tsne_map import TSNEMapFit, check_dr_params, fit_tsne_map, map_dim, tsne_map_summary
from deepclust.stopping import plateau_rule
from deepclust.training import History, fit_loop, fit_self_training, minibatches

__all__ = ["TDEC"]


@torch.no_grad()
def _features(net: TDECNet, X: torch.Tensor, batch_size: int = 1024):
    was = net.training
    net.eval()
    zw, zv = [], []
    for i in range(0, len(X), batch_size):
        a, b = net.forward_features(X[i : i + batch_size])
        zw.append(a)
        zv.append(b)
    net.train(was)
    return torch.cat(zw), torch.cat(zv)


@torch.no_grad()
def _map(net: TDECNet, z_w: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """The Dim-Reduction block on features ``z_w`` already computed, in the batches of
    :func:`_features` (so the same rows give the same bits as a pass from the images)."""
    was = net.training
    net.eval()
    z_v = torch.cat([net.dr(z_w[i : i + batch_size]) for i in range(0, len(z_w), batch_size)])
    net.train(was)
    return z_v


def _features_all(net: TDECNet, X: torch.Tensor):
    """:func:`_features` of all of ``X``; under a process group each rank computes its shard and
    the shards are gathered in the original order (every rank gets all rows)."""
    if ddp.world_size() == 1:
        return _features(net, X)
    a, b = ddp.shard_range(len(X))
    z_w, z_v = _features(net, X[a:b])
    return ddp.gather_rows(z_w), ddp.gather_rows(z_v)


def _train_tdec(
    *, X: torch.Tensor, net: TDECNet, n_clusters: int, clustering_head: bool, use_dim_loss: bool,
    use_augment: bool, alpha: float, beta: float, perplexity: float, n_neighbors: int, neighbor_rate: float,
    neighbor_mode: str, track_centers: bool = True, rec_reduction: str = "sum", clu_to_dr: bool = True,
    dr_lr: float | None = None, dim_loss_in_clustering: bool = True, dr_fit: TSNEMapFit,
    dr_refit: TSNEMapFit | None = None, pretrain_epochs: int,
    pretrain_tol: float | None = None, pretrain_patience: int = 10, epochs: int, lr: float, batch_size: int,
    update_interval: int | None, tol: float, max_rotation: float, max_shift: float, seed: int,
    generator: torch.Generator, verbose: bool, checkpoint_path: str | None = None, resume: bool = False,
) -> dict:
    """Algorithm 1: pretrain on L_stru (alpha = 0), then alternate refreshes and batch steps."""
    n = X.shape[0]
    device = X.device
    history = History()
    distributed = ddp.world_size() > 1
    drop_last = n >= batch_size and 0 < n % batch_size < ddp.world_size()  # never in one process

    def view(idx: torch.Tensor) -> torch.Tensor:
        x = X[idx.to(device)]
        if use_augment:
            x = random_rotation_shift(x, generator, max_rotation=max_rotation, max_shift=max_shift)
        return x

    def structure_loss(x: torch.Tensor, with_dim: bool = True) -> tuple[torch.Tensor, dict]:
        z_w, z_v, rec = net(x)
        l_rec = reconstruction_loss(rec, x, rec_reduction)  # eq. 8
        terms = {"rec": l_rec}
        # distributed: per-sample terms weighted to this rank's share of the union-batch mean
        w = ddp.shard_weight(len(x)) if distributed else None
        loss = l_rec * w if distributed else l_rec
        if use_dim_loss and with_dim:  # eqs. 9-11; distributed: the affinities of the global batch
            gather = ddp.all_gather_with_grad if distributed else (lambda z: z)
            l_dim = dim_reduction_loss(gather(z_w), gather(z_v), perplexity).to(l_rec.dtype)
            loss = loss + beta * l_dim  # eq. 12
            terms["dim"] = l_dim
        return loss, {**terms, "z_v": z_v, "z_w": z_w, "w": w}

    def make_opt() -> torch.optim.Optimizer:
        if dr_lr is None or net.dr is None:
            return torch.optim.Adam(net.parameters(), lr=lr)
        dr_ids = {id(p) for p in net.dr.parameters()}
        rest = [p for p in net.parameters() if id(p) not in dr_ids]
        return torch.optim.Adam([{"params": rest}, {"params": list(net.dr.parameters()),
                                                     "lr": dr_lr}], lr=lr)

    # -- Algorithm 1, line 1: initialise w, u, v by minimising L_stru -----------------------
    def pre_step(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        loss, terms = structure_loss(view(idx))
        return {"loss": loss, **{k: v for k, v in terms.items() if k not in ("z_v", "z_w", "w")}}

    if pretrain_epochs > 0:
        opt = make_opt()
        # pretrain_epochs is a cap when pretrain_tol is set: stop once the epoch-mean L_rec has
        # plateaued (label-free; rank 0's history decides under a process group, so all ranks stop
        # at the same epoch)
        plateau = plateau_rule(history, "pretrain", "rec", tol=pretrain_tol, patience=pretrain_patience)
        stop_pre = None if plateau is None else (
            lambda e, m: bool(ddp.run_on_rank0(lambda: np.array([plateau(e, m)]))[0]))
        fit_loop(model=net, optimizer=opt, step=pre_step, epochs=pretrain_epochs, stage="pretrain",
                 batches=lambda e: minibatches(n, batch_size, generator=generator, drop_last=drop_last,
                                               shard=True),
                 history=history, generator=generator, verbose=verbose, on_epoch_end=stop_pre,
                 checkpoint_path=checkpoint_path, checkpoint_every=1 if checkpoint_path else 0, resume=resume)

    if dr_fit.epochs > 0 and net.dr is not None and use_dim_loss:  # line 1 over v, the encoder fixed
        fit_tsne_map(dr_fit, model=net, mapping=net.dr, features=lambda: _features(net, X)[0], n=n, seed=seed,
                     generator=generator, history=history, verbose=verbose, checkpoint_path=checkpoint_path,
                     resume=resume)

    if not clustering_head:  # CH off: learnable centres initialised by k-means, as IDEC
        _, zv0 = _features_all(net, X)
        c0 = torch.from_numpy(ddp.run_on_rank0(  # rank 0's k-means on every rank
            lambda: kmeans_codes(zv0.cpu().numpy(), n_clusters, n_init=20, seed=seed)[1].astype(np.float32)))
        net.centers = nn.Parameter(c0.to(device))

    state: dict = {"step": 0, "n_refresh": 0, "labels": None, "delta": 1.0, "converged": False}
    refit_map = dr_refit is not None and dr_refit.epochs > 0 and net.dr is not None and use_dim_loss

    def refresh(final: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Algorithm 1 lines 3-9: all clustering features, centres, assignments, stop test.

        ``final`` (line 14): every rank computes all features itself, with the same function
        as :meth:`TDEC.predict` (so ``predict`` on the training set reproduces the labels), and
        the stop test is left as it was. Returns the features ``(z_w, z_v)``."""
        z_w, z_v = _features(net, X) if final else _features_all(net, X)  # line 3
        if refit_map and state["n_refresh"] > 0:
            # the map follows the encoder: a few DR-only epochs on the clean features of now,
            # from the map's current weights (the first refresh comes straight after the DR fit)
            fit_tsne_map(dr_refit, model=net, mapping=net.dr, features=lambda: z_w, n=n, seed=seed,
                         generator=generator, history=history, stage="dr_refit")
            if final or ddp.world_size() == 1:
                z_v = _map(net, z_w)  # the refitted map on the features of this refresh
            else:  # per shard, as _features_all computed them
                a, b = ddp.shard_range(len(X))
                z_v = ddp.gather_rows(_map(net, z_w[a:b]))
        previous = state["labels"]
        if clustering_head:
            head = head_assign(z_v, n_clusters, n_neighbors=n_neighbors,
                               neighbor_rate=neighbor_rate, seed=seed,
                               previous=previous if track_centers else None)  # lines 4, 6
            state.update(head)
            q = head["q"]
        else:
            with torch.no_grad():
                q = student_t_assignment(z_v, net.centers)
        state["p"] = target_distribution(q)  # eq. 7 target, f_t over the whole set
        labels = q.argmax(1).cpu().numpy()
        if previous is not None and not final:  # lines 5, 7-9, rank 0's result on every rank
            state["delta"] = float(ddp.run_on_rank0(
                lambda: np.array([label_change(previous, labels)]))[0])
            state["converged"] = state["delta"] < tol  # as DEC; tol=0 never stops
        state["labels"] = labels
        state["n_refresh"] += 1
        return z_w, z_v

    n_batches = n // batch_size if drop_last else math.ceil(n / batch_size)
    interval = int(update_interval or n_batches)
    max_iter = epochs * n_batches

    def step(idx: torch.Tensor) -> dict[str, torch.Tensor]:  # line 11
        idx_d = idx.to(device)
        l_stru, terms = structure_loss(view(idx), with_dim=dim_loss_in_clustering)
        z_v, z_w, w = terms.pop("z_v"), terms.pop("z_w"), terms.pop("w")
        if net.dr is not None and not clu_to_dr:
            # L_clu reaches the encoder through a frozen copy of the DR block: the DR weights
            # are trained by L_dim alone (the map keeps following the feature space)
            frozen = {k: v.detach() for k, v in net.dr.named_parameters()}
            z_v = torch.func.functional_call(net.dr, frozen, (z_w,))
        if clustering_head:
            neigh = state["bank"][state["knn"][idx_d]]  # (B, k, c), from the last refresh
            if neighbor_mode == "anchored":
                # the neighbourhood's shape from the last refresh, anchored at the current z_i
                neigh = z_v[:, None, :] + (neigh - state["bank"][idx_d][:, None, :])
            q = neighbor_assignment(z_v, neigh, state["centers"])  # eqs. 5-6
        else:
            q = student_t_assignment(z_v, net.centers)
        l_clu = kl_divergence(state["p"][idx_d], q)  # eq. 7
        if distributed:  # l_stru is weighted already; P comes from all ranks' rows
            return {"loss": l_stru + alpha * w * l_clu, **terms, "clu": l_clu}
        return {"loss": l_stru + alpha * l_clu, **terms, "clu": l_clu}  # eq. 13

    if epochs > 0:  # lines 2-13: refreshes (lines 3-9) before every interval-th mini-batch (line 10) step
        # the refresh state (step count, targets, centres, last labels) resumes with the model
        fit_self_training(model=net, optimizer=make_opt(), step=step, refresh=refresh, state=state, n=n,
                          batch_size=batch_size, interval=interval, max_iter=max_iter, epochs=epochs,
                          drop_last=drop_last, generator=generator, history=history, verbose=verbose,
                          checkpoint_path=checkpoint_path, resume=resume)

    # -- line 14: forward pass for the final labels -----------------------------------------
    steps_done = state["step"]
    converged = state["converged"]
    z_w, z_v = refresh(final=True)
    dr = tsne_map_summary(dr_fit, history, n=n)
    if net.dr is not None and n >= 4:  # label-free check of the final map, on the final pass's features
        dr["map_dim_end"] = map_dim(z_w, z_v, seed=seed)
    return {"state": state, "history": history, "n_iter": steps_done, "converged": converged,
            "z_v": z_v, "pretrain_epochs_run": history.epochs("pretrain"), "dr": dr}


class TDEC(DeepClusterer):
    """TDEC (Transformer-based Deep Embedded Clustering with distribution information).

    Each parameter is described in full, with the measurements behind its default, in
    ``docs/methods/tdec.md`` ("Parameters").

    Parameters
    ----------
    n_clusters : int
        K.
    transformer, clustering_head, dim_reduction : bool, default True
        Table 4 ablation switches (ST, CH, DR); all off is IDEC-like.
    embed_dim, depth, decoder_depth, n_heads, mlp_ratio : default None, 4, 1, None, 4.0
        Patch embedding size E (None: max(C * (H/4) * (W/4), 32)), N1 and N2 Transformer blocks,
        attention heads (None: ``deepclust.nn.transformer_ae.default_heads``), MLP width / E.
    hidden_dims, latent_dim, dr_dims, cluster_dim : default (512, 512, 3072), 10, (50, 50, 100), 2
        Encoding layer [d-512-512-3072-m] (mirrored by the decoding layer), m, the Dim-Reduction
        block [m-50-50-100-c], c.
    alpha, beta : float, default 0.1, 0.001
        Weights of L_clu (eq. 13) and L_dim (eq. 12).
    perplexity : float, default 30
        Of the feature-space affinities (eq. 11), capped at (batch - 1) / 3.
    n_neighbors, neighbor_rate : default 50, 0.02
        k of eqs. 5-6; dc such that the average neighbour count is this share of n (eq. 2).
    neighbor_mode : {"anchored", "bank"}, default "anchored"
        How eq. 6 is differentiated in a mini-batch step, with the last refresh's neighbours.
    track_centers : bool, default True
        Renumber every refresh's clusters after the previous refresh's (False: ``paper``).
    rec_reduction : {"sum", "mean"}, default "sum"
        Eq. 8 summed or averaged over pixels.
    clu_to_dr, dim_loss_in_clustering : bool, default True
        L_clu updates the DR weights; the clustering stage keeps L_dim (both: Algorithm 1 line 11).
    dr_lr : float or None, default None
        Adam learning rate of the DR block (None: ``lr``).
    dr_epochs, dr_batch_size, dr_perplexity, dr_fit_lr, dr_fixed_batches : default 0, None, None, None, False
    dr_exaggeration, dr_exaggeration_epochs : default 1.0, 0
        The DR-only stage ``"dr_fit"`` after pretraining (:func:`deepclust.nn.tsne_map.fit_tsne_map`):
        epochs, batch (None: ``batch_size``; at most 8192), perplexity (None:
        ``perplexity``), learning rate (None: ``dr_lr``, else ``lr``), fixed parts, and t-SNE's
        early exaggeration (factor, epochs).
    dr_refit_epochs : int, default 0
        At every refresh of the clustering stage but the first, this many DR-only epochs on the
        clean features of the moment (the DR fit's batch, perplexity, rate and parts; no
        exaggeration; stage ``"dr_refit"`` in the history), before the centres and targets are
        computed, so the map follows the encoder that L_rec and L_clu move. 0: off (``paper``).
    pretrain_epochs, epochs : int, default 200, 500
        Pretraining on L_stru (a cap when ``pretrain_tol`` is set), then the clustering stage.
    pretrain_tol, pretrain_patience : default None, 10
        Pretraining ends at the reconstruction plateau (None: all ``pretrain_epochs``).
    lr, batch_size : default 0.01, 256
        Adam learning rate, mini-batch size.
    update_interval : int or None
        Mini-batches between refreshes of centres and targets (None: once per epoch).
    tol : float, default 0.001
        Stop when less than this share of points changed cluster between refreshes (as partitions).
    augment, max_rotation, max_shift : default True, 10, 0.1
        Rotation up to ``max_rotation`` degrees and shifts up to ``max_shift * H`` pixels.
    checkpoint_path, resume : default None, False
        Checkpoint after every epoch of both stages; continue an interrupted fit from it.
    random_state, device, verbose
    precision : {"fp32", "bf16", "auto"}, default "fp32"
        bf16 autocast of the training steps on CUDA ("auto": where supported); fp32 on the CPU.

    Attributes
    ----------
    labels_, embedding_ (n, c) clustering-space coordinates, cluster_centers_ (K, c),
    center_indices_ (K,) density-peak samples, history_, model_, selection_, diagnostics_
    (``pretrain_epochs_run``, ``map_dim_end`` and, after a DR fit, the stage as it ran). The labels
    and the embedding come from the final forward pass (line 14), made with the same functions as
    :meth:`predict`: on the fitting device ``predict(X_train)`` equals ``labels_``.
    """

    input_kind = "images"

    def __init__(
        self, n_clusters: int = 8, *,
        transformer: bool = True, clustering_head: bool = True, dim_reduction: bool = True,
        embed_dim: int | None = None, depth: int = 4, decoder_depth: int = 1, n_heads: int | None = None,
        mlp_ratio: float = 4.0, hidden_dims: tuple[int, ...] = (512, 512, 3072), latent_dim: int = 10,
        dr_dims: tuple[int, ...] = (50, 50, 100), cluster_dim: int = 2,
        alpha: float = 0.1, beta: float = 0.001, perplexity: float = 30.0, n_neighbors: int = 50,
        neighbor_rate: float = 0.02, neighbor_mode: str = "anchored", track_centers: bool = True,
        rec_reduction: str = "sum",
        clu_to_dr: bool = True, dr_lr: float | None = None, dr_fit_lr: float | None = None,
        dr_fixed_batches: bool = False, dim_loss_in_clustering: bool = True,
        dr_epochs: int = 0, dr_batch_size: int | None = None, dr_perplexity: float | None = None,
        dr_exaggeration: float = 1.0, dr_exaggeration_epochs: int = 0, dr_refit_epochs: int = 0,
        pretrain_epochs: int = 200, pretrain_tol: float | None = None, pretrain_patience: int = 10, epochs: int = 500,
        lr: float = 0.01, batch_size: int = 256, update_interval: int | None = None, tol: float = 0.001,
        augment: bool = True, max_rotation: float = 10.0, max_shift: float = 0.1,
        checkpoint_path: str | None = None, resume: bool = False, random_state: int | None = None,
        device: str = "auto", precision: str = "fp32", verbose: bool = False,
    ):
        self.n_clusters = n_clusters
        self.checkpoint_path = checkpoint_path
        self.resume = resume
        self.transformer = transformer
        self.clustering_head = clustering_head
        self.dim_reduction = dim_reduction
        self.embed_dim = embed_dim
        self.depth = depth
        self.decoder_depth = decoder_depth
        self.n_heads = n_heads
        self.mlp_ratio = mlp_ratio
        self.hidden_dims = hidden_dims
        self.latent_dim = latent_dim
        self.dr_dims = dr_dims
        self.cluster_dim = cluster_dim
        self.alpha = alpha
        self.beta = beta
        self.perplexity = perplexity
        self.n_neighbors = n_neighbors
        self.neighbor_rate = neighbor_rate
        self.neighbor_mode = neighbor_mode
        self.track_centers = track_centers
        self.rec_reduction = rec_reduction
        self.clu_to_dr = clu_to_dr
        self.dr_lr = dr_lr
        self.dr_fit_lr = dr_fit_lr
        self.dr_fixed_batches = dr_fixed_batches
        self.dim_loss_in_clustering = dim_loss_in_clustering
        self.dr_refit_epochs = dr_refit_epochs
        self.dr_epochs = dr_epochs
        self.dr_batch_size = dr_batch_size
        self.dr_perplexity = dr_perplexity
        self.dr_exaggeration = dr_exaggeration
        self.dr_exaggeration_epochs = dr_exaggeration_epochs
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_tol = pretrain_tol
        self.pretrain_patience = pretrain_patience
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.update_interval = update_interval
        self.tol = tol
        self.augment = augment
        self.max_rotation = max_rotation
        self.max_shift = max_shift
        self.random_state = random_state
        self.device = device
        self.precision = precision
        self.verbose = verbose

    # -- input handling ----------------------------------------------------------------------
    @staticmethod
    def _as_images(X):
        """2-D (n, features) input is the vector mode: viewed as (n, features, 1, 1)."""
        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
        arr = np.asarray(X)
        if arr.ndim == 2:
            arr = arr[:, :, None, None]
        return arr

    def fit(self, X, y=None, **fit_params):
        """Fit on images (N, C, H, W) / (N, H, W) in [0, 1], or vectors (N, D) (vector mode)."""
        return super().fit(self._as_images(X), y, **fit_params)

    def predict(self, X, **predict_params) -> np.ndarray:
        """Labels of new samples via the clustering head fitted on the training embedding."""
        return super().predict(self._as_images(X), **predict_params)

    def _check_params(self) -> None:
        for name in ("depth", "latent_dim", "cluster_dim", "n_neighbors", "batch_size", "pretrain_patience"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name in ("decoder_depth", "pretrain_epochs", "epochs", "dr_epochs", "dr_exaggeration_epochs",
                     "dr_refit_epochs"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
        for name in ("alpha", "beta", "max_rotation", "max_shift"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if not float(self.lr) > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.dr_lr is not None and not float(self.dr_lr) > 0:
            raise ValueError(f"dr_lr must be None or > 0, got {self.dr_lr!r}")
        if self.dr_fit_lr is not None and not float(self.dr_fit_lr) > 0:
            raise ValueError(f"dr_fit_lr must be None or > 0, got {self.dr_fit_lr!r}")
        if not float(self.perplexity) >= 1:
            raise ValueError(f"perplexity must be >= 1, got {self.perplexity!r}")
        if not 0 < float(self.neighbor_rate) < 1:
            raise ValueError(f"neighbor_rate must be in (0, 1), got {self.neighbor_rate!r}")
        if not 0 <= float(self.tol) < 1:
            raise ValueError(f"tol must be in [0, 1), got {self.tol!r}")
        if self.neighbor_mode not in ("anchored", "bank"):
            raise ValueError(f"neighbor_mode must be 'anchored' or 'bank', got {self.neighbor_mode!r}")
        check_bool("track_centers", self.track_centers)
        if self.rec_reduction not in ("sum", "mean"):
            raise ValueError(f"rec_reduction must be 'sum' or 'mean', got {self.rec_reduction!r}")
        if self.update_interval is not None and int(self.update_interval) < 1:
            raise ValueError(f"update_interval must be None or >= 1, got {self.update_interval!r}")
        if self.pretrain_tol is not None and not 0 <= float(self.pretrain_tol) < 1:
            raise ValueError(
                f"pretrain_tol must be in [0, 1) or None (run all pretrain_epochs), got {self.pretrain_tol!r}"
            )
        check_dr_params(dr_batch_size=self.dr_batch_size, dr_perplexity=self.dr_perplexity,
                        dr_exaggeration=self.dr_exaggeration)

    def _dr_fit(self) -> TSNEMapFit:
        """The DR-only stage's settings, the ``None`` defaults resolved (batch, perplexity, rate)."""
        first = next(v for v in (self.dr_fit_lr, self.dr_lr, self.lr) if v is not None)
        return TSNEMapFit(
            epochs=int(self.dr_epochs), lr=float(first),
            batch_size=int(self.batch_size if self.dr_batch_size is None else self.dr_batch_size),
            perplexity=float(self.perplexity if self.dr_perplexity is None else self.dr_perplexity),
            exaggeration=float(self.dr_exaggeration), exaggeration_epochs=int(self.dr_exaggeration_epochs),
            fixed_batches=bool(self.dr_fixed_batches))

    def _prepare(self, X: np.ndarray) -> torch.Tensor:
        Xt = torch.from_numpy(X)
        if self._vector_mode_ or not self.transformer:
            return Xt.to(self.device_)
        H, W = Xt.shape[-2:]
        if (H, W) != self._image_size_:
            Xt = F.interpolate(Xt, size=self._image_size_, mode="bilinear", align_corners=False)
        return Xt.to(self.device_)

    def _build(self, shape: tuple[int, ...]) -> TDECNet:
        C = shape[0]
        if self._vector_mode_ or not self.transformer:
            ae: nn.Module = MLPImageAE(shape if not self._vector_mode_ else (C, 1, 1),
                                       hidden_dims=self.hidden_dims, latent_dim=self.latent_dim)
        else:
            ae = TransformerAE(C, self._image_size_, embed_dim=self.embed_dim, depth=self.depth,
                               decoder_depth=self.decoder_depth, n_heads=self.n_heads,
                               mlp_ratio=self.mlp_ratio, hidden_dims=self.hidden_dims,
                               latent_dim=self.latent_dim)
        dr = mlp([self.latent_dim, *self.dr_dims, self.cluster_dim]) if self.dim_reduction else None
        return TDECNet(ae, dr)

    def _fit(self, X: np.ndarray) -> None:
        self._check_params()
        if (float(self.dr_exaggeration) != 1.0 and 0 < int(self.dr_epochs) <= int(self.dr_exaggeration_epochs)
                and self.dim_reduction):
            warnings.warn(
                f"dr_exaggeration_epochs={self.dr_exaggeration_epochs} >= dr_epochs={self.dr_epochs}: every DR "
                "epoch is exaggerated, the map is never fitted to the plain L_dim", stacklevel=2)
        n, C, H, W = X.shape
        self._vector_mode_ = H == 1 and W == 1
        if not self._vector_mode_ and self.transformer and (H < 8 or W < 8):
            raise ValueError(
                f"images of {H}x{W} pixels are too small for 4x4 patches of even size; "
                "use at least 8x8 or transformer=False"
            )
        self._image_size_ = target_size(H, W)
        Xt = self._prepare(X)
        with torch.random.fork_rng(devices=[]):  # weights from the seed, global RNG untouched
            torch.manual_seed(int(self.seed_))
            net = self._build((C, H, W)).to(self.device_)
        out = _train_tdec(
            X=Xt, net=net, n_clusters=int(self.n_clusters), clustering_head=bool(self.clustering_head),
            use_dim_loss=bool(self.dim_reduction), use_augment=bool(self.augment) and not self._vector_mode_,
            alpha=float(self.alpha), beta=float(self.beta), perplexity=float(self.perplexity),
            n_neighbors=int(self.n_neighbors), neighbor_rate=float(self.neighbor_rate),
            neighbor_mode=self.neighbor_mode, track_centers=bool(self.track_centers),
            rec_reduction=self.rec_reduction, clu_to_dr=bool(self.clu_to_dr),
            dr_lr=None if self.dr_lr is None else float(self.dr_lr),
            dim_loss_in_clustering=bool(self.dim_loss_in_clustering), dr_fit=self._dr_fit(),
            dr_refit=dataclasses.replace(self._dr_fit(), epochs=int(self.dr_refit_epochs), exaggeration=1.0,
                                         exaggeration_epochs=0),
            pretrain_epochs=int(self.pretrain_epochs),
            pretrain_tol=None if self.pretrain_tol is None else float(self.pretrain_tol),
            pretrain_patience=int(self.pretrain_patience), epochs=int(self.epochs), lr=float(self.lr),
            batch_size=int(self.batch_size), update_interval=self.update_interval, tol=float(self.tol),
            max_rotation=float(self.max_rotation), max_shift=float(self.max_shift), seed=int(self.seed_),
            generator=self._torch_gen, verbose=bool(self.verbose), checkpoint_path=self.checkpoint_path,
            resume=bool(self.resume),
        )
        st = out["state"]
        self.model_ = net.cpu()
        self.labels_ = ddp.broadcast_array(st["labels"].astype(np.int64))  # rank 0's on every rank
        self.embedding_ = out["z_v"].cpu().numpy()  # the final pass (line 14) that gave labels_
        if self.clustering_head:
            self.cluster_centers_ = st["centers"].detach().cpu().numpy()
            self.center_indices_ = np.asarray(st["center_index"], dtype=np.int64)
        else:
            self.cluster_centers_ = net.centers.detach().cpu().numpy()
        self.history_ = out["history"]
        self.n_iter_ = int(out["n_iter"])
        stop = (f"label change {st['delta']:.4g} < tol={self.tol}" if out["converged"]
                else f"epochs={self.epochs} reached")
        self.selection_ = f"last iterate (Algorithm 1; {stop}; label-free)"
        self.diagnostics_ = {
            "n_iter": self.n_iter_, "converged": bool(out["converged"]),
            "n_refresh": int(st["n_refresh"]),
            "dc": float(st["dc"]) if "dc" in st else None,
            "image_size": list(self._image_size_) if not self._vector_mode_ else None,
            "pretrain_epochs_run": int(out["pretrain_epochs_run"]),
            **(out["dr"] if out["dr"]["dr_epochs_run"] else {}),
            "map_dim_end": out["dr"].get("map_dim_end"),
        }

    def _predict(self, X: np.ndarray) -> np.ndarray:
        """Eqs. 5-6 against the fitted clustering space, computed as the final refresh does (on
        the fitted device, the same functions: :func:`deepclust.cluster.tdec_head.head_predict`).
        Without the clustering head: the Student-t to the learnt centres."""
        Xt = self._prepare(X)  # on the fitted device
        net = self.model_.to(self.device_)
        try:
            _, z_v = _features(net, Xt)
            if not self.clustering_head:
                with torch.no_grad():
                    q = student_t_assignment(z_v, net.centers.detach())
            else:
                q = head_predict(z_v, self.embedding_, self.cluster_centers_, n_neighbors=self.n_neighbors)
        finally:
            self.model_ = net.cpu()
        return q.argmax(1).cpu().numpy().astype(np.int64)
