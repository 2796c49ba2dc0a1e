"""Print the RECAL result table (mean ± std over seeds) from benchmarks/results_recal/*.json.

    PYTHONPATH=. python benchmarks/summarize_recal.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

root = Path(__file__).parent / "results_recal"
rows: dict[str, list[dict]] = {}
for f in sorted(root.glob("*_seed*.json")):
    d = json.loads(f.read_text())
    rows.setdefault(f"{d['dataset']} ({d['preset']}{d.get('tag', '')})", []).append(d)


def ms(vals):
    v = np.asarray(vals, float)
    return f"{v.mean():.3f} ± {v.std():.3f}" if v.size > 1 else f"{v.mean():.3f}"


print("| dataset | seeds | head NMI | head ACC | head ARI | k-means NMI | k-means ACC | "
      "paper NMI head / k-means | fit s (mean) | peak RSS MB |")
print("|---|---|---|---|---|---|---|---|---|---|")
for ds, rs in rows.items():
    seeds = ",".join(str(r["seed"]) for r in rs)
    print(f"| {ds} | {seeds} | {ms([r['head']['nmi'] for r in rs])} | "
          f"{ms([r['head']['acc'] for r in rs])} | {ms([r['head']['ari'] for r in rs])} | "
          f"{ms([r['kmeans_on_features']['nmi'] for r in rs])} | "
          f"{ms([r['kmeans_on_features']['acc'] for r in rs])} | "
          f"{rs[0]['paper_nmi_head']:.3f} / {rs[0]['paper_nmi_kmeans']:.3f} | "
          f"{np.mean([r['fit_seconds'] for r in rs]):.0f} | "
          f"{max(r['peak_rss_mb'] for r in rs):.0f} |")
