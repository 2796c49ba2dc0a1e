"""RECAL (Saha & Mukhopadhyay): a CNN classifier trained by entropy, and patch segmentation.

A VGG16-BN feature stack (``deepclust.nn.vgg``) with the paper's classification layers (one
fully connected layer, BatchNorm, ReLU) and a K-way softmax (eq. 2) is trained with SGD on
eq. 3, ``L = lambda * H_Phi - H_Psi`` (``deepclust.losses.recal``), optionally over virtual
batches of ``t`` mini-batches (section 2.3, Algorithm 2). Images are standardised by the
dataset's mean and standard deviation (eq. 4). Cluster labels are the softmax argmax (eq. 1,
Table 6); ``extra_labels_["kmeans"]`` is k-means on the learned features (Table 7).

The paper starts from ImageNet weights (``pretrained="vgg16_bn.pth"`` loads a torchvision state
dict from the user's disk); the class default is from scratch (Kaiming convolutions, Xavier head),
because the ImageNet download is not part of this library. ``ssl_epochs`` adds a label-free
substitute, not in the paper: the feature stack is first trained on the data itself by instance
contrast (:func:`_pretrain_contrastive`), and eq. 3 starts from there (the ``fast`` preset on
image sets).

Scene segmentation (section 4): :func:`segment_scene` cuts a (H, W, B) scene into P x P patches
every ``stride`` pixels (``deepclust.data.patch_grid.grid_patches``), clusters the patches with
RECAL and paints each patch's label on the ``stride x stride`` block at its centre
(``blocks_to_map``); ``deepclust.cluster.matching.jaccard_consensus`` compares two maps (eq. 5)
after matching their clusters; :func:`run_segment` is the CLI's ``deepclust segment recal``, which
reads the scene and selects its bands with ``deepclust.data.patch_grid.read_scene``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deepclust import distributed as ddp
from deepclust.base import DeepClusterer, check_bool, check_data, check_n_clusters, make_generators
from deepclust.cluster.matching import jaccard_consensus
from deepclust.data.patch_grid import blocks_to_map, grid_patches, read_scene, scale_bands
from deepclust.losses.recal import exact_virtual_batch_backward, paper_virtual_batch_loss, recal_entropies
from deepclust.nn.vgg import VGG16BN, auto_n_blocks, load_vgg16_bn_weights
from deepclust.stopping import plateau_rule
from deepclust.training import History, device_data, fit_loop, minibatches, recompute_batchnorm_stats, take_rows

__all__ = ["RECAL", "segment_scene", "run_segment", "save_recal", "load_recal"]

_VIRTUAL_MODES = ("paper", "exact")


class RECAL(DeepClusterer):
    """RECAL: VGG16-BN + entropy loss (eq. 3), labels from the softmax argmax.

    Parameters
    ----------
    n_clusters : int
        K.
    width : float, default 1.0
        Channel multiplier of VGG16 (1.0 is the paper's network).
    n_blocks : int or "auto", default "auto"
        VGG blocks kept; "auto" cuts small inputs to a 1x1 output (paper, section 3.4).
    head_hidden : int or None, default None
        None is the paper's head (FC -> BN -> ReLU gives the K logits); an int adds a hidden layer.
    resize : int or None, default None
        Resample images to ``resize x resize`` (antialiased bilinear) before the network; a
        CPU-budget option of the ``fast`` preset (COIL-20 at 64 px), not in the paper.
    lambda_ : float, default 1.0
        Weight of H_Phi in eq. 3 (the paper does not give its value; 1.0 is our choice).
    epochs : int, default 50
        Passes over the data (the paper trains "for several epochs" without a number).
    batch_size : int, default 256
        Mini-batch size M.
    virtual_batches : int, default 1
        t of Algorithm 2: mini-batches per update (1 is Algorithm 1).
    virtual_batch : {"paper", "exact"}, default "paper"
        "paper": Algorithm 2 as written (gradient through the t-th mini-batch only); "exact":
        the exact gradient of eq. 3 on the union of the t mini-batches (two forwards per batch).
    lr, momentum, weight_decay : float
        SGD settings; the paper uses lr=1e-4, momentum=0.9.
    standardize : bool, default True
        Eq. 4 with the per-channel mean and standard deviation of the training data.
    pretrained : str or None
        Path of a torchvision ``vgg16_bn`` state dict (ImageNet weights, as in the paper; needs
        ``width=1``). None trains from scratch.
    ssl_epochs : int, default 0
        A label-free substitute for the ImageNet start, not in the paper: before eq. 3, this many
        epochs of instance contrast (NT-Xent of two strong views, temperature ``ssl_temperature``,
        on a 2-layer projection head that is dropped afterwards; Adam at ``ssl_lr``) train the
        VGG feature stack on the data itself (:func:`_pretrain_contrastive`). 0: off (``paper``;
        eq. 3 then starts from random or ``pretrained`` weights).
    ssl_lr, ssl_temperature : float, default 1e-3, 0.5
    ssl_tol, ssl_patience : float or None, int, default None, 5
        Label-free end of the contrastive stage: stop once ``ssl_patience`` epochs in a row lowered
        the best epoch-mean NT-Xent loss by less than the share ``ssl_tol``
        (:func:`deepclust.stopping.plateau_reached`); ``ssl_epochs`` is then a cap. None: run all
        ``ssl_epochs``.
    ssl_flip : bool, default True
        Whether the contrastive views include a horizontal flip (every ``fast`` entry keeps it;
        without it USPS gave the same mean NMI with a wider spread, ``docs/methods/recal.md``).
    kmeans_n_init : int, default 10
        Restarts of k-means on the learned features (``extra_labels_["kmeans"]``).
    eval_batch_size : int, default 1024
    recalibrate_bn : bool, default True
        Before the readout, set the BatchNorm statistics to those of the training images under
        the final weights (:func:`deepclust.training.recompute_batchnorm_stats`). The running
        averages lag the weights, which collapses a short run's eval-mode readout; ``False`` (the
        ``paper`` preset) reads out with the running averages, as the paper's code would.
    checkpoint_path : str or None; checkpoint_every : int; resume : bool
        Checkpointing through the shared training loop.
    random_state : int or None
    device : str, default "auto"
    precision : {"fp32", "bf16", "auto"}, default "fp32"
        bf16 autocast of the training steps on CUDA ("auto": where supported); fp32 on the CPU.
    verbose : bool

    Attributes
    ----------
    labels_ : (N,) int64, argmax of the softmax (eq. 1).
    labels_kmeans_ : (N,) int64, k-means on the features; also ``extra_labels_["kmeans"]``.
    features_ : not stored (use :meth:`transform`).
    model_ : the trained :class:`~deepclust.nn.vgg.VGG16BN`.
    history_ : per-epoch ``loss``, ``h_phi``, ``h_psi``.
    selection_ : how the reported model was chosen (the last epoch).
    diagnostics_ : final entropies on the whole data, cluster sizes.
    mean_, std_ : (C,) the standardisation of eq. 4.
    """

    input_kind = "images"

    def __init__(
        self,
        n_clusters: int = 10,
        *,
        width: float = 1.0,
        n_blocks: int | str = "auto",
        head_hidden: int | None = None,
        resize: int | None = None,
        lambda_: float = 1.0,
        epochs: int = 50,
        batch_size: int = 256,
        virtual_batches: int = 1,
        virtual_batch: str = "paper",
        lr: float = 1e-4,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        standardize: bool = True,
        pretrained: str | None = None,
        ssl_epochs: int = 0,
        ssl_lr: float = 1e-3,
        ssl_temperature: float = 0.5,
        ssl_tol: float | None = None,
        ssl_patience: int = 5,
        ssl_flip: bool = True,
        kmeans_n_init: int = 10,
        eval_batch_size: int = 1024,
        recalibrate_bn: bool = True,
        checkpoint_path: str | None = None,
        checkpoint_every: int = 0,
        resume: bool = False,
        random_state: int | None = None,
        device: str = "auto",
        precision: str = "fp32",
        verbose: bool = False,
    ):
        self.n_clusters = n_clusters
        self.width = width
        self.n_blocks = n_blocks
        self.head_hidden = head_hidden
        self.resize = resize
        self.lambda_ = lambda_
        self.epochs = epochs
        self.batch_size = batch_size
        self.virtual_batches = virtual_batches
        self.virtual_batch = virtual_batch
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.standardize = standardize
        self.pretrained = pretrained
        self.ssl_epochs = ssl_epochs
        self.ssl_lr = ssl_lr
        self.ssl_temperature = ssl_temperature
        self.ssl_tol = ssl_tol
        self.ssl_patience = ssl_patience
        self.ssl_flip = ssl_flip
        self.kmeans_n_init = kmeans_n_init
        self.eval_batch_size = eval_batch_size
        self.recalibrate_bn = recalibrate_bn
        self.checkpoint_path = checkpoint_path
        self.checkpoint_every = checkpoint_every
        self.resume = resume
        self.random_state = random_state
        self.device = device
        self.precision = precision
        self.verbose = verbose

    # -- validation --------------------------------------------------------------------------
    def _check_params(self) -> None:
        if self.virtual_batch not in _VIRTUAL_MODES:
            raise ValueError(
                f"virtual_batch must be 'paper' or 'exact', got {self.virtual_batch!r}"
            )
        for name in ("epochs", "batch_size", "virtual_batches", "kmeans_n_init",
                     "eval_batch_size", "ssl_patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.lambda_ < 0:
            raise ValueError(f"lambda_ must be >= 0, got {self.lambda_}")
        if self.resize is not None and (isinstance(self.resize, bool) or int(self.resize) < 2):
            raise ValueError(f"resize must be None or an image side >= 2, got {self.resize!r}")
        if (isinstance(self.ssl_epochs, bool) or not isinstance(self.ssl_epochs, int | np.integer)
                or self.ssl_epochs < 0):
            raise ValueError(f"ssl_epochs must be an integer >= 0 (0: no contrastive start), got {self.ssl_epochs!r}")
        if self.ssl_tol is not None and not 0 <= float(self.ssl_tol) < 1:
            raise ValueError(f"ssl_tol must be in [0, 1) or None (run all ssl_epochs), got {self.ssl_tol!r}")
        if not (self.ssl_lr > 0 and self.ssl_temperature > 0):
            raise ValueError(f"ssl_lr and ssl_temperature must be > 0, got {self.ssl_lr!r}, {self.ssl_temperature!r}")
        check_bool("ssl_flip", self.ssl_flip)
        if self.batch_size < 2:
            raise ValueError("batch_size must be >= 2 (BatchNorm and the class entropy need it)")

    # -- training ----------------------------------------------------------------------------
    def _fit(self, X: np.ndarray) -> None:
        self._check_params()
        n, c, h, w = X.shape
        if self.resize is not None:
            h = w = int(self.resize)
        if self.standardize:  # eq. 4, per channel
            self.mean_ = X.mean(axis=(0, 2, 3)).astype(np.float32)
            std = X.std(axis=(0, 2, 3)).astype(np.float32)
            self.std_ = np.where(std > 0, std, 1.0).astype(np.float32)
        else:
            self.mean_ = np.zeros(c, np.float32)
            self.std_ = np.ones(c, np.float32)
        # initial weights from the seed, without touching the global generator's state
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.seed_))
            model = VGG16BN(
                int(self.n_clusters), in_channels=c, input_size=(h, w), width=float(self.width),
                n_blocks=self.n_blocks, head_hidden=self.head_hidden,
            )
        if self.pretrained is not None:
            load_vgg16_bn_weights(model, self.pretrained)
        model.to(self.device_)
        ssl_history = None
        if int(self.ssl_epochs) > 0:  # the label-free start (the views are standardised by eq. 4)
            ssl_history = _pretrain_contrastive(
                model, device_data(torch.from_numpy(X), self.device_), size=(h, w), mean=self.mean_,
                std=self.std_, epochs=int(self.ssl_epochs), batch_size=int(self.batch_size),
                lr=float(self.ssl_lr), temperature=float(self.ssl_temperature), seed=int(self.seed_),
                tol=None if self.ssl_tol is None else float(self.ssl_tol), patience=int(self.ssl_patience),
                flip=bool(self.ssl_flip), generator=self._torch_gen, device=self.device_, verbose=bool(self.verbose))
        Xt = device_data(self._standardized(X), self.device_)  # on the device once, where it fits
        self.history_ = _train_recal(
            model=model, X=Xt, device=self.device_, lambda_=float(self.lambda_),
            epochs=int(self.epochs), batch_size=int(self.batch_size),
            virtual_batches=int(self.virtual_batches), virtual_batch=self.virtual_batch,
            lr=float(self.lr), momentum=float(self.momentum),
            weight_decay=float(self.weight_decay), generator=self._torch_gen,
            checkpoint_path=self.checkpoint_path, checkpoint_every=int(self.checkpoint_every),
            resume=bool(self.resume), verbose=bool(self.verbose),
        )
        if ssl_history is not None:
            self.history_.stages = {**ssl_history.stages, **self.history_.stages}
        self.model_ = model
        if self.recalibrate_bn:  # label-free: the statistics of the training images, no running lag
            recompute_batchnorm_stats(model, Xt, forward=lambda x: model.forward_head(model.forward_features(x)),
                                      batch_size=int(self.eval_batch_size), device=self.device_)
        logits, feats = self._infer_all(Xt)
        # eq. 1; rank 0's labels and k-means on every rank (one process: as computed)
        self.labels_ = ddp.broadcast_array(logits.argmax(1).numpy().astype(np.int64))
        self.labels_kmeans_ = ddp.run_on_rank0(lambda: self._kmeans(feats.numpy()))
        self.extra_labels_ = {"kmeans": self.labels_kmeans_}
        h_phi, h_psi = recal_entropies(logits.double(), global_batch=False)  # all rows are here
        sizes = np.bincount(self.labels_, minlength=int(self.n_clusters))
        self.diagnostics_ = {
            "h_phi": float(h_phi), "h_psi": float(h_psi),
            "loss": float(self.lambda_ * h_phi - h_psi),
            "n_nonempty_clusters": int((sizes > 0).sum()),
            "largest_cluster_share": float(sizes.max() / sizes.sum()),
            "feature_dim": int(model.feature_dim), "n_blocks": int(model.n_blocks),
            "n_parameters": int(sum(p.numel() for p in model.parameters())),
        }
        self.selection_ = (
            f"last epoch ({self.epochs}); labels = softmax argmax; extra 'kmeans' = k-means "
            f"(n_init={self.kmeans_n_init}) on the learned features; no labels used"
        )

    def _standardized(self, X: np.ndarray) -> torch.Tensor:
        """Eq. 4, then the optional resampling; (N, C, H, W) float32 on the CPU."""
        mean = self.mean_.reshape(1, -1, 1, 1)
        std = self.std_.reshape(1, -1, 1, 1)
        xt = torch.from_numpy(((X - mean) / std).astype(np.float32))
        if self.resize is not None and tuple(xt.shape[2:]) != (int(self.resize),) * 2:
            import torch.nn.functional as F

            side = int(self.resize)
            xt = torch.cat([F.interpolate(xt[i:i + 512], size=(side, side), mode="bilinear",
                                          antialias=True, align_corners=False)
                            for i in range(0, xt.shape[0], 512)])
        return xt

    @torch.no_grad()
    def _infer(self, Xt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (N, K) and features (N, d) in eval mode (BatchNorm running statistics)."""
        model = self.model_
        was_training = model.training
        model.eval()
        logits, feats = [], []
        for start in range(0, Xt.shape[0], int(self.eval_batch_size)):
            xb = Xt[start:start + int(self.eval_batch_size)].to(self.device_)
            z = model.forward_features(xb)
            logits.append(model.forward_head(z).cpu())
            feats.append(z.cpu())
        model.train(was_training)
        return torch.cat(logits), torch.cat(feats)

    def _infer_all(self, Xt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`_infer` of all rows; under a process group every rank infers its shard and the
        shards are gathered in the original order (the ranks hold the same weights and
        BatchNorm statistics after ``fit_loop``)."""
        if ddp.world_size() == 1:
            return self._infer(Xt)
        a, b = ddp.shard_range(Xt.shape[0])
        logits, feats = self._infer(Xt[a:b])
        return ddp.gather_rows(logits), ddp.gather_rows(feats)

    def _kmeans(self, feats: np.ndarray) -> np.ndarray:
        from sklearn.cluster import KMeans as SKKMeans

        km = SKKMeans(int(self.n_clusters), n_init=int(self.kmeans_n_init),
                      random_state=int(self.seed_))
        return km.fit_predict(feats.astype(np.float64)).astype(np.int64)

    # -- inference ---------------------------------------------------------------------------
    def _check_images(self, X: np.ndarray) -> None:
        exp = (self.model_.in_channels, *self.model_.input_size)
        got = tuple(X.shape[1:]) if self.resize is None else (X.shape[1], *exp[1:])
        if got != exp:
            raise ValueError(f"X must be images of shape (N, {exp[0]}, {exp[1]}, {exp[2]}) like "
                             f"the training data, got {X.shape}")

    def _predict(self, X: np.ndarray) -> np.ndarray:
        self._check_images(X)
        logits, _ = self._infer(self._standardized(X))
        return logits.argmax(1).numpy().astype(np.int64)

    def _infer_new(self, X) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`_infer` of new images, checked against the training images' shape."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "labels_")
        X = check_data(X, kind="images", min_samples=1)
        self._check_images(X)
        return self._infer(self._standardized(X))

    def predict_proba(self, X) -> np.ndarray:
        """Softmax probabilities p_ml of eq. 2, (N, K)."""
        return torch.softmax(self._infer_new(X)[0], 1).numpy()

    def transform(self, X) -> np.ndarray:
        """Learned features z = f_theta1(x), (N, d) (the input of Table 7's k-means)."""
        return self._infer_new(X)[1].numpy()


def _pretrain_contrastive(
    model: VGG16BN, X: torch.Tensor, *, size: tuple[int, int], mean, std, epochs: int, batch_size: int,
    lr: float, temperature: float, seed: int, generator: torch.Generator, device, verbose: bool = False,
    tol: float | None = None, patience: int = 5, flip: bool = True,
) -> History:
    """Instance contrast on the data itself (stage ``"ssl"``): two strong views of each image of a
    mini-batch (random resized crop, flip unless ``flip=False``, brightness / contrast or colour jitter, blur;
    :class:`deepclust.augment.ViewAugmenter` with the eq. 4 standardisation), the VGG features
    through a projection MLP (:class:`deepclust.nn.heads.InstanceHead`, 128-D, unit norm), and
    NT-Xent between the views (:func:`deepclust.losses.contrastive.instance_contrastive_loss`).
    The feature stack keeps what it learned; the projection head is dropped. With ``tol`` the
    stage ends at the loss plateau (:func:`deepclust.stopping.plateau_rule`; ``epochs`` a cap)."""
    from deepclust.augment import ViewAugmenter
    from deepclust.losses.contrastive import instance_contrastive_loss
    from deepclust.nn.heads import InstanceHead

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)  # the head's weights from the seed, global RNG untouched
        head = InstanceHead(model.feature_dim, 128).to(device)
    augmenter = ViewAugmenter(size=size, mean=[float(v) for v in mean], std=[float(v) for v in std],
                              flip=flip).to(device)
    both = nn.ModuleDict({"features": model, "projection": head})
    optimizer = torch.optim.Adam(list(model.parameters()) + list(head.parameters()), lr=lr)
    n = X.shape[0]
    bs = min(batch_size, n)

    def step(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        x = take_rows(X, idx, device)
        z_a, z_b = (head(model.forward_features(augmenter.strong(x, generator))) for _ in range(2))
        loss = instance_contrastive_loss(z_a, z_b, temperature)
        return {"loss": loss}

    history = History()
    return fit_loop(model=both, optimizer=optimizer, step=step, epochs=epochs, stage="ssl",
                    batches=lambda e: minibatches(n, bs, generator=generator, drop_last=n > bs, shard=True),
                    history=history, generator=generator, verbose=verbose,
                    on_epoch_end=plateau_rule(history, "ssl", "loss", tol=tol, patience=patience))


def _train_recal(
    *, model: VGG16BN, X: torch.Tensor, device: torch.device, lambda_: float, epochs: int, batch_size: int,
    virtual_batches: int, virtual_batch: str, lr: float, momentum: float, weight_decay: float,
    generator: torch.Generator, checkpoint_path: str | None = None, checkpoint_every: int = 0,
    resume: bool = False, verbose: bool = False,
) -> History:
    """SGD on eq. 3 (Algorithm 1 for t=1, Algorithm 2 / exact virtual batches for t>1)."""
    n = X.shape[0]
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                                weight_decay=weight_decay)
    bs = min(batch_size, n)
    # A last mini-batch much smaller than M gives a noisy class marginal (and BatchNorm fails on
    # one sample): it is dropped, as a new permutation is drawn every epoch.
    drop_last = n > bs

    def batches(epoch: int):
        # shard=True: under a process group bs is the global mini-batch, each rank holds its rows
        # and the class marginal / entropies are all-reduced (losses.recal)
        mbs = list(minibatches(n, bs, generator=generator, drop_last=drop_last, shard=True))
        for i in range(0, len(mbs), virtual_batches):
            yield mbs[i:i + virtual_batches]  # one virtual batch = t mini-batches

    def forward(idx: torch.Tensor) -> torch.Tensor:
        return model(take_rows(X, idx, device))  # logits (M, K)

    bn_modules = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def step_paper(group):
        return paper_virtual_batch_loss(forward, group, lambda_, n_clusters=model.n_classes)

    def step_exact(group):
        saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
                 for m in bn_modules]

        def restore() -> None:  # the first pass must not update BatchNorm statistics twice
            for m, (mu, var, nb) in zip(bn_modules, saved, strict=True):
                m.running_mean.copy_(mu)
                m.running_var.copy_(var)
                m.num_batches_tracked.copy_(nb)

        return exact_virtual_batch_backward(forward, group, lambda_, before_second_pass=restore)

    exact = virtual_batch == "exact" and virtual_batches > 1
    return fit_loop(
        model=model, optimizer=optimizer, step=step_exact if exact else step_paper,
        epochs=epochs, batches=batches, stage="train", generator=generator,
        checkpoint_path=checkpoint_path, checkpoint_every=checkpoint_every, resume=resume,
        manual_backward=exact, verbose=verbose,
    )


