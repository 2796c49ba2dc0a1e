"""RECAL (Saha & Mukhopadhyay): a CNN classifier trained by entropy, and patch segmentation.

A VGG16-BN feature stack (``deepclust.nn.vgg``) with the paper's classification layers (one
fully connected layer, BatchNorm, ReLU) and a K-way softmax (eq. 2) is trained with SGD on
eq. 3, ``L = lambda * H_Phi - H_Psi`` (``deepclust.losses.recal``), optionally over virtual
batches of ``t`` mini-batches (section 2.3, Algorithm 2). Images are standardised by the
dataset's mean and standard deviation (eq. 4). Cluster labels are the softmax argmax (eq. 1,
Table 6); ``extra_labels_["kmeans"]`` is k-means on the learned features (Table 7).

The paper starts from ImageNet weights (``pretrained="vgg16_bn.pth"`` loads a torchvision state
dict from the user's disk); the default here is from scratch (Kaiming convolutions, Xavier head),
because the ImageNet download is not part of this library.

Scene segmentation (section 4): :func:`segment_scene` cuts a (H, W, B) scene into P x P patches
every ``stride`` pixels, clusters the patches with RECAL and paints each patch's label on the
``stride x stride`` block at its centre; :func:`jaccard_consensus` compares two maps (eq. 5) after
matching their clusters; :func:`run_segment` is the CLI's ``deepclust segment recal``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from deepclust import distributed as ddp
from deepclust.base import DeepClusterer, check_data, check_n_clusters, make_generators
from deepclust.losses.recal import (
    exact_virtual_batch_backward,
    paper_virtual_batch_loss,
    recal_entropies,
)
from deepclust.nn.vgg import VGG16BN, load_vgg16_bn_weights
from deepclust.training import History, device_data, fit_loop, minibatches, take_rows

__all__ = [
    "RECAL",
    "LISS4_BANDS_UM",
    "aviris_band_indices",
    "extract_patches",
    "segment_scene",
    "jaccard_consensus",
    "run_segment",
    "save_recal",
    "load_recal",
]

log = logging.getLogger("deepclust")

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
    kmeans_n_init : int, default 10
        Restarts of k-means on the learned features (``extra_labels_["kmeans"]``).
    eval_batch_size : int, default 1024
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
        kmeans_n_init: int = 10,
        eval_batch_size: int = 1024,
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
        self.kmeans_n_init = kmeans_n_init
        self.eval_batch_size = eval_batch_size
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
                     "eval_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.lambda_ < 0:
            raise ValueError(f"lambda_ must be >= 0, got {self.lambda_}")
        if self.resize is not None and (isinstance(self.resize, bool) or int(self.resize) < 2):
            raise ValueError(f"resize must be None or an image side >= 2, got {self.resize!r}")
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
        self.model_ = model
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

    def predict_proba(self, X) -> np.ndarray:
        """Softmax probabilities p_ml of eq. 2, (N, K)."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "labels_")
        X = check_data(X, kind="images", min_samples=1)
        self._check_images(X)
        logits, _ = self._infer(self._standardized(X))
        return torch.softmax(logits, 1).numpy()

    def transform(self, X) -> np.ndarray:
        """Learned features z = f_theta1(x), (N, d) (the input of Table 7's k-means)."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "labels_")
        X = check_data(X, kind="images", min_samples=1)
        self._check_images(X)
        _, feats = self._infer(self._standardized(X))
        return feats.numpy()


def _train_recal(
    *,
    model: VGG16BN,
    X: torch.Tensor,
    device: torch.device,
    lambda_: float,
    epochs: int,
    batch_size: int,
    virtual_batches: int,
    virtual_batch: str,
    lr: float,
    momentum: float,
    weight_decay: float,
    generator: torch.Generator,
    checkpoint_path: str | None = None,
    checkpoint_every: int = 0,
    resume: bool = False,
    verbose: bool = False,
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


# -- scenes: patches, segmentation, consensus ------------------------------------------------
#: LISS-IV bands of RECAL's Table 2, in micrometres: green, red, near infrared.
LISS4_BANDS_UM: tuple[tuple[float, float], ...] = ((0.52, 0.59), (0.62, 0.68), (0.77, 0.86))

# AVIRIS water-absorption bands removed in the "corrected" Indian Pines/Salinas cubes
# (1-based 104-108, 150-163, 220 of 224 for Indian Pines; 108-112, 154-167, 224 for Salinas).
_SALINAS_REMOVED_1BASED = [*range(108, 113), *range(154, 168), 224]


def aviris_band_indices(
    ranges_um: Sequence[tuple[float, float]] = LISS4_BANDS_UM,
    *,
    n_bands: int = 204,
) -> list[list[int]]:
    """Indices (0-based, into the cube) of AVIRIS bands whose centre lies in each range.

    AVIRIS has 224 bands about 10 nm apart from 0.4 micrometres: band ``i`` (0-based, of 224) is
    centred at about ``400 + 10 i`` nm (an approximation: the real centres drift by a few nm).
    For a 204-band "corrected" Salinas cube the removed water bands are skipped; the LISS-IV
    ranges lie below them, so the indices are the same in both cubes:
    green 0.52-0.59 -> 12..19, red 0.62-0.68 -> 22..28, NIR 0.77-0.86 -> 37..46.
    """
    if n_bands == 224:
        keep = list(range(224))
    elif n_bands == 204:
        removed = {b - 1 for b in _SALINAS_REMOVED_1BASED}
        keep = [i for i in range(224) if i not in removed]
    else:
        raise ValueError(f"n_bands must be 224 (raw AVIRIS) or 204 (corrected), got {n_bands}")
    out = []
    for lo, hi in ranges_um:
        lo_nm, hi_nm = lo * 1000 - 1e-6, hi * 1000 + 1e-6
        idx = [j for j, i in enumerate(keep) if lo_nm <= 400 + 10 * i <= hi_nm]
        if not idx:
            raise ValueError(f"no AVIRIS band centre lies in {lo}-{hi} micrometres")
        out.append(idx)
    return out


def extract_patches(
    cube: np.ndarray, patch: int, stride: int
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """P x P patches of a scene (H, W, B), one centred on each ``stride x stride`` block.

    The scene is mirrored by ``patch`` pixels at its borders so every block has a full patch.

    Returns
    -------
    patches : (N, B, P, P) float32, N = ceil(H / stride) * ceil(W / stride), row-major blocks
    centres : (N, 2) int, the (row, col) of each block's centre pixel in the scene
    grid : (ceil(H / stride), ceil(W / stride))
    """
    if patch < 2 or stride < 1:
        raise ValueError(f"patch must be >= 2 and stride >= 1, got patch={patch}, stride={stride}")
    h, w, b = cube.shape
    gh, gw = -(-h // stride), -(-w // stride)
    pad = patch
    padded = np.pad(cube, ((pad, pad), (pad, pad), (0, 0)), mode="symmetric")
    rows = np.minimum(np.arange(gh) * stride + stride // 2, h - 1)
    cols = np.minimum(np.arange(gw) * stride + stride // 2, w - 1)
    off = patch // 2
    out = np.empty((gh * gw, b, patch, patch), np.float32)
    k = 0
    for r in rows:
        r0 = r + pad - off
        for c in cols:
            c0 = c + pad - off
            out[k] = padded[r0:r0 + patch, c0:c0 + patch].transpose(2, 0, 1)
            k += 1
    centres = np.stack(np.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2)
    return out, centres, (gh, gw)


def _blocks_to_map(block_labels: np.ndarray, grid: tuple[int, int], stride: int,
                   shape: tuple[int, int]) -> np.ndarray:
    lab = block_labels.reshape(grid)
    full = np.repeat(np.repeat(lab, stride, axis=0), stride, axis=1)
    return full[: shape[0], : shape[1]].astype(np.int64)


def _scale_bands(cube: np.ndarray) -> np.ndarray:
    """Each band to [0, 1] by its 2nd-98th percentiles (robust against a few bright pixels)."""
    cube = cube.astype(np.float32)
    lo = np.percentile(cube, 2, axis=(0, 1), keepdims=True)
    hi = np.percentile(cube, 98, axis=(0, 1), keepdims=True)
    return np.clip((cube - lo) / np.maximum(hi - lo, 1e-6), 0.0, 1.0).astype(np.float32)


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
    x = _scale_bands(cube) if scale else cube
    patches, _, grid = extract_patches(x, patch, stride)
    t0 = time.perf_counter()
    if model is None:
        check_n_clusters(n_clusters, patches.shape[0])
        params = {"n_blocks": min(3, _n_blocks_fit(patch)), **recal_params}
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
    label_map = _blocks_to_map(block_labels, grid, stride, (h, w))
    if km_labels is not None:
        info["kmeans_map"] = _blocks_to_map(km_labels, grid, stride, (h, w))
    return label_map, model, info


def _n_blocks_fit(patch: int) -> int:
    from deepclust.nn.vgg import auto_n_blocks

    return auto_n_blocks(patch, patch)


def jaccard_consensus(map1: np.ndarray, map2: np.ndarray,
                      mask: np.ndarray | None = None) -> dict[str, Any]:
    """Jaccard similarity of two segmentations (eq. 5) with their clusters matched.

    ``J(a, b) = |M1_a intersect M2_b| / |M1_a union M2_b|`` for every cluster a of map 1 and b
    of map 2, from the contingency table (no per-pixel pair matrix). Clusters are matched
    one-to-one by the Hungarian algorithm maximising the summed Jaccard scores.

    Returns
    -------
    dict with ``matrix`` (K1, K2) of scores, ``pairs`` [(a, b, J)], ``mean_matched`` (the mean J
    over matched pairs) and ``weighted_matched`` (weighted by the pixels of map 1's cluster).
    """
    from scipy.optimize import linear_sum_assignment

    a = np.asarray(map1)
    bb = np.asarray(map2)
    if a.shape != bb.shape:
        raise ValueError(f"the two maps differ in shape: {a.shape} vs {bb.shape}")
    if mask is not None:
        a, bb = a[np.asarray(mask, bool)], bb[np.asarray(mask, bool)]
    a, bb = a.ravel(), bb.ravel()
    ok = (a >= 0) & (bb >= 0)
    a, bb = a[ok], bb[ok]
    ua, ia = np.unique(a, return_inverse=True)
    ub, ib = np.unique(bb, return_inverse=True)
    inter = np.zeros((ua.size, ub.size), np.int64)
    np.add.at(inter, (ia, ib), 1)
    union = inter.sum(1, keepdims=True) + inter.sum(0, keepdims=True) - inter
    jac = inter / np.maximum(union, 1)
    rows, cols = linear_sum_assignment(jac, maximize=True)
    pairs = [(int(ua[r]), int(ub[c]), float(jac[r, c])) for r, c in zip(rows, cols, strict=True)]
    sizes = inter.sum(1)[rows]
    return {
        "labels1": ua.tolist(), "labels2": ub.tolist(), "matrix": jac,
        "pairs": pairs,
        "mean_matched": float(np.mean([p[2] for p in pairs])),
        "weighted_matched": float(np.sum(jac[rows, cols] * sizes) / max(sizes.sum(), 1)),
    }


# -- the CLI side of `deepclust segment recal` -----------------------------------------------
def _load_scene(data: str, bands: str | None,
                download: bool | None = None) -> tuple[np.ndarray, np.ndarray | None, str]:
    """A scene cube (H, W, B), its ground truth (or None) and a description of the bands."""
    # Catalog files go through the data lookup ($DEEPCLUST_DATA, ../shared, cache, checksums).
    from deepclust.data import CATALOG, find_file, load_dataset

    name = data.lower().replace("salinasa", "salinas-a")
    gt = None
    if name in CATALOG and CATALOG[name].kind == "scene":
        ds = load_dataset(name, download=download)
        cube, gt = ds.cube, ds.gt
    elif name in ("ucmerced-mosaic", "ucmerced") or name.startswith("ucmerced-mosaic-"):
        # "ucmerced-mosaic-<S>" draws another mosaic (seed S): a second scene of the same kind
        mseed = int(name.rsplit("-", 1)[1]) if name.startswith("ucmerced-mosaic-") else 0
        cube, gt = ucmerced_mosaic(find_file("images/ucmerced/ucmerced_64x64.npz", download=download), seed=mseed)
    elif os.path.exists(data):
        arr = np.load(data, allow_pickle=False)
        cube = arr if isinstance(arr, np.ndarray) else arr[arr.files[0]]
        cube = np.asarray(cube, np.float32)
    else:
        raise ValueError(
            f"unknown scene {data!r}: use a catalog scene (e.g. salinas-a), ucmerced-mosaic or a .npy path"
        )
    if cube.ndim != 3:
        raise ValueError(f"a scene must be (H, W, B), got shape {cube.shape}")
    desc = f"all {cube.shape[2]} bands"
    if bands is None or bands == "all":
        pass
    elif bands == "liss4":
        if cube.shape[2] not in (204, 224):
            raise ValueError("--bands liss4 needs an AVIRIS cube (204 or 224 bands)")
        groups = aviris_band_indices(n_bands=cube.shape[2])
        cube = np.stack([cube[:, :, g].mean(axis=2) for g in groups], axis=2)
        desc = "LISS-IV green/red/NIR as means of AVIRIS bands " + "; ".join(
            f"{g[0]}..{g[-1]}" for g in groups) + " (0-based)"
    else:
        idx = [int(v) for v in str(bands).split(",")]
        cube = cube[:, :, idx]
        desc = f"bands {idx}"
    return cube, gt, desc


def ucmerced_mosaic(path: str | os.PathLike, *, tiles: int = 6, seed: int = 0,
                    classes: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A ``tiles x tiles`` mosaic of UC Merced 64x64 tiles and its per-pixel tile class map.

    Tiles are drawn (seeded) from ``classes`` (default: 6 visually distinct land covers:
    agricultural, beach, buildings, chaparral, forest, river), so the map has a known truth.
    """
    d = np.load(path, allow_pickle=False)
    imgs, labels, names = d["images"], d["labels"], list(d["class_names"])
    if classes is None:
        classes = [names.index(c) for c in
                   ("agricultural", "beach", "buildings", "chaparral", "forest", "river")]
    rng = np.random.default_rng(seed)
    s = imgs.shape[1]
    cube = np.zeros((tiles * s, tiles * s, imgs.shape[3]), np.float32)
    gt = np.zeros((tiles * s, tiles * s), np.int64)
    for i in range(tiles):
        for j in range(tiles):
            cls = int(rng.choice(classes))
            k = int(rng.choice(np.flatnonzero(labels == cls)))
            cube[i * s:(i + 1) * s, j * s:(j + 1) * s] = imgs[k] / 255.0
            gt[i * s:(i + 1) * s, j * s:(j + 1) * s] = cls + 1  # 0 = unlabelled
    return cube, gt


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
    cube, gt, band_desc = _load_scene(str(args["data"]), args.get("bands"), args.get("download"))
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
