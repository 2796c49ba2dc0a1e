"""Patch extraction on a PaviaU-sized synthetic cube (610 x 340 x 103, float32).

Extracts the 7x7 patch of every one of the 207,400 pixels in batches of 4,096 with the NumPy
view-based extractor and the torch gather, and reports time and peak RSS growth. A
materialised array of all patches would need 207,400 * 103 * 49 * 4 B = 3.9 GiB; batches keep
memory at one padded cube plus one batch.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/bench_hsi_patches.py
"""

from __future__ import annotations

import resource
import time

import numpy as np


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    import torch

    from deepclust.data import hsi

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    cube = rng.random((610, 340, 103), dtype=np.float32)
    index = np.argwhere(np.ones(cube.shape[:2], bool))
    p, bs = 7, 4096
    base = rss_mb()
    t = time.perf_counter()
    checksum = 0.0
    for batch in hsi.iter_patches(cube, index, p, batch_size=bs):
        checksum += float(batch[:, :, 3, 3].sum())
    t_np = time.perf_counter() - t
    peak_np = rss_mb() - base
    ref = float(cube.sum(dtype=np.float64))
    assert abs(checksum - ref) / ref < 1e-4  # every centre pixel seen once

    cube_t = torch.from_numpy(cube)
    idx_t = torch.from_numpy(index)
    padded = hsi.pad_cube_torch(cube_t, p // 2)
    t = time.perf_counter()
    for s in range(0, idx_t.shape[0], bs):
        out = hsi.extract_patches_torch(None, idx_t[s : s + bs], p, padded=padded)
    t_torch = time.perf_counter() - t
    print(f"cube {cube.shape} ({cube.nbytes / 2**20:.0f} MiB), {index.shape[0]} patches {p}x{p}, "
          f"batch {bs}")
    print(f"numpy view + fancy index: {t_np:.2f} s, peak RSS growth {peak_np:.0f} MiB")
    print(f"torch gather (CPU):       {t_torch:.2f} s, last batch {tuple(out.shape)}")


if __name__ == "__main__":
    main()
