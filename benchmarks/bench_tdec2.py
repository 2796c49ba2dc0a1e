"""TDEC follow-up: TDEC fast-preset candidates judged by LABEL-FREE criteria.

One run per call; appends a JSON line to ``--out``. Label-free quantities (used for choices):

* ``agree_nmi``: NMI between the final TDEC labels and k-means (K, n_init=10) on the final
  m-D feature space z_w (does the clustering space / head keep the feature space's groups?);
* ``agree_pre_nmi``: NMI between the final labels and k-means on z_w at the END OF PRETRAINING
  (before L_clu acts; guards against the encoder simply collapsing onto the head's clusters);
* ``dr_nmi``: NMI between k-means on z_w and k-means on the 2-D space z_v;
* ``l_dim_eval``: L_dim (eqs. 9-11, perplexity 30) of the final model on the clean set, mean
  over fixed batches of 256 (same batches for every run);
* ``balance``: entropy of the cluster sizes / log K (1 = equal sizes);
* history: L_dim at the end of pretraining and of the clustering stage.

ACC/NMI against the ground truth are recorded for information only.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_tdec2.py digits 0 --set beta=0.001
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_tdec import load  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset")
    ap.add_argument("seed", type=int)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--set", nargs="*", default=[])
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", default="benchmarks/results_tdec2.jsonl")
    ap.add_argument("--save-labels", default="")
    a = ap.parse_args(argv)

    import torch
    from sklearn.cluster import KMeans
    from sklearn.metrics import normalized_mutual_info_score as nmi

    import deepclust.methods.tdec as tdec_mod
    from deepclust.losses.tsne import dim_reduction_loss
    from deepclust.methods import get_method
    from deepclust.methods.tdec import _features
    from deepclust.metrics import evaluate
    from deepclust.presets import get_preset

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    first: dict = {}
    orig_features = tdec_mod._features

    def spy(net, X, batch_size=1024):  # records z_w at the first refresh = end of pretraining
        out = orig_features(net, X, batch_size)
        first.setdefault("zw", out[0].cpu().numpy().copy())
        return out

    tdec_mod._features = spy
    over = {}
    for kv in a.set:
        k, v = kv.split("=", 1)
        try:
            over[k] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            over[k] = v
    X, y = load(a.dataset)
    K = int(len(np.unique(y)))
    kwargs = {**get_preset("tdec", a.dataset, a.preset), **over}
    est = get_method("tdec")(n_clusters=K, random_state=a.seed, **kwargs)
    t, c = time.perf_counter(), time.process_time()
    est.fit(X)
    secs, cpu = time.perf_counter() - t, time.process_time() - c
    Xt = est._prepare(X).cpu()
    z_w, z_v = _features(est.model_, Xt)
    zw, zv = z_w.numpy(), z_v.numpy()
    km_w = KMeans(K, n_init=10, random_state=0).fit_predict(zw)
    km_pre = KMeans(K, n_init=10, random_state=0).fit_predict(first["zw"])
    km_v = KMeans(K, n_init=10, random_state=0).fit_predict(zv)
    perm = np.random.default_rng(0).permutation(len(X))
    ld = [float(dim_reduction_loss(z_w[perm[i:i + 256]], z_v[perm[i:i + 256]], 30.0))
          for i in range(0, len(X) - 255, 256)]
    sizes = np.bincount(est.labels_, minlength=K) / len(X)
    bal = float(-(sizes[sizes > 0] * np.log(sizes[sizes > 0])).sum() / np.log(K))
    h = est.history_.stages
    m = evaluate(y, est.labels_)
    info = {"ari": float(m["ari"])}
    rec = {
        "tag": a.tag, "dataset": a.dataset, "seed": a.seed, "overrides": {k: str(v) for k, v in over.items()},
        "agree_nmi": round(float(nmi(km_w, est.labels_)), 4),
        "agree_pre_nmi": round(float(nmi(km_pre, est.labels_)), 4),
        "kmeans_pre_acc_info": round(float(evaluate(y, km_pre)["acc"]), 4),
        "dr_nmi": round(float(nmi(km_w, km_v)), 4),
        "l_dim_eval": round(float(np.mean(ld)), 4),
        "balance": round(bal, 4),
        "dim_end_pretrain": round(h.get("pretrain", {}).get("dim", [float("nan")])[-1], 4),
        "dim_end_cluster": round(h.get("cluster", {}).get("dim", [float("nan")])[-1], 4),
        "n_iter": est.n_iter_, "converged": est.diagnostics_["converged"],
        "acc_info": round(float(m["acc"]), 4), "nmi_info": round(float(m["nmi"]), 4),
        "kmeans_zw_acc_info": round(float(evaluate(y, km_w)["acc"]), 4),
        "kmeans_zv_acc_info": round(float(evaluate(y, km_v)["acc"]), 4), **info,
        "fit_seconds": round(secs, 1), "cpu_seconds": round(cpu, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "load": os.getloadavg()[0],
    }
    if a.save_labels:
        np.save(a.save_labels, est.labels_)
    print(json.dumps(rec))
    with open(a.out, "a") as fh:
        fh.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()
