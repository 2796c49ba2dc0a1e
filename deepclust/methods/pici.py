"""PICI: Partial Information discrimination and Cross-level Interaction (Liu et al.).

A ViT encoder F with an MAE decoder D sees masked weak and strong views of each image:

* PISD (eq. 1): masked-patch reconstruction of both views, ``L_PISD = (l_re^a + l_re^b) / 2``;
* PICD (eq. 2): instance NT-Xent on an instance MLP (eqs. 3-6) + cluster contrast with the
  marginal-entropy term on a cluster MLP (eqs. 7-11);
* CLI (eqs. 12-15): k-means on the instance features, Hungarian matching to the cluster head's
  argmax, cross-entropy of the cluster head against the matched pseudo-labels.

Training follows Algorithm 1 in three stages run through :func:`deepclust.training.fit_loop`:
``pretrain`` (E1 epochs, L_PISD, updates F and D), ``train`` (E2, L_PISD + L_PICD, updates
F, D, G_I, G_C) and ``boost`` (E3, L_PICD + L_CLI, updates F, G_I, G_C). Labels come from the
cluster head on un-augmented (resized + normalised), unmasked images (Algorithm 1, lines 19-21).

Choices where the paper is silent (also in docs/methods/pici.md):

* a fresh Adam optimizer per stage, over exactly the modules Algorithm 1 updates in that stage;
* CLI pseudo-labels (``cli_targets``): ``"dataset"`` (default, ``fast`` and ``paper``), at the
  start of every boosting epoch one k-means over the instance features of *all* samples (the
  un-augmented view, as at test time) matched once to the cluster head's labels of all samples
  (section 3.3 speaks of the pseudo-labels of all samples; the authors' code runs one k-means
  over the whole data set), each step's two views then take their rows of these targets. We
  refresh every epoch rather than once, so the targets follow the features the stage trains.
  ``"batch"``: k-means on each mini-batch, per view, matched on the batch (eq. 12 read as a sum
  over a mini-batch), with ``min(M, n)`` clusters for a short last batch;
* ``pisd=False`` (Table 6, first row uses a ResNet: that row is :class:`ContrastiveClustering`)
  drops the pre-training stage and the reconstruction loss and feeds unmasked views;
* ``cli=False`` keeps the boosting epochs with L_PICD only, so the epoch budget is the same;
* ``cluster_head=False`` (Table 7) clusters the instance features with k-means, as the paper says.

``no_cli_branch=True`` is a cost saving for the Table 6 ablation, not part of the method: the
boosting stage is run twice from the same trained trunk, first with L_PICD only (its labels go to
``extra_labels_["no_cli"]``), then the model, the optimizer and the random generator are put back
and the real boosting stage (with CLI) runs exactly as without the branch. One fit then gives both
rows for the price of pre-training and training once.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from deepclust.augment import ViewAugmenter, channel_stats, prepare_images
from deepclust.base import DeepClusterer
from deepclust.distributed import world_size
from deepclust.losses.contrastive import (
    cluster_contrastive_loss,
    cross_level_loss,
    dataset_pseudo_labels,
    instance_contrastive_loss,
)
from deepclust.nn.heads import ClusterHead, InstanceHead, embed_with_heads
from deepclust.nn.vit import MaskedAutoencoderViT
from deepclust.training import History, device_data, fit_loop, minibatches, take_rows

__all__ = ["PICI", "PICINet"]

log = logging.getLogger("deepclust")

STAGES = ("pretrain", "train", "boost")


class PICINet(nn.Module):
    """ViT/MAE backbone + instance head G_I + cluster head G_C (either head may be absent)."""

    def __init__(
        self,
        *,
        mae: MaskedAutoencoderViT,
        n_clusters: int,
        feature_dim: int = 128,
        instance_head: bool = True,
        cluster_head: bool = True,
    ):
        super().__init__()
        self.mae = mae
        d = mae.embed_dim
        self.instance_head = InstanceHead(d, feature_dim) if instance_head else None
        self.cluster_head = ClusterHead(d, n_clusters) if cluster_head else None

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """[CLS] features h (N, D) of unmasked images (the test-time rule)."""
        return self.mae.forward_features(x, 0.0)

    def encoder_parameters(self) -> list[nn.Parameter]:
        dec = {id(p) for p in self.decoder_parameters()}
        return [p for p in self.mae.parameters() if id(p) not in dec]

    def decoder_parameters(self) -> list[nn.Parameter]:
        m = self.mae
        mods = [m.decoder_embed, m.decoder_blocks, m.decoder_norm, m.decoder_pred]
        return [p for mod in mods for p in mod.parameters()] + [m.mask_token, m.decoder_pos_embed]

    def head_parameters(self) -> list[nn.Parameter]:
        heads = [h for h in (self.instance_head, self.cluster_head) if h is not None]
        return [p for h in heads for p in h.parameters()]


@dataclass(frozen=True)
class _Config:
    n_clusters: int
    mask_ratio: float
    instance_temperature: float
    cluster_temperature: float
    entropy_weight: float
    epochs: tuple[int, int, int]
    batch_size: int
    lr: float
    weight_decay: float
    pisd: bool
    cli: bool
    cli_n_init: int
    grad_clip: float | None
    cli_targets: str


def _stage_step(
    *,
    stage: str,
    model: PICINet,
    augmenter: ViewAugmenter,
    X: torch.Tensor,
    cfg: _Config,
    device: torch.device,
    generator: torch.Generator,
    targets: dict | None = None,
):
    """The step of one stage: batch indices -> dict of loss terms (Algorithm 1). ``targets``
    holds the whole-set CLI targets under ``"cli"`` (``cli_targets="dataset"``; set by
    :func:`_refresh_cli_targets` at the start of each epoch)."""
    mae = model.mae
    use_rec = cfg.pisd and stage in ("pretrain", "train")
    mask_ratio = cfg.mask_ratio if cfg.pisd else 0.0
    contrast = stage in ("train", "boost")
    use_cli = cfg.cli and stage == "boost"

    def step(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        x = take_rows(X, idx, device)  # (n, C, H, W) in [0, 1]
        views = (augmenter.weak(x), augmenter.strong(x, generator))  # T_w, T_s
        terms: dict[str, torch.Tensor] = {}
        total = x.new_zeros(())
        enc = [mae.forward_encoder(v, mask_ratio, generator=generator) for v in views]  # M(T(x))
        if use_rec:  # eq. (1)
            rec = sum(
                mae.forward_loss(v, mae.forward_decoder(lat, ids), m)
                for v, (lat, m, ids) in zip(views, enc, strict=True)
            )
            terms["rec"] = rec / 2
            total = total + terms["rec"]
        if contrast:
            h = [lat[:, 0] for lat, _, _ in enc]  # [CLS] of each view, (n, D)
            z = c = None
            if model.instance_head is not None:
                z = [model.instance_head(v) for v in h]  # (n, 128), unit norm
                terms["ins"] = instance_contrastive_loss(z[0], z[1], cfg.instance_temperature)  # eqs. (3)-(6)
                total = total + terms["ins"]
            if model.cluster_head is not None:
                c = [model.cluster_head(v) for v in h]  # (n, M)
                clu = cluster_contrastive_loss(
                    c[0], c[1], cfg.cluster_temperature, entropy_weight=cfg.entropy_weight
                )  # eqs. (7)-(11)
                terms["clu"] = clu["loss"]
                terms["clu_contrast"] = clu["contrast"].detach()
                terms["entropy"] = clu["entropy"].detach()
                total = total + terms["clu"]
            if use_cli and z is not None and c is not None:  # eqs. (12)-(15)
                if cfg.cli_targets == "dataset":  # this batch's rows of the whole-set targets
                    t = targets["cli"][idx.cpu()]
                    terms["cli"] = 0.5 * sum(cross_level_loss(z[k], c[k], cfg.n_clusters, target=t)
                                             for k in range(2))
                else:  # k-means on each view's mini-batch
                    seeds = torch.randint(0, 2**31 - 1, (2,), generator=generator).tolist()
                    terms["cli"] = 0.5 * sum(
                        cross_level_loss(z[k], c[k], cfg.n_clusters, seed=int(seeds[k]), n_init=cfg.cli_n_init)
                        for k in range(2)
                    )
                total = total + terms["cli"]
        terms["loss"] = total
        return terms

    return step


def _stage_parameters(model: PICINet, stage: str) -> list[nn.Parameter]:
    """What Algorithm 1 updates: pretrain F, D; train F, D, G_I, G_C; boost F, G_I, G_C."""
    if stage == "pretrain":
        params = model.encoder_parameters() + model.decoder_parameters()
    elif stage == "train":
        params = list(model.parameters())
    else:
        params = model.encoder_parameters() + model.head_parameters()
    return [p for p in params if p.requires_grad]


def _train_pici(
    *,
    model: PICINet,
    augmenter: ViewAugmenter,
    X: torch.Tensor,
    cfg: _Config,
    device: torch.device,
    generator: torch.Generator,
    checkpoint_path: str | None = None,
    resume: bool = False,
    verbose: bool = False,
    no_cli_branch: bool = False,
) -> tuple[History, np.ndarray | None]:
    """Run the three stages of Algorithm 1.

    Returns the history (one entry per stage) and, with ``no_cli_branch``, the labels of the
    boosting stage run without CLI from the same trunk (else None).
    """
    history = History()
    branch_labels = None
    for stage, epochs in zip(STAGES, cfg.epochs, strict=True):
        if epochs == 0 or (stage == "pretrain" and not cfg.pisd):
            continue
        if stage == "boost" and no_cli_branch:
            # the Table 6 "without CLI" row from the same trunk; everything it changes is restored
            saved_model, saved_rng = copy.deepcopy(model.state_dict()), generator.get_state()
            _run_stage(model=model, augmenter=augmenter, X=X, cfg=dataclasses.replace(cfg, cli=False),
                       device=device, generator=generator, stage=stage, epochs=epochs, history=history,
                       history_stage="boost_no_cli", checkpoint_path=None, resume=False, verbose=verbose)
            _, _, c = embed_with_heads(model, X, view=augmenter.weak, device=device,
                                       batch_size=max(cfg.batch_size, 256))
            branch_labels = c.argmax(dim=1).numpy().astype(np.int64)
            model.load_state_dict(saved_model)
            generator.set_state(saved_rng)
        _run_stage(model=model, augmenter=augmenter, X=X, cfg=cfg, device=device, generator=generator,
                   stage=stage, epochs=epochs, history=history, history_stage=stage,
                   checkpoint_path=checkpoint_path, resume=resume, verbose=verbose)
    return history, branch_labels


def _refresh_cli_targets(model: PICINet, augmenter: ViewAugmenter, X: torch.Tensor, cfg: _Config, device,
                         generator: torch.Generator, targets: dict) -> None:
    """Whole-set CLI targets (``cli_targets="dataset"``): instance features and cluster-head labels
    of every sample through the un-augmented view, one k-means (seeded from ``generator``, so every
    rank draws the same seed), matched to the head's labels (eqs. 12-14)."""
    with torch.no_grad():
        _, z, c = embed_with_heads(model, X, view=augmenter.weak, device=device,
                                   batch_size=max(cfg.batch_size, 256))
    model.train()
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    matched = dataset_pseudo_labels(z.numpy(), c.argmax(dim=1).numpy(), cfg.n_clusters, seed=seed,
                                    n_init=cfg.cli_n_init)
    targets["cli"] = torch.from_numpy(matched)


