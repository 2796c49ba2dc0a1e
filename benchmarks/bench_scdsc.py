"""Benchmarks of SCDSC, FINCH and EDESC. Each measurement runs in its own process so
its peak memory (``ru_maxrss``) is its own; results are appended as JSON lines.

Usage (from the repository root, ``PYTHONPATH=$PWD``, ``DEEPCLUST_DATA`` set)::

    python benchmarks/bench_scdsc.py finch-all   --out benchmarks/results_scdsc/finch.jsonl
    python benchmarks/bench_scdsc.py scaling-all --out benchmarks/results_scdsc/scaling.jsonl
    python benchmarks/bench_scdsc.py memory      --out benchmarks/results_scdsc/memory.jsonl
    python benchmarks/bench_scdsc.py salinas-all --seeds 0 1 2 3 4 \
        --out benchmarks/results_scdsc/salinas_a.jsonl
    python benchmarks/bench_scdsc.py epoch-time --threads 2 --out benchmarks/results_scdsc/epoch_time.jsonl

Synthetic scenes (``deepclust.data.synthetic``) are for scaling only, never quality results.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TMP = Path(os.environ.get("BENCH_TMP", "/tmp/bench_scdsc"))


def peak_mb() -> float:
    """Peak resident memory of this process (VmHWM). ``ru_maxrss`` is not used: Linux carries
    the forked parent's high-water mark into it across exec."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def emit(out: str | None, rec: dict) -> None:
    rec = {
        **rec,
        "peak_rss_mb": round(peak_mb(), 1),
        "omp_threads": os.environ.get("OMP_NUM_THREADS"),
    }
    line = json.dumps(rec)
    print(line, flush=True)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        with open(out, "a") as fh:
            fh.write(line + "\n")


def child(args: list[str]) -> None:
    subprocess.run([sys.executable, __file__, *args], check=False, cwd=ROOT)


# ---------------------------------------------------------------------------------- FINCH
def finch_features(n: int) -> Path:
    """The SCDSC FINCH input (17x17x8 patches -> PCA 300 -> L2) of a synthetic PaviaU-layout
    scene with n pixels; cached so both implementations read the same array."""
    path = TMP / f"finch_feats_{n}.npy"
    if path.exists():
        return path
    from deepclust.data.scene import ScenePreprocessor, patch_pca_features
    from deepclust.data.synthetic import synthetic_scene

    cube, gt = synthetic_scene("paviau", n_pixels=n, n_bands=103, random_state=0)
    pca = ScenePreprocessor(8).fit(cube).transform(cube)
    rows, cols = np.nonzero(gt > 0)
    feats = patch_pca_features(pca, rows, cols, patch=17, n_components=300)
    TMP.mkdir(parents=True, exist_ok=True)
    np.save(path, feats)
    return path


def task_finch(impl: str, n: int, out: str | None) -> None:
    X = np.load(finch_features(n))
    if impl == "ours":  # imports outside the timed region
        from deepclust.cluster.finch import finch
    else:
        from finch import FINCH
    base = peak_mb()
    t = time.perf_counter()
    if impl == "ours":
        parts, counts, _ = finch(X, metric="cosine")
        c = np.stack(parts, 1)
    else:
        c, counts, _ = FINCH(X, distance="cosine", verbose=False)
        counts = list(counts)
    sec = time.perf_counter() - t
    np.save(TMP / f"finch_{impl}_{n}.npy", c)
    emit(
        out,
        {
            "task": "finch",
            "impl": impl,
            "n": n,
            "seconds": round(sec, 2),
            "levels": [int(v) for v in counts],
            "input_mb": round(X.nbytes / 2**20, 1),
            "rss_before_mb": round(base, 1),
        },
    )


def task_finch_compare(n: int, out: str | None) -> None:
    a, b = np.load(TMP / f"finch_ours_{n}.npy"), np.load(TMP / f"finch_ref_{n}.npy")
    same = a.shape == b.shape and bool((a == b).all())
    emit(
        out,
        {
            "task": "finch-compare",
            "n": n,
            "identical_partitions": same,
            "levels_ours": a.shape[1],
            "levels_ref": b.shape[1],
        },
    )


