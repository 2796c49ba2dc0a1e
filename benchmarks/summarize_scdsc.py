"""Markdown tables from the JSON lines written by ``bench_scdsc.py``.

python benchmarks/summarize_scdsc.py benchmarks/results_scdsc
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def ms(vals: list[float], scale: float = 1.0, digits: int = 2) -> str:
    v = np.asarray(vals, dtype=float) * scale
    if v.size == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=0):.{digits}f}"


def main(folder: str) -> None:
    d = Path(folder)
    rows, seen = [], set()
    for r in read(d / "salinas_a.jsonl"):  # first record per (method, seed); reruns are repeats
        if r.get("task") == "salinas-a" and (r["method"], r["seed"]) not in seen:
            seen.add((r["method"], r["seed"]))
            rows.append(r)
    order = ["kmeans", "finch", "kmeans-patches", "kmeans-minimeans", "umap-kmeans", "edesc", "scdsc-baseline",
             "scdsc-L", "scdsc-MC", "scdsc", "scdsc-paper"]
    order += sorted({r["method"] for r in rows} - set(order))  # one-switch rows, "scdsc:key=value"
    names = {
        "kmeans": "k-means (spectra, 10 restarts)",
        "finch": "FINCH (spectra, cosine, req_clust=6)",
        "kmeans-patches": "k-means (7×7×8 PCA patches, global scale)",
        "kmeans-minimeans": "weighted k-means on the FINCH mini-cluster means",
        "umap-kmeans": "UMAP (10-D) + k-means on the same patches",
        "edesc": "EDESC (MLP AE, spectra)",
        "scdsc-baseline": "SCDSC Baseline (EDESC, conv AE)",
        "scdsc-L": "SCDSC L",
        "scdsc-MC": "SCDSC MC",
        "scdsc": "**SCDSC MC&L, `fast`**",
        "scdsc-paper": "SCDSC MC&L, `paper` (400 epochs, added rules off)",
    }
    print("| method | seeds | OA (%) | kappa | NMI | smallest cluster (px) | s / joint epoch | fit s | peak MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for m in order:
        rs = [r for r in rows if r["method"] == m]
        if not rs:
            continue
        seeds = ",".join(str(r["seed"]) for r in rs)
        smallest = [min(r.get("cluster_sizes") or [0]) for r in rs if r.get("cluster_sizes")]
        spe = [r["diagnostics"]["seconds_per_epoch"] for r in rs if r.get("diagnostics", {}).get("seconds_per_epoch")]
        name = names.get(m, m.replace("scdsc:", "SCDSC `fast`, only `") + "`" if m.startswith("scdsc:") else m)
        print(
            f"| {name} | {len(rs)} ({seeds}) | {ms([r['oa'] for r in rs], 100)} | "
            f"{ms([r['kappa'] for r in rs], 1, 3)} | {ms([r['nmi'] for r in rs], 1, 3)} | "
            f"{', '.join(str(v) for v in smallest) if smallest else '—'} | "
            f"{ms(spe, 1, 2) if spe else '—'} | "
            f"{ms([r['fit_seconds'] for r in rs], 1, 0)} | "
            f"{ms([r['peak_rss_mb'] for r in rs], 1, 0)} |"
        )
    print()
    fr = read(d / "finch.jsonl")
    print(
        "| n | ours s | finch-clust s | ours peak MB | finch-clust peak MB | identical partitions |"
    )
    print("|---|---|---|---|---|---|")
    for n in sorted({r["n"] for r in fr}):
        o = [r for r in fr if r["n"] == n and r.get("impl") == "ours"]
        f = [r for r in fr if r["n"] == n and r.get("impl") == "ref"]
        c = [r for r in fr if r["n"] == n and r["task"] == "finch-compare"]
        if o and f:
            print(
                f"| {n} | {o[-1]['seconds']} | {f[-1]['seconds']} | {o[-1]['peak_rss_mb']} "
                f"(+{o[-1]['peak_rss_mb'] - o[-1]['rss_before_mb']:.0f}) | {f[-1]['peak_rss_mb']} "
                f"(+{f[-1]['peak_rss_mb'] - f[-1]['rss_before_mb']:.0f}) | "
                f"{c[-1]['identical_partitions'] if c else '?'} |"
            )
    print()
    sc = read(d / "scaling.jsonl")
    if sc:
        base = None
        print("| n | epoch seconds | median | ratio to 10k | peak MB |")
        print("|---|---|---|---|---|")
        for r in sorted(sc, key=lambda r: r["n"]):
            base = base or r["median_epoch_seconds"]
            print(
                f"| {r['n']} | {r['epoch_seconds']} | {r['median_epoch_seconds']} | "
                f"{r['median_epoch_seconds'] / base:.2f} | {r['peak_rss_mb']} |"
            )
    for r in read(d / "memory.jsonl"):
        print()
        print(
            f"memory: n={r['n']} chunk={r['chunk_size']} fit {r['fit_seconds']} s, "
            f"peak {r['peak_rss_mb']} MB; {json.dumps(r['diagnostics'])}"
        )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/results_scdsc")
