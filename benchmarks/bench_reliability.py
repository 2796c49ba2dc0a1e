"""Costs of the reliability machinery, measured on this machine.

1. The collapse rule's k-means reference (runs only for a candidate collapse): time on an
   MNIST-sized input (70,000 x 784; a 5,000-sample subset is clustered).
2. Checkpointing: the time of one atomic checkpoint (write + fsync + rename) and its size for
   the networks of the fast presets' scale, and the slow-down of a tiny fit with a checkpoint
   after every epoch.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_reliability.py
"""

from __future__ import annotations

import os
import runpy
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from deepclust.runner import cluster_size_report
from deepclust.training import atomic_torch_save


def collapse_reference():
    rng = np.random.default_rng(0)
    X = rng.random((70_000, 784), dtype=np.float32)
    labels = np.zeros(70_000, dtype=np.int64)
    labels[:100] = 1
    t = time.perf_counter()
    r = cluster_size_report(labels, 10, X, seed=0)
    return time.perf_counter() - t, r["collapse_reference"]


def checkpoint_cost(n_params: int):
    model = torch.nn.Linear(n_params // 1000, 1000)
    opt = torch.optim.Adam(model.parameters())
    model(torch.zeros(1, n_params // 1000)).sum().backward()
    opt.step()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.pt"
        times = []
        for _ in range(5):
            t = time.perf_counter()
            atomic_torch_save({"model": model.state_dict(), "optimizer": opt.state_dict()}, path)
            times.append(time.perf_counter() - t)
        return float(np.median(times)), path.stat().st_size / 2**20


def tiny_fit_overhead(method: str):
    tiny = runpy.run_path(str(Path(__file__).resolve().parents[1] / "tests" / "tiny_fits.py"))
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for label, kw in (("no checkpoint", {}), ("checkpoint every epoch", {"checkpoint_path": f"{d}/c.pt"})):
            est, args, kwargs, _ = tiny["build"](method, **kw)
            t = time.perf_counter()
            est.fit(*args, **kwargs)
            out[label] = time.perf_counter() - t
    return out


if __name__ == "__main__":
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    sec, ref = collapse_reference()
    print(f"collapse reference on 70000x784 (5000-sample subset, k=10, n_init=3): {sec:.2f} s (share {ref:.3f})")
    for n in (1_000_000, 5_000_000, 20_000_000):
        sec, mb = checkpoint_cost(n)
        print(f"atomic checkpoint of {n / 1e6:.0f}M parameters + Adam state: {sec * 1000:.0f} ms, {mb:.0f} MiB")
    for m in ("tdec", "pici", "scdsc"):
        print(m, {k: round(v, 2) for k, v in tiny_fit_overhead(m).items()})
