"""DEC (Xie et al., 2016) and IDEC (Guo et al., 2017): deep embedded clustering.

Both pretrain a d-500-500-2000-10 autoencoder on the reconstruction loss, initialise the cluster
centres by k-means in the 10-D embedding (the papers; ``init="umap"``: the mean embeddings of the
clusters UMAP + k-means finds in it, the ``fast`` preset's start), then alternate

* every ``update_interval`` mini-batches: soft assignments ``Q`` of *all* samples (DEC eq. 1,
  Student-t kernel), the sharpened target ``P`` (DEC eq. 3), the hard labels, and the stopping
  test "share of labels changed since the last refresh < tol";
* a mini-batch step on ``KL(P || Q)`` (DEC eq. 2).

DEC trains the encoder and centres on the KL alone (the decoder is dropped). IDEC keeps the
decoder and minimises ``L = L_r + gamma * L_c`` (IDEC eq. 7, gamma = 0.1), which preserves the
local structure of the embedding.

Choices the papers leave open, stated here:
* Pretraining is end to end (Adam), as in the reference Keras code TDEC's authors used for their
  DEC/IDEC numbers, not DEC's greedy layer-wise denoising stack.
* ``L_r`` is the mean squared error per element (Keras ``mse``); ``L_c`` is the KL averaged over
  the batch (Keras ``kld``).
* The reported labels are those of a final forward pass after training (the last iterate; no
  label-based selection).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.metrics import pairwise_distances_argmin

from deepclust import distributed as ddp
from deepclust.base import DeepClusterer, check_bool
from deepclust.losses.dec import kl_divergence, student_t_assignment, target_distribution
from deepclust.nn.mlp_ae import MLPAutoencoder
from deepclust.stopping import plateau_rule
from deepclust.training import History, fit_loop, fit_self_training, fused_adam, minibatches

__all__ = ["DEC", "IDEC"]


class _DECModule(torch.nn.Module):
    """Autoencoder plus the learnable cluster centres ``mu`` (K, latent_dim)."""

    def __init__(self, ae: MLPAutoencoder, n_clusters: int):
        super().__init__()
        self.ae = ae
        self.centers = torch.nn.Parameter(torch.zeros(n_clusters, ae.latent_dim))

    def forward(self, x: torch.Tensor, alpha: float = 1.0):
        """(B, d) -> ``(z (B, m), x_rec (B, d), q (B, K))``."""
        z, rec = self.ae(x)
        return z, rec, student_t_assignment(z, self.centers, alpha)


@torch.no_grad()
def _embed(model: _DECModule, X: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
    model.eval()
    f = model.ae.forward_features
    chunks = [f(X[i : i + batch_size]) for i in range(0, len(X), batch_size)]
    out = torch.cat(chunks)
    model.train()
    return out


def _embed_all(model: _DECModule, X: torch.Tensor) -> torch.Tensor:
    """Embeddings of all of ``X`` (N, m); under a process group each rank embeds its shard and the
    shards are gathered in the original order (every rank gets all N rows)."""
    return ddp.map_rows(lambda a, b: _embed(model, X[a:b]), len(X))


def _kmeans(z: np.ndarray, n_clusters: int, n_init: int, seed: int) -> tuple[np.ndarray, ...]:
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=seed).fit(z)
    return km.cluster_centers_.astype(np.float32), km.labels_.astype(np.int64)


def _umap_start(z: np.ndarray, n_clusters: int, n_init: int, seed: int) -> tuple[np.ndarray, ...]:
    """``init="umap"``: the ``umap-kmeans`` baseline (its preset: umap-learn's recommendation for
    clustering, the same for every data set) on the embedding; the centres are the mean
    embeddings of its clusters (an empty cluster, which k-means on UMAP does not leave, would be
    an error, not a guess)."""
    from deepclust.methods.umap_kmeans import cluster_means, preset_partition

    labels = np.asarray(preset_partition(z, n_clusters, seed, n_init=n_init).labels_, dtype=np.int64)
    sizes = np.bincount(labels, minlength=n_clusters)
    if (sizes == 0).any():
        raise RuntimeError(f"init='umap': UMAP + k-means left {int((sizes == 0).sum())} of {n_clusters} "
                           "clusters empty on the embedding; use init='kmeans'")
    return cluster_means(z, labels, n_clusters).astype(np.float32), labels


def _train_dec(
    *,
    X: torch.Tensor,
    n_clusters: int,
    hidden_dims: Sequence[int],
    latent_dim: int,
    alpha: float,
    gamma: float | None,
    pretrain_epochs: int,
    pretrain_lr: float,
    lr: float,
    batch_size: int,
    max_iter: int,
    update_interval: int,
    tol: float,
    n_init: int,
    seed: int,
    generator: torch.Generator,
    verbose: bool,
    checkpoint_path: str | None = None,
    resume: bool = False,
    pretrain_tol: float | None = None,
    pretrain_patience: int = 10,
    target: str = "full",
    init: str = "kmeans",
    fused: bool = True,
) -> dict:
    """Pretrain, initialise the centres (``init``) and train DEC (``gamma=None``) or IDEC (``gamma`` = weight).

    Returns a dict with the model, labels, centres, history and convergence diagnostics.
    """
    n, d = X.shape
    device = X.device
    # Weights are initialised from the seed without touching the caller's global RNG state.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _DECModule(MLPAutoencoder(d, hidden_dims, latent_dim), n_clusters).to(device)
    history = History()

    # -- stage 1: autoencoder pretraining on the reconstruction loss ------------------------
    distributed = ddp.world_size() > 1
    # a last global batch with fewer rows than ranks would leave a rank empty: drop it (never in
    # one process, where this is always False)
    drop_last = n >= batch_size and 0 < n % batch_size < ddp.world_size()

    def rec_step(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        x = X[idx.to(device)]
        _, rec = model.ae(x)
        loss = torch.nn.functional.mse_loss(rec, x)
        if distributed:  # this rank's exact share of the union-batch mean (see ddp.shard_weight)
            return {"loss": loss * ddp.shard_weight(len(idx)), "rec": loss}
        return {"loss": loss, "rec": loss}

    if pretrain_epochs > 0:
        opt = fused_adam(model.ae.parameters(), lr=pretrain_lr, fused=fused)
        fit_loop(
            model=model, optimizer=opt, step=rec_step, epochs=pretrain_epochs, stage="pretrain",
            batches=lambda e: minibatches(n, batch_size, generator=generator, drop_last=drop_last,
                                          shard=True), history=history,
            generator=generator, verbose=verbose,
            checkpoint_path=checkpoint_path, checkpoint_every=1 if checkpoint_path else 0, resume=resume,
            # pretrain_epochs is a cap: stop once the reconstruction error has plateaued (label-free)
            on_epoch_end=plateau_rule(history, "pretrain", "rec", tol=pretrain_tol, patience=pretrain_patience),
        )

    # -- stage 2: initialisation of the centres in the embedding (k-means, or UMAP + k-means) --
    z0 = _embed_all(model, X).cpu().numpy()  # all ranks' embeddings, original order
    start = _kmeans if init == "kmeans" else _umap_start
    centers, labels0 = ddp.run_on_rank0(lambda: start(z0, n_clusters, n_init, seed))  # same on all ranks
    # share of samples whose nearest centre (the partition the Student-t Q starts from) is the
    # cluster the start gave them: 1 for k-means, below 1 where UMAP's clusters are not convex
    # (scikit-learn's argmin works in memory-bounded chunks, as KMeans.predict here)
    start_agreement = float(np.mean(pairwise_distances_argmin(z0, centers) == labels0))
    with torch.no_grad():
        model.centers.copy_(torch.from_numpy(centers).to(device))

    # -- stage 3: self-training on KL(P || Q) with periodic target refresh ------------------
    state: dict = {"p": None, "labels": labels0, "step": 0, "n_refresh": 0, "delta": 1.0,
                   "converged": False}

    def refresh() -> None:
        """Q over all samples (DEC eq. 1), P (DEC eq. 3; ``target="full"`` only), labels, and the
        label-change stop test."""
        with torch.no_grad():
            q = student_t_assignment(_embed_all(model, X), model.centers, alpha)
            if target == "full":
                state["p"] = target_distribution(q)  # f_j over the whole data set
            labels = q.argmax(1).cpu().numpy()
        if state["n_refresh"] > 0:
            state["delta"] = float(np.mean(labels != state["labels"]))
            if state["delta"] < tol:
                state["converged"] = True
        state["labels"] = labels
        state["n_refresh"] += 1

    def clu_step(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        idx = idx.to(device)
        x = X[idx]
        if gamma is None:  # DEC drops the decoder: no reconstruction to compute
            z = model.ae.encode(x)
            rec, q = None, student_t_assignment(z, model.centers, alpha)
        else:
            z, rec, q = model(x, alpha)
        if target == "full":
            p = state["p"][idx]  # DEC eq. 3 with f_j over all samples, fixed between refreshes
        else:  # "batch": DEC eq. 3 on this step's Q, f_j over the (union) mini-batch
            p = target_distribution(q, counts=ddp.all_reduce_sum(q.detach().sum(0)) if distributed else None)
        kl = kl_divergence(p, q)  # DEC eq. 2
        w = ddp.shard_weight(len(idx)) if distributed else None  # exact union-batch mean
        if gamma is None:  # DEC: clustering loss only
            return {"loss": kl * w if distributed else kl, "kl": kl}
        rec_loss = torch.nn.functional.mse_loss(rec, x)
        loss = rec_loss + gamma * kl  # IDEC eq. 7
        return {"loss": loss * w if distributed else loss, "kl": kl, "rec": rec_loss}

    if gamma is None:
        params = list(model.ae.encoder.parameters()) + [model.centers]
    else:
        params = list(model.parameters())
    opt = fused_adam(params, lr=lr, fused=fused)
    n_batches = n // batch_size if drop_last else math.ceil(n / batch_size)
    epochs = max(1, math.ceil(max_iter / n_batches) + 1)
    # the refresh runs before every update_interval-th step: a converged model takes no further step
    fit_self_training(
        model=model, optimizer=opt, step=clu_step, refresh=refresh, state=state, n=n, batch_size=batch_size,
        interval=update_interval, max_iter=max_iter, epochs=epochs, drop_last=drop_last, generator=generator,
        history=history, verbose=verbose, checkpoint_path=checkpoint_path, resume=resume,
    )

    with torch.no_grad():
        z = _embed_all(model, X)
        q = student_t_assignment(z, model.centers, alpha)
    return {
        "model": model,
        "labels": ddp.broadcast_array(q.argmax(1).cpu().numpy().astype(np.int64)),  # rank 0's everywhere
        "embedding": z.cpu().numpy(),
        "centers": model.centers.detach().cpu().numpy(),
        "history": history,
        "n_iter": state["step"],
        "converged": state["converged"],
        "delta_label": state["delta"],
        "init_labels": labels0,
        "start_agreement": start_agreement,
        "pretrain_epochs_run": history.epochs("pretrain"),
    }


class DEC(DeepClusterer):
    """Deep Embedded Clustering (Xie, Girshick & Farhadi, ICML 2016).

    Parameters
    ----------
    n_clusters : int
        Number of clusters K.
    hidden_dims : tuple of int, default (500, 500, 2000)
        Encoder hidden sizes (the decoder mirrors them).
    latent_dim : int, default 10
        Embedding size.
    alpha : float, default 1.0
        Degrees of freedom of the Student-t kernel.
    pretrain_epochs : int, default 200
        Autoencoder pretraining epochs.
    pretrain_lr, lr : float, default 1e-3
        Adam learning rates of pretraining and of the clustering stage.
    batch_size : int, default 256
    max_iter : int, default 20000
        Maximum number of mini-batch updates of the clustering stage.
    update_interval : int, default 140
        Refresh the target distribution every this many mini-batches.
    tol : float, default 1e-3
        Stop when fewer than this share of labels changed between two refreshes.
    n_init : int, default 20
        k-means restarts for the centre initialisation (lowest inertia kept).
    init : {"kmeans", "umap"}, default "kmeans"
        ``"kmeans"``: the papers' start, k-means on the pretrained embedding. ``"umap"``: the
        ``umap-kmeans`` baseline on the embedding (umap-learn's clustering settings: 30
        neighbours, ``min_dist=0``, 10-D; ``n_init`` k-means restarts), and the centres the mean
        embedding of each of its clusters; a deviation (needs umap-learn). k-means in the 10-D
        embedding merges and splits classes that UMAP of the same embedding separates.
    pretrain_tol : float or None, default None
        Label-free end of pretraining: stop once ``pretrain_patience`` epochs in a row lowered the
        best epoch-mean reconstruction error by less than this share
        (:func:`deepclust.stopping.plateau_reached`); ``pretrain_epochs`` is then a cap. None: run
        all ``pretrain_epochs`` (the papers' fixed budget).
    pretrain_patience : int, default 10
    target : {"full", "batch"}, default "full"
        ``"full"``: DEC's target P over all samples, refreshed every ``update_interval`` steps
        (DEC sec. 3.1.3, the papers' reference code). ``"batch"``: P from each step's own Q, with
        the cluster frequencies f_j taken over the mini-batch, so the target follows the model at
        every step (as ClustPy's DEC/IDEC do). The label-change stop test runs every
        ``update_interval`` steps in both modes.
    fused_adam : bool, default True
        Both stages' Adam through torch's fused kernel where the device has one (the same update
        rule in one pass over the parameters, results equal to float rounding; 4x faster
        optimizer steps on the CPU, :func:`deepclust.training.fused_adam`). False: the default
        per-tensor Adam.
    random_state : int or None
    device : str, default "auto"
    precision : {"fp32", "bf16", "auto"}, default "fp32"
        bf16 autocast of the training steps on CUDA ("auto": where supported); fp32 on the CPU.
    checkpoint_path : str or None
        Checkpoint file written after every epoch of both stages (None: no checkpoints).
    resume : bool, default False
        Continue an interrupted fit from ``checkpoint_path`` (same data and parameters).
    verbose : bool, default False

    Attributes
    ----------
    labels_ : ndarray (n_samples,)
    cluster_centers_ : ndarray (K, latent_dim)
        Centres in the embedding.
    embedding_ : ndarray (n_samples, latent_dim)
    history_, model_, selection_, diagnostics_, extra_labels_ (``{init: ...}``: the start's labels)
    """

    input_kind = "vectors"

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        hidden_dims: tuple[int, ...] = (500, 500, 2000),
        latent_dim: int = 10,
        alpha: float = 1.0,
        pretrain_epochs: int = 200,
        pretrain_lr: float = 1e-3,
        lr: float = 1e-3,
        batch_size: int = 256,
        max_iter: int = 20000,
        update_interval: int = 140,
        tol: float = 1e-3,
        n_init: int = 20,
        pretrain_tol: float | None = None,
        pretrain_patience: int = 10,
        target: str = "full",
        init: str = "kmeans",
        fused_adam: bool = True,
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
        self.hidden_dims = hidden_dims
        self.latent_dim = latent_dim
        self.alpha = alpha
        self.pretrain_epochs = pretrain_epochs
        self.pretrain_lr = pretrain_lr
        self.lr = lr
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.update_interval = update_interval
        self.tol = tol
        self.n_init = n_init
        self.pretrain_tol = pretrain_tol
        self.pretrain_patience = pretrain_patience
        self.target = target
        self.init = init
        self.fused_adam = fused_adam
        self.random_state = random_state
        self.device = device
        self.precision = precision
        self.verbose = verbose

    def _check_params(self) -> None:
        for name in ("latent_dim", "batch_size", "update_interval", "n_init", "pretrain_patience"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        for name in ("pretrain_epochs", "max_iter"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
        for name in ("alpha", "pretrain_lr", "lr"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 0 <= float(self.tol) < 1:
            raise ValueError(f"tol must be in [0, 1), got {self.tol!r}")
        if self.pretrain_tol is not None and not 0 <= float(self.pretrain_tol) < 1:
            raise ValueError(
                f"pretrain_tol must be in [0, 1) or None (run all pretrain_epochs), got {self.pretrain_tol!r}"
            )
        if self.target not in ("full", "batch"):
            raise ValueError(f"target must be 'full' (DEC's refreshed whole-set target) or 'batch' "
                             f"(each mini-batch's own target), got {self.target!r}")
        if self.init not in ("kmeans", "umap"):
            raise ValueError(f"init must be 'kmeans' (the papers' start: k-means on the embedding) or 'umap' "
                             f"(UMAP + k-means on the embedding; needs umap-learn), got {self.init!r}")
        if any(int(h) < 1 for h in self.hidden_dims):
            raise ValueError(f"hidden_dims must be positive sizes, got {self.hidden_dims!r}")
        check_bool("fused_adam", self.fused_adam)

    def _gamma_value(self) -> float | None:
        return None

    def _fit(self, X: np.ndarray) -> None:
        self._check_params()
        Xt = torch.from_numpy(X).to(self.device_)
        out = _train_dec(
            X=Xt, n_clusters=int(self.n_clusters), hidden_dims=tuple(self.hidden_dims),
            latent_dim=int(self.latent_dim), alpha=float(self.alpha), gamma=self._gamma_value(),
            pretrain_epochs=int(self.pretrain_epochs), pretrain_lr=float(self.pretrain_lr),
            lr=float(self.lr), batch_size=int(self.batch_size), max_iter=int(self.max_iter),
            update_interval=int(self.update_interval), tol=float(self.tol),
            n_init=int(self.n_init), seed=int(self.seed_), generator=self._torch_gen,
            verbose=bool(self.verbose), checkpoint_path=self.checkpoint_path, resume=bool(self.resume),
            pretrain_tol=None if self.pretrain_tol is None else float(self.pretrain_tol),
            pretrain_patience=int(self.pretrain_patience), target=str(self.target), init=str(self.init),
            fused=bool(self.fused_adam),
        )
        self.model_ = out["model"].cpu()
        self.labels_ = out["labels"]
        self.cluster_centers_ = out["centers"]
        self.embedding_ = out["embedding"]
        self.history_ = out["history"]
        self.extra_labels_ = {str(self.init): out["init_labels"]}
        self.n_iter_ = int(out["n_iter"])
        stop = (
            f"label change {out['delta_label']:.4g} < tol={self.tol}" if out["converged"]
            else f"max_iter={self.max_iter} reached"
        )
        self.selection_ = f"last iterate ({stop}; label-free)"
        self.diagnostics_ = {
            "n_iter": self.n_iter_, "converged": bool(out["converged"]),
            "final_delta_label": float(out["delta_label"]),
            "pretrain_epochs_run": int(out["pretrain_epochs_run"]),
            "init": str(self.init),
            "start_nearest_centre_agreement": float(out["start_agreement"]),
        }

    def _predict(self, X: np.ndarray) -> np.ndarray:
        model = self.model_.to(self.device_)
        with torch.no_grad():
            z = _embed(model, torch.from_numpy(X).to(self.device_))
            q = student_t_assignment(z, model.centers, float(self.alpha))
        self.model_ = model.cpu()
        return q.argmax(1).cpu().numpy().astype(np.int64)


class IDEC(DEC):
    """Improved DEC (Guo, Gao, Liu & Yin, IJCAI 2017): DEC plus the autoencoder's reconstruction.

    Minimises ``L = L_r + gamma * L_c`` (IDEC eq. 7) with ``gamma = 0.1`` as in the paper, so the
    decoder keeps training and the embedding keeps the local structure. All other parameters
    are those of :class:`DEC`.

    Parameters
    ----------
    gamma : float, default 0.1
        Weight of the clustering (KL) loss relative to the reconstruction loss.
    """

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        gamma: float = 0.1,
        hidden_dims: tuple[int, ...] = (500, 500, 2000),
        latent_dim: int = 10,
        alpha: float = 1.0,
        pretrain_epochs: int = 200,
        pretrain_lr: float = 1e-3,
        lr: float = 1e-3,
        batch_size: int = 256,
        max_iter: int = 20000,
        update_interval: int = 140,
        tol: float = 1e-3,
        n_init: int = 20,
        pretrain_tol: float | None = None,
        pretrain_patience: int = 10,
        target: str = "full",
        init: str = "kmeans",
        fused_adam: bool = True,
        checkpoint_path: str | None = None,
        resume: bool = False,
        random_state: int | None = None,
        device: str = "auto",
        precision: str = "fp32",
        verbose: bool = False,
    ):
        super().__init__(
            n_clusters, hidden_dims=hidden_dims, latent_dim=latent_dim, alpha=alpha,
            pretrain_epochs=pretrain_epochs, pretrain_lr=pretrain_lr, lr=lr,
            batch_size=batch_size, max_iter=max_iter, update_interval=update_interval, tol=tol,
            n_init=n_init, pretrain_tol=pretrain_tol, pretrain_patience=pretrain_patience, target=target,
            init=init, fused_adam=fused_adam, checkpoint_path=checkpoint_path, resume=resume, random_state=random_state,
            device=device, precision=precision, verbose=verbose,
        )
        self.gamma = gamma

    def _gamma_value(self) -> float | None:
        if not float(self.gamma) > 0:
            raise ValueError(
                f"gamma must be > 0 (the weight of the clustering loss), got {self.gamma!r}"
            )
        return float(self.gamma)