def _run_stage(*, model, augmenter, X, cfg, device, generator, stage, epochs, history, history_stage,
               checkpoint_path, resume, verbose) -> None:
    """One stage of Algorithm 1 through the training loop (a fresh Adam over the stage's modules)."""
    n = X.shape[0]
    optimizer = torch.optim.Adam(_stage_parameters(model, stage), lr=cfg.lr, weight_decay=cfg.weight_decay)
    targets: dict = {}
    step = _stage_step(stage=stage, model=model, augmenter=augmenter, X=X, cfg=cfg, device=device,
                       generator=generator, targets=targets)
    whole_set_cli = stage == "boost" and cfg.cli and cfg.cli_targets == "dataset"

    def batches(epoch: int):
        if whole_set_cli:  # before the epoch's first step, from the model as it stands
            _refresh_cli_targets(model, augmenter, X, cfg, device, generator, targets)
        # sharded per rank when distributed (the contrastive losses then gather the global
        # batch); a last global batch too small to give every rank 2 rows is dropped there
        return minibatches(n, cfg.batch_size, generator=generator, shard=True,
                           drop_last=world_size() > 1 and 0 < n % cfg.batch_size < 2 * world_size())

    fit_loop(
        model=model,
        optimizer=optimizer,
        step=step,
        epochs=epochs,
        batches=batches,
        stage=history_stage,
        history=history,
        generator=generator,
        checkpoint_path=checkpoint_path,
        checkpoint_every=1 if checkpoint_path else 0,
        resume=resume,
        clip_grad_norm=cfg.grad_clip,
        verbose=verbose,
    )


