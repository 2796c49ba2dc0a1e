"""Data loading and patch extraction: time and peak memory.

Loading (default): each catalog dataset present locally (or each one named) is loaded in a
fresh subprocess (so peak RSS is that load alone), twice: the first load includes the checksum
verification of the files, the second (same process) is served by the in-process verification
cache.

``--patches``: the 7x7 patch of every one of the 207,400 pixels of a PaviaU-sized random cube
(610 x 340 x 103, float32) in batches of 4,096, with the NumPy view-based extractor and the
torch gather (time and peak RSS growth; all patches at once would need 3.9 GiB).

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/bench_data.py [names...]
    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/bench_data.py --patches

One record per dataset (or extractor) goes to ``benchmarks/results/perf__data.json``
(``--out`` another file).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import append_record, command_line  # noqa: E402

LOAD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from deepclust.data import load_dataset, fetch
t_import = time.perf_counter() - t0
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter(); ds = load_dataset(sys.argv[1]); first = time.perf_counter() - t
x_mb = ds.X.nbytes / 2**20 + (ds.cube.nbytes / 2**20 if ds.cube is not None else 0)
del ds
t = time.perf_counter(); ds = load_dataset(sys.argv[1]); second = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"dataset": sys.argv[1], "shape": list(ds.X.shape), "import_s": round(t_import, 3),
                  "first_load_s": round(first, 3), "cached_verify_load_s": round(second, 3),
                  "arrays_mb": round(x_mb, 1), "rss_before_mb": round(rss0 / 1024, 1),
                  "peak_rss_mb": round(peak / 1024, 1)}))
"""

PATCHES = r"""
import json, resource, time
import numpy as np, torch
from deepclust.data import hsi

rss = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
torch.set_num_threads(1)
cube = np.random.default_rng(0).random((610, 340, 103), dtype=np.float32)
index = np.argwhere(np.ones(cube.shape[:2], bool))
p, bs = 7, 4096
base = rss()
t = time.perf_counter()
checksum = sum(float(b[:, :, 3, 3].sum()) for b in hsi.iter_patches(cube, index, p, batch_size=bs))
t_np, grow_np = time.perf_counter() - t, rss() - base
ref = float(cube.sum(dtype=np.float64))
assert abs(checksum - ref) / ref < 1e-4  # every centre pixel seen once
idx = torch.from_numpy(index)
padded = hsi.pad_cube_torch(torch.from_numpy(cube), p // 2)
t = time.perf_counter()
for s in range(0, len(idx), bs):
    hsi.extract_patches_torch(None, idx[s : s + bs], p, padded=padded)
t_torch = time.perf_counter() - t
common = {"cube": list(cube.shape), "patch": p, "batch": bs, "n_patches": len(index)}
print(json.dumps([
    {"extractor": "iter_patches", **common, "seconds": round(t_np, 2), "peak_rss_growth_mb": round(grow_np)},
    {"extractor": "extract_patches_torch", **common, "seconds": round(t_torch, 2)}]))
"""


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="datasets to load (default: every catalog dataset present)")
    ap.add_argument("--patches", action="store_true", help="time patch extraction instead of loading")
    ap.add_argument("--out", default=None, help="results file (default benchmarks/results/perf__data.json)")
    a = ap.parse_args(argv)
    command = command_line()
    if a.patches:
        out = subprocess.run([sys.executable, "-c", PATCHES], capture_output=True, text=True, check=True)
        for r in json.loads(out.stdout.strip().splitlines()[-1]):
            print(json.dumps(r), flush=True)
            append_record("data", {"task": "patches", **r}, methods=[], command=command, out=a.out)
        return

    from deepclust.data import CATALOG, dataset_status

    names = a.names or [n for n in CATALOG if dataset_status(n)["available"]]
    print("| dataset | X shape | first load (s) | again, verified cache (s) | arrays (MiB) | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|")
    for n in names:
        out = subprocess.run([sys.executable, "-c", LOAD, n], capture_output=True, text=True)
        if out.returncode != 0:
            print(f"| {n} | failed: {out.stderr.strip().splitlines()[-1]} |")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {n} | {tuple(r['shape'])} | {r['first_load_s']:.2f} | {r['cached_verify_load_s']:.2f} | "
              f"{r['arrays_mb']:.0f} | {r['peak_rss_mb']:.0f} |", flush=True)
        append_record("data", {"task": "load", **r}, methods=[], command=command, out=a.out)


if __name__ == "__main__":
    main()
