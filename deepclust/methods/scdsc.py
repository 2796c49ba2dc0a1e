"""SCDSC: scalable context-preserving model-aware deep clustering of hyperspectral scenes.

Li, Nadisic, Huang, Deligiannis, Pizurica (paper ``000_2a1b3e70c0180514``). Equation map:

* section 4.2 preprocessing (bands, PCA 8, patches) -> :mod:`deepclust.data.scene`
* eq. 1 (FINCH) mini-clusters        -> :func:`deepclust.cluster.finch.minicluster_index`
* eq. 3  soft assignment ``S``       -> :func:`deepclust.losses.subspace.subspace_affinity`
* eq. 4  basis dissimilarity         -> :func:`deepclust.losses.subspace.basis_constraint`
* eq. 5  initial bases (k-means, SVD) -> :func:`deepclust.nn.subspace.initial_bases`
* eqs. 7-10 mini-cluster KL ``L_NL`` -> :func:`deepclust.losses.minicluster.minicluster_kl`
* eqs. 11-12 local KL ``L_L``        -> :func:`deepclust.losses.spatial.spatial_kl`
* eq. 13 reconstruction ``L_R``, eq. 17 total loss -> ``step`` in :func:`_train_scdsc`
* Algorithm 1 (FINCH, pretrain, k-means + SVD, joint training) -> :meth:`SCDSC._fit`
  (``init="umap"``: the start from UMAP + k-means on the codes, :mod:`deepclust.methods.scdsc_init`)

The label-free rules added to the paper (each a switch, see docs/methods/scdsc.md) live with the
model they guard: :mod:`deepclust.cluster.kmeans` (degenerate restarts, repair),
:mod:`deepclust.nn.subspace` (unit-norm bases, re-seeding), :mod:`deepclust.stopping` (epochs).

Choices where the paper is silent or ambiguous (each is marked in the code):

* ``L_R``: mean squared error per entry (eq. 13 sums over each patch's 392 entries and halves;
  with entry-averaged KL terms that would make the reconstruction dominate by ~200x).
* Every KL is averaged over all its entries (``n*k``; ``l*k`` for mini-clusters), as the
  authors' code does, so the paper's ``beta_1``, ``beta_2`` carry over.
* ``nonlocal_=False`` (Baseline and L rows of Table 5) uses EDESC's pixel-level
  ``KL(P || S)`` in place of the mini-cluster KL: the baseline is the basis model of [18], which
  is exactly the mini-cluster loss with every pixel its own mini-cluster.
* The reported epoch: the largest share of pixels with max ``s`` > 0.9 (the authors' rule; the
  first wins ties; the last epoch when no pixel is that confident, said in ``selection_``).
* ``chunk_size``: the full-batch gradient accumulated over chunks (bounded memory; BatchNorm
  then sees per-chunk statistics; docs/methods/scdsc.md). ``None`` is the paper's full batch.
"""

from __future__ import annotations

import copy
import time
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from deepclust import distributed as ddp
from deepclust.base import DeepClusterer, check_n_clusters
from deepclust.cluster.finch import ANN_THRESHOLD, minicluster_index
from deepclust.cluster.kmeans import min_cluster_size
from deepclust.data.hsi import check_finite_bands, check_mask
from deepclust.data.scene import ScenePatches, ScenePreprocessor, patch_pca_features
from deepclust.losses.dec import kl_divergence, target_distribution
from deepclust.losses.minicluster import minicluster_kl
from deepclust.losses.spatial import check_window, spatial_kl
from deepclust.methods.scdsc_init import umap_partition
from deepclust.nn import seeded_init
from deepclust.nn.conv_ae import ConvPatchAutoencoder
from deepclust.nn.pretrain import pretrain_autoencoder
from deepclust.nn.subspace import (
    BasisClusteringNet,
    ClusterReseeder,
    hard_labels,
    initial_bases,
    project_unit_columns,
    recalibrate_batchnorm,
)
from deepclust.restarts import fit_with_restarts
from deepclust.stopping import confident_share, partition_settled, push_partition, select_epoch
from deepclust.training import History, average_buffers, fit_loop, pack_state, unpack_state