# -- saving and loading a trained model -------------------------------------------------------
def save_recal(est: RECAL, path: str | os.PathLike) -> None:
    """Save a fitted RECAL (weights, network config, eq. 4 statistics) for :func:`load_recal`."""
    from deepclust.training import atomic_torch_save

    m = est.model_
    atomic_torch_save({
        "format": "deepclust.recal/1",
        "state_dict": m.state_dict(),
        "config": {"n_classes": m.n_classes, "in_channels": m.in_channels,
                   "input_size": list(m.input_size), "width": m.width, "n_blocks": m.n_blocks,
                   "head_hidden": m.head_hidden},
        "params": {k: v for k, v in est.get_params().items()
                   if isinstance(v, int | float | str | bool) or v is None},
        "mean": torch.from_numpy(est.mean_), "std": torch.from_numpy(est.std_),
        "n_features_in": int(est.n_features_in_),
    }, path)


def load_recal(path: str | os.PathLike, device: str = "auto") -> RECAL:
    """A fitted RECAL from :func:`save_recal`'s file (``weights_only`` loading)."""
    from deepclust.base import resolve_device

    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"no RECAL model file at {path}") from exc
    if not isinstance(blob, dict) or blob.get("format") != "deepclust.recal/1":
        raise ValueError(f"{path} is not a RECAL model saved by deepclust (save_recal)")
    cfg = blob["config"]
    model = VGG16BN(cfg["n_classes"], in_channels=cfg["in_channels"],
                    input_size=tuple(cfg["input_size"]), width=cfg["width"],
                    n_blocks=cfg["n_blocks"], head_hidden=cfg["head_hidden"])
    model.load_state_dict(blob["state_dict"])
    params = dict(blob["params"])
    params["device"] = device
    est = RECAL(**params)
    est.device_ = resolve_device(device)
    est.model_ = model.to(est.device_).eval()
    est.mean_ = blob["mean"].numpy()
    est.std_ = blob["std"].numpy()
    est.n_features_in_ = int(blob["n_features_in"])
    est.labels_ = np.zeros(0, np.int64)  # marks the estimator as fitted (labels of no data)
    est._rng, est._torch_gen, est.seed_ = make_generators(params.get("random_state"))
    return est