class PICI(DeepClusterer):
    """PICI deep image clustering (ViT/MAE + instance/cluster contrast + cross-level interaction).

    Parameters
    ----------
    n_clusters : int
        M, the number of clusters.
    img_size : int
        Network input size; images are resized to it (paper: 224).
    patch_size : int
        ViT patch size (paper: 16).
    vit_size : {"tiny", "small", "base"} or None
        Named encoder (paper: small = 384 wide, 6 blocks, 12 heads). None uses ``embed_dim``,
        ``depth``, ``num_heads``.
    embed_dim, depth, num_heads : int
        Encoder shape when ``vit_size`` is None.
    decoder_dim, decoder_depth, decoder_heads : int
        MAE decoder (paper: 512, 8, 16).
    pos_embed : {"sincos", "learned"}
        Fixed 2-D sin-cos (MAE, default) or learnable position embeddings (PICI's text).
    mask_ratio : float
        Share of patches masked in training (paper: 0.5); no masking at test time.
    norm_pix_loss : bool
        Reconstruct per-patch normalised pixels (MAE option; off in PICI).
    feature_dim : int
        Instance head output (paper: 128).
    instance_temperature, cluster_temperature : float
        tau_I = 0.5, tau_C = 1.0.
    entropy_weight : float
        Weight of H(C) in eq. (11) (1 in the paper).
    pretrain_epochs, train_epochs, boost_epochs : int
        E1, E2, E3 of Algorithm 1 (paper: 200 / 800 / 50).
    batch_size : int
        N (paper: 96).
    lr, weight_decay : float
        Adam (paper: 1e-4, no decay stated).
    pisd, cli, instance_head, cluster_head : bool
        Ablation switches (Tables 6 and 7).
    cli_n_init : int
        k-means restarts inside CLI.
    cli_targets : {"dataset", "batch"}, default "dataset"
        Where CLI's pseudo-labels come from: one k-means over all samples, matched to the
        cluster head over all samples, refreshed at the start of every boosting epoch
        (section 3.3; the authors' code), or k-means on each mini-batch and view.
    grad_clip : float or None
        Optional gradient-norm clipping (off in the paper).
    crop_scale, jitter : augmentation strength of the strong view.
    device : {"auto", "cpu", "cuda", ...}
    precision : {"fp32", "bf16", "auto"}, default "fp32"
        bf16 autocast of the training steps on CUDA ("auto": where supported); fp32 on the CPU.
    random_state : int or None
    checkpoint_path : str or None
        Checkpoint after every epoch; with ``resume=True`` training continues from it.
    verbose : bool
    no_cli_branch : bool
        Also run the boosting stage without CLI from the same trunk (Table 6's "without CLI"
        row at the cost of the boosting epochs only); its labels are ``extra_labels_["no_cli"]``
        and the main result is unchanged. Needs ``cli=True`` and no checkpoint.

    Attributes
    ----------
    labels_ : (n,) cluster head argmax (k-means on instance features if ``cluster_head=False``).
    model_ : PICINet
    history_ : deepclust.training.History (stages ``pretrain``, ``train``, ``boost``)
    selection_ : str
    extra_labels_ : dict, ``"kmeans_instance"``: k-means on the instance features; ``"no_cli"``
        with ``no_cli_branch=True``.
    diagnostics_ : dict
    """

    input_kind = "images"

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        img_size: int = 224,
        patch_size: int = 16,
        vit_size: str | None = "small",
        embed_dim: int = 384,
        depth: int = 6,
        num_heads: int = 12,
        decoder_dim: int = 512,
        decoder_depth: int = 8,
        decoder_heads: int = 16,
        pos_embed: str = "sincos",
        mask_ratio: float = 0.5,
        norm_pix_loss: bool = False,
        feature_dim: int = 128,
        instance_temperature: float = 0.5,
        cluster_temperature: float = 1.0,
        entropy_weight: float = 1.0,
        pretrain_epochs: int = 200,
        train_epochs: int = 800,
        boost_epochs: int = 50,
        batch_size: int = 96,
        lr: float = 1e-4,
        weight_decay: float = 0.0,
        pisd: bool = True,
        cli: bool = True,
        instance_head: bool = True,
        cluster_head: bool = True,
        cli_n_init: int = 3,
        cli_targets: str = "dataset",
        grad_clip: float | None = None,
        crop_scale: tuple[float, float] = (0.2, 1.0),
        jitter: float = 0.4,
        device: str = "auto",
        precision: str = "fp32",
        random_state: int | None = None,
        checkpoint_path: str | None = None,
        resume: bool = False,
        verbose: bool = False,
        no_cli_branch: bool = False,
    ):
        self.n_clusters = n_clusters
        self.img_size = img_size
        self.patch_size = patch_size
        self.vit_size = vit_size
        self.embed_dim = embed_dim
        self.depth = depth
        self.num_heads = num_heads
        self.decoder_dim = decoder_dim
        self.decoder_depth = decoder_depth
        self.decoder_heads = decoder_heads
        self.pos_embed = pos_embed
        self.mask_ratio = mask_ratio
        self.norm_pix_loss = norm_pix_loss
        self.feature_dim = feature_dim
        self.instance_temperature = instance_temperature
        self.cluster_temperature = cluster_temperature
        self.entropy_weight = entropy_weight
        self.pretrain_epochs = pretrain_epochs
        self.train_epochs = train_epochs
        self.boost_epochs = boost_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.pisd = pisd
        self.cli = cli
        self.instance_head = instance_head
        self.cluster_head = cluster_head
        self.cli_n_init = cli_n_init
        self.cli_targets = cli_targets
        self.grad_clip = grad_clip
        self.crop_scale = crop_scale
        self.jitter = jitter
        self.device = device
        self.precision = precision
        self.random_state = random_state
        self.checkpoint_path = checkpoint_path
        self.resume = resume
        self.verbose = verbose
        self.no_cli_branch = no_cli_branch

    # -- validation ------------------------------------------------------------------------
    def _check_params(self) -> None:
        for name in ("pretrain_epochs", "train_epochs", "boost_epochs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
        if self.train_epochs + self.boost_epochs == 0 and self.cluster_head:
            raise ValueError(
                "train_epochs + boost_epochs is 0: the cluster head would never be trained; "
                "give it some epochs or set cluster_head=False"
            )
        if int(self.batch_size) < 2:
            raise ValueError(f"batch_size must be >= 2 for contrastive learning, got {self.batch_size}")
        if not 0.0 <= float(self.mask_ratio) < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {self.mask_ratio}")
        if self.instance_temperature <= 0 or self.cluster_temperature <= 0:
            raise ValueError("instance_temperature and cluster_temperature must be > 0")
        if float(self.lr) <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not (self.instance_head or self.cluster_head):
            raise ValueError("at least one of instance_head and cluster_head must be True")
        if self.cli_targets not in ("dataset", "batch"):
            raise ValueError(f"cli_targets must be 'dataset' (one k-means over all samples per boosting "
                             f"epoch) or 'batch' (k-means per mini-batch), got {self.cli_targets!r}")
        if self.cli and not (self.instance_head and self.cluster_head):
            raise ValueError(
                "cli=True needs both heads (k-means runs on the instance head and is matched to the "
                "cluster head); set cli=False for the Table 7 ablations"
            )
        if self.no_cli_branch and not (self.cli and int(self.boost_epochs) > 0):
            raise ValueError("no_cli_branch=True needs cli=True and boost_epochs > 0 (it adds the run without CLI)")
        if self.no_cli_branch and self.checkpoint_path:
            raise ValueError("no_cli_branch=True cannot be checkpointed (the branch is not resumable); "
                             "drop checkpoint_path or the branch")
        if int(self.img_size) % int(self.patch_size):
            raise ValueError(
                f"img_size={self.img_size} is not divisible by patch_size={self.patch_size}; "
                "pick a patch size that divides the input size"
            )

    def _build(self, in_chans: int) -> PICINet:
        mae = MaskedAutoencoderViT(
            img_size=int(self.img_size),
            patch_size=int(self.patch_size),
            in_chans=in_chans,
            size=self.vit_size,
            embed_dim=int(self.embed_dim),
            depth=int(self.depth),
            num_heads=int(self.num_heads),
            decoder_embed_dim=int(self.decoder_dim),
            decoder_depth=int(self.decoder_depth),
            decoder_num_heads=int(self.decoder_heads),
            norm_pix_loss=bool(self.norm_pix_loss),
            pos_embed=self.pos_embed,
        )
        return PICINet(
            mae=mae,
            n_clusters=int(self.n_clusters),
            feature_dim=int(self.feature_dim),
            instance_head=bool(self.instance_head),
            cluster_head=bool(self.cluster_head),
        )

    # -- fit / predict ---------------------------------------------------------------------
    def _fit(self, X: np.ndarray) -> None:
        self._check_params()
        X = prepare_images(X)
        mean, std = channel_stats(X)
        self.channel_mean_, self.channel_std_ = mean, std
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed_)  # weight init from the local seed, global state restored
            model = self._build(X.shape[1]).to(self.device_)
        augmenter = ViewAugmenter(
            size=int(self.img_size), mean=mean, std=std, crop_scale=tuple(self.crop_scale), jitter=float(self.jitter)
        ).to(self.device_)
        cfg = _Config(
            n_clusters=int(self.n_clusters),
            mask_ratio=float(self.mask_ratio),
            instance_temperature=float(self.instance_temperature),
            cluster_temperature=float(self.cluster_temperature),
            entropy_weight=float(self.entropy_weight),
            epochs=(int(self.pretrain_epochs), int(self.train_epochs), int(self.boost_epochs)),
            batch_size=int(self.batch_size),
            lr=float(self.lr),
            weight_decay=float(self.weight_decay),
            pisd=bool(self.pisd),
            cli=bool(self.cli),
            cli_n_init=int(self.cli_n_init),
            cli_targets=str(self.cli_targets),
            grad_clip=None if self.grad_clip is None else float(self.grad_clip),
        )
        Xt = device_data(torch.from_numpy(X), self.device_)  # on the device once, where it fits
        self.history_, branch_labels = _train_pici(
            model=model,
            augmenter=augmenter,
            X=Xt,
            cfg=cfg,
            device=self.device_,
            generator=self._torch_gen,
            checkpoint_path=self.checkpoint_path,
            resume=bool(self.resume),
            verbose=bool(self.verbose),
            no_cli_branch=bool(self.no_cli_branch),
        )
        self.model_ = model
        self._augmenter = augmenter
        self.labels_, self.extra_labels_ = self._assign(Xt, fit=True)
        if branch_labels is not None:
            self.extra_labels_["no_cli"] = branch_labels
        ran = [s for s in STAGES if self.history_.epochs(s) > 0]
        self.selection_ = f"last epoch of the last stage ({ran[-1] if ran else 'none'}); no model selection"
        sizes = np.bincount(self.labels_, minlength=int(self.n_clusters))
        self.diagnostics_ = {
            "epochs_per_stage": {s: self.history_.epochs(s) for s in STAGES},
            "final_losses": {s: {k: v[-1] for k, v in t.items()} for s, t in self.history_.stages.items()},
            "n_nonempty_clusters": int((sizes > 0).sum()),
            "largest_cluster_share": float(sizes.max() / sizes.sum()),
        }

    def _assign(self, Xt: torch.Tensor, *, fit: bool) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        h, z, c = embed_with_heads(self.model_, Xt, view=self._augmenter.weak, device=self.device_,
                                   batch_size=max(int(self.batch_size), 256))
        extra: dict[str, np.ndarray] = {}
        if z is not None:
            from sklearn.cluster import KMeans

            zn = z.numpy().astype(np.float64)
            if fit:
                self._kmeans = KMeans(n_clusters=int(self.n_clusters), n_init=10, random_state=self.seed_).fit(zn)
            extra["kmeans_instance"] = self._kmeans.predict(zn).astype(np.int64)
        if c is not None:
            labels = c.argmax(dim=1).numpy().astype(np.int64)
        else:
            labels = extra["kmeans_instance"]
        return labels, extra

    def _predict(self, X: np.ndarray) -> np.ndarray:
        X = prepare_images(X)
        if X.shape[1] != self.model_.mae.in_chans:
            raise ValueError(f"X has {X.shape[1]} channels, the model was fitted on {self.model_.mae.in_chans}")
        labels, _ = self._assign(torch.from_numpy(X), fit=False)
        return labels

    def transform(self, X: np.ndarray) -> np.ndarray:
        """[CLS] features h (n, D) of un-augmented, unmasked images."""
        from sklearn.utils.validation import check_is_fitted

        from deepclust.base import check_data

        check_is_fitted(self, "labels_")
        X = prepare_images(check_data(X, kind="images", min_samples=1))
        h, _, _ = embed_with_heads(self.model_, torch.from_numpy(X), view=self._augmenter.weak, device=self.device_)
        return h.numpy()
