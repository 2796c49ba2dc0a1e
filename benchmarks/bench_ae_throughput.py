"""Pretraining throughput of the autoencoders of DEC / IDEC (MLP d-500-500-2000-10) and TDEC
(the fast preset's transformer autoencoder), against this machine's dense fp32 GEMM peak.

For each network and batch size it times ``--steps`` Adam steps of the reconstruction loss
(the Adam each method trains with: fused for DEC/IDEC's MLP, the default one for TDEC)
through :func:`deepclust.training.fit_loop` (the loop every method trains with), after
``--warmup`` untimed steps, and reports samples per second (wall and per CPU second) and the
share of the GEMM peak: the FLOP of one step (forward + backward = 3x the forward's multiply-adds
x 2, counted with ``torch.utils.flop_counter``) divided by the time, against the best rate of a
large square ``torch.mm`` on the same threads. Run it alone on the machine: the numbers are only
worth something when nothing else runs.

Usage (repository root)::

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/bench_ae_throughput.py --dataset usps \\
        --batches 128 256 --steps 20

Records go to ``benchmarks/results/perf__ae_throughput.json`` (``--out`` another file).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import torch
from results_io import append_record, command_line  # noqa: E402

#: the methods whose network each ``--nets`` entry is
METHODS = {"dec": ["dec", "idec"], "tdec": ["tdec"]}


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gemm_peak(n: int = 2048, repeats: int = 8) -> float:
    """Best fp32 FLOP per wall second of an n x n x n matmul on torch's threads."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = max(best, 2 * n**3 / (time.perf_counter() - t0))
    return best


def step_flop(model: torch.nn.Module, x: torch.Tensor) -> float:
    """FLOP of one forward + backward pass of the MSE reconstruction loss."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        out = model(x)
        rec = out[-1] if isinstance(out, tuple) else out
        torch.nn.functional.mse_loss(rec.reshape(x.shape), x).backward()
    model.zero_grad(set_to_none=True)
    return float(fc.get_total_flops())


def time_steps(model: torch.nn.Module, X: torch.Tensor, batch: int, steps: int, warmup: int,
               fused: bool) -> tuple[float, float]:
    from deepclust.training import fit_loop, fused_adam

    opt = fused_adam(model.parameters(), lr=1e-3, fused=fused)  # the Adam the method trains with
    g = torch.Generator().manual_seed(0)

    def step(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        x = X[idx]
        out = model(x)
        rec = out[-1] if isinstance(out, tuple) else out
        loss = torch.nn.functional.mse_loss(rec.reshape(x.shape), x)
        return {"loss": loss}

    def batches(n_steps: int):
        return lambda e: [torch.randint(0, len(X), (batch,), generator=g) for _ in range(n_steps)]

    fit_loop(model=model, optimizer=opt, step=step, epochs=1, batches=batches(warmup))
    t0, c0 = time.perf_counter(), _cpu()
    fit_loop(model=model, optimizer=opt, step=step, epochs=1, batches=batches(steps))
    return time.perf_counter() - t0, _cpu() - c0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="usps")
    ap.add_argument("--nets", nargs="+", default=["dec", "tdec"], choices=["dec", "tdec"])
    ap.add_argument("--batches", nargs="+", type=int, default=[256])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--out", default=None, help="results file (default benchmarks/results/perf__ae_throughput.json)")
    a = ap.parse_args(argv)

    from deepclust.data import load_dataset

    ds = load_dataset(a.dataset)
    peak = gemm_peak()
    for net in a.nets:
        if net == "dec":
            from deepclust.nn.mlp_ae import MLPAutoencoder

            X = torch.from_numpy(ds.X.reshape(len(ds.X), -1).astype(np.float32))
            model = MLPAutoencoder(X.shape[1])
        else:
            from deepclust.methods.tdec import TDEC, target_size
            from deepclust.presets import get_preset

            est = TDEC(n_clusters=10, **get_preset("tdec", a.dataset, "fast"))
            H, W = ds.X.shape[-2:]
            est._vector_mode_, est._image_size_, est.device_ = False, target_size(H, W), torch.device("cpu")
            X = est._prepare(ds.X.astype(np.float32))
            model = est._build(tuple(X.shape[1:]))
        for batch in a.batches:
            flop = step_flop(model, X[:batch])
            wall, cpu = time_steps(model, X, batch, a.steps, a.warmup, fused=net == "dec")
            rec = {"net": net, "dataset": a.dataset, "batch": batch,
                   "steps": a.steps, "samples_per_s": round(a.steps * batch / wall, 1),
                   "samples_per_cpu_s": round(a.steps * batch / cpu, 1),
                   "gflop_per_step": round(flop / 1e9, 3),
                   "gemm_peak_gflops": round(peak / 1e9, 1),
                   "share_of_gemm_peak": round(flop * a.steps / wall / peak, 3),
                   "fused_adam": net == "dec",
                   "torch_threads": torch.get_num_threads(), "peak_rss_mb": round(_peak_mb(), 1)}
            print(json.dumps(rec), flush=True)
            append_record("ae_throughput", rec, methods=METHODS[net], command=command_line(), out=a.out)


if __name__ == "__main__":
    main()
