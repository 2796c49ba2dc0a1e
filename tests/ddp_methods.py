"""Tiny fits of the DEC family, EDESC, TDEC, RECAL and SCDSC shared by the distributed tests.

``fit_case(name)`` builds the tiny data and estimator of one method and fits it in the current
process (which may be a rank of a process group); ``signature`` hashes the labels and weights.
"""

from __future__ import annotations

import hashlib

import numpy as np

METHODS = ["dec", "idec", "edesc", "tdec", "recal", "scdsc"]
VARIANTS = ["recal_exact", "scdsc_chunked", "tdec_kmeans"]
RESUME = dict(tol=0.0)  # the resume cases: IDEC without early convergence (2 + 2 epochs)


def vectors(n: int = 60, d: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.random((3, d)) * 2
    return (centres[np.arange(n) % 3] + 0.1 * rng.normal(size=(n, d))).astype(np.float32)


def images(n_per: int = 10, k: int = 3, size: int = 8, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = 0.05 * rng.random((n_per * k, 1, size, size)).astype(np.float32)
    for c in range(k):
        X[c * n_per : (c + 1) * n_per, 0, :, 2 * c + 1 : 2 * c + 3] += 0.9
    return np.clip(X, 0, 1)


def scene(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    gt = np.zeros((10, 9), dtype=int)
    gt[:5, :4], gt[:5, 4:], gt[5:, :] = 1, 2, 3
    spectra = rng.uniform(0.5, 2.0, size=(4, 8))
    return (spectra[gt] + 0.05 * rng.normal(size=(10, 9, 8))).astype(np.float32)


def make(name: str, **extra):
    """(estimator, data) of a tiny fit of ``name``."""
    from deepclust.methods.dec import DEC, IDEC
    from deepclust.methods.edesc import EDESC
    from deepclust.methods.recal import RECAL
    from deepclust.methods.scdsc import SCDSC
    from deepclust.methods.tdec import TDEC

    dec = dict(hidden_dims=(16,), latent_dim=4, pretrain_epochs=2, batch_size=16, max_iter=8,
               update_interval=3, n_init=2, random_state=0, device="cpu")
    if name == "dec":
        return DEC(3, **{**dec, **extra}), vectors()
    if name == "idec":
        return IDEC(3, **{**dec, **extra}), vectors()
    if name == "edesc":
        return EDESC(3, **{**dict(hidden=(16,), latent=6, n_subspace_dims=2, pretrain_epochs=2, epochs=2,
                                  batch_size=16, kmeans_n_init=2, random_state=0, device="cpu"), **extra}), vectors()
    if name == "tdec":
        return TDEC(3, **{**dict(depth=1, embed_dim=8, hidden_dims=(16, 16, 16), latent_dim=4, dr_dims=(8, 8),
                                 n_neighbors=4, pretrain_epochs=1, epochs=2, batch_size=16, perplexity=5.0,
                                 lr=3e-3, random_state=0, device="cpu"), **extra}), images()
    if name == "recal":
        return RECAL(3, **{**dict(width=0.0625, epochs=2, batch_size=8, lr=0.01, kmeans_n_init=2,
                                  random_state=0, device="cpu"), **extra}), np.repeat(images(n_per=8, size=16), 1, 0)
    if name == "scdsc":
        return SCDSC(3, **{**dict(n_components=4, patch=3, channels=4, finch_patch=3, finch_pca=6, window=3,
                                  epochs=2, pretrain_epochs=1, pretrain_batch_size=32, kmeans_n_init=2,
                                  beta2=1.0, random_state=0, device="cpu"), **extra}), scene()
    if name == "recal_exact":  # exact virtual batches of 2 mini-batches (two passes, all-reduced marginal)
        return make("recal", **{**dict(virtual_batches=2, virtual_batch="exact"), **extra})
    if name == "scdsc_chunked":  # the memory-bounded step: dL/dS over all pixels, rows back-propagated per rank
        return make("scdsc", **{**dict(chunk_size=20), **extra})
    if name == "tdec_kmeans":  # clustering head off: learnable centres from k-means on rank 0
        return make("tdec", **{**dict(clustering_head=False), **extra})
    raise ValueError(name)


def signature(est) -> str:
    m = hashlib.sha1(np.asarray(est.labels_).astype(np.int64).tobytes())
    for _, v in sorted(est.model_.state_dict().items()):
        m.update(v.detach().cpu().float().numpy().tobytes())
    return m.hexdigest()[:16]


def fit_case(name: str, **extra):
    est, X = make(name, **extra)
    return est.fit(X)


if __name__ == "__main__":  # print the signatures (bit-identity check against another checkout)
    import sys

    import torch

    torch.set_num_threads(1)
    for name in sys.argv[1:] or METHODS:
        print(name, signature(fit_case(name)), flush=True)


# -- pieces of the 2-process test (tests/test_distributed_methods.py) ------------------------
class Interrupt(Exception):
    """Raised on every rank at the same epoch end to simulate a killed run."""


def interrupted_fit(name: str, ckpt: str, after_epochs: int) -> None:
    """Fit ``name`` with a checkpoint after every epoch and stop it (on every rank alike) in the
    epoch end after ``after_epochs`` epochs were checkpointed."""
    import deepclust.training as T

    real = T.History.add
    calls = {"n": 0}

    def add(self, stage, means):
        calls["n"] += 1
        if calls["n"] > after_epochs:
            raise Interrupt
        real(self, stage, means)

    T.History.add = add
    try:
        fit_case(name, checkpoint_path=ckpt, **RESUME)
    except Interrupt:
        pass
    else:
        raise AssertionError("the fit finished before the interruption")
    finally:
        T.History.add = real


def dec_step(gamma: float | None, n: int = 11) -> dict:
    """One clustering step of DEC (gamma None) / IDEC on ``n`` rows, global batch = all rows,
    SGD instead of Adam (Adam's first step is blind to the gradient's scale). Returns the weights."""
    import torch

    from deepclust.methods import dec as dec_mod

    rng = np.random.default_rng(3)
    X = torch.from_numpy(rng.normal(size=(n, 5)).astype(np.float32))
    real = torch.optim.Adam
    torch.optim.Adam = lambda params, lr, **kw: torch.optim.SGD(params, lr=lr)
    try:
        out = dec_mod._train_dec(
            X=X, n_clusters=3, hidden_dims=(8,), latent_dim=3, alpha=1.0, gamma=gamma,
            pretrain_epochs=1, pretrain_lr=0.5, lr=0.5, batch_size=n, max_iter=1, update_interval=1,
            tol=0.0, n_init=1, seed=0, generator=torch.Generator().manual_seed(0), verbose=False,
        )
    finally:
        torch.optim.Adam = real
    w = {k: v.detach().clone() for k, v in out["model"].state_dict().items()}
    return {"w": w, "labels": torch.from_numpy(out["labels"]), "kl": out["history"].stages["cluster"]["kl"][0]}


def edesc_step(n: int = 11) -> dict:
    """One EDESC training step (eq. 4 basis terms, rec, KL to the batch target whose frequencies
    f_j are all-reduced) on ``n`` rows, global batch = all rows, SGD. Returns initial and final weights.

    kl_weight=100 so that the KL term moves the weights measurably: with weight 1 a per-rank
    target (f_j of the shard only) stays within 1e-5 of the global one (checked by hand)."""
    import torch

    from deepclust.methods.edesc import _train_edesc
    from deepclust.nn import seeded_init
    from deepclust.nn.mlp_ae import MLPAutoencoder
    from deepclust.nn.subspace import BasisClusteringNet
    from deepclust.training import History

    rng = np.random.default_rng(4)
    X = torch.from_numpy(rng.normal(size=(n, 5)).astype(np.float32))
    with seeded_init(0):
        net = BasisClusteringNet(MLPAutoencoder(5, hidden=(8,), latent=4), n_clusters=3, d=1, eta=5.0)
        torch.nn.init.normal_(net.D)
    w0 = {k: v.detach().clone() for k, v in net.state_dict().items()}
    real = torch.optim.Adam
    torch.optim.Adam = lambda params, lr, **kw: torch.optim.SGD(params, lr=lr)
    try:
        _train_edesc(net=net, X=X, epochs=1, batch_size=n, lr=0.05, kl_weight=100.0, basis_weight=1.0,
                     generator=torch.Generator().manual_seed(0), device="cpu", history=History(), verbose=False)
    finally:
        torch.optim.Adam = real
    return {"w0": w0, "w": {k: v.detach().clone() for k, v in net.state_dict().items()}}


def dec_initial_weights(n: int = 11) -> dict:
    """The DEC module's weights before training (same seed as :func:`dec_step`)."""
    import torch

    from deepclust.methods.dec import _DECModule
    from deepclust.nn.mlp_ae import MLPAutoencoder

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        m = _DECModule(MLPAutoencoder(5, (8,), 3), 3)
    return {k: v.detach().clone() for k, v in m.state_dict().items()}


def worker(rank: int, world: int, init_file: str, out: str, names: list[str]) -> None:
    """One rank: tiny fits of ``names``, the DEC/IDEC step, and the checkpoint cases."""
    import os

    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    res: dict = {}
    try:
        for name in names:
            est = fit_case(name)
            res[name] = {"labels": torch.from_numpy(np.asarray(est.labels_, dtype=np.int64)),
                         "sig": signature(est)}
        for name, gamma in (("dec_step", None), ("idec_step", 0.1)):
            res[name] = dec_step(gamma)
        res["edesc_step"] = edesc_step()
        # resume a 1-process checkpoint (written by the test) in 2 processes
        est = fit_case("idec", checkpoint_path=os.path.join(out, "ckpt_1proc.pt"), resume=True, **RESUME)
        res["resume_1to2"] = {"labels": torch.from_numpy(est.labels_), "sig": signature(est),
                              "history": est.history_.to_dict()}
        # write a 2-process checkpoint, interrupted (the test resumes it in 1 process)
        interrupted_fit("idec", os.path.join(out, "ckpt_2proc.pt"), after_epochs=3)
        torch.save(res, os.path.join(out, f"rank{rank}.pt"))
        dist.barrier()  # both ranks done before either destroys the group
    finally:
        dist.destroy_process_group()
