"""Helpers for multi-process (``torch.distributed``) training.

Every helper is a no-op (identity, rank 0, world size 1) when no process group is initialised,
so single-process code paths stay bit-identical.

Gradient convention (read this before writing a global-batch loss)
-------------------------------------------------------------------
A *global* loss (one that depends on the whole batch, e.g. NT-Xent negatives, a class marginal)
is computed **identically on every rank** from gathered / all-reduced tensors. The backward of
:func:`all_gather_with_grad` and of :func:`all_reduce_sum` **sums** the incoming gradients over
the ranks (an all-reduce), so each rank's local parameters receive ``W`` times their share of
the single-process gradient (``W`` = world size). DistributedDataParallel then *averages* the
parameter gradients over the ranks (divides by ``W``), which gives exactly the gradient of the
single-process loss on the union batch.

A *local* loss (a per-sample mean such as a reconstruction error) is the mean over the rank's own
samples; DDP's averaging turns it into the global mean when the ranks hold equally many samples.

Without DDP (manual all-reduce of gradients) divide the summed gradients by ``W`` the same way.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

__all__ = [
    "is_distributed",
    "rank",
    "world_size",
    "all_gather_with_grad",
    "all_reduce_sum",
    "init_from_env",
    "use_global_batch",
    "launch_local",
    "shard_range",
    "gather_rows",
    "map_rows",
    "broadcast_array",
    "run_on_rank0",
    "drop_short_last",
]


def is_distributed() -> bool:
    """True when ``torch.distributed`` is available and a process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """The number of processes (1 without a process group)."""
    return dist.get_world_size() if is_distributed() else 1


def use_global_batch(global_batch: bool | None) -> bool:
    """Resolve a loss's ``global_batch`` argument: None -> automatic (distributed with W > 1).

    ``True`` without a process group is allowed and means nothing to gather (world size 1).
    """
    if global_batch is None:
        return is_distributed() and world_size() > 1
    return bool(global_batch) and is_distributed() and world_size() > 1


class _AllGatherWithGrad(torch.autograd.Function):
    """Concatenate every rank's (n_r, ...) tensor along dim 0; backward all-reduces (sum)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        w = dist.get_world_size()
        # gather the per-rank sizes first so that unequal batches can be padded
        n_local = torch.tensor([x.shape[0]], dtype=torch.long, device=x.device)
        sizes_t = [torch.zeros_like(n_local) for _ in range(w)]
        dist.all_gather(sizes_t, n_local)
        sizes = [int(s.item()) for s in sizes_t]
        n_max = max(sizes)
        xc = x.contiguous()
        if x.shape[0] < n_max:
            pad = x.new_zeros((n_max - x.shape[0],) + tuple(x.shape[1:]))
            xc = torch.cat([xc, pad], dim=0)  # (n_max, ...)
        bufs = [torch.empty_like(xc) for _ in range(w)]
        dist.all_gather(bufs, xc)
        r = dist.get_rank()
        ctx.start = sum(sizes[:r])
        ctx.n = sizes[r]
        return torch.cat([b[:s] for b, s in zip(bufs, sizes)], dim=0)  # (sum n_r, ...)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        g = grad.contiguous().clone()
        dist.all_reduce(g, op=dist.ReduceOp.SUM)  # see the module's gradient convention
        return g[ctx.start : ctx.start + ctx.n]


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; backward is the all-reduced (summed) incoming gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        y = x.contiguous().clone()
        dist.all_reduce(y, op=dist.ReduceOp.SUM)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # noqa: D102
        g = grad.contiguous().clone()
        dist.all_reduce(g, op=dist.ReduceOp.SUM)
        return g


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate every rank's ``x`` (n_r, ...) along dim 0 in rank order -> (sum_r n_r, ...).

    Differentiable: the gradient flows back to each rank's own slice (summed over the ranks, see
    the module docstring). Ranks may hold different ``n_r`` (sizes are gathered first and the
    tensors padded). Without a process group this returns ``x`` itself.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"all_gather_with_grad needs a torch.Tensor, got {type(x).__name__}")
    if x.ndim == 0:
        raise ValueError("all_gather_with_grad needs a tensor with a batch dimension (ndim >= 1)")
    if not is_distributed() or world_size() == 1:
        return x
    return _AllGatherWithGrad.apply(x)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum ``t`` over the ranks (same shape on every rank); differentiable.

    Without a process group this returns ``t`` itself.
    """
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"all_reduce_sum needs a torch.Tensor, got {type(t).__name__}")
    if not is_distributed() or world_size() == 1:
        return t
    if t.requires_grad:
        return _AllReduceSum.apply(t)
    y = t.contiguous().clone()
    dist.all_reduce(y, op=dist.ReduceOp.SUM)
    return y