__all__ = ["SCDSC", "confident_share", "select_epoch"]


# -- training ----------------------------------------------------------------------------------
def _train_scdsc(
    *, net: BasisClusteringNet, X: torch.Tensor, flat_index: torch.Tensor, mask: torch.Tensor,
    mini_index: torch.Tensor | None, local: bool, window: int, beta: float, beta1: float, beta2: float,
    epochs: int, lr: float, chunk_size: int | None, threshold: float, generator: torch.Generator,
    history: History, verbose: bool, checkpoint_path: str | None = None, resume: bool = False,
    rng: np.random.Generator | None = None, basis_norm: str = "penalty", min_size: int = 0,
    reseeder: ClusterReseeder | None = None, device=None, warmup_epochs: int = 0, local_ramp_epochs: int = 0,
    stop_tol: float | None = None, stop_patience: int = 10,
) -> dict:
    """Joint training (eq. 17), full batch; returns the selected/last states and labels.

    The rules' arguments are :class:`SCDSC`'s (docs/methods/scdsc.md): ``basis_norm`` (unit-norm
    bases before every step, or eq. 4's penalty alone), ``min_size`` (epochs that lost a cluster
    rank last), ``reseeder``, ``warmup_epochs`` and ``local_ramp_epochs`` (linear ramps of the lr
    and of beta2 over the first epochs; 0: constant, as the paper), ``stop_tol`` and
    ``stop_patience`` (:func:`deepclust.stopping.partition_settled`; None: all ``epochs``).
    """
    beta2_full, ramp = beta2, {"beta2": beta2}
    n = X.shape[0]
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    n_mini = int(mini_index.max()) + 1 if mini_index is not None else None
    chunk = n if chunk_size is None else max(1, min(int(chunk_size), n))
    # "best_ok": whether the selected epoch's partition kept every cluster at >= min_size pixels;
    # such epochs rank above all others, then the confident share decides (label-free)
    track: dict = {"shares": [], "best": -1.0, "best_ok": False, "reseeds": []}
    track.update(changes=[], window=[], window_changes=[])  # the partition's movement (stop_tol)
    # Distributed (--nproc): each rank forwards its contiguous shard of the pixels; the soft
    # assignments S are gathered (with gradient) in pixel order, so the mini-cluster means
    # (eqs. 7-9) and the spatial filter (eqs. 11-12) see all pixels and every rank computes the
    # same global losses. The reconstruction is this rank's part of the global mean, times W.
    world = ddp.world_size()
    lo, hi = ddp.shard_range(n)

    def cluster_terms(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if mini_index is not None:  # eqs. 7-9, averaged over l*k entries
            # s holds all pixels (gathered when distributed): no further all-reduce
            nl = minicluster_kl(s, mini_index, n_mini, reduction="mean", global_batch=False)
        else:  # Baseline: EDESC's pixel-level KL (every pixel its own mini-cluster)
            nl = kl_divergence(target_distribution(s), s, reduction="mean")
        # eqs. 11-12, averaged over n*k entries
        loc = spatial_kl(s, flat_index, mask, window, reduction="mean") if local else torch.zeros((), device=s.device)
        return nl, loc

    def record(s: torch.Tensor) -> None:
        share = confident_share(s, threshold)
        track["shares"].append(share)
        track["last_labels"] = s.argmax(dim=1).cpu().numpy().astype(np.int64)
        ok = bool(np.bincount(track["last_labels"], minlength=s.shape[1]).min() >= min_size)
        better = (ok and not track["best_ok"]) or (ok == track["best_ok"] and share > track["best"])
        if better:  # parameters as they produced this s (before the update)
            if world > 1:  # one snapshot on every rank: BatchNorm statistics averaged (linear)
                average_buffers(net)
            track.update(best_ok=ok, best=share, best_epoch=len(track["shares"]) - 1,
                         best_state=copy.deepcopy(net.state_dict()))

    def step_sharded() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """This rank's step on ``X[lo:hi]`` (all pixels in one process): detached (rec, nl, loc, S, basis)."""
        between, unit = net.basis_terms()
        basis = beta * (between + unit)  # identical on every rank: averaging keeps its gradient
        if chunk >= n:
            xr = X[lo:hi]
            _, x_hat, s_loc = net(xr)
            s = ddp.all_gather_with_grad(s_loc)  # (N, k), pixel order; backward sums the ranks
            rec_r = F.mse_loss(x_hat, xr, reduction="sum") / X.numel()  # this rank's share, eq. 13
            nl, loc = cluster_terms(s)
            (world * rec_r + basis + beta1 * nl + ramp["beta2"] * loc).backward()
            s_all = s.detach()
        else:  # the full-batch gradient accumulated over chunks: dL/dS over all pixels first, then
            # each chunk back-propagates its rows of dL/dS and its reconstruction (times W, see above)
            with torch.no_grad():
                # rows gathered per chunk (a lazy ScenePatches input is never materialised whole)
                s_all = ddp.gather_rows(torch.cat([net(X[lo + a : min(hi, lo + a + chunk)])[2]
                                                   for a in range(0, hi - lo, chunk)]))
            s_leaf = s_all.clone().requires_grad_(True)
            nl, loc = cluster_terms(s_leaf)
            (beta1 * nl + ramp["beta2"] * loc).backward()
            g = s_leaf.grad[lo:hi]  # this rank's rows of d(beta1 L_NL + beta2 L_L) / dS
            rec_r = torch.zeros((), device=X.device)
            for a in range(0, hi - lo, chunk):
                xc = X[lo + a : min(hi, lo + a + chunk)]
                _, x_hat, s_c = net(xc)
                rec_c = F.mse_loss(x_hat, xc, reduction="sum") / X.numel()
                (world * (rec_c + (g[a : a + chunk] * s_c).sum())).backward()
                rec_r = rec_r + rec_c.detach()
            basis.backward()
        rec = ddp.all_reduce_sum(rec_r.detach().reshape(1))[0]  # the global eq. 13 value
        return rec, nl.detach(), loc.detach(), s_all, basis.detach()

    def step(_batch) -> dict[str, torch.Tensor]:
        if world > 1 or chunk < n:
            rec, nl, loc, s_all, basis = step_sharded()
            between, unit = (t.detach() for t in net.basis_terms())
            total = rec + basis + beta1 * nl + ramp["beta2"] * loc
        else:  # faithful full-batch step
            between, unit = net.basis_terms()
            basis = beta * (between + unit)  # eq. 4 terms, weight beta = 1e-3 each
            z, x_hat, s = net(X)
            rec = F.mse_loss(x_hat, X)  # eq. 13 (entry mean, see module notes)
            nl, loc = cluster_terms(s)
            total = rec + basis + beta1 * nl + ramp["beta2"] * loc  # eq. 17
            total.backward()
            s_all = s.detach()
        record(s_all)
        return {"loss": total.detach(), "rec": rec.detach(), "basis_between": between.detach(),
                "basis_unit": unit.detach(), "nonlocal": nl.detach(), "local": loc.detach(),
                "confident_share": torch.tensor(track["shares"][-1])}

    def before_step(global_step: int) -> None:
        if local_ramp_epochs > 0:
            ramp["beta2"] = beta2_full * min(1.0, (global_step + 1) / (local_ramp_epochs + 1))
        if warmup_epochs > 0:
            for g in opt.param_groups:
                g["lr"] = lr * min(1.0, (global_step + 1) / (warmup_epochs + 1))
        if basis_norm == "project":
            project_unit_columns(net.D)

    def after_epoch(epoch: int, _means: dict) -> bool:
        track["changes"].append(push_partition(track["window"], track["last_labels"], keep=stop_patience + 1))
        if reseeder is not None:
            if reseeder(epoch, track["last_labels"], net, X, opt, device):  # True: a cluster re-seeded,
                track["window"].clear()  # which restarts the convergence window
            track["reseeds"], track["small_run"] = list(reseeder.events), reseeder.small_run
        settled, changed = partition_settled(track["window"], tol=stop_tol or 0.0, patience=stop_patience)
        track["window_changes"].append(changed)  # stop_tol None: never settled, the budget decides
        track["stopped_at"] = epoch + 1 if settled and stop_tol is not None else None
        return track["stopped_at"] is not None

    def load_extra(extra: dict) -> None:
        track.update(unpack_state(extra["track"]))
        if reseeder is not None:
            reseeder.events, reseeder.small_run = list(track["reseeds"]), int(track.get("small_run", 0))

    fit_loop(
        model=net, optimizer=opt, step=step, epochs=epochs, stage="train", history=history,
        batches=lambda e: [None], generator=generator, manual_backward=True, on_batch_start=before_step,
        on_epoch_end=after_epoch, checkpoint_path=checkpoint_path, checkpoint_every=1 if checkpoint_path else 0,
        resume=resume, rng=rng, verbose=verbose,
        # the epoch-selection record (shares, best epoch, its labels and weights) is part of a
        # resumable state: without it a resumed fit could select a different epoch
        extra_state=lambda: {"track": pack_state(track)}, load_extra_state=load_extra,
    )
    if basis_norm == "project":  # the final state, as every recorded one, has unit-norm bases
        project_unit_columns(net.D)
    return track


# -- the estimator -----------------------------------------------------------------------------
class SCDSC(DeepClusterer):
    """SCDSC on a hyperspectral cube ``(H, W, B)`` and an optional mask of pixels to cluster.

    ``fit(cube, mask=None)``; ``labels_`` holds one label per masked pixel in row-major order.
    ``predict(cube, mask=None)`` labels any pixels (default: all), ``predict_scene(cube=None)``
    returns the full (H, W) land-cover map.

    Parameters
    ----------
    n_clusters : int
    local, nonlocal_ : bool, default True
        Use the local loss (eqs. 11-12) / the mini-cluster loss (eqs. 7-9; False: EDESC's KL).
    beta, beta1, beta2 : float
        Weights of eq. 17 (basis terms 1e-3; ``L_NL`` 3; ``L_L`` dataset-dependent).
    window : side of the smoothing window (odd, 7). lr, epochs : joint training (Adam, full batch).
    pretrain_epochs, pretrain_lr, pretrain_batch_size : autoencoder pretraining (MSE, Adam).
    n_components, patch, channels : PCA components, patch side, conv channels of the AE.
    finch_patch, finch_pca, finch_level : mini-cluster features and FINCH level (1 = after the
        second iteration).
    n_subspace_dims, eta : basis vectors per subspace (5) and the affinity constant (5).
    kmeans_n_init, kmeans_backend : restarts (30) and backend {"sklearn", "faiss"} of the k-means.
    threshold, selection : the label-free epoch rule: confidence level (0.9), {"confident", "last"}.
    patch_scaling, pretrain_tol, pretrain_patience, basis_norm, init, init_repair, reseed, restarts,
    min_cluster_share, warmup_epochs, local_ramp_epochs, stop_tol, stop_patience : the label-free
        rules added to the paper (docs/methods/scdsc.md); the ``paper`` preset switches them off.
    checkpoint_path, resume : checkpoint file written after every epoch (None: none); continue an
        interrupted fit from it (same cube, mask and parameters).
    chunk_size : int or None
        None trains full-batch exactly; an int bounds memory (see module notes).
    finch_backend, finch_exact : {"torch", "faiss"}; True forces the exact first-neighbour search.
    ann_threshold : int, default 200_000
        Above this many points FINCH's first-neighbour search uses an approximate faiss IVF-Flat
        index; its recall@1 on a sample of queries is in ``diagnostics_["finch_search"]``.
    finch_pca_sample : int or None, default 200_000
        Above this many pixels the FINCH features' standardisation and PCA are fitted on a
        seeded sample of this many pixels (None: always all pixels, exact).
    kmeans_sample : int or None, default 100_000
        Above this many pixels the initial k-means and bases are fitted on the codes of a seeded
        sample of this many pixels; the (N, latent) codes are never held (None: all codes, exact).
    predict_chunk : int, default 65536
        Pixels per chunk in ``predict``; memory is O(chunk) beyond the O(N) labels.
    random_state, device, verbose
    precision : {"fp32", "bf16", "auto"}, default "fp32"
        bf16 autocast of the training steps on CUDA ("auto": where supported); fp32 on the CPU.

    Attributes
    ----------
    labels_, labels_last_, extra_labels_, model_, history_, selection_, diagnostics_,
    mini_clusters_, init_labels_
    """

    input_kind = "scene"
    _lazy_scene = True  # a memory-mapped / large cube is read in tiles, never copied whole

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        # the loss (eq. 17) and its ablation switches
        local: bool = True, nonlocal_: bool = True, beta: float = 1e-3, beta1: float = 3.0, beta2: float = 7.0,
        window: int = 7, n_subspace_dims: int = 5, eta: float = 5.0,
        # joint training and the label-free epoch rule
        lr: float = 5e-3, epochs: int = 400, chunk_size: int | None = None, threshold: float = 0.9,
        selection: Literal["confident", "last"] = "confident",
        # preprocessing and the autoencoder's pretraining
        n_components: int = 8, patch: int = 7, channels: int = 32,
        patch_scaling: Literal["global", "feature"] = "global", pretrain_epochs: int = 50,
        pretrain_lr: float = 1e-3, pretrain_batch_size: int = 4096, pretrain_tol: float | None = 0.01,
        pretrain_patience: int = 10,
        # mini-clusters (FINCH)
        finch_patch: int = 17, finch_pca: int = 300, finch_level: int = 1, finch_backend: str = "torch",
        finch_exact: bool = False, ann_threshold: int = ANN_THRESHOLD, finch_pca_sample: int | None = 200_000,
        # the initial partition and bases
        init: Literal["kmeans", "minicluster", "umap"] = "kmeans", kmeans_n_init: int = 30,
        kmeans_backend: str = "sklearn",
        kmeans_sample: int | None = 100_000, init_repair: bool = True,
        # the rules that keep every cluster alive
        basis_norm: Literal["project", "penalty"] = "project", reseed: bool = True,
        min_cluster_share: float | None = 0.1, warmup_epochs: int = 0, local_ramp_epochs: int = 0,
        stop_tol: float | None = None, stop_patience: int = 10, restarts: int = 0,
        # prediction and the run
        predict_chunk: int = 65536, checkpoint_path: str | None = None, resume: bool = False,
        random_state: int | None = None, device: str = "auto", precision: str = "fp32", verbose: bool = False,
    ):
        # every argument is stored under its own name (scikit-learn's get_params contract)
        vars(self).update({name: value for name, value in locals().items() if name != "self"})

    # -- validation ------------------------------------------------------------------------
    def fit(self, X, y=None, mask=None):
        """Cluster the masked pixels of the cube ``X`` (H, W, B); ``y`` is ignored."""
        cube = np.asarray(X) if not isinstance(X, torch.Tensor) else X.detach().cpu().numpy()
        if cube.ndim == 3:
            check_finite_bands(cube)  # names the bad bands (tile by tile: a large cube is not copied)
            m = check_mask(mask, cube.shape[:2])
            check_n_clusters(self.n_clusters, int(m.sum()))
            check_window(int(self.window), cube.shape[:2])
            mask = m
        for name, allowed in (("selection", ("confident", "last")), ("patch_scaling", ("global", "feature")),
                              ("basis_norm", ("project", "penalty")), ("init", ("kmeans", "minicluster", "umap"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if int(self.restarts) < 0:
            raise ValueError(f"restarts must be a number of extra fits >= 0, got {self.restarts}")
        if self.min_cluster_share is not None and not 0 <= float(self.min_cluster_share) < 1:
            raise ValueError(f"min_cluster_share must be in [0, 1) or None, got {self.min_cluster_share}")
        if self.pretrain_tol is not None and float(self.pretrain_tol) < 0:
            raise ValueError(f"pretrain_tol must be >= 0 or None, got {self.pretrain_tol}")
        if (self.stop_tol is not None and not 0 <= float(self.stop_tol) < 1) or int(self.stop_patience) < 1:
            raise ValueError(f"stop_tol must be a share in [0, 1) or None and stop_patience >= 1 epoch, got "
                             f"stop_tol={self.stop_tol}, stop_patience={self.stop_patience}")
        return super().fit(X, y, mask=mask)

    # -- training --------------------------------------------------------------------------
    def _fit(self, X: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Algorithm 1, restarted from a fresh seed (``restarts`` times at most) while a fit had to
        re-seed a dying cluster or reported an epoch with a cluster under the minimum size: it
        collapsed part of the scene (label-free). The first clean attempt is kept, else the one
        with the fewest such events, then the largest confident share (:mod:`deepclust.restarts`)."""
        def score() -> tuple:
            d = self.diagnostics_
            return len(d["reseeds"]) + (not d["selected_epoch_all_clusters_kept"]), -d["confident_share_selected"]

        tried = fit_with_restarts(self, lambda ckpt: self._fit_once(X, mask, ckpt), score,
                                  restarts=int(self.restarts), checkpoint_path=self.checkpoint_path,
                                  resume=bool(self.resume))
        if self.restarts:
            self.diagnostics_ = {**self.diagnostics_, "attempts": tried}

    def _fit_once(self, X: np.ndarray, mask: np.ndarray | None, checkpoint_path: str | None) -> None:
        H, W, _ = X.shape
        mask = check_mask(mask, (H, W))
        k, d = int(self.n_clusters), int(self.n_subspace_dims)
        window = check_window(int(self.window), (H, W))
        if int(self.epochs) < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        rows, cols = np.nonzero(mask)  # row-major order
        n = rows.shape[0]
        timings: dict[str, float] = {}
        dev = self.device_  # resolved by DeepClusterer.fit

        # Preprocessing (section 4.2): bands standardised, PCA, a patch around every pixel
        t0 = time.perf_counter()
        self.preprocessor_ = ScenePreprocessor(int(self.n_components)).fit(X)
        pca_cube = self.preprocessor_.transform(X)  # (H, W, C), small: C = 8 bands
        # the network input is gathered per batch from the padded reduced cube; the (N, C, P, P) patch
        # matrix exists only on the full-batch path (chunk_size None or >= N: all pixels in one step)
        source = ScenePatches(pca_cube, rows, cols, int(self.patch), device=dev)
        self.patch_mean_, self.patch_scale_ = source.feature_stats(scaling=self.patch_scaling)
        source.set_normalisation(self.patch_mean_, self.patch_scale_)
        lazy = self.chunk_size is not None and int(self.chunk_size) < n
        Xt = source if lazy else source.materialize()
        timings["preprocess_seconds"] = time.perf_counter() - t0

        # Step 1: mini-clusters (FINCH) — when the non-local loss or the mini-cluster init uses them
        mini, diag = None, {}
        if self.nonlocal_ or self.init == "minicluster":
            t0 = time.perf_counter()
            feats = patch_pca_features(pca_cube, rows, cols, patch=int(self.finch_patch),
                                       n_components=int(self.finch_pca), sample=self.finch_pca_sample, seed=self.seed_)
            mini, info = minicluster_index(feats, level=int(self.finch_level), backend=self.finch_backend,
                                           exact=bool(self.finch_exact), ann_threshold=int(self.ann_threshold),
                                           seed=self.seed_)
            del feats
            diag.update(info, n_mini_clusters=int(mini.max()) + 1)
            timings["finch_seconds"] = time.perf_counter() - t0
            self.mini_clusters_ = mini

        # Step 2: pretraining
        t0 = time.perf_counter()
        with seeded_init(self.seed_):
            ae = ConvPatchAutoencoder(source.shape[1], int(self.patch), channels=int(self.channels))
        net = BasisClusteringNet(ae, n_clusters=k, d=d, eta=float(self.eta)).to(dev)
        history = History()
        run = dict(generator=self._torch_gen, history=history, verbose=self.verbose, rng=self._rng,
                   checkpoint_path=checkpoint_path, resume=bool(self.resume))
        diag["pretrain_epochs_run"] = pretrain_autoencoder(
            ae=ae, X=Xt, epochs=int(self.pretrain_epochs), batch_size=int(self.pretrain_batch_size),
            lr=float(self.pretrain_lr), device=dev, plateau_tol=self.pretrain_tol,
            plateau_patience=int(self.pretrain_patience), **run)
        timings["pretrain_seconds"] = time.perf_counter() - t0

        # Step 3: the initial partition (k-means on the codes, or weighted k-means on the
        # mini-clusters' mean codes), repaired if degenerate, then the bases by SVD
        t0 = time.perf_counter()
        min_size = min_cluster_size(n, k, self.min_cluster_share)
        given = codes = None
        if self.init == "umap":  # UMAP + k-means on the codes (a deviation: module scdsc_init)
            given, info, codes = umap_partition(ae, source, Xt, k, sample=self.kmeans_sample, seed=self.seed_,
                                                device=dev)
            diag.update(info)
        init_labels, D0, info = initial_bases(
            ae, source, Xt, k, d, init="given" if given is not None else self.init, mini=mini, labels=given,
            codes=codes, sample=self.kmeans_sample, n_init=int(self.kmeans_n_init), seed=self.seed_,
            backend=self.kmeans_backend, min_size=min_size, repair=bool(self.init_repair), rng=self._rng, device=dev)
        with torch.no_grad():
            net.D.copy_(torch.from_numpy(D0))
        diag.update(info)
        self.init_labels_ = init_labels
        timings["init_seconds"] = time.perf_counter() - t0

        # Step 4: joint training (eq. 17)
        t0 = time.perf_counter()
        reseeder = ClusterReseeder(k=k, d=d, min_size=min_size, max_reseeds=2 * k, epochs=int(self.epochs),
                                   quiet_epochs=max(1, int(self.epochs) // 5), seed=self.seed_)
        track = _train_scdsc(
            net=net, X=Xt, flat_index=torch.from_numpy(rows * W + cols).to(dev), mask=torch.from_numpy(mask).to(dev),
            mini_index=torch.from_numpy(mini).to(dev) if mini is not None else None, local=bool(self.local),
            window=window, beta=float(self.beta), beta1=float(self.beta1), beta2=float(self.beta2),
            epochs=int(self.epochs), lr=float(self.lr), chunk_size=self.chunk_size, threshold=float(self.threshold),
            basis_norm=self.basis_norm, min_size=min_size, device=dev,
            reseeder=reseeder if self.reseed and min_size > 0 else None,
            warmup_epochs=int(self.warmup_epochs), local_ramp_epochs=int(self.local_ramp_epochs),
            stop_tol=self.stop_tol, stop_patience=int(self.stop_patience), **run)
        timings["train_seconds"] = time.perf_counter() - t0
        epochs_run = len(track["shares"])  # fewer than ``epochs`` when stop_tol ended the stage
        timings["seconds_per_epoch"] = timings["train_seconds"] / max(1, epochs_run)
        diag["reseeds"] = list(track["reseeds"])

        # The reported labels are computed exactly as ``predict`` computes them: the network in
        # eval mode, its BatchNorm statistics set to the clustered pixels' (what the full-batch
        # training steps normalised with), so ``labels_`` == ``predict(cube, mask)``.
        chunk = n if self.chunk_size is None else max(1, int(self.chunk_size))
        self.history_ = history
        recalibrate_batchnorm(net, Xt, chunk=chunk, device=dev)
        self.labels_last_ = hard_labels(net, Xt, chunk=int(self.predict_chunk))
        use_confident = self.selection == "confident" and track["best"] > 0.0
        self.labels_, self.selection_ = self.labels_last_, f"last epoch ({epochs_run})"
        if self.selection == "confident" and not use_confident:
            # no epoch had a single confident pixel: the rule cannot rank epochs
            self.selection_ += (f": no epoch had a pixel with max soft assignment > {self.threshold}, "
                                "so the confident-share rule was undefined (label-free)")
        elif use_confident:
            net.load_state_dict(track["best_state"])
            recalibrate_batchnorm(net, Xt, chunk=chunk, device=dev)
            self.labels_ = hard_labels(net, Xt, chunk=int(self.predict_chunk))
            kept = "" if track["best_ok"] or min_size == 0 else f"; no epoch kept every cluster at >= {min_size} pixels"
            self.selection_ = (
                f"epoch {track['best_epoch'] + 1} of {epochs_run}: largest share "
                f"({track['best']:.4f}) of pixels with max soft assignment > {self.threshold}"
                + (f" among epochs with every cluster >= {min_size} pixels" if min_size else "")
                + f" (label-free, the authors' rule{kept}); last-epoch labels in extra_labels_['last_epoch']"
            )
        self.extra_labels_ = {"last_epoch": self.labels_last_, "initial": init_labels}
        self.model_, self.mask_, self.cube_shape_, self._cube = net, mask, X.shape, X
        self.diagnostics_ = {
            **diag, **{k_: round(v, 4) for k_, v in timings.items()},
            "selected_epoch": int(track["best_epoch"]) + 1 if use_confident else epochs_run,
            "epochs_run": epochs_run, "stopped_early": bool(track.get("stopped_at")),
            **{f"label_change_{key}": [round(c, 5) for c in track[name] if c is not None]
               for key, name in (("per_epoch", "changes"), ("over_window", "window_changes"))},
            "selected_epoch_all_clusters_kept": bool(track["best_ok"]),
            "confident_share_selected": float(track["best"]), "confident_share_last": float(track["shares"][-1]),
            "n_pixels": int(rows.shape[0]), "latent_dim": int(ae.latent_dim),
        }

    # -- prediction ------------------------------------------------------------------------
    @torch.no_grad()
    def _predict(self, X: np.ndarray, mask=None) -> np.ndarray:
        """Labels of the masked pixels (default: all), ``predict_chunk`` pixels at a time.

        The cube is reduced tile by tile to its C PCA bands and padded once; each chunk gathers
        its patches, runs the network and keeps only the argmax, so memory is O(N) labels +
        O(chunk) patches and soft assignments: never all patches or the (N, k) matrix.
        """
        H, W, _ = X.shape
        mask = check_mask(mask, (H, W))
        chunk = int(self.predict_chunk)
        if chunk < 1:
            raise ValueError(f"predict_chunk must be a positive number of pixels, got {chunk}")
        rows, cols = np.nonzero(mask)
        pca_cube = self.preprocessor_.transform(X)  # (H, W, C)
        source = ScenePatches(pca_cube, rows, cols, int(self.patch), self.patch_mean_, self.patch_scale_,
                              device=self.device_)
        return hard_labels(self.model_, source, chunk=chunk)

    def predict_scene(self, X=None) -> np.ndarray:
        """The full (H, W) cluster map of ``X`` (default: the fitted cube), every pixel labelled."""
        cube = getattr(self, "_cube", None) if X is None else X  # predict raises NotFittedError first
        return self.predict(cube).reshape(np.shape(cube)[:2])
