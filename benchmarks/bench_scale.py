"""SCDSC on large synthetic scenes: time per epoch, FINCH time, peak memory.

For each size N (clustered pixels) a synthetic scene on PaviaU's layout, tiled so that exactly
N pixels are labelled (``deepclust.data.synthetic``, 103 bands), is written to a ``.npy`` file
by one subprocess; a fresh subprocess then opens it memory-mapped and runs the whole SCDSC fit
(``fast`` preset with 1 pretraining epoch and 1 joint epoch: enough to measure the time per
epoch; ``chunk_size`` 8192), so its peak memory is the fit alone. Synthetic scenes measure
cost, never accuracy: no quality number from them is reported.

Memory is reported two ways: ``ru_maxrss`` (includes the pages of the memory-mapped cube that
were read, which are file-backed and reclaimable) and the peak of ``RssAnon`` (the process's
own allocations), sampled every 0.2 s from ``/proc/self/status``.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/bench_scale.py 100000 250000 [--predict] [--tmp /tmp/scale]

One record per size goes to ``benchmarks/results/perf__scale.json`` (``--out`` another file).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import append_record, command_line  # noqa: E402

MAKE = r"""
import sys, numpy as np
from deepclust.data.synthetic import synthetic_scene
cube, gt = synthetic_scene("paviau", n_pixels=int(sys.argv[1]), n_bands=103, random_state=0)
np.save(sys.argv[2] + "/cube.npy", cube)
np.save(sys.argv[2] + "/gt.npy", gt)
print(cube.shape)
"""

FIT = r"""
import json, resource, sys, threading, time
import numpy as np, torch

peak_anon = [0]
def poll():
    while True:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("RssAnon:"):
                    peak_anon[0] = max(peak_anon[0], int(line.split()[1]))
        time.sleep(0.2)
threading.Thread(target=poll, daemon=True).start()

from deepclust.methods.scdsc import SCDSC
from deepclust.presets.scdsc import PRESETS

folder, predict = sys.argv[1], sys.argv[2] == "1"
cube = np.load(folder + "/cube.npy", mmap_mode="r")
gt = np.load(folder + "/gt.npy")
mask = gt > 0
params = {**PRESETS["fast"]["default"], "epochs": 1, "pretrain_epochs": 1, "chunk_size": 8192}
est = SCDSC(int(gt.max()), random_state=0, device="cpu", **params)
cpu0 = time.process_time()
t0 = time.perf_counter()
est.fit(cube, mask=mask)
fit_s = time.perf_counter() - t0
fit_cpu = time.process_time() - cpu0
rss_fit = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
anon_fit = peak_anon[0] / 1024
out = {
    "n_pixels": int(mask.sum()), "scene": list(cube.shape), "fit_seconds": round(fit_s, 1),
    "fit_cpu_seconds": round(fit_cpu, 1), "peak_rss_mb_fit": round(rss_fit),
    "peak_anon_mb_fit": round(anon_fit), "torch_threads": torch.get_num_threads(),
    "diagnostics": {k: v for k, v in est.diagnostics_.items()},
    "params": {k: v for k, v in params.items()},
}
if predict:
    t0 = time.perf_counter()
    full = est.predict_scene(cube)
    out["predict_scene_seconds"] = round(time.perf_counter() - t0, 1)
    out["predict_scene_pixels"] = int(full.size)
    out["peak_rss_mb_total"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    out["peak_anon_mb_total"] = round(peak_anon[0] / 1024)
print("RESULT " + json.dumps(out, default=str))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", type=int, nargs="+")
    ap.add_argument("--out", default=None, help="results file (default benchmarks/results/perf__scale.json)")
    ap.add_argument("--tmp", default="/tmp/deepclust_scale")
    ap.add_argument("--predict", action="store_true", help="also time predict_scene")
    args = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    for n in args.sizes:
        folder = Path(args.tmp) / str(n)
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "cube.npy").exists():
            subprocess.run([sys.executable, "-c", MAKE, str(n), str(folder)], check=True, env=env)
        with open("/proc/loadavg") as fh:
            load = fh.read().split()[:3]
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", FIT, str(folder), "1" if args.predict else "0"],
            check=True, env=env, capture_output=True, text=True,
        )
        line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
        rec = json.loads(line[len("RESULT "):])
        rec["loadavg_before"] = load
        rec["wall_seconds_process"] = round(time.perf_counter() - t0, 1)
        append_record("scale", rec, methods=["scdsc"], command=command_line(), out=args.out)
        d = rec["diagnostics"]
        print(f"N={n}: fit {rec['fit_seconds']} s (cpu {rec['fit_cpu_seconds']} s), "
              f"pretrain/epoch {d.get('pretrain_seconds')} s, joint/epoch "
              f"{d.get('seconds_per_epoch')} s, FINCH {d.get('finch_seconds')} s, "
              f"peak RSS {rec['peak_rss_mb_fit']} MB (anon {rec['peak_anon_mb_fit']} MB)", flush=True)


if __name__ == "__main__":
    main()