def init_from_env(backend: str = "auto") -> bool:
    """Initialise the default process group from torchrun's environment variables.

    Reads ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` (set by ``torchrun``).
    ``backend="auto"`` picks NCCL when CUDA is available, gloo otherwise. With NCCL the current
    CUDA device is set from ``LOCAL_RANK``. Returns True if a group was initialised (or already
    was), False when the environment does not describe a multi-process run.
    """
    if backend not in ("auto", "nccl", "gloo"):
        raise ValueError(f"backend must be 'auto', 'nccl' or 'gloo', got {backend!r}")
    if is_distributed():
        return True
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return False
    for var in ("MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise ValueError(f"{var} is not set; launch with torchrun or set it (RANK/WORLD_SIZE are set)")
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise ValueError("backend='nccl' needs CUDA; use backend='gloo' on CPU")
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend=backend, init_method="env://")
    return True


def _local_worker(rank_: int, nproc: int, tmp: str, fn: Callable[..., Any], kwargs: dict) -> None:
    backend = "nccl" if torch.cuda.is_available() and torch.cuda.device_count() >= nproc else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(rank_)
    dist.init_process_group(backend, init_method=f"file://{tmp}/rendezvous", rank=rank_, world_size=nproc)
    try:
        result = fn(**kwargs)
        if rank_ == 0:
            with open(os.path.join(tmp, "result.json"), "w") as fh:
                json.dump(result, fh)
        # no rank tears the group down while another still talks to it (gloo aborts the
        # process with "terminate called without an active exception" otherwise)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def launch_local(nproc: int, fn: Callable[..., Any], kwargs: dict | None = None) -> Any:
    """Run ``fn(**kwargs)`` in ``nproc`` local processes joined in one process group.

    gloo on CPU; NCCL with one GPU per process when there are enough GPUs. ``fn`` must be a
    module-level function (it is pickled into the spawned workers) returning something JSON can
    write. Returns rank 0's result (read back from JSON).
    """
    if not isinstance(nproc, int) or nproc < 1:
        raise ValueError(f"nproc must be an integer >= 1, got {nproc!r}")
    if is_distributed():
        raise ValueError("launch_local was called inside a process group; call it from the launcher process")
    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="deepclust-ddp-") as tmp:
        context = mp.spawn(_local_worker, args=(nproc, tmp, fn, dict(kwargs or {})), nprocs=nproc, join=False)
        try:
            while not context.join():
                pass
        except BaseException:
            # Ctrl-C or SIGTERM in the launcher (or a worker failed): stop the other workers with
            # SIGTERM, which they handle like Ctrl-C (rank 0 removes its staged outputs), and wait
            for proc in context.processes:
                if proc.is_alive():
                    proc.terminate()
            for proc in context.processes:
                proc.join(timeout=30)
                if proc.is_alive():
                    proc.kill()
            raise
        with open(os.path.join(tmp, "result.json")) as fh:
            return json.load(fh)


# -- whole-data-set helpers (no gradient): shard a pass over N rows, gather, broadcast -----------
def shard_range(n: int) -> tuple[int, int]:
    """This rank's contiguous rows ``[start, stop)`` of ``n`` rows (``(0, n)`` in one process).

    Ranks hold ``ceil`` / ``floor`` shares in rank order, so concatenating the ranks' shards in rank
    order (what :func:`gather_rows` does) gives the rows in their original order.
    """
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    r, w = rank(), world_size()
    base, extra = divmod(n, w)
    start = r * base + min(r, extra)
    return start, start + base + (1 if r < extra else 0)


