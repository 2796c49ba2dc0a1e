"""TDEC benchmarks: density peaks at scale, and the quality of kmeans / dec / idec / tdec.

Usage (from the repository root, PYTHONPATH=. or an installed deepclust):

    OMP_NUM_THREADS=1 python benchmarks/bench_tdec.py dp --n 70000
    OMP_NUM_THREADS=1 python benchmarks/bench_tdec.py quality --methods kmeans dec idec tdec \
        --datasets digits --seeds 0 1 2 --preset fast --out benchmarks/results_tdec.jsonl

``quality`` runs every (method, dataset, seed) in a fresh subprocess so that its peak RSS is its
own; each run appends one JSON line (acc, nmi, ari, fit seconds, peak RSS MB, the selection rule,
the constructor arguments). Labels are used for the metrics only.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(os.environ.get("DEEPCLUST_DATA", "/work/shared/datasets"))

# The paper's numbers, ACC / NMI in % (TDEC Tables 2-4; "-" where the paper has none).
PAPER = {
    ("tdec", "mnist"): (98.5, 95.7), ("tdec", "mnist-test"): (97.5, 93.5),
    ("tdec", "usps"): (97.6, 93.5), ("tdec", "digits"): (95.5, 91.0),
    ("dec", "mnist"): (84.9, 81.6), ("dec", "digits"): (72.3, 69.7),
    ("idec", "mnist"): (88.1, 86.7), ("idec", "digits"): (76.4, 71.6),
    ("kmeans", "mnist"): (53.2, 50.0), ("kmeans", "mnist-test"): (54.6, 50.1),
    ("kmeans", "usps"): (66.8, 62.7),
    # Table 4 ablations (ST, CH, DR off = IDEC-like row; the paper gives two decimals)
    ("tdec[st=0,ch=0,dr=0]", "digits"): (52.0, 52.0),
    ("tdec[st=0,ch=0,dr=0]", "usps"): (74.0, 75.0),
    ("tdec[st=0,ch=0,dr=0]", "mnist"): (84.0, 81.0),
}


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        raw = fh.read()
    ndim = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 1, H, W) float32 in [0, 1] and labels; train before test."""
    if name == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        return (d.data / 16.0).reshape(-1, 1, 8, 8).astype(np.float32), d.target.astype(np.int64)
    if name == "usps":
        z = np.load(DATA / "images/usps/usps.npz")
        X = np.concatenate([z["x_train"], z["x_test"]])[:, None].astype(np.float32)
        return X, np.concatenate([z["y_train"], z["y_test"]]).astype(np.int64)
    if name in ("mnist", "mnist-test"):
        root = DATA / "images/mnist"
        parts = ["t10k"] if name == "mnist-test" else ["train", "t10k"]
        X = np.concatenate([_idx(root / f"{p}-images-idx3-ubyte.gz") for p in parts])
        y = np.concatenate([_idx(root / f"{p}-labels-idx1-ubyte.gz") for p in parts])
        return (X[:, None] / 255.0).astype(np.float32), y.astype(np.int64)
    raise ValueError(f"unknown dataset {name!r}")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_dp(n: int, k: int, seed: int) -> None:
    import torch

    from deepclust.cluster.density_peaks import density_peaks

    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    means = rng.uniform(-30, 30, size=(k, 2))
    scales = rng.uniform(0.5, 2.0, size=k)
    sizes = np.full(k, n // k)
    sizes[: n - sizes.sum()] += 1
    Z = np.concatenate([m + s * rng.normal(size=(c, 2)) for m, s, c in zip(means, scales, sizes,
                                                                            strict=True)])
    y = np.repeat(np.arange(k), sizes)
    base = peak_rss_mb()
    t, c = time.perf_counter(), time.process_time()
    res = density_peaks(Z, k)
    secs, cpu = time.perf_counter() - t, time.process_time() - c
    hit = len(set(y[res.centers].tolist()))
    print(json.dumps({"bench": "density_peaks", "n": n, "k": k, "seconds": round(secs, 2),
                      "cpu_seconds": round(cpu, 2),
                      "dc": res.dc, "peak_rss_mb": round(peak_rss_mb(), 1),
                      "rss_before_mb": round(base, 1), "clusters_with_a_centre": hit,
                      "n_by_n_matrix_mb_avoided": round(n * n * 8 / 2**20, 1)}))


def run_one(method: str, dataset: str, seed: int, preset: str, overrides: dict) -> dict:
    import torch

    from deepclust.methods import get_method
    from deepclust.metrics import evaluate
    from deepclust.presets import get_preset

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    X, y = load(dataset)
    K = int(len(np.unique(y)))
    kwargs = {**get_preset(method, dataset, preset), **overrides}
    est = get_method(method)(n_clusters=K, random_state=seed, **kwargs)
    Xin = X if method == "tdec" else X.reshape(len(X), -1)
    t, c = time.perf_counter(), time.process_time()
    est.fit(Xin)
    secs, cpu = time.perf_counter() - t, time.process_time() - c
    m = evaluate(y, est.labels_)
    tag = method
    if overrides:
        tag += "[" + ",".join(f"{k}={v}" for k, v in sorted(overrides.items())) + "]"
    return {"method": tag, "dataset": dataset, "seed": seed, "preset": preset,
            "n_samples": len(X), "acc": float(m["acc"]), "nmi": float(m["nmi"]),
            "ari": float(m["ari"]), "fit_seconds": round(secs, 1), "cpu_seconds": round(cpu, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1), "selection": getattr(est, "selection_", ""),
            "torch_threads": torch.get_num_threads(),
            "diagnostics": getattr(est, "diagnostics_", {}),
            "kwargs": {k: str(v) for k, v in kwargs.items()}}


def summary(path: str) -> None:
    """Print a markdown table: mean ± std over seeds, the paper's ACC / NMI beside ours."""
    groups: dict[tuple[str, str], list[dict]] = {}
    with open(path) as fh:
        for line in fh:
            r = json.loads(line)
            groups.setdefault((r["method"], r["dataset"]), []).append(r)
    print("| method | dataset | preset | seeds | ACC % | NMI % | ARI % | fit s (wall) "
          "| fit s (CPU) | peak RSS MB | paper ACC / NMI % |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (method, ds), rs in groups.items():
        def ms(key: str, scale: float = 100.0, rs: list = rs) -> str:
            if any(key not in r for r in rs):
                return "-"
            v = np.array([r[key] for r in rs], dtype=float) * scale
            return f"{v.mean():.1f} ± {v.std():.1f}" if len(v) > 1 else f"{v[0]:.1f}"
        paper_key = method.replace("[clustering_head=False,dim_reduction=False,transformer=False]",
                                   "[st=0,ch=0,dr=0]")
        paper = PAPER.get((paper_key, ds))
        ptxt = f"{paper[0]} / {paper[1]}" if paper else "-"
        seeds = ",".join(str(r["seed"]) for r in rs)
        print(f"| {method} | {ds} | {rs[0]['preset']} | {seeds} | {ms('acc')} | {ms('nmi')} | "
              f"{ms('ari')} | {ms('fit_seconds', 1.0)} | {ms('cpu_seconds', 1.0)} "
              f"| {max(r['peak_rss_mb'] for r in rs):.0f} | {ptxt} |")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dp", help="density peaks on n synthetic 2-D points")
    d.add_argument("--n", type=int, default=70000)
    d.add_argument("--k", type=int, default=10)
    d.add_argument("--seed", type=int, default=0)
    q = sub.add_parser("quality", help="ACC/NMI/ARI of methods x datasets x seeds")
    q.add_argument("--methods", nargs="+", default=["kmeans", "dec", "idec", "tdec"])
    q.add_argument("--datasets", nargs="+", default=["digits"])
    q.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    q.add_argument("--preset", default="fast")
    q.add_argument("--set", nargs="*", default=[], help="overrides k=v (python literals)")
    q.add_argument("--out", default="benchmarks/results_tdec.jsonl")
    sm = sub.add_parser("summary", help="markdown table (mean ± std over seeds) of a results file")
    sm.add_argument("--results", default="benchmarks/results_tdec.jsonl")
    o = sub.add_parser("one", help=argparse.SUPPRESS)
    o.add_argument("method")
    o.add_argument("dataset")
    o.add_argument("seed", type=int)
    o.add_argument("preset")
    o.add_argument("overrides")
    a = ap.parse_args(argv)
    if a.cmd == "dp":
        run_dp(a.n, a.k, a.seed)
    elif a.cmd == "summary":
        summary(a.results)
    elif a.cmd == "one":
        rec = run_one(a.method, a.dataset, a.seed, a.preset, json.loads(a.overrides))
        print("RESULT " + json.dumps(rec))
    else:
        import ast

        overrides = {}
        for kv in a.set:
            k, v = kv.split("=", 1)
            try:
                overrides[k] = ast.literal_eval(v)
            except (ValueError, SyntaxError):
                overrides[k] = v
        for ds in a.datasets:
            for method in a.methods:
                for seed in a.seeds:
                    cmd = [sys.executable, __file__, "one", method, ds, str(seed), a.preset,
                           json.dumps(overrides)]
                    out = subprocess.run(cmd, capture_output=True, text=True)
                    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
                    if not line:
                        print(f"{method} {ds} {seed} FAILED:\n{out.stderr[-2000:]}", flush=True)
                        continue
                    rec = json.loads(line[0][7:])
                    with open(a.out, "a") as fh:
                        fh.write(json.dumps(rec) + "\n")
                    print(f"{rec['method']:<28} {ds:<11} seed {seed}: acc {rec['acc']:.3f} "
                          f"nmi {rec['nmi']:.3f} ari {rec['ari']:.3f} {rec['fit_seconds']}s "
                          f"(cpu {rec['cpu_seconds']}s) "
                          f"{rec['peak_rss_mb']}MB", flush=True)


if __name__ == "__main__":
    main()
