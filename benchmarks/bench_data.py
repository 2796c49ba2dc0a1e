"""Time and peak memory of loading each catalog dataset present locally.

Each dataset is loaded in a fresh subprocess (so peak RSS is that load alone), twice: the
first load includes the checksum verification of the files, the second (same process) is
served by the in-process verification cache.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/bench_data.py [names...]
"""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = r"""
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
print(json.dumps({"name": sys.argv[1], "shape": list(ds.X.shape), "import_s": t_import,
                  "first_load_s": first, "cached_verify_load_s": second,
                  "arrays_mb": x_mb, "rss_before_mb": rss0 / 1024, "peak_rss_mb": peak / 1024}))
"""


def main(names: list[str]) -> None:
    from deepclust.data import CATALOG, dataset_status

    names = names or [n for n in CATALOG if dataset_status(n)["available"]]
    print("| dataset | X shape | first load (s) | again, verified cache (s) | arrays (MiB) | "
          "peak RSS (MiB) |")
    print("|---|---|---|---|---|---|")
    for n in names:
        out = subprocess.run([sys.executable, "-c", CHILD, n], capture_output=True, text=True)
        if out.returncode != 0:
            print(f"| {n} | failed: {out.stderr.strip().splitlines()[-1]} |")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {n} | {tuple(r['shape'])} | {r['first_load_s']:.2f} | "
              f"{r['cached_verify_load_s']:.2f} | {r['arrays_mb']:.0f} | {r['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