# -------------------------------------------------------------------------------- scaling
def task_epoch(n: int, epochs: int, chunk: int | None, out: str | None) -> None:
    """Per-epoch time of SCDSC's joint training (MC&L) on n pixels of a synthetic PaviaU-layout
    scene. The mini-cluster index is a fixed random partition into n/16 groups (its content
    does not change the per-epoch cost; FINCH is timed separately)."""
    import torch

    from deepclust.data.hsi import extract_patches
    from deepclust.data.scene import ScenePreprocessor
    from deepclust.data.synthetic import synthetic_scene
    from deepclust.methods.scdsc import _train_scdsc
    from deepclust.nn import seeded_init
    from deepclust.nn.conv_ae import ConvPatchAutoencoder
    from deepclust.nn.subspace import BasisClusteringNet
    from deepclust.training import History

    cube, gt = synthetic_scene("paviau", n_pixels=n, n_bands=103, random_state=0)
    mask = gt > 0
    rows, cols = np.nonzero(mask)
    pca = ScenePreprocessor(8).fit(cube).transform(cube)
    X = torch.from_numpy(extract_patches(pca, np.stack([rows, cols], 1), 7))
    del cube, pca
    rng = np.random.default_rng(0)
    mini = torch.from_numpy(rng.integers(0, max(1, n // 16), n))
    with seeded_init(0):
        net = BasisClusteringNet(ConvPatchAutoencoder(8, 7), n_clusters=9, d=5)
        torch.nn.init.normal_(net.D, std=0.03)
    hist = History()
    times = []
    for _ in range(epochs):
        t = time.perf_counter()
        _train_scdsc(
            net=net,
            X=X,
            flat_index=torch.from_numpy(rows * gt.shape[1] + cols),
            mask=torch.from_numpy(mask),
            mini_index=mini,
            local=True,
            window=7,
            beta=1e-3,
            beta1=3.0,
            beta2=7.0,
            epochs=1,
            lr=5e-3,
            chunk_size=chunk,
            threshold=0.9,
            generator=torch.Generator().manual_seed(0),
            history=hist,
            verbose=False,
        )
        times.append(time.perf_counter() - t)
    emit(
        out,
        {
            "task": "epoch",
            "n": n,
            "chunk_size": chunk,
            "epoch_seconds": [round(t, 2) for t in times],
            "median_epoch_seconds": round(float(np.median(times)), 2),
            "scene_shape": list(gt.shape),
        },
    )


# --------------------------------------------------------------------------------- memory
def task_memory(out: str | None, chunk: int | None) -> None:
    """The whole SCDSC fit (FINCH included) on a synthetic scene with PaviaU's real layout
    (610x340, 42,776 clustered pixels, 103 bands); short schedule, all stages run."""
    from deepclust.data.synthetic import synthetic_scene
    from deepclust.methods.scdsc import SCDSC

    cube, gt = synthetic_scene("paviau", n_bands=103, random_state=0)
    mask = gt > 0
    t = time.perf_counter()
    m = SCDSC(
        n_clusters=9,
        epochs=2,
        pretrain_epochs=1,
        kmeans_n_init=1,
        kmeans_backend="faiss",
        chunk_size=chunk,
        random_state=0,
        device="cpu",
    ).fit(cube, mask=mask)
    emit(
        out,
        {
            "task": "memory",
            "n": int(mask.sum()),
            "chunk_size": chunk,
            "fit_seconds": round(time.perf_counter() - t, 1),
            "diagnostics": m.diagnostics_,
        },
    )


# ----------------------------------------------------------------------------- Salinas-A
class _SceneReference:
    """The cheap label-free references SCDSC must beat, on SCDSC's own inputs:

    * ``kmeans-patches``: k-means (10 restarts) on the autoencoder's input, the 7x7 patches of
      the 8 PCA bands with per-feature means removed and one global scale;
    * ``kmeans-minimeans``: SCDSC's FINCH mini-clusters (17x17 patches -> PCA 300 -> L2, cosine
      FINCH, level after the 2nd iteration); the mean of each mini-cluster's FINCH features,
      weighted k-means (weight = pixels, 10 restarts) on those means, each pixel labelled as its
      mini-cluster. (Means of the 7x7 AE-input patches, of the PCA bands or of the spectra gave
      0.83-0.85 OA against 0.876 for these features; the strongest is the reference.)
    * ``umap-kmeans``: the peer a user tries first, the ``umap-kmeans`` method
      (:class:`deepclust.methods.umap_kmeans.UMAPKMeans`) on the same patches as
      ``kmeans-patches``, with the settings of the recorded rows: umap-learn's defaults (15
      neighbours, min_dist 0.1), 10 components, no PCA, then k-means (10 restarts), all seeded
      with ``seed``. Needs the ``bench`` (or ``umap``) extra.
    """

    def __init__(self, method: str, k: int, seed: int, cube: np.ndarray, mask: np.ndarray):
        from sklearn.cluster import KMeans

        from deepclust.cluster.finch import minicluster_index
        from deepclust.data.scene import ScenePatches, ScenePreprocessor, patch_pca_features

        rows, cols = np.nonzero(mask)
        pca_cube = ScenePreprocessor(8).fit(cube).transform(cube)
        src = ScenePatches(pca_cube, rows, cols, 7)
        mean, scale = src.feature_stats(scaling="global")
        src.set_normalisation(mean, scale)
        if method == "umap-kmeans":
            from deepclust.methods.umap_kmeans import UMAPKMeans

            P = src.materialize().reshape(len(src), -1).numpy()
            m = UMAPKMeans(n_clusters=k, n_components=10, n_neighbors=15, min_dist=0.1, pca_components=None,
                           n_init=10, random_state=seed).fit(P)
            self.labels_, self.selection_ = m.labels_, m.selection_
            return
        if method == "kmeans-patches":
            P = src.materialize().reshape(len(src), -1).numpy().astype(np.float64)
            self.labels_ = KMeans(k, n_init=10, random_state=seed).fit(P).labels_
            self.selection_ = "k-means, lowest inertia of 10 restarts"
            return
        feats = patch_pca_features(pca_cube, rows, cols, patch=17, n_components=300, seed=seed)
        mini, _ = minicluster_index(feats, level=1)
        l_ = int(mini.max()) + 1
        w = np.bincount(mini, minlength=l_).astype(np.float64)
        means = np.zeros((l_, feats.shape[1]))
        np.add.at(means, mini, feats.astype(np.float64))
        means /= w[:, None]
        lab = KMeans(k, n_init=10, random_state=seed).fit(means, sample_weight=w).labels_
        self.labels_ = lab[mini]
        self.selection_ = f"weighted k-means on {l_} mini-cluster means, lowest inertia of 10 restarts"


def task_epoch_time(threads: int, out: str | None) -> None:
    """Seconds per joint epoch on Salinas-A (fast preset network, full batch): two fits that
    differ only in the number of joint epochs (2 and 22), so everything else cancels; wall and
    CPU seconds of the 20 extra epochs, divided by 20."""
    import torch

    from deepclust.methods.scdsc import SCDSC
    from deepclust.presets import get_preset

    torch.set_num_threads(threads)
    cube, gt = load_salinas_a()
    mask = gt > 0
    res = {}
    for epochs in (2, 22):
        kw = {**get_preset("scdsc", "salinas-a", "fast"), "pretrain_epochs": 1, "epochs": epochs,
              "kmeans_n_init": 1, "reseed": False}
        t, c = time.perf_counter(), time.process_time()
        SCDSC(n_clusters=6, random_state=0, device="cpu", **kw).fit(cube, mask=mask)
        res[epochs] = (time.perf_counter() - t, time.process_time() - c)
    # The floor: one joint epoch is one forward and backward pass of the patch autoencoder over
    # every pixel. Multiply-accumulates per patch of the direct convolutions (conv_ae.py):
    # 1x1 C->ch, 3x3 ch->ch twice, transposed 3x3 ch->ch, 1x1 ch->C, each at P x P positions;
    # the backward pass costs two forwards (input and weight gradients), so 3 x 2 FLOP per MAC.
    n, C, P, ch = int(mask.sum()), 8, 7, 32
    mac = P * P * (C * ch + 3 * 9 * ch * ch + ch * C)
    flop = 6 * mac * n
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    best = 0.0
    for _ in range(12):  # this machine's dense fp32 GEMM rate, FLOP per CPU second, best of 12
        c = time.process_time()
        a @ b
        best = max(best, 2 * 2048**3 / max(time.process_time() - c, 1e-9))
    cpu_epoch = (res[22][1] - res[2][1]) / 20
    emit(out, {
        "task": "epoch-time",
        "threads": threads,
        "wall_per_epoch": round((res[22][0] - res[2][0]) / 20, 3),
        "cpu_per_epoch": round(cpu_epoch, 3),
        "gflop_per_epoch": round(flop / 1e9, 1),
        "gemm_gflop_per_cpu_second": round(best / 1e9, 1),
        "floor_wall_per_epoch_at_gemm_peak": round(flop / (threads * best), 3),
        "share_of_gemm_peak": round(flop / best / cpu_epoch, 3),
        "load_average": os.getloadavg()[0],
    })


def load_salinas_a():
    import scipy.io as sio

    d = (
        Path(os.environ.get("DEEPCLUST_DATA", ROOT.parent / "shared" / "datasets"))
        / "hsi"
        / "SalinasA"
    )
    cube = sio.loadmat(d / "SalinasA_corrected.mat")["salinasA_corrected"].astype(np.float32)
    gt = sio.loadmat(d / "SalinasA_gt.mat")["salinasA_gt"].astype(np.int64)
    return cube, gt


def task_salinas(method: str, seed: int, out: str | None) -> None:
    from deepclust.metrics import evaluate
    from deepclust.presets import get_preset

    cube, gt = load_salinas_a()
    mask = gt > 0
    y = gt[mask]
    K = len(np.unique(y))
    t = time.perf_counter()
    extra = {}
    if method.startswith("scdsc"):
        from deepclust.methods.scdsc import SCDSC

        # e.g. "scdsc:reseed=False" (one switch off), or several: "scdsc:epochs=300;stop_tol=0.001"
        base, _, switches = method.partition(":")
        flags = {
            "scdsc-baseline": (False, False),
            "scdsc-L": (True, False),
            "scdsc-MC": (False, True),
            "scdsc": (True, True),
            "scdsc-paper": (True, True),
        }[base]
        kw = get_preset("scdsc", "salinas-a", "paper" if base == "scdsc-paper" else "fast")
        for switch in filter(None, switches.split(";")):
            key, val = switch.split("=")
            kw[key] = json.loads(val.replace("True", "true").replace("False", "false").replace("None", "null")
                                 .replace("'", '"'))
        m = SCDSC(
            n_clusters=K, local=flags[0], nonlocal_=flags[1], random_state=seed, device="cpu", **kw
        ).fit(cube, mask=mask)
        ev_last = evaluate(y, m.labels_last_)
        extra = {
            "selection": m.selection_,
            "last_epoch_oa": ev_last["oa"],
            "last_epoch_nmi": ev_last["nmi"],
            "diagnostics": m.diagnostics_,
        }
    elif method in ("kmeans-patches", "kmeans-minimeans", "umap-kmeans"):
        m = _SceneReference(method, K, seed, cube, mask)
    else:
        X = cube[mask]  # (N, B) spectra, row-major
        if method == "kmeans":
            from deepclust.methods.kmeans import KMeans

            m = KMeans(n_clusters=K, n_init=10, random_state=seed).fit(X)
        elif method == "finch":
            from deepclust.cluster.finch import FINCH

            m = FINCH(n_clusters=K, metric="cosine", random_state=seed).fit(X)
        elif method == "edesc":
            from deepclust.methods.edesc import EDESC

            Xs = (X - X.mean(0)) / X.std(0)  # band standardisation (label-free)
            m = EDESC(
                n_clusters=K,
                random_state=seed,
                device="cpu",
                **get_preset("edesc", "salinas-a", "fast"),
            ).fit(Xs)
        else:
            raise SystemExit(f"unknown method {method}")
        extra = {"selection": getattr(m, "selection_", "")}
    sec = time.perf_counter() - t
    ev = evaluate(y, m.labels_)
    emit(
        out,
        {
            "task": "salinas-a",
            "method": method,
            "seed": seed,
            "fit_seconds": round(sec, 1),
            "oa": ev["oa"],
            "nmi": ev["nmi"],
            "kappa": ev["kappa"],
            "ari": ev["ari"],
            "per_class": ev.get("per_class"),
            "cluster_sizes": np.bincount(np.asarray(m.labels_), minlength=K).tolist(),
            "cpu_seconds": round(time.process_time(), 1),
            **extra,
        },
    )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("task")
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--impl", default="ours")
    p.add_argument("--method", default="scdsc")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2, 3, 4])
    p.add_argument(
        "--methods",
        nargs="*",
        default=["kmeans", "finch", "edesc", "scdsc-baseline", "scdsc-L", "scdsc-MC", "scdsc"],
    )
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--chunk", type=int, default=8192)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    o = ["--out", a.out] if a.out else []
    if a.task == "finch":
        task_finch(a.impl, a.n, a.out)
    elif a.task == "finch-compare":
        task_finch_compare(a.n, a.out)
    elif a.task == "finch-all":
        for n in (5_000, 10_000, 20_000):
            finch_features(n)
            child(["finch", "--impl", "ours", "--n", str(n), *o])
            child(["finch", "--impl", "ref", "--n", str(n), *o])
            child(["finch-compare", "--n", str(n), *o])
    elif a.task == "epoch":
        task_epoch(a.n, a.epochs, a.chunk if a.chunk > 0 else None, a.out)
    elif a.task == "scaling-all":
        for n in (10_000, 20_000, 40_000, 80_000):
            child(["epoch", "--n", str(n), "--epochs", str(a.epochs), "--chunk", str(a.chunk), *o])
    elif a.task == "memory":
        task_memory(a.out, a.chunk if a.chunk > 0 else None)
    elif a.task == "epoch-time":
        task_epoch_time(a.threads, a.out)
    elif a.task == "salinas":
        task_salinas(a.method, a.seed, a.out)
    elif a.task == "salinas-all":
        done = set()
        if a.out and Path(a.out).exists():  # resume: skip (method, seed) pairs already measured
            for line in Path(a.out).read_text().splitlines():
                r = json.loads(line)
                if r.get("task") == "salinas-a":
                    done.add((r["method"], r["seed"]))
        for seed in a.seeds:
            for method in a.methods:
                if (method, seed) not in done:
                    child(["salinas", "--method", method, "--seed", str(seed), *o])
    else:
        raise SystemExit(f"unknown task {a.task}")


if __name__ == "__main__":
    main()