# -- scenes: patch segmentation (section 4) --------------------------------------------------
def segment_scene(
    cube: np.ndarray,
    *,
    n_clusters: int = 10,
    patch: int = 8,
    stride: int = 2,
    model: RECAL | None = None,
    random_state: int | None = 0,
    scale: bool = True,
    **recal_params: Any,
) -> tuple[np.ndarray, RECAL, dict]:
    """Unsupervised patch segmentation of a scene (RECAL section 4).

    Parameters
    ----------
    cube : (H, W, B) array
        The scene (multispectral or hyperspectral); bands are scaled to [0, 1] (2-98 percentile)
        when ``scale``.
    n_clusters : int
        K (the paper uses 10).
    patch, stride : int
        Patch side P and the step between patch centres (the paper: 8-32 px, stride 8 or 16).
    model : RECAL or None
        A fitted model to *apply* (e.g. trained on another scene; the band count and patch size
        must match). None trains a new one on this scene's patches.
    random_state : int or None
    **recal_params
        Passed to :class:`RECAL` when training (``width``, ``epochs``, ...). ``n_blocks``
        defaults to the cut for 8x8 patches (3 blocks), as the paper does for every patch size.

    Returns
    -------
    label_map : (H, W) int64, the cluster of every pixel (of the block around it)
    model : the fitted RECAL
    info : dict with the number of patches, grid, timings and the k-means map on the features
    """
    cube = check_data(cube, kind="scene", name="cube")
    h, w, b = cube.shape
    if patch > min(h, w) * 2:
        raise ValueError(f"patch={patch} is too large for a {h}x{w} scene")
    x = scale_bands(cube) if scale else cube
    patches, _, grid = grid_patches(x, patch, stride)
    t0 = time.perf_counter()
    if model is None:
        check_n_clusters(n_clusters, patches.shape[0])
        params = {"n_blocks": min(3, auto_n_blocks(patch, patch)), **recal_params}
        model = RECAL(n_clusters, random_state=random_state, **params).fit(patches)
        block_labels = model.labels_
        km_labels = model.labels_kmeans_
    else:
        exp = (model.model_.in_channels, *model.model_.input_size)
        if (b, patch, patch) != exp:
            raise ValueError(
                f"the model takes {exp[0]}-band {exp[1]}x{exp[2]} patches; this scene gives "
                f"{b}-band {patch}x{patch} patches: select the same bands and patch size"
            )
        block_labels = model.predict(patches)
        km_labels = None
    info = {"n_patches": int(patches.shape[0]), "grid": list(grid), "patch": patch,
            "stride": stride, "seconds": time.perf_counter() - t0}
    label_map = blocks_to_map(block_labels, grid, stride, (h, w))
    if km_labels is not None:
        info["kmeans_map"] = blocks_to_map(km_labels, grid, stride, (h, w))
    return label_map, model, info


