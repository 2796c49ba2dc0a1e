"""Costs of the reliability machinery, measured on this machine.

1. The collapse rule's k-means reference (runs only for a candidate collapse): time on an
   MNIST-sized input (70,000 x 784; a 5,000-sample subset is clustered).
2. Checkpointing: the time of one atomic checkpoint (write + fsync + rename) and its size for
   the networks of the fast presets' scale, and the slow-down of a tiny fit with a checkpoint
   after every epoch.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_reliability.py

One record per measurement goes to ``benchmarks/results/perf__reliability.json`` (``--out``
another file).
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from deepclust.runner import cluster_size_report
from deepclust.training import atomic_torch_save

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import append_record, command_line  # noqa: E402


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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=None, help="results file (default benchmarks/results/perf__reliability.json)")
    a = ap.parse_args(argv)
    command = command_line()

    def record(rec, methods=()):
        print(json.dumps(rec), flush=True)
        append_record("reliability", rec, methods=list(methods), command=command, out=a.out)

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    sec, ref = collapse_reference()
    record({"task": "collapse_reference", "shape": [70_000, 784], "subset": 5000, "k": 10, "n_init": 3,
            "seconds": round(sec, 2), "share": round(ref, 3)})
    for n in (1_000_000, 5_000_000, 20_000_000):
        sec, mb = checkpoint_cost(n)
        record({"task": "checkpoint", "n_params": n, "ms": round(sec * 1000), "mib": round(mb)})
    for m in ("tdec", "pici", "scdsc"):
        t = tiny_fit_overhead(m)
        record({"task": "tiny_fit_checkpoint", "method": m, "no_checkpoint_s": round(t["no checkpoint"], 2),
                "checkpoint_every_epoch_s": round(t["checkpoint every epoch"], 2)}, methods=[m])


if __name__ == "__main__":
    main()
