"""FINCH (ours) against ``finch-clust`` side by side, in one process, same inputs, same threads.

Each case runs both implementations alternately (``--repeats`` times each, the order rotated
every repeat) and reports the best wall and CPU seconds of each, their ratio, and whether the
partitions (every level, label numbers included) are identical. With ``--memory`` one more,
untimed run of each measures its peak traced allocation (``tracemalloc``: numpy and scipy
arrays; BLAS work buffers are not traced). Each case's record is printed and appended to
``benchmarks/results/perf__finch.json`` (``--out`` another file) by ``results_io``.

Cases:

* ``features``: the SCDSC mini-cluster features (17x17x8 patches -> PCA 300 -> L2) of a
  synthetic PaviaU-layout scene with n pixels (``bench_scdsc.finch_features``, cached under
  ``$BENCH_TMP``), cosine; the 20k speed comparison.
* ``blobs``: 10 Gaussian blobs of 1,500 points in 30-D centred at 0, 4, ..., 36 on every axis
  (``default_rng(0)``, sigma 1), cosine, float32 and float64 input: tiny, nearly tied cosine
  distances (as raw spectra have).

Usage (repository root)::

    PYTHONPATH=$PWD python benchmarks/bench_finch.py --cases features blobs --threads 1 --repeats 5 --memory

``--rev REV`` also times ``deepclust/cluster/finch.py`` as it was at git revision ``REV``
(loaded from ``git show``), in the same alternation, to compare before and after a change.

Threads: numpy/scipy BLAS and OpenMP pools through ``threadpoolctl``, ``torch.set_num_threads``
and ``faiss.omp_set_num_threads`` all get ``--threads``, for both implementations (ours runs
whole blocks on that many threads, one BLAS thread each).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from results_io import append_record, command_line  # noqa: E402


def blobs() -> np.ndarray:
    """(15000, 30) float64: blob c (1,500 points) is N(4c, 1) on every axis, c = 0..9."""
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(4.0 * c, 1.0, (1500, 30)) for c in range(10)])


def run_ours(X: np.ndarray) -> tuple[np.ndarray, list[int]]:
    from deepclust.cluster.finch import finch

    parts, counts, _ = finch(X, metric="cosine")
    return np.stack(parts, 1), [int(c) for c in counts]


def run_ref(X: np.ndarray) -> tuple[np.ndarray, list[int]]:
    from finch import FINCH

    # exact mode: finch-clust switches to NN-descent above ann_threshold (default 20,000)
    c, counts, _ = FINCH(X, distance="cosine", ann_threshold=max(20_000, len(X)), verbose=False)
    return np.asarray(c), [int(v) for v in counts]


def load_rev(rev: str):
    """``finch`` of ``deepclust/cluster/finch.py`` at git revision ``rev``, as a function."""
    import importlib.util
    import subprocess
    import tempfile

    src = subprocess.run(
        ["git", "show", f"{rev}:deepclust/cluster/finch.py"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    path = Path(tempfile.mkdtemp()) / f"finch_{rev}.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location(f"finch_{rev}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def run(X: np.ndarray) -> tuple[np.ndarray, list[int]]:
        parts, counts, _ = mod.finch(X, metric="cosine")
        return np.stack(parts, 1), [int(c) for c in counts]

    return run


def timed(fn, X) -> tuple[float, float, tuple]:
    w, c = time.perf_counter(), time.process_time()
    out = fn(X)
    return time.perf_counter() - w, time.process_time() - c, out


def peak_traced_mb(fn, X) -> float:
    tracemalloc.start()
    fn(X)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return round(peak / 2**20, 1)


def compare(name: str, X: np.ndarray, repeats: int, memory: bool, threads: int, out: str | None, rev=None, env=None):
    impls = {"ours": run_ours, "finch-clust": run_ref}
    if rev is not None:
        impls[f"ours@{rev[0]}"] = rev[1]
    best: dict[str, list[float]] = {k: [np.inf, np.inf] for k in impls}
    results: dict[str, tuple] = {}
    for r in range(repeats):
        order = list(impls)[r % len(impls):] + list(impls)[: r % len(impls)]  # rotate
        for k in order:
            wall, cpu, res = timed(impls[k], X)
            best[k] = [min(best[k][0], wall), min(best[k][1], cpu)]
            results[k] = res
    (a, ca), (b, cb) = results["ours"], results["finch-clust"]
    rec = {
        "case": name,
        "n": int(X.shape[0]),
        "d": int(X.shape[1]),
        "dtype": str(X.dtype),
        "threads": threads,
        "repeats": repeats,
        "ours_wall_s": round(best["ours"][0], 3),
        "ours_cpu_s": round(best["ours"][1], 3),
        "ref_wall_s": round(best["finch-clust"][0], 3),
        "ref_cpu_s": round(best["finch-clust"][1], 3),
        "speedup_wall": round(best["finch-clust"][0] / best["ours"][0], 2),
        "speedup_cpu": round(best["finch-clust"][1] / best["ours"][1], 2),
        "levels_ours": ca,
        "levels_ref": cb,
        "identical_partitions": bool(ca == cb and a.shape == b.shape and (a == b).all()),
        "identical_levels": [bool((a[:, i] == b[:, i]).all()) for i in range(min(a.shape[1], b.shape[1]))],
    }
    if rev is not None:
        k = f"ours@{rev[0]}"
        rec.update(
            {
                "rev": rev[0],
                "rev_wall_s": round(best[k][0], 3),
                "rev_cpu_s": round(best[k][1], 3),
                "rev_speedup_wall": round(best["finch-clust"][0] / best[k][0], 2),
                "rev_identical_partitions": bool(np.array_equal(results[k][0], b)),
            }
        )
    if memory:
        rec["ours_peak_traced_mb"] = peak_traced_mb(run_ours, X)
        rec["ref_peak_traced_mb"] = peak_traced_mb(run_ref, X)
    print(json.dumps(rec), flush=True)
    return append_record("finch", {**rec, "environment": env}, methods=["finch"], command=command_line(), out=out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", nargs="+", default=["features", "blobs"], choices=["features", "blobs"])
    ap.add_argument("--n", nargs="+", type=int, default=[20000], help="sizes of the features case")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--memory", action="store_true", help="also measure peak traced memory")
    ap.add_argument("--out", default=None, help="results file (default benchmarks/results/perf__finch.json)")
    ap.add_argument("--rev", default=None, help="also time our FINCH at this git revision")
    a = ap.parse_args()

    import faiss
    import sklearn
    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    warnings.filterwarnings("ignore", message="pynndescent is not installed")
    import finch  # noqa: F401  (finch-clust; imported before timing)

    torch.set_num_threads(a.threads)
    faiss.omp_set_num_threads(a.threads)
    with threadpool_limits(a.threads):
        pools = {p["internal_api"]: p["num_threads"] for p in threadpool_info()}
        env = {"pools": pools, "torch_threads": torch.get_num_threads(), "faiss_threads": faiss.omp_get_max_threads(),
               "numpy": np.__version__, "sklearn": sklearn.__version__, "torch": torch.__version__}
        print(json.dumps(env), flush=True)
        run_ours(blobs()[:2000].astype(np.float32))  # warm-up (imports, BLAS buffers)
        rev = (a.rev, load_rev(a.rev)) if a.rev else None
        for case in a.cases:
            if case == "features":
                from bench_scdsc import finch_features

                for n in a.n:
                    X = np.load(finch_features(n))
                    compare(f"features-{n}", X, a.repeats, a.memory, a.threads, a.out, rev, env)
            else:
                X64 = blobs()
                for X in (X64.astype(np.float32), X64):
                    compare("blobs", X, a.repeats, a.memory, a.threads, a.out, rev, env)


if __name__ == "__main__":
    main()