# -- the CLI side of `deepclust segment recal` -----------------------------------------------
def run_segment(args: dict[str, Any], out_dir: str | os.PathLike) -> dict[str, Any]:
    """``deepclust segment recal``: train (or apply) RECAL on a scene's patches, write the map.

    ``args`` keys: ``data`` (salinas-a | ucmerced-mosaic[-S] | path of a .npy (H, W, B)),
    ``bands`` (None/"all" | "liss4" | "i,j,k"), ``patch`` (8), ``stride`` (2), ``clusters``
    (10), ``seed`` (0), ``preset`` ("fast"), ``model`` (path of a model.pt to apply instead of
    training), ``compare`` (path of another ``label_map.npy`` for the Jaccard consensus, eq. 5),
    ``set`` (dict of RECAL overrides), ``download`` (fetch a missing catalog file), ``progress``
    (progress bars).

    Writes ``label_map.npy`` (H, W), ``segmentation.png`` (the map beside the ground truth in
    matched colours, with a legend; :func:`deepclust.viz.plot_cluster_map`, the picture ``run``
    draws for scenes), ``metrics.json`` (OA/NMI/ARI/kappa against the ground truth where labelled,
    with clusters matched by the Hungarian algorithm), and ``model.pt`` when a model was trained
    (plus ``label_map_kmeans.npy``). Outputs are staged beside ``out_dir`` and moved into place
    only when everything succeeded, as ``run`` does.
    """
    from deepclust import viz
    from deepclust.metrics import evaluate
    from deepclust.presets import get_preset
    from deepclust.runner import staged_output, to_jsonable

    out = Path(out_dir)
    cube, gt, band_desc = read_scene(str(args["data"]), args.get("bands"), args.get("download"))
    patch = int(args.get("patch", 8))
    stride = int(args.get("stride", 2))
    k = int(args.get("clusters", 10))
    seed = int(args.get("seed", 0))
    with staged_output(out) as staging:
        t0 = time.perf_counter()
        model = None
        if args.get("model"):
            model = load_recal(args["model"], device=args.get("device", "auto"))
        params = {}
        if model is None:
            params = get_preset("recal", "scene", args.get("preset", "fast"))
            params.update(args.get("set") or {})
            params.setdefault("verbose", bool(args.get("progress", False)))
        label_map, est, info = segment_scene(cube, n_clusters=k, patch=patch, stride=stride,
                                             model=model, random_state=seed, **params)
        seconds = time.perf_counter() - t0
        np.save(staging / "label_map.npy", label_map)
        kmeans_map = info.pop("kmeans_map", None)
        result: dict[str, Any] = {
            "method": "recal", "task": "segment", "data": args["data"], "bands": band_desc,
            "shape": list(cube.shape), "n_clusters": k, "seed": seed, "seconds": seconds,
            "applied_model": args.get("model"), "params": {kk: v for kk, v in params.items()},
            **info,
            "selection": getattr(est, "selection_", "applied a trained model"),
        }
        if kmeans_map is not None:
            np.save(staging / "label_map_kmeans.npy", kmeans_map)
        if gt is not None:
            lab = gt > 0
            result["metrics"] = evaluate(gt[lab], label_map[lab])
            if kmeans_map is not None:
                result["metrics_kmeans"] = evaluate(gt[lab], kmeans_map[lab])
        if args.get("compare"):
            other = np.load(args["compare"], allow_pickle=False)
            cons = jaccard_consensus(label_map, other)
            result["consensus"] = {"with": str(args["compare"]), "pairs": cons["pairs"],
                                   "mean_matched": cons["mean_matched"],
                                   "weighted_matched": cons["weighted_matched"]}
        if model is None:
            save_recal(est, staging / "model.pt")
        title = f"RECAL segmentation of {args['data']} ({band_desc[:40]}), P={patch}, K={k}"
        viz.plot_cluster_map(label_map, gt, staging / "segmentation.png", title=title,
                             scores=result.get("metrics"), map_name="segmentation")
        (staging / "metrics.json").write_text(json.dumps(to_jsonable(result), indent=2))
    return result
