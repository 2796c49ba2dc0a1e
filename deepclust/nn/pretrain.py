"""Autoencoder stages shared by the methods built on a pretrained autoencoder.

* :func:`pretrain_autoencoder`: reconstruction (MSE) pretraining through the one training loop,
  ended by a label-free plateau rule or the epoch cap;
* :func:`encode_all`: the codes of every sample in eval mode, in batches (and shards under a
  process group).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deepclust import distributed as ddp
from deepclust.stopping import plateau_rule
from deepclust.training import History, fit_loop, minibatches, take_rows

__all__ = ["encode_all", "pretrain_autoencoder"]


@torch.no_grad()
def encode_all(ae: nn.Module, X: torch.Tensor, *, batch_size: int, device) -> np.ndarray:
    """Codes of ``X`` in eval mode, in batches (no autograd memory).

    Under a process group this is a collective: every rank encodes its shard of the rows and all
    ranks get all codes in the original order (:func:`deepclust.distributed.map_rows`).
    """
    was = ae.training
    ae.eval()

    def codes(a: int, b: int) -> torch.Tensor:
        if b <= a:  # an empty shard (fewer rows than ranks): no rows of the right width
            return ae.encode(X[:1].to(device)).cpu()[:0]
        return torch.cat([ae.encode(X[i : min(i + batch_size, b)].to(device)).cpu()
                          for i in range(a, b, batch_size)])

    out = ddp.map_rows(codes, X.shape[0])
    ae.train(was)
    return out.numpy()


def pretrain_autoencoder(
    *,
    ae: nn.Module,
    X: torch.Tensor,
    epochs: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    device,
    history: History,
    verbose: bool = False,
    checkpoint_path: str | None = None,
    resume: bool = False,
    rng: np.random.Generator | None = None,
    plateau_tol: float | None = None,
    plateau_patience: int = 10,
) -> int:
    """Reconstruction (MSE) pretraining with Adam on shuffled mini-batches.

    ``epochs`` is a cap: with ``plateau_tol`` set, pretraining stops as soon as the epoch-mean
    reconstruction error has plateaued (:func:`deepclust.stopping.plateau_reached`: the last
    ``plateau_patience`` epochs lowered the best error by less than a ``plateau_tol`` share), a
    label-free rule. Returns the number of epochs run.
    """
    if epochs <= 0:
        return 0
    opt = torch.optim.Adam(ae.parameters(), lr=lr)
    n = X.shape[0]
    distributed = ddp.world_size() > 1
    drop_last = ddp.drop_short_last(n, batch_size)  # no rank left without rows (never in one process)

    def step(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        x = take_rows(X, idx, device)
        _, x_hat = ae(x)
        rec = F.mse_loss(x_hat, x)
        if distributed:  # this rank's share of the union-batch mean
            return {"loss": rec * ddp.shard_weight(len(idx)), "rec": rec}
        return {"loss": rec, "rec": rec}

    fit_loop(
        model=ae,
        optimizer=opt,
        step=step,
        epochs=epochs,
        stage="pretrain",
        history=history,
        batches=lambda e: minibatches(n, batch_size, generator=generator, drop_last=drop_last, shard=True),
        generator=generator,
        checkpoint_path=checkpoint_path,
        checkpoint_every=1 if checkpoint_path else 0,
        resume=resume,
        rng=rng,
        verbose=verbose,
        on_epoch_end=plateau_rule(history, "pretrain", "rec", tol=plateau_tol, patience=plateau_patience),
    )
    return history.epochs("pretrain")
