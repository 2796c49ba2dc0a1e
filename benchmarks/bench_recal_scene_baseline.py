"""Context for the RECAL segmentation notes: k-means (n_init=10) on Salinas-A pixel spectra.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_recal_scene_baseline.py
"""

from __future__ import annotations

from sklearn.cluster import KMeans

from deepclust.methods.recal import _load_scene, _scale_bands
from deepclust.metrics import evaluate

for bands in ("liss4", "all"):
    cube, gt, desc = _load_scene("salinas-a", bands)
    x = _scale_bands(cube).reshape(-1, cube.shape[2])
    for seed in (0, 1, 2):
        lab = KMeans(6, n_init=10, random_state=seed).fit_predict(x).reshape(gt.shape)
        m = evaluate(gt[gt > 0], lab[gt > 0])
        print(f"{bands:5s} seed {seed}: OA {m['oa']:.4f} NMI {m['nmi']:.4f} ARI {m['ari']:.4f} "
              f"kappa {m['kappa']:.4f}")
