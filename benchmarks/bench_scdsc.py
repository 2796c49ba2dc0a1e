"""Performance of SCDSC and its FINCH stage: FINCH against ``finch-clust``, the whole fit's
memory, the time per joint epoch against n and on Salinas-A. Each measurement runs in its own
process so its peak memory is its own; each appends a record to
``benchmarks/results/perf__<name>.json`` (``--out`` another file) through ``results_io``.

Usage (from the repository root, ``PYTHONPATH=$PWD``, ``DEEPCLUST_DATA`` set)::

    python benchmarks/bench_scdsc.py finch-all               # perf__scdsc_finch.json
    python benchmarks/bench_scdsc.py memory                  # perf__scdsc_memory.json
    python benchmarks/bench_scdsc.py scaling-all --epochs 2  # perf__scdsc_scaling.json
    python benchmarks/bench_scdsc.py epoch-time --threads 2  # perf__scdsc_epoch_time.json

Synthetic scenes (``deepclust.data.synthetic``) are for cost only, never quality results. The
quality of SCDSC and of its label-free references (``patch-kmeans``) on Salinas-A comes from
``deepclust bench``.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import append_record, command_line  # noqa: E402

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


def emit(name: str, rec: dict, methods: list[str], out: str | None) -> None:
    rec = {**rec, "peak_rss_mb": round(peak_mb(), 1)}
    print(json.dumps(rec), flush=True)
    append_record(name, rec, methods=methods, command=command_line(), out=out)


def child(args: list[str]) -> None:
    """Run a task in a fresh process; its record names this process's command."""
    env = {**os.environ, "BENCH_COMMAND": command_line()}
    subprocess.run([sys.executable, __file__, *args], check=False, cwd=ROOT, env=env)


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
        "scdsc_finch",
        {
            "task": "finch",
            "impl": impl,
            "n": n,
            "seconds": round(sec, 2),
            "levels": [int(v) for v in counts],
            "input_mb": round(X.nbytes / 2**20, 1),
            "rss_before_mb": round(base, 1),
        },
        ["finch"],
        out,
    )


def task_finch_compare(n: int, out: str | None) -> None:
    a, b = np.load(TMP / f"finch_ours_{n}.npy"), np.load(TMP / f"finch_ref_{n}.npy")
    same = a.shape == b.shape and bool((a == b).all())
    emit(
        "scdsc_finch",
        {
            "task": "finch-compare",
            "n": n,
            "identical_partitions": same,
            "levels_ours": a.shape[1],
            "levels_ref": b.shape[1],
        },
        ["finch"],
        out,
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
        "scdsc_scaling",
        {
            "task": "epoch",
            "n": n,
            "chunk_size": chunk,
            "epoch_seconds": [round(t, 2) for t in times],
            "median_epoch_seconds": round(float(np.median(times)), 2),
            "scene_shape": list(gt.shape),
        },
        ["scdsc"],
        out,
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
        "scdsc_memory",
        {
            "task": "memory",
            "n": int(mask.sum()),
            "chunk_size": chunk,
            "fit_seconds": round(time.perf_counter() - t, 1),
            "diagnostics": m.diagnostics_,
        },
        ["scdsc"],
        out,
    )


# ----------------------------------------------------------------------------- Salinas-A
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
    emit("scdsc_epoch_time", {
        "task": "epoch-time",
        "threads": threads,
        "wall_per_epoch": round((res[22][0] - res[2][0]) / 20, 3),
        "cpu_per_epoch": round(cpu_epoch, 3),
        "gflop_per_epoch": round(flop / 1e9, 1),
        "gemm_gflop_per_cpu_second": round(best / 1e9, 1),
        "floor_wall_per_epoch_at_gemm_peak": round(flop / (threads * best), 3),
        "share_of_gemm_peak": round(flop / best / cpu_epoch, 3),
    }, ["scdsc"], out)


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                epilog="finch, finch-compare and epoch are the single measurements the *-all tasks run")
    p.add_argument("task", choices=["finch-all", "memory", "scaling-all", "epoch-time", "finch", "finch-compare",
                                    "epoch"])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--impl", default="ours", choices=["ours", "ref"])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--chunk", type=int, default=8192)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None, help="results file (default benchmarks/results/perf__<name>.json)")
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


if __name__ == "__main__":
    main()
