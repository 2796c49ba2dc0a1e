"""RECAL benchmark: one (dataset, seed) run of a preset, or a scene segmentation.

Image datasets (train before test, as the paper concatenates them):

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_recal.py images --dataset usps \
        --seed 0 --preset fast --out benchmarks/results_recal

Scene segmentation (writes label_map.npy, segmentation.png, metrics.json under --out):

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_recal.py segment --data salinas-a \
        --bands liss4 --patch 8 --stride 1 --clusters 6 --out benchmarks/results_recal/seg_liss4

Each image run writes ``<dataset>_seed<S>.json`` with the head's (softmax argmax, Table 6) and
the k-means-on-features (Table 7) metrics, fit time and peak RSS. Labels are used only there.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from deepclust.methods.recal import RECAL, run_segment
from deepclust.metrics import evaluate
from deepclust.presets import get_preset

DATA = Path(os.environ.get("DEEPCLUST_DATA", "/work/shared/datasets"))
PAPER_NMI = {  # Table 6 (head) and Table 7 (k-means on RECAL features), ImageNet start
    "mnist": (0.852, 0.885), "usps": (0.913, 0.913), "coil20": (0.880, 0.948),
}


def _idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        return np.frombuffer(fh.read(), np.uint8, offset=offset)


def load_images(name: str) -> tuple[np.ndarray, np.ndarray]:
    if name == "usps":
        d = np.load(DATA / "images/usps/usps.npz")
        X = np.concatenate([d["x_train"], d["x_test"]])[:, None]
        y = np.concatenate([d["y_train"], d["y_test"]])
    elif name == "coil20":
        d = np.load(DATA / "images/coil20/coil20_128x128.npz")
        X = (d["images"].astype(np.float32) / 255.0)[:, None]
        y = d["labels"]
    elif name == "mnist":
        root = DATA / "images/mnist"
        xs = [_idx(root / f"{p}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
              for p in ("train", "t10k")]
        ys = [_idx(root / f"{p}-labels-idx1-ubyte.gz", 8) for p in ("train", "t10k")]
        X = (np.concatenate(xs).astype(np.float32) / 255.0)[:, None]
        y = np.concatenate(ys).astype(np.int64)
    else:
        raise SystemExit(f"unknown dataset {name}")
    return X.astype(np.float32), y.astype(np.int64)


def run_images(args) -> dict:
    X, y = load_images(args.dataset)
    k = int(len(np.unique(y)))
    params = get_preset("recal", args.dataset, args.preset)
    for kv in args.set or []:
        key, val = kv.split("=", 1)
        params[key] = json.loads(val)
    est = RECAL(k, random_state=args.seed, device="cpu", verbose=False, **params)
    t0 = time.perf_counter()
    est.fit(X)
    secs = time.perf_counter() - t0
    head = evaluate(y, est.labels_)
    km = evaluate(y, est.labels_kmeans_)
    res = {
        "method": "recal", "dataset": args.dataset, "preset": args.preset, "seed": args.seed,
        "params": params, "n_samples": int(X.shape[0]), "n_clusters": k,
        "head": {m: head[m] for m in ("acc", "nmi", "ari")},
        "kmeans_on_features": {m: km[m] for m in ("acc", "nmi", "ari")},
        "paper_nmi_head": PAPER_NMI[args.dataset][0],
        "paper_nmi_kmeans": PAPER_NMI[args.dataset][1],
        "fit_seconds": secs,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch_threads": torch.get_num_threads(),
        "selection": est.selection_, "diagnostics": est.diagnostics_,
        "loss_curve": est.history_.stages["train"]["loss"],
        "machine": "shared, loaded 2-core CPU (about 5 other jobs running)",
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{args.dataset}_{args.preset}{args.tag}_seed{args.seed}"
    res["tag"] = args.tag
    (out / f"{stem}.json").write_text(json.dumps(res, indent=2))
    np.save(out / f"{stem}_labels.npy", est.labels_)
    print(json.dumps({k: res[k] for k in ("dataset", "seed", "head", "kmeans_on_features",
                                          "fit_seconds", "peak_rss_mb")}))
    return res


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("images")
    a.add_argument("--dataset", required=True, choices=sorted(PAPER_NMI))
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--preset", default="fast")
    a.add_argument("--set", nargs="*", help="overrides key=json_value")
    a.add_argument("--out", default="benchmarks/results_recal")
    a.add_argument("--tag", default="", help="suffix of the output names, e.g. _exact")
    s = sub.add_parser("segment")
    s.add_argument("--data", required=True)
    s.add_argument("--bands", default=None)
    s.add_argument("--patch", type=int, default=8)
    s.add_argument("--stride", type=int, default=2)
    s.add_argument("--clusters", type=int, default=10)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--model", default=None)
    s.add_argument("--compare", default=None)
    s.add_argument("--set", nargs="*")
    s.add_argument("--out", required=True)
    args = p.parse_args(argv)
    if args.cmd == "images":
        run_images(args)
    else:
        sets = {}
        for kv in args.set or []:
            key, val = kv.split("=", 1)
            sets[key] = json.loads(val)
        sets.setdefault("device", "cpu")
        t0 = time.perf_counter()
        res = run_segment({"data": args.data, "bands": args.bands, "patch": args.patch,
                           "stride": args.stride, "clusters": args.clusters, "seed": args.seed,
                           "model": args.model, "compare": args.compare, "set": sets},
                          args.out)
        res["wall_seconds"] = time.perf_counter() - t0
        res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({k: res.get(k) for k in ("data", "bands", "n_patches", "seconds",
                                                  "peak_rss_mb")}))
        for key in ("metrics", "metrics_kmeans"):
            if key in res:
                print(key, {m: round(res[key][m], 4) for m in ("oa", "nmi", "ari", "kappa")})
        if "consensus" in res:
            print("consensus", res["consensus"]["mean_matched"], res["consensus"]["pairs"])


if __name__ == "__main__":
    sys.exit(main())
