"""Contrastive Clustering (CC; Li, Hu, Liu, Peng, Zhou & Peng, AAAI 2021).

A ResNet backbone sees two augmented views of each image; an instance head is trained with
NT-Xent (tau_I = 0.5) and a cluster head (softmax over K) with the cluster-level contrast between
the columns of the two views' assignment matrices plus the entropy of the cluster marginals
(tau_C = 1.0). This is PICI's Table 6 first row (no PISD, no CLI). Labels are the cluster head's
argmax on un-augmented (resized + normalised) images.

CC's entropy term is ``log K + sum_i P_i log P_i`` per view, which is ``-H`` up to the constant
``2 log K``; we use PICI's ``-H(C)`` (same gradients). Both views are drawn from the same strong
augmentation family, as in CC.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from deepclust.augment import ViewAugmenter, channel_stats, prepare_images
from deepclust.base import DeepClusterer, check_data
from deepclust.cluster.kmeans import kmeans_codes
from deepclust.distributed import drop_short_last
from deepclust.losses.contrastive import cluster_contrastive_loss, instance_contrastive_loss
from deepclust.metrics import size_summary
from deepclust.nn import seeded_init
from deepclust.nn.heads import ClusterHead, InstanceHead, embed_with_heads
from deepclust.nn.resnet import ResNet
from deepclust.training import History, device_data, fit_loop, minibatches, take_rows

__all__ = ["ContrastiveClustering", "CCNet"]


class CCNet(nn.Module):
    """ResNet backbone + instance head + cluster head."""

    def __init__(self, *, backbone: ResNet, n_clusters: int, feature_dim: int = 128):
        super().__init__()
        self.backbone = backbone
        self.instance_head = InstanceHead(backbone.out_dim, feature_dim)
        self.cluster_head = ClusterHead(backbone.out_dim, n_clusters)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features h (N, out_dim)."""
        return self.backbone.forward_features(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.forward_features(x)
        return self.instance_head(h), self.cluster_head(h)


@dataclass(frozen=True)
class _Config:
    instance_temperature: float
    cluster_temperature: float
    entropy_weight: float
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float


def _train_cc(
    *,
    model: CCNet,
    augmenter: ViewAugmenter,
    X: torch.Tensor,
    cfg: _Config,
    device: torch.device,
    generator: torch.Generator,
    checkpoint_path: str | None = None,
    resume: bool = False,
    verbose: bool = False,
) -> History:
    """CC training: L_ins + L_clu on two strong views per mini-batch, for ``cfg.epochs`` epochs."""

    def step(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        x = take_rows(X, idx, device)
        z_a, c_a = model(augmenter.strong(x, generator))
        z_b, c_b = model(augmenter.strong(x, generator))
        ins = instance_contrastive_loss(z_a, z_b, cfg.instance_temperature)
        clu = cluster_contrastive_loss(c_a, c_b, cfg.cluster_temperature, entropy_weight=cfg.entropy_weight)
        return {
            "loss": ins + clu["loss"],
            "ins": ins,
            "clu": clu["loss"],
            "clu_contrast": clu["contrast"].detach(),
            "entropy": clu["entropy"].detach(),
        }

    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # drop a last batch of one sample (per rank when distributed): BatchNorm cannot train on it
    n = X.shape[0]
    drop_last = drop_short_last(n, cfg.batch_size, min_rows=2)
    return fit_loop(
        model=model,
        optimizer=optimizer,
        step=step,
        epochs=cfg.epochs,
        batches=lambda epoch: minibatches(
            n, cfg.batch_size, generator=generator, drop_last=drop_last, shard=True
        ),
        stage="train",
        generator=generator,
        checkpoint_path=checkpoint_path,
        checkpoint_every=1 if checkpoint_path else 0,
        resume=resume,
        verbose=verbose,
    )


class ContrastiveClustering(DeepClusterer):
    """Contrastive Clustering (instance + cluster contrast on a ResNet).

    Parameters
    ----------
    n_clusters : int
    img_size : int
        Network input size; images are resized to it (CC: 224 for ImageNet-size data).
    arch : {"resnet18", "resnet34"}
        Backbone layout (CC: ResNet-34).
    width : int
        First-stage channels (64 = the standard ResNet).
    stem : {"auto", "cifar", "imagenet"}
        ``auto``: 3x3 stride-1 stem up to 64 px inputs, the 7x7 stride-2 + max-pool stem above.
    feature_dim : int
        Instance head output (128).
    instance_temperature, cluster_temperature : float
        0.5 and 1.0.
    entropy_weight : float
    epochs, batch_size, lr, weight_decay
        CC: 1000 epochs, batch 256, Adam 3e-4, no decay.
    crop_scale, jitter : strength of the augmentations.
    device, random_state, checkpoint_path, resume, verbose
    precision : {"fp32", "bf16", "auto"}, default "fp32"
        bf16 autocast of the training steps on CUDA ("auto": where supported); fp32 on the CPU.
    """

    input_kind = "images"

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        img_size: int = 224,
        arch: str = "resnet34",
        width: int = 64,
        stem: str = "auto",
        feature_dim: int = 128,
        instance_temperature: float = 0.5,
        cluster_temperature: float = 1.0,
        entropy_weight: float = 1.0,
        epochs: int = 1000,
        batch_size: int = 256,
        lr: float = 3e-4,
        weight_decay: float = 0.0,
        crop_scale: tuple[float, float] = (0.2, 1.0),
        jitter: float = 0.4,
        device: str = "auto",
        precision: str = "fp32",
        random_state: int | None = None,
        checkpoint_path: str | None = None,
        resume: bool = False,
        verbose: bool = False,
    ):
        self.n_clusters = n_clusters
        self.img_size = img_size
        self.arch = arch
        self.width = width
        self.stem = stem
        self.feature_dim = feature_dim
        self.instance_temperature = instance_temperature
        self.cluster_temperature = cluster_temperature
        self.entropy_weight = entropy_weight
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.crop_scale = crop_scale
        self.jitter = jitter
        self.device = device
        self.precision = precision
        self.random_state = random_state
        self.checkpoint_path = checkpoint_path
        self.resume = resume
        self.verbose = verbose

    def _check_params(self) -> None:
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, (int, np.integer)) or self.epochs < 1:
            raise ValueError(f"epochs must be a positive integer, got {self.epochs!r}")
        if int(self.batch_size) < 2:
            raise ValueError(f"batch_size must be >= 2 for contrastive learning, got {self.batch_size}")
        if self.instance_temperature <= 0 or self.cluster_temperature <= 0:
            raise ValueError("instance_temperature and cluster_temperature must be > 0")
        if float(self.lr) <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if int(self.width) < 1 or int(self.img_size) < 8:
            raise ValueError("width must be >= 1 and img_size >= 8")

    def _fit(self, X: np.ndarray) -> None:
        self._check_params()
        X = prepare_images(X)
        mean, std = channel_stats(X)
        self.channel_mean_, self.channel_std_ = mean, std
        with seeded_init(self.seed_):
            backbone = ResNet(
                arch=self.arch, in_chans=X.shape[1], width=int(self.width), img_size=int(self.img_size),
                stem=self.stem,
            )
            model = CCNet(backbone=backbone, n_clusters=int(self.n_clusters), feature_dim=int(self.feature_dim))
        model = model.to(self.device_)
        augmenter = ViewAugmenter(
            size=int(self.img_size), mean=mean, std=std, crop_scale=tuple(self.crop_scale), jitter=float(self.jitter)
        ).to(self.device_)
        cfg = _Config(
            instance_temperature=float(self.instance_temperature),
            cluster_temperature=float(self.cluster_temperature),
            entropy_weight=float(self.entropy_weight),
            epochs=int(self.epochs),
            batch_size=int(self.batch_size),
            lr=float(self.lr),
            weight_decay=float(self.weight_decay),
        )
        Xt = device_data(torch.from_numpy(X), self.device_)  # on the device once, where it fits
        self.history_ = _train_cc(
            model=model,
            augmenter=augmenter,
            X=Xt,
            cfg=cfg,
            device=self.device_,
            generator=self._torch_gen,
            checkpoint_path=self.checkpoint_path,
            resume=bool(self.resume),
            verbose=bool(self.verbose),
        )
        self.model_ = model
        self._augmenter = augmenter
        _, z, c = embed_with_heads(model, Xt, view=augmenter.weak, device=self.device_)
        self.labels_ = c.argmax(dim=1).numpy().astype(np.int64)
        kmeans_labels, _ = kmeans_codes(z.numpy().astype(np.float64), int(self.n_clusters), n_init=10, seed=self.seed_)
        self.extra_labels_ = {"kmeans_instance": kmeans_labels}
        self.selection_ = "last epoch; no model selection"
        self.diagnostics_ = {
            "epochs": self.history_.epochs("train"),
            "final_losses": {k: v[-1] for k, v in self.history_.stages["train"].items()},
            **size_summary(self.labels_, int(self.n_clusters)),
        }

    def _predict(self, X: np.ndarray) -> np.ndarray:
        X = prepare_images(X)
        _, _, c = embed_with_heads(self.model_, torch.from_numpy(X), view=self._augmenter.weak, device=self.device_)
        return c.argmax(dim=1).numpy().astype(np.int64)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Backbone features (n, out_dim) of un-augmented images."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "labels_")
        X = prepare_images(check_data(X, kind="images", min_samples=1))
        h, _, _ = embed_with_heads(self.model_, torch.from_numpy(X), view=self._augmenter.weak, device=self.device_)
        return h.numpy()
