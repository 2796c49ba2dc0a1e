"""TDEC: Transformer-based deep embedded clustering with a density-peak clustering head.

Paper: ``shared/papers/002_c764a4a1ec066737.txt`` (sections 3.1-3.3, Algorithm 1, sec. 4, Table 4,
Appendix A). Equation -> code:

* eq. 1 (post-norm Transformer block) ........ ``deepclust.nn.transformer_ae.TransformerBlock``
* eqs. 2-4 (density, delta, gamma; centres) .. ``deepclust.cluster.density_peaks.density_peaks``
* eqs. 5-6 (neighbour-weighted Student-t) .... ``deepclust.cluster.density_peaks``
  ``.neighbor_assignment``
* eq. 7 (target P, KL clustering loss) ........ ``deepclust.losses.dec`` (``target_distribution``,
  ``kl_divergence``), used in :func:`_train_tdec` ``step``
* eq. 8 (reconstruction) ...................... :func:`_rec_loss`
* eqs. 9-11 (t-SNE dimension-reduction loss) .. ``deepclust.losses.tsne.dim_reduction_loss``
* eqs. 12-13 (L_stru, L) ....................... :func:`_train_tdec` ``step``
* Algorithm 1 .................................. :func:`_train_tdec` (``refresh`` = lines 3-9)

Choices the paper leaves open (stated, not hidden):

* Algorithm 1 recomputes all embeddings, the density peaks and the assignments before *every*
  mini-batch; that is a full pass per step. We refresh every ``update_interval`` mini-batches
  (default: once per epoch); ``update_interval=1`` is the literal algorithm.
* During a mini-batch step, eq. 6 needs the embeddings of each sample's k neighbours. We take the
  neighbour lists and their embeddings from the last refresh (a detached memory bank; forwarding
  all k = 50 neighbours of every sample would cost 50 times more). ``neighbor_mode="anchored"``
  (default) moves that neighbourhood rigidly with the sample's current embedding, so the
  gradient flows through the Student-t kernels; ``"bank"`` keeps the neighbours fixed and lets
  the gradient flow through eq. 5's weights only (singular for near neighbours). See the
  ``neighbor_mode`` parameter.
* Refreshes and the final labels use the clean images (Algorithm 1 line 3 writes x-tilde; random
  augmentation would make the labels random); training steps use augmented ones.
* The feature-space affinities Phi (eq. 11) are computed without gradient, as t-SNE's fixed input
  affinities; the perplexity (not given) defaults to 30, capped at (batch - 1) / 3.
* ``L_rec`` (eq. 8) is the squared error summed over pixels, averaged over the batch; ``L_clu``
  (eq. 7) is averaged over the batch (a sum over a batch of 256 would weigh it 256 times more).
* Follow-up (``docs/methods/tdec.md``, "The clustering space"): ``dr_epochs`` fits the
  DR block alone on L_dim over the fixed pretrained clean features (Algorithm 1 line 1 over v;
  L_rec does not depend on v); ``clu_to_dr=False`` keeps L_clu's gradient out of the DR weights
  (it still reaches the encoder through the DR map) — a deviation from line 11, used by the
  ``fast`` preset, off by default and in ``paper``; ``dr_lr`` and ``rec_reduction`` are
  experiment switches (defaults = the behaviour above). ``dr_batch_size``, ``dr_perplexity``,
  ``dr_exaggeration`` / ``dr_exaggeration_epochs`` make that stage a better t-SNE (large or
  whole-set batches, t-SNE's early exaggeration); off by default and in ``paper``.
* Pretraining runs ``pretrain_epochs`` (the paper's fixed budget) unless ``pretrain_tol`` is
  set: then it stops once the reconstruction error has plateaued (label-free, ``fast``).
* The stopping threshold epsilon is not given: ``tol = 0.001`` as in IDEC. Line 7 compares
  the label assignments of two refreshes as partitions (:func:`_label_change`: the share of
  points that changed cluster after the best one-to-one matching of the two label sets), since
  the density peaks are numbered by decreasing gamma and may be renumbered at any refresh.
* Line 4 re-picks the density peaks at every refresh. ``track_centers=True`` (default, ``fast``)
  renumbers the new clusters to match the previous refresh's (:func:`_match_to_previous`), so a
  cluster keeps its number; ``paper`` keeps the density-peak order (the losses and the stop
  test do not depend on the numbering).
* Eqs. 5-6 take each point's k nearest *other* points, in the fit and in :meth:`TDEC.predict`
  (a sample whose embedding is a training embedding is left out of its own neighbours), so
  ``predict(X_train)`` reproduces ``labels_``.
* Images whose patch size H/4 is odd or fractional are resized (bilinear) to the next multiple of
  8 (Appendix A: 28x28 -> 32x32).

Ablations of Table 4 are constructor switches: ``transformer=False`` (ST off: the same
encoding/decoding layers on flattened pixels), ``clustering_head=False`` (CH off: Student-t to
learnable centres initialised by k-means, as IDEC), ``dim_reduction=False`` (DR off: cluster in
the m = 10-D feature space, no ``L_dim``). 2-D input (n_samples, n_features) is the paper's
vector mode (STL-10 features, Reuters): the MLP encoder, no augmentation.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepclust import distributed as ddp
from deepclust.base import DeepClusterer
from deepclust.cluster.density_peaks import (
    density_peaks,
    knn_indices,
    knn_query,
    neighbor_assignment,
)
from deepclust.losses.dec import kl_divergence, student_t_assignment, target_distribution
from deepclust.losses.tsne import capped_perplexity, dim_reduction_loss, dim_reduction_terms, joint_gaussian_affinity
from deepclust.metrics import acc, match_labels
from deepclust.nn.mlp_ae import mlp
from deepclust.nn.transformer_ae import MLPImageAE, TransformerAE
from deepclust.stopping import plateau_rule
from deepclust.training import History, fit_loop, minibatches, pack_state, unpack_state

__all__ = ["TDEC", "TDECNet", "augment", "target_size", "DR_BATCH_MAX"]

#: Largest ``dr_batch_size``: L_dim holds dense (B, B) affinities (float64 while the input
#: affinities are calibrated, several of them at once: about 0.5 GiB each at B = 8192).
DR_BATCH_MAX = 8192


class TDECNet(nn.Module):
    """Autoencoder (T-Encoder/T-Decoder or MLP) plus the Dim-Reduction block (optional)."""

    def __init__(self, ae: nn.Module, dim_reduction: nn.Module | None):
        super().__init__()
        self.ae = ae
        self.dr = dim_reduction
        self.centers: nn.Parameter | None = None  # only when the clustering head is off

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x -> ``(z_w (B, m), z_v (B, 2))``; ``z_v = z_w`` without the Dim-Reduction block."""
        z_w = self.ae.forward_features(x)
        z_v = self.dr(z_w) if self.dr is not None else z_w
        return z_w, z_v

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x -> ``(z_w, z_v, x_rec)``."""
        z_w, z_v = self.forward_features(x)
        return z_w, z_v, self.ae.decode(z_w)


def target_size(h: int, w: int) -> tuple[int, int]:
    """Appendix A: an image whose patch (H/4, W/4) is not an even integer is resized to the next
    multiple of 8 in that dimension (28 -> 32; 8, 16, 32, 64 unchanged)."""
    return (math.ceil(h / 8) * 8, math.ceil(w / 8) * 8)


def augment(
    x: torch.Tensor, generator: torch.Generator, *, max_rotation: float = 10.0,
    max_shift: float = 0.1,
) -> torch.Tensor:
    """Random rotation up to ``max_rotation`` degrees and shift up to ``max_shift * H`` pixels
    (Appendix A), drawn from the local ``generator`` and applied with kornia's ``warp_affine``."""
    from kornia.geometry.transform import get_rotation_matrix2d, warp_affine

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


