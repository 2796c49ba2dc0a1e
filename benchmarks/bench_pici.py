"""Benchmark k-means, CC, PICI and PICI without CLI on UC Merced (64 px) with the fast presets.

Each run is a fresh subprocess so that its peak RSS is its own. PICI and PICI-no-CLI share the
pre-training and training stages (they are identical until the boosting stage, same seed): the
trunk is trained once with a checkpoint, then each variant resumes from a copy of it and runs its
own boosting stage. The reported time of a variant is trunk time + its boosting time, and its peak
memory the larger of the two processes'.

Usage::

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_pici.py --methods kmeans cc pici \
        --seeds 0 1 2 --out benchmarks/results_pici.jsonl

Labels are used for the final metrics only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NPZ = "images/ucmerced/ucmerced_64x64.npz"


def load_ucmerced() -> tuple[np.ndarray, np.ndarray]:
    root = Path(os.environ.get("DEEPCLUST_DATA", "/work/shared/datasets"))
    d = np.load(root / NPZ)
    X = d["images"].transpose(0, 3, 1, 2).astype(np.float32) / 255.0  # (2100, 3, 64, 64)
    return X, d["labels"].astype(np.int64)


def run_one(method: str, seed: int, overrides: dict) -> dict:
    """Fit one method in this process and return metrics, time and peak RSS."""
    import torch

    from deepclust.methods import get_method
    from deepclust.metrics import evaluate
    from deepclust.presets import get_preset

    X, y = load_ucmerced()
    kw = get_preset(method, "ucmerced", "fast")
    kw.update(overrides)
    cls = get_method(method)
    est = cls(n_clusters=21, random_state=seed, **kw)
    t0 = time.perf_counter()
    est.fit(X.reshape(len(X), -1) if method == "kmeans" else X)
    seconds = time.perf_counter() - t0
    m = evaluate(y, est.labels_)
    out = {
        "method": method, "seed": seed, "overrides": {k: v for k, v in overrides.items() if k != "checkpoint_path"},
        "acc": m["acc"], "nmi": m["nmi"], "ari": m["ari"], "fit_seconds": seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch_threads": torch.get_num_threads(),
        "selection": getattr(est, "selection_", "k-means lowest inertia"),
        "diagnostics": getattr(est, "diagnostics_", {}),
    }
    for name, labels in getattr(est, "extra_labels_", {}).items():
        e = evaluate(y, labels)
        out[f"extra_{name}"] = {"acc": e["acc"], "nmi": e["nmi"], "ari": e["ari"]}
    return out


def subprocess_run(method: str, seed: int, overrides: dict) -> dict:
    cmd = [sys.executable, __file__, "--child", method, str(seed), json.dumps(overrides)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{method} seed {seed} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", nargs="+", default=["kmeans", "cc", "pici"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--out", default="benchmarks/results_pici.jsonl")
    ap.add_argument(
        "--set", nargs="*", default=[], metavar="METHOD.KEY=VALUE",
        help="override a fast-preset argument, e.g. pici.train_epochs=8 cc.epochs=12 (JSON values)",
    )
    ap.add_argument("--child", nargs=3, metavar=("METHOD", "SEED", "OVERRIDES"))
    args = ap.parse_args()
    if args.child:
        method, seed, overrides = args.child
        print(json.dumps(run_one(method, int(seed), json.loads(overrides))))
        return
    sets: dict[str, dict] = {}
    for item in args.set:
        key, _, value = item.partition("=")
        meth, _, name = key.partition(".")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        sets.setdefault(meth, {})[name] = parsed
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def emit(row: dict) -> None:
        print(json.dumps(row), flush=True)
        with out.open("a") as fh:
            fh.write(json.dumps(row) + "\n")

    for seed in args.seeds:
        for method in args.methods:
            if method != "pici":
                emit(subprocess_run(method, seed, dict(sets.get(method, {}))))
                continue
            tmp = Path(tempfile.mkdtemp(prefix="pici_bench_"))
            try:
                trunk_ckpt = tmp / "trunk.pt"
                base = dict(sets.get("pici", {}))
                trunk = subprocess_run("pici", seed, {**base, "boost_epochs": 0, "checkpoint_path": str(trunk_ckpt)})
                for name, cli in (("pici", True), ("pici-no-cli", False)):
                    ckpt = tmp / f"{name}.pt"
                    shutil.copy(trunk_ckpt, ckpt)
                    row = subprocess_run(
                        "pici", seed, {**base, "cli": cli, "checkpoint_path": str(ckpt), "resume": True}
                    )
                    row["method"] = name
                    row["boost_seconds"] = row["fit_seconds"]
                    row["trunk_seconds"] = trunk["fit_seconds"]
                    row["fit_seconds"] = trunk["fit_seconds"] + row["boost_seconds"]
                    row["peak_rss_mb"] = max(row["peak_rss_mb"], trunk["peak_rss_mb"])
                    row["trunk_metrics"] = {k: trunk[k] for k in ("acc", "nmi", "ari")}
                    emit(row)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