def gather_rows(x: torch.Tensor) -> torch.Tensor:
    """All ranks' ``x`` (n_r, ...) concatenated in rank order, without gradient (identity in one
    process). With :func:`shard_range` shards this restores the original row order."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"gather_rows needs a torch.Tensor, got {type(x).__name__}")
    if not is_distributed() or world_size() == 1:
        return x
    with torch.no_grad():  # through the backend's device (CUDA for NCCL), back to x's device
        return all_gather_with_grad(x.detach().to(_comm_device())).to(x.device)


def map_rows(fn: Callable[[int, int], torch.Tensor], n: int) -> torch.Tensor:
    """``fn(0, n)`` in one process; under a process group every rank computes ``fn(start, stop)``
    on its :func:`shard_range` and the results are gathered in the original row order.

    ``fn(start, stop)`` returns a tensor with ``stop - start`` rows (e.g. the embeddings of
    ``X[start:stop]``); every rank gets the whole ``(n, ...)`` result.
    """
    if not is_distributed() or world_size() == 1:
        return fn(0, n)
    start, stop = shard_range(n)
    return gather_rows(fn(start, stop))


_DTYPES = [np.float32, np.float64, np.int64, np.int32, np.bool_, np.uint8, np.int8, np.int16]
_MAX_NDIM = 6


def broadcast_array(a: np.ndarray | None, src: int = 0) -> np.ndarray:
    """Rank ``src``'s numpy array on every rank (other ranks may pass None). Identity in one process.

    Shape and dtype travel with the data (no pickle). Supported dtypes: float32/64, int8/16/32/64,
    uint8, bool; at most 6 dimensions.
    """
    if not is_distributed() or world_size() == 1:
        if a is None:
            raise ValueError("broadcast_array needs an array in a single process")
        return a
    if rank() == src:
        if not isinstance(a, np.ndarray):
            raise TypeError(f"broadcast_array needs a numpy array on rank {src}, got {type(a).__name__}")
        codes = [i for i, t in enumerate(_DTYPES) if a.dtype == np.dtype(t)]
        if not codes or a.ndim > _MAX_NDIM:
            raise ValueError(f"broadcast_array cannot send dtype {a.dtype} with {a.ndim} dimensions")
        header = torch.tensor([a.ndim, codes[0], *a.shape] + [0] * (_MAX_NDIM - a.ndim), dtype=torch.long)
    else:
        header = torch.zeros(2 + _MAX_NDIM, dtype=torch.long)
    dev = _comm_device()
    header = header.to(dev)
    dist.broadcast(header, src=src)
    ndim, code = int(header[0]), int(header[1])
    shape = tuple(int(s) for s in header[2 : 2 + ndim])
    dtype = _DTYPES[code]
    if rank() == src:
        buf = torch.from_numpy(np.ascontiguousarray(a)).to(dev)
    else:
        buf = torch.empty(shape, dtype=torch.from_numpy(np.zeros(0, dtype)).dtype, device=dev)
    dist.broadcast(buf, src=src)
    return buf.cpu().numpy() if rank() != src else a


def run_on_rank0(fn: Callable[[], Any]) -> Any:
    """Run ``fn()`` (returning a numpy array or a tuple of arrays) on rank 0 only and broadcast the
    result, so every rank holds the same values (e.g. k-means, whose result must agree on all
    ranks). In one process this is just ``fn()``."""
    if not is_distributed() or world_size() == 1:
        return fn()
    out = fn() if rank() == 0 else None
    flag = torch.tensor([isinstance(out, tuple), len(out) if isinstance(out, tuple) else 1])
    flag = flag.to(_comm_device())
    dist.broadcast(flag, src=0)
    if bool(flag[0]):
        items = list(out) if out is not None else [None] * int(flag[1])
        return tuple(broadcast_array(np.asarray(v) if v is not None else None) for v in items)
    return broadcast_array(np.asarray(out) if out is not None else None)


def _comm_device() -> torch.device:
    """CPU for gloo, the current CUDA device for NCCL."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def drop_short_last(n: int, batch_size: int, min_rows: int = 1) -> bool:
    """Whether ``minibatches(n, batch_size, shard=True)`` should drop its short last batch: when it
    would leave some rank fewer than ``min_rows`` rows (``min_rows=2`` for networks with BatchNorm,
    which cannot train on one sample). With ``min_rows=1`` never in one process."""
    return n >= batch_size and 0 < n % batch_size < min_rows * world_size()


def shard_weight(n_local: int) -> float:
    """Factor that turns a rank's per-sample *mean* loss into its exact share of the global mean.

    ``n_local * W / n_global`` (one all-reduce of the count): with gradient averaging over the
    ``W`` ranks, ``sum_r weight_r * mean_r / W = sum_r sum_r' / n_global``, the single-process
    mean over the union batch, also when the ranks hold unequal shares. 1.0 in one process.
    """
    if not is_distributed() or world_size() == 1:
        return 1.0
    t = torch.tensor([float(n_local)], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    total = float(t.item())
    if total <= 0:
        raise ValueError("shard_weight: the global batch is empty on every rank")
    return n_local * world_size() / total