def _rec_loss(rec: torch.Tensor, x: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """Eq. 8: squared error summed over each sample's pixels (``"sum"``) or averaged over them
    (``"mean"``, Keras/PyTorch ``mse``), then averaged over the batch."""
    err = (rec - x).pow(2).flatten(1)  # (B, d)
    return (err.sum(1) if reduction == "sum" else err.mean(1)).mean()


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


def _features_all(net: TDECNet, X: torch.Tensor):
    """:func:`_features` of all of ``X``; under a process group each rank computes its shard and
    the shards are gathered in the original order (every rank gets all rows)."""
    if ddp.world_size() == 1:
        return _features(net, X)
    a, b = ddp.shard_range(len(X))
    z_w, z_v = _features(net, X[a:b])
    return ddp.gather_rows(z_w), ddp.gather_rows(z_v)


def _label_change(previous: np.ndarray, labels: np.ndarray) -> float:
    """Algorithm 1 line 7, ``sum(Y' != Y) / n``, between two *partitions*: the share of points
    whose cluster changed after the best one-to-one matching of the two label sets (Hungarian
    matching on their contingency table, as in :func:`deepclust.metrics.acc`). A renumbering of
    the clusters is no change; the density-peak head numbers its clusters by decreasing gamma,
    which may reorder them at every refresh without moving a point."""
    return 1.0 - acc(previous, labels)


def _match_to_previous(previous: np.ndarray, labels: np.ndarray, n_clusters: int) -> np.ndarray:
    """The order ``(K,)`` that gives the new clusters the identities of the previous ones:
    new cluster ``order[j]`` becomes cluster j. ``order`` is the Hungarian matching of the new
    partition to the previous one that maximises their agreement
    (:func:`deepclust.metrics.match_labels`); clusters left unmatched (empty in one of the two
    partitions) are paired in increasing order. Relabel with ``q[:, order]``, ``centers[order]``.
    """
    mapping = match_labels(previous, labels)  # {new cluster: previous cluster}
    order = np.full(n_clusters, -1, dtype=np.int64)
    for new, old in mapping.items():
        order[old] = new
    free_new = [t for t in range(n_clusters) if t not in mapping]
    order[order < 0] = free_new  # as many free identities as free new clusters
    return order


def _neighbor_q(z: torch.Tensor, bank: torch.Tensor, knn: torch.Tensor, centers: torch.Tensor,
                chunk: int = 8192) -> torch.Tensor:
    """Eqs. 5-6 for the rows of ``z`` with neighbours ``bank[knn]``, in chunks of rows (the
    refresh and :meth:`TDEC.predict` use this same function, so they agree exactly)."""
    with torch.no_grad():
        return torch.cat([
            neighbor_assignment(z[i : i + chunk], bank[knn[i : i + chunk]], centers)
            for i in range(0, len(z), chunk)
        ])


def _head_assign(z_v: torch.Tensor, n_clusters: int, *, n_neighbors: int, neighbor_rate: float,
                 seed: int, previous: np.ndarray | None = None, chunk: int = 8192) -> dict:
    """Clustering head over the whole set: density-peak centres (eqs. 2-4), kNN lists and the
    neighbour-weighted assignments (eqs. 5-6). Under a process group the density peaks and kNN
    lists are computed on rank 0 and broadcast (``z_v`` is the same on every rank).

    ``previous`` (labels of the last refresh): the centres are reordered so that each new
    cluster keeps the identity of the previous cluster it matches best
    (:func:`_match_to_previous`, on rank 0, broadcast); None keeps the density-peak order
    (decreasing gamma)."""
    Z = z_v.detach().cpu().double().numpy()
    k = int(min(n_neighbors, len(Z) - 1))

    def peaks_and_knn():
        dp = density_peaks(Z, n_clusters, neighbor_rate=neighbor_rate, random_state=seed)
        return dp.centers, knn_indices(Z, k), np.asarray(dp.dc, dtype=np.float64)

    center_index, knn_np, dc = ddp.run_on_rank0(peaks_and_knn)
    knn = torch.from_numpy(knn_np).to(z_v.device)  # (n, k)
    centers = z_v[torch.from_numpy(center_index).to(z_v.device)]  # (K, c)
    q = _neighbor_q(z_v, z_v, knn, centers, chunk)
    if previous is not None:
        labels = q.argmax(1).cpu().numpy()
        order = ddp.run_on_rank0(lambda: _match_to_previous(previous, labels, n_clusters))
        center_index = center_index[order]
        order_t = torch.from_numpy(order).to(z_v.device)
        centers, q = centers[order_t], q[:, order_t]
    return {"q": q, "centers": centers, "knn": knn, "bank": z_v.detach().clone(), "dc": float(dc),
            "center_index": center_index}


def _train_tdec(
    *,
    X: torch.Tensor,
    net: TDECNet,
    n_clusters: int,
    clustering_head: bool,
    use_dim_loss: bool,
    use_augment: bool,
    alpha: float,
    beta: float,
    perplexity: float,
    n_neighbors: int,
    neighbor_rate: float,
    neighbor_mode: str,
    track_centers: bool = True,
    rec_reduction: str = "sum",
    clu_to_dr: bool = True,
    dr_lr: float | None = None,
    dr_fit_lr: float | None = None,
    dr_fixed_batches: bool = False,
    dim_loss_in_clustering: bool = True,
    dr_epochs: int = 0,
    dr_batch_size: int | None = None,
    dr_perplexity: float | None = None,
    dr_exaggeration: float = 1.0,
    dr_exaggeration_epochs: int = 0,
    pretrain_epochs: int,
    pretrain_tol: float | None = None,
    pretrain_patience: int = 10,
    epochs: int,
    lr: float,
    batch_size: int,
    update_interval: int | None,
    tol: float,
    max_rotation: float,
    max_shift: float,
    seed: int,
    generator: torch.Generator,
    verbose: bool,
    checkpoint_path: str | None = None,
    resume: bool = False,
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
            x = augment(x, generator, max_rotation=max_rotation, max_shift=max_shift)
        return x

    def structure_loss(x: torch.Tensor, with_dim: bool = True) -> tuple[torch.Tensor, dict]:
        z_w, z_v, rec = net(x)
        l_rec = _rec_loss(rec, x, rec_reduction)  # eq. 8
        terms = {"rec": l_rec}
        # distributed: per-sample terms weighted to this rank's share of the union-batch mean
        w = ddp.shard_weight(len(x)) if distributed else None
        loss = l_rec * w if distributed else l_rec
        if use_dim_loss and with_dim:
            if distributed:  # the affinities of eqs. 9-11 over the global batch (gathered with grad)
                l_dim = dim_reduction_loss(ddp.all_gather_with_grad(z_w), ddp.all_gather_with_grad(z_v),
                                           perplexity).to(l_rec.dtype)
            else:
                l_dim = dim_reduction_loss(z_w, z_v, perplexity).to(l_rec.dtype)  # eqs. 9-11
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
        terms.pop("z_v")
        terms.pop("z_w")
        terms.pop("w")
        return {"loss": loss, **terms}

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

    dr_batch = int(dr_batch_size) if dr_batch_size is not None else batch_size
    dr_perp = float(dr_perplexity) if dr_perplexity is not None else perplexity
    dr_full = n <= dr_batch  # one step per epoch, over the whole set
    dr_fixed = bool(dr_fixed_batches) and not dr_full
    if dr_epochs > 0 and net.dr is not None and use_dim_loss:
        # Algorithm 1 line 1 minimises L_stru over (w, u, v); L_rec does not depend on v, so
        # with the pretrained encoder fixed, minimising L_stru over v is minimising L_dim over v
        # (eqs. 9-11). This block-coordinate step finishes that minimisation cheaply: the
        # features of the clean images are computed once, only the small DR MLP is trained.
        # dr_batch_size >= n: every step is the whole set, whose input affinities (eq. 11 over
        # the fixed features) are computed once (the step does not depend on the batch's order).
        feats: dict[str, torch.Tensor] = {}  # computed once (not on a skipped resume)
        dr_state = {"exaggeration": 1.0}

        def dr_epoch_start(epoch: int) -> None:  # t-SNE's early exaggeration: the first epochs
            dr_state["exaggeration"] = dr_exaggeration if epoch < dr_exaggeration_epochs else 1.0

        def dr_step(idx: torch.Tensor) -> dict[str, torch.Tensor]:
            if "z_w" not in feats:
                feats["z_w"] = _features(net, X)[0]  # (n, m), no gradient
                if dr_full:
                    feats["phi"] = joint_gaussian_affinity(
                        feats["z_w"], capped_perplexity(n, dr_perp)).to(feats["z_w"].dtype)
            if dr_full:  # the whole set: L_dim does not depend on the order of the points
                zw, phi = feats["z_w"], feats["phi"]
            elif dr_fixed:  # (part number, rows): that part's input affinities, computed once
                j, rows = idx
                zw = feats["z_w"][rows.to(device)]
                if j not in feats["parts_phi"]:
                    feats["parts_phi"][j] = joint_gaussian_affinity(
                        zw, capped_perplexity(len(rows), dr_perp)).to(zw.dtype)
                phi = feats["parts_phi"][j]
            else:
                zw, phi = feats["z_w"][idx.to(device)], None
            obj, l_dim = dim_reduction_terms(zw, net.dr(zw), dr_perp, phi=phi,
                                             exaggeration=dr_state["exaggeration"])  # eqs. 9-11
            return {"loss": obj, "dim": l_dim}

        if dr_fixed:
            # one seeded partition into near-equal parts, the same in every epoch (and on resume):
            # each part is a random subsample whose eq. 11 affinities are computed once, so a
            # step costs the DR MLP and the (B, B) Student-t terms only (O(n B) memory in all)
            n_parts = math.ceil(n / dr_batch)
            perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
            parts = [perm[j::n_parts] for j in range(n_parts)]
            feats["parts_phi"] = {}

            def dr_batches(epoch: int):
                for j in torch.randperm(n_parts, generator=generator).tolist():
                    yield j, parts[j]
        else:
            def dr_batches(epoch: int):
                return minibatches(n, dr_batch, generator=generator)

        fit_rate = dr_fit_lr if dr_fit_lr is not None else (dr_lr if dr_lr is not None else lr)
        opt_dr = torch.optim.Adam(net.dr.parameters(), lr=fit_rate)
        fit_loop(model=net, optimizer=opt_dr, step=dr_step, epochs=int(dr_epochs), stage="dr_fit",
                 batches=dr_batches,
                 on_epoch_start=dr_epoch_start, history=history, generator=generator, verbose=verbose,
                 # whole-set epochs are single steps (hundreds of them): a checkpoint every ~2 %
                 checkpoint_path=checkpoint_path, resume=resume,
                 checkpoint_every=max(1, int(dr_epochs) // 50) if checkpoint_path else 0)

    if not clustering_head:  # CH off: learnable centres initialised by k-means, as IDEC
        from sklearn.cluster import KMeans

        _, zv0 = _features_all(net, X)
        c0 = torch.from_numpy(ddp.run_on_rank0(  # rank 0's k-means on every rank
            lambda: KMeans(n_clusters=n_clusters, n_init=20, random_state=seed)
            .fit(zv0.cpu().numpy()).cluster_centers_.astype(np.float32)))
        net.centers = nn.Parameter(c0.to(device))

    state: dict = {"step": 0, "n_refresh": 0, "labels": None, "delta": 1.0, "converged": False}

    def refresh(final: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Algorithm 1 lines 3-9: all clustering features, centres, assignments, stop test.

        ``final`` (line 14): every rank computes all features itself, with the same function
        as :meth:`TDEC.predict` (so ``predict`` on the training set reproduces the labels), and
        the stop test is left as it was. Returns the features ``(z_w, z_v)``."""
        z_w, z_v = _features(net, X) if final else _features_all(net, X)  # line 3
        previous = state["labels"]
        if clustering_head:
            head = _head_assign(z_v, n_clusters, n_neighbors=n_neighbors,
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
                lambda: np.array([_label_change(previous, labels)]))[0])
            state["converged"] = state["delta"] < tol  # as DEC; tol=0 never stops
        state["labels"] = labels
        state["n_refresh"] += 1
        return z_w, z_v

    n_batches = n // batch_size if drop_last else math.ceil(n / batch_size)
    interval = int(update_interval or n_batches)
    max_iter = epochs * n_batches

    def batches(epoch: int) -> Iterator[torch.Tensor]:
        for idx in minibatches(n, batch_size, generator=generator, drop_last=drop_last, shard=True):  # line 10
            if state["step"] >= max_iter:
                return
            if state["step"] % interval == 0:
                refresh()
                if state["converged"]:
                    return
            state["step"] += 1
            yield idx

    def step(idx: torch.Tensor) -> dict[str, torch.Tensor]:  # line 11
        idx_d = idx.to(device)
        l_stru, terms = structure_loss(view(idx), with_dim=dim_loss_in_clustering)
        z_v = terms.pop("z_v")
        z_w = terms.pop("z_w")
        w = terms.pop("w")
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

    if epochs > 0:
        opt = make_opt()
        fit_loop(model=net, optimizer=opt, step=step, epochs=epochs, stage="cluster",
                 batches=batches, history=history, generator=generator, verbose=verbose,
                 on_epoch_end=lambda e, m: state["converged"] or state["step"] >= max_iter,
                 checkpoint_path=checkpoint_path, checkpoint_every=1 if checkpoint_path else 0, resume=resume,
                 # the refresh state (step count, targets, centres, last labels) resumes with the model
                 extra_state=lambda: {"state": pack_state(state)},
                 load_extra_state=lambda extra: state.update(unpack_state(extra["state"])))

    # -- line 14: forward pass for the final labels -----------------------------------------
    steps_done = state["step"]
    converged = state["converged"]
    z_w, z_v = refresh(final=True)
    dr_dims = history.stages.get("dr_fit", {}).get("dim", [])
    dr = {"dr_batch_size": min(dr_batch, n), "dr_full_batch": dr_full,
          "dr_perplexity": capped_perplexity(min(dr_batch, n), dr_perp),
          "dr_exaggeration_epochs_run": min(int(dr_exaggeration_epochs), len(dr_dims))
          if dr_exaggeration != 1.0 else 0,
          "dr_epochs_run": len(dr_dims), "dr_dim_final": dr_dims[-1] if dr_dims else None}
    if net.dr is not None and n >= 4:
        # label-free check of the final map: L_dim (eqs. 9-11, perplexity 30 capped) over the whole
        # set, or over a seeded sample of 2048 points, of the final pass's clean features
        rows = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))[:2048].to(z_w.device)
        with torch.no_grad():
            dr["map_dim_end"] = float(dim_reduction_loss(z_w[rows].double(), z_v[rows].double(), 30.0))
    return {"state": state, "history": history, "n_iter": steps_done, "converged": converged,
            "z_v": z_v, "pretrain_epochs_run": history.epochs("pretrain"), "dr": dr}


class TDEC(DeepClusterer):
    """TDEC (Transformer-based Deep Embedded Clustering with distribution information).

    Parameters
    ----------
    n_clusters : int
        K.
    transformer, clustering_head, dim_reduction : bool, default True
        Table 4 ablation switches (ST, CH, DR); all off is IDEC-like.
    embed_dim : int or None
        Patch-embedding size E; None: max(C * (H/4) * (W/4), 32) (a patch's pixel count, at
        least 32: a LayerNorm over the 4 pixels of an 8x8 image's patch loses too much).
    depth, decoder_depth : int, default 4, 1
        N1 and N2 Transformer blocks.
    n_heads : int or None
        Attention heads (None: see ``deepclust.nn.transformer_ae.default_heads``).
    mlp_ratio : float, default 4.0
    hidden_dims : tuple, default (512, 512, 3072)
        Encoding layer [d-512-512-3072-m]; the decoding layer mirrors it.
    latent_dim : int, default 10
        m, the feature space.
    dr_dims : tuple, default (50, 50, 100)
        Dim-Reduction block [m-50-50-100-c].
    cluster_dim : int, default 2
        c, the clustering space.
    alpha, beta : float, default 0.1, 0.001
        Weights of L_clu (eq. 13) and L_dim (eq. 12).
    perplexity : float, default 30
        Of the feature-space affinities (eq. 11), capped at (batch - 1) / 3.
    n_neighbors : int, default 50
        k of eqs. 5-6.
    neighbor_rate : float, default 0.02
        dc such that the average neighbour count is this share of n (eq. 2).
    neighbor_mode : {"anchored", "bank"}, default "anchored"
        How eq. 6 is differentiated in a mini-batch step (the paper does not say). Both take the
        kNN lists and neighbour embeddings from the last refresh. ``"bank"``: the neighbours stay
        where they were and only eq. 5's weights depend on the current z_i (gradients through
        ``1/||z_s - z_i||^2``, singular for close neighbours; on Digits it blew up the
        clustering space). ``"anchored"``: the neighbourhood keeps its shape (offsets
        ``z_s - z_i`` from the refresh) and moves with the current z_i, so the kernel terms carry
        the gradient; at a refresh both equal eq. 6 exactly.
    track_centers : bool, default True
        Keep each cluster's identity across refreshes. Every refresh re-picks the density peaks
        (Algorithm 1 line 4), numbered by decreasing gamma; with True the new clusters are
        matched to the previous refresh's (Hungarian matching of the two partitions) and
        renumbered, so that cluster j means the same cluster in every refresh's labels,
        centres, target P and in ``labels_``. False keeps the density-peak numbering (the
        ``paper`` preset). The losses do not depend on it (Q and P are permuted together) and
        neither does the stop test (which compares partitions); ignored with
        ``clustering_head=False``, whose learnable centres keep their identity.
    rec_reduction : {"sum", "mean"}, default "sum"
        Eq. 8 sums the squared error over pixels (``"sum"``); ``"mean"`` averages it (an
        experiment switch; it lets L_clu dominate the encoder).
    clu_to_dr : bool, default True
        Whether L_clu's gradient updates the Dim-Reduction weights (True: Algorithm 1 line 11).
        False: L_clu reaches the encoder through a frozen copy of the DR map and the DR block is
        trained by L_dim alone (the ``fast`` preset; see docs/methods/tdec.md).
    dr_lr : float or None, default None
        Adam learning rate of the DR block (None: ``lr``).
    dim_loss_in_clustering : bool, default True
        Whether the clustering stage keeps L_dim in its loss (eq. 13, True: Algorithm 1 line 11).
        False (``fast``): that stage minimises L_rec + alpha L_clu only; with ``clu_to_dr=False``
        the DR block then keeps the map the DR-only fit made (whose whole-set t-SNE objective the
        clustering stage's small-batch L_dim otherwise undoes: Digits, seed 0, 0.83 -> 1.51).
    dr_fixed_batches : bool, default False
        ``dr_fit`` with ``dr_batch_size`` < n: True splits the set once (seeded) into near-equal
        parts of at most ``dr_batch_size`` points, visited in a new order every epoch, and
        computes each part's input affinities (eq. 11) once; False draws new batches every epoch
        (and their affinities every step).
    dr_fit_lr : float or None, default None
        Adam learning rate of the DR-only stage ``dr_fit`` alone (None: ``dr_lr``, else ``lr``).
        That stage minimises L_dim only, so its rate is chosen by the t-SNE objective it reaches
        (label-free; see ``deepclust/presets/tdec.py``).
    dr_epochs : int, default 0
        Epochs of DR-only training on L_dim over the fixed clean features after pretraining
        (stage ``"dr_fit"``, a parametric t-SNE of the features). The four switches below act on
        this stage only; their defaults keep it as it was.
    dr_batch_size : int or None, default None
        Mini-batch of the DR fit (None: ``batch_size``). L_dim compares the affinities within a
        batch, so a larger batch is a better t-SNE of the whole set; with ``dr_batch_size >= n``
        every step is the whole set and its input affinities (eq. 11) are computed once (the
        features are fixed). At most ``DR_BATCH_MAX`` = 8192: the affinities are dense (B, B)
        matrices (a larger set is fitted in batches of that size, never n x n).
    dr_perplexity : float or None, default None
        Perplexity of eq. 11 in the DR fit (None: ``perplexity``), capped at (B - 1) / 3.
    dr_exaggeration : float, default 1.0
        t-SNE's early exaggeration in the DR fit: for the first ``dr_exaggeration_epochs``
        epochs the input affinities are multiplied by this factor in L_dim's attraction term
        (gradient ``4 sum_j (a phi_ij - omega_ij)(1 + d_ij^2)^-1 (v_i - v_j)``, see
        ``deepclust.losses.tsne.tsne_kl``), which lets the clusters form before they are
        spread. 1.0: off. The history's ``"dim"`` is always the plain L_dim (eq. 9); ``"loss"``
        is the exaggerated objective during those epochs.
    dr_exaggeration_epochs : int, default 0
        Number of exaggerated DR epochs (t-SNE: the first quarter of the iterations). With
        ``dr_exaggeration_epochs >= dr_epochs`` every DR epoch is exaggerated (a warning says so).
    pretrain_epochs, epochs : int, default 200, 500
        Pretraining on L_stru, then the clustering stage (Algorithm 1's MaxIter = epochs x
        batches per epoch). ``pretrain_epochs`` is a cap when ``pretrain_tol`` is set.
    pretrain_tol : float or None, default None
        Label-free end of pretraining: stop once ``pretrain_patience`` epochs in a row lowered
        the best epoch-mean L_rec by less than this share
        (:func:`deepclust.stopping.plateau_reached`; it reads the training history only). None:
        run all ``pretrain_epochs`` (the paper's fixed budget). ``diagnostics_``
        records ``pretrain_epochs_run``.
    pretrain_patience : int, default 10
    lr : float, default 0.01
        Adam learning rate.
    batch_size : int, default 256
    update_interval : int or None
        Mini-batches between refreshes of centres and targets (None: once per epoch).
    tol : float, default 0.001
        Stop when less than this share of points changed cluster between refreshes (compared as
        partitions: after the best one-to-one matching of the two refreshes' clusters); 0 never
        stops (all ``epochs`` run), as in DEC.
    augment : bool, default True
        Rotation up to ``max_rotation`` degrees and shifts up to ``max_shift * H`` pixels.
    max_rotation, max_shift : float, default 10, 0.1
    checkpoint_path : str or None
        Checkpoint file written after every epoch of both stages (None: no checkpoints).
    resume : bool, default False
        Continue an interrupted fit from ``checkpoint_path`` (same data and parameters).
    random_state, device, verbose
    precision : {"fp32", "bf16", "auto"}, default "fp32"
        bf16 autocast of the training steps on CUDA ("auto": where supported); fp32 on the CPU.
        As everywhere in deepclust.

    Attributes
    ----------
    labels_, embedding_ (n, c) clustering-space coordinates, cluster_centers_ (K, c),
    center_indices_ (K,) density-peak samples, history_, model_, selection_, diagnostics_.
    ``diagnostics_`` holds ``pretrain_epochs_run`` and, after a DR fit, ``dr_epochs_run``,
    ``dr_batch_size``, ``dr_full_batch``, ``dr_perplexity`` (as used, after the cap),
    ``dr_exaggeration_epochs_run`` and ``dr_dim_final`` (the last DR epoch's mean L_dim; with
    ``dr_full_batch`` the whole-set KL of the map).
    ``labels_`` and ``embedding_`` come from the final forward pass (Algorithm 1 line 14), made
    with the same function as :meth:`predict`, and ``predict`` leaves a sample whose embedding
    equals a training embedding out of its own neighbours, as the fit does: on the fitting
    device ``predict(X_train)`` equals ``labels_``.
    """

    input_kind = "images"

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        transformer: bool = True,
        clustering_head: bool = True,
        dim_reduction: bool = True,
        embed_dim: int | None = None,
        depth: int = 4,
        decoder_depth: int = 1,
        n_heads: int | None = None,
        mlp_ratio: float = 4.0,
        hidden_dims: tuple[int, ...] = (512, 512, 3072),
        latent_dim: int = 10,
        dr_dims: tuple[int, ...] = (50, 50, 100),
        cluster_dim: int = 2,
        alpha: float = 0.1,
        beta: float = 0.001,
        perplexity: float = 30.0,
        n_neighbors: int = 50,
        neighbor_rate: float = 0.02,
        neighbor_mode: str = "anchored",
        track_centers: bool = True,
        rec_reduction: str = "sum",
        clu_to_dr: bool = True,
        dr_lr: float | None = None,
        dr_fit_lr: float | None = None,
        dr_fixed_batches: bool = False,
        dim_loss_in_clustering: bool = True,
        dr_epochs: int = 0,
        dr_batch_size: int | None = None,
        dr_perplexity: float | None = None,
        dr_exaggeration: float = 1.0,
        dr_exaggeration_epochs: int = 0,
        pretrain_epochs: int = 200,
        pretrain_tol: float | None = None,
        pretrain_patience: int = 10,
        epochs: int = 500,
        lr: float = 0.01,
        batch_size: int = 256,
        update_interval: int | None = None,
        tol: float = 0.001,
        augment: bool = True,
        max_rotation: float = 10.0,
        max_shift: float = 0.1,
        checkpoint_path: str | None = None,
        resume: bool = False,
        random_state: int | None = None,
        device: str = "auto",
        precision: str = "fp32",
        verbose: bool = False,
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
        for name in ("decoder_depth", "pretrain_epochs", "epochs", "dr_epochs", "dr_exaggeration_epochs"):
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
            raise ValueError(
                f"neighbor_mode must be 'anchored' or 'bank', got {self.neighbor_mode!r}"
            )
        if not isinstance(self.track_centers, (bool, np.bool_)):
            raise ValueError(f"track_centers must be True or False, got {self.track_centers!r}")
        if self.rec_reduction not in ("sum", "mean"):
            raise ValueError(
                f"rec_reduction must be 'sum' or 'mean', got {self.rec_reduction!r}"
            )
        if self.update_interval is not None and int(self.update_interval) < 1:
            raise ValueError(f"update_interval must be None or >= 1, got {self.update_interval!r}")
        if self.pretrain_tol is not None and not 0 <= float(self.pretrain_tol) < 1:
            raise ValueError(
                f"pretrain_tol must be in [0, 1) or None (run all pretrain_epochs), got {self.pretrain_tol!r}"
            )
        b = self.dr_batch_size
        if b is not None and (not isinstance(b, (int, np.integer)) or isinstance(b, bool) or b < 1):
            raise ValueError(f"dr_batch_size must be None (batch_size) or a positive integer, got {b!r}")
        if b is not None and b > DR_BATCH_MAX:
            raise ValueError(
                f"dr_batch_size={b} is above {DR_BATCH_MAX}: L_dim builds dense (B, B) affinity "
                f"matrices (float64 while eq. 11 is calibrated, about 0.5 GiB each at B = {DR_BATCH_MAX}, "
                "several at once), so the memory grows with the square of the batch; use at most "
                f"{DR_BATCH_MAX} (a larger set is fitted in batches of that size)"
            )
        if self.dr_perplexity is not None and not float(self.dr_perplexity) >= 1:
            raise ValueError(f"dr_perplexity must be None (perplexity) or >= 1, got {self.dr_perplexity!r}")
        if not float(self.dr_exaggeration) >= 1:
            raise ValueError(
                f"dr_exaggeration must be >= 1 (1: no early exaggeration), got {self.dr_exaggeration!r}"
            )

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
            X=Xt, net=net, n_clusters=int(self.n_clusters),
            clustering_head=bool(self.clustering_head), use_dim_loss=bool(self.dim_reduction),
            use_augment=bool(self.augment) and not self._vector_mode_, alpha=float(self.alpha),
            beta=float(self.beta), perplexity=float(self.perplexity),
            n_neighbors=int(self.n_neighbors), neighbor_rate=float(self.neighbor_rate),
            neighbor_mode=self.neighbor_mode, track_centers=bool(self.track_centers),
            rec_reduction=self.rec_reduction,
            clu_to_dr=bool(self.clu_to_dr),
            dr_lr=None if self.dr_lr is None else float(self.dr_lr),
            dr_fit_lr=None if self.dr_fit_lr is None else float(self.dr_fit_lr),
            dr_fixed_batches=bool(self.dr_fixed_batches),
            dim_loss_in_clustering=bool(self.dim_loss_in_clustering),
            dr_epochs=int(self.dr_epochs),
            dr_batch_size=None if self.dr_batch_size is None else int(self.dr_batch_size),
            dr_perplexity=None if self.dr_perplexity is None else float(self.dr_perplexity),
            dr_exaggeration=float(self.dr_exaggeration),
            dr_exaggeration_epochs=int(self.dr_exaggeration_epochs),
            pretrain_epochs=int(self.pretrain_epochs),
            pretrain_tol=None if self.pretrain_tol is None else float(self.pretrain_tol),
            pretrain_patience=int(self.pretrain_patience),
            epochs=int(self.epochs), lr=float(self.lr),
            batch_size=int(self.batch_size), update_interval=self.update_interval,
            tol=float(self.tol), max_rotation=float(self.max_rotation),
            max_shift=float(self.max_shift), seed=int(self.seed_), generator=self._torch_gen,
            verbose=bool(self.verbose), checkpoint_path=self.checkpoint_path, resume=bool(self.resume),
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
        the fitted device, the same functions). Each sample's k neighbours are the k nearest
        training embeddings (k as in the fit: ``min(n_neighbors, n - 1)``); a sample whose
        embedding coincides with a training embedding (distance exactly 0: a training sample)
        is that sample and is left out of its own neighbours, as in the fit (eq. 5 would give it
        a weight of ~1e12 and eq. 6 would collapse to its own kernel). Without the clustering
        head: the Student-t to the learnt centres."""
        Xt = self._prepare(X)  # on the fitted device
        net = self.model_.to(self.device_)
        try:
            _, z_v = _features(net, Xt)
            if not self.clustering_head:
                with torch.no_grad():
                    q = student_t_assignment(z_v, net.centers.detach())
            else:
                k = int(min(self.n_neighbors, len(self.embedding_) - 1))
                knn = knn_query(self.embedding_, z_v.detach().cpu().double().numpy(), k)
                bank = torch.from_numpy(self.embedding_).to(z_v.device)
                centers = torch.from_numpy(self.cluster_centers_).to(z_v.device)
                q = _neighbor_q(z_v, bank, torch.from_numpy(knn).to(z_v.device), centers)
        finally:
            self.model_ = net.cpu()
        return q.argmax(1).cpu().numpy().astype(np.int64)
