"""Cost of RECAL's virtual-batch modes: one run per process (peak RSS is per process).

Effective batch 1024 on the first 4096 USPS images, width 0.25, 2 epochs:
  full   : batch_size=1024, virtual_batches=1 (Algorithm 1)
  paper  : batch_size=256, virtual_batches=4, virtual_batch="paper" (Algorithm 2)
  exact  : batch_size=256, virtual_batches=4, virtual_batch="exact"

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_recal_virtual.py MODE
"""

from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np

from deepclust.methods.recal import RECAL

mode = sys.argv[1]
d = np.load("/work/shared/datasets/images/usps/usps.npz")
X = d["x_train"][:4096, None].astype(np.float32)
kw = {"full": dict(batch_size=1024, virtual_batches=1),
      "paper": dict(batch_size=256, virtual_batches=4, virtual_batch="paper"),
      "exact": dict(batch_size=256, virtual_batches=4, virtual_batch="exact")}[mode]
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0 = time.perf_counter()
est = RECAL(10, width=0.25, epochs=2, lr=0.01, kmeans_n_init=1, random_state=0, device="cpu",
            **kw).fit(X)
print(json.dumps({"mode": mode, **kw, "fit_seconds": round(time.perf_counter() - t0, 1),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  "rss_before_fit_mb": round(rss0),
                  "final_loss": round(est.history_.stages["train"]["loss"][-1], 4)}))
