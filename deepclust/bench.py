"""The benchmark runner behind ``deepclust bench``.

Every (method, dataset, seed) runs in its own ``deepclust run`` subprocess, so each run's peak
memory is its own and one failure does not stop the grid. Per-seed metrics go to
``OUT/results/<method>__<dataset>__<preset>[__tag].json``; ``OUT/RESULTS.md`` is then regenerated
from every results file in ``OUT/results``: its part between the ``BEGIN GENERATED`` and
``END GENERATED`` markers is replaced and the hand-written notes around it are kept.

``OUT`` is the user's folder (``deepclust bench`` defaults to ``runs/bench``). The project's own
tables (``benchmarks/RESULTS.md`` and ``benchmarks/results/`` in the checkout) are rewritten only
when asked for explicitly, with ``--out benchmarks``.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from deepclust.paper_numbers import PAPER_NUMBERS

__all__ = ["run_bench", "render_results"]

BEGIN = "<!-- BEGIN GENERATED: deepclust bench rewrites this part -->"
END = "<!-- END GENERATED -->"
METRICS = ("acc", "nmi", "ari")
# extra label sets a method reports (``extra_labels_``), shown as rows under the method's row
ALTERNATES = {
    "kmeans": "→ k-means labels¹",
    "kmeans_instance": "→ k-means on instance features²",
    "no_cli": "→ without CLI, same trunk³",
    "umap": "→ UMAP + k-means start⁴",
}


def _results_name(method: str, dataset: str, preset: str, tag: str | None) -> str:
    return f"{method}__{dataset}__{preset}" + (f"__{tag}" if tag else "") + ".json"


def run_bench(*, methods: list[str], datasets: list[str], seeds: list[int], preset: str = "fast",
              overrides: list[str] | None = None, tag: str | None = None,
              out: Path = Path("runs/bench"), timeout: float | None = None,
              keep: Path | None = None) -> list[Path]:
    """Run the grid, write ``out/results/*.json`` and regenerate ``out/RESULTS.md``; returns the
    results files written.

    ``keep``: a folder where every run's outputs (pictures included) are kept, one sub-folder per
    results file and seed; by default each run writes to a temporary folder without pictures.
    """
    from deepclust.data import CATALOG, dataset_status
    from deepclust.methods import get_method

    for m in methods:
        get_method(m)  # fail early on an unknown method
    for d in datasets:
        if d not in CATALOG:
            from deepclust.data import load_dataset

            load_dataset(d)  # raises the catalog's error with close matches
    from deepclust.fingerprint import current_fingerprint

    out = Path(out)
    results_dir = out / "results"
    prints = {}
    for m in methods:  # the code's behaviour now, on each data set, stored with its results
        try:
            prints.update({(m, d): current_fingerprint(m, d, preset) for d in datasets})
        except ImportError as exc:  # an optional dependency missing: the runs will say so
            prints.update({(m, d): f"unavailable: {exc}" for d in datasets})
    results_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for dataset in datasets:
        present = dataset_status(dataset)["available"]
        for method in methods:
            path = results_dir / _results_name(method, dataset, preset, tag)
            runs, failures = [], []
            meta = {"fingerprint": prints[(method, dataset)],
                    "command": _command(method, dataset, seeds, preset, tag, overrides or [], out)}
            if not present:
                print(f"[bench] {method} on {dataset}: data not present, skipped", flush=True)
                payload = {"method": method, "dataset": dataset, "preset": preset, "tag": tag,
                           "status": "data not present", "runs": [], **meta}
            else:
                for seed in seeds:
                    keep_dir = None if keep is None else keep / path.stem / f"seed{seed}"
                    rec, err = _one_run(method, dataset, seed, preset, overrides or [], timeout, keep_dir)
                    if rec is not None:
                        runs.append(rec)
                        print(f"[bench] {method} {dataset} seed {seed}: acc {rec.get('acc', float('nan')):.4f} "
                              f"nmi {rec.get('nmi', float('nan')):.4f} in {rec['fit_seconds']:.1f}s", flush=True)
                    else:
                        failures.append({"seed": seed, "error": err})
                        print(f"[bench] {method} {dataset} seed {seed}: FAILED: {err}", flush=True)
                    # written after every seed, so an interrupted grid keeps the seeds it finished
                    path.write_text(json.dumps(_payload(method, dataset, preset, tag, overrides, runs, failures,
                                                        meta), indent=2))
                payload = _payload(method, dataset, preset, tag, overrides, runs, failures, meta)
            path.write_text(json.dumps(payload, indent=2))
            written.append(path)
    table = render_results(out)
    print(f"[bench] results in {results_dir}/, table in {table}", flush=True)
    return written


def _command(method, dataset, seeds, preset, tag, overrides, out: Path = Path("benchmarks")) -> str:
    """The command that reproduces a results file (run from the checkout)."""
    cmd = f"deepclust bench --methods {method} --datasets {dataset} --seeds {','.join(map(str, seeds))}"
    if preset != "fast":
        cmd += f" --preset {preset}"
    if tag:
        cmd += f" --tag {tag}"
    if overrides:
        cmd += " --set " + " ".join(f"'{o}'" if any(c in o for c in " \"'()[]") else o for o in overrides)
    return cmd + f" --out {out}"


def _payload(method, dataset, preset, tag, overrides, runs, failures, meta) -> dict:
    return {"method": method, "dataset": dataset, "preset": preset, "tag": tag,
            "overrides": overrides or [], "status": "ok" if runs else "failed", **meta,
            "runs": runs, "failures": failures,
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
            "date": time.strftime("%Y-%m-%d")}


def _one_run(method, dataset, seed, preset, overrides, timeout, keep_dir=None):
    with tempfile.TemporaryDirectory(prefix="deepclust-bench-") as tmp:
        out = Path(tmp) / "run" if keep_dir is None else Path(keep_dir)
        cmd = [sys.executable, "-m", "deepclust", "run", method, "--dataset", dataset, "--seed", str(seed),
               "--preset", preset, "--out", str(out)]
        if keep_dir is None:
            cmd.append("--no-pictures")
        if overrides:
            cmd += ["--set", *overrides]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None, f"timed out after {timeout} s"
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines()
            return None, lines[-1] if lines else f"exit {proc.returncode}"
        rec = json.loads((out / "metrics.json").read_text())
        rec.pop("params", None)
        return rec, None


def _fmt(values: list[float]) -> str:
    if not values:
        return "–"
    a = np.asarray(values, dtype=float)
    if a.size == 1:
        return f"{a[0]:.3f}"
    return f"{a.mean():.3f} ± {a.std(ddof=0):.3f}"


def render_results(bench_dir: Path = Path("benchmarks")) -> Path:
    """Regenerate the generated part of ``bench_dir/RESULTS.md`` from ``bench_dir/results``."""
    results_dir = bench_dir / "results"
    files = sorted(f for f in results_dir.glob("*.json") if not f.name.startswith("perf__")) \
        if results_dir.exists() else []  # perf__*.json: the performance scripts' records (benchmarks/README.md)
    by_dataset: dict[str, list[dict]] = {}
    for f in files:
        payload = json.loads(f.read_text())
        by_dataset.setdefault(payload["dataset"], []).append(payload)
    lines = [BEGIN, "", "Mean ± std over seeds (population std), from `benchmarks/results/*.json`, each row",
             "reproduced by its command. ACC (= OA on scenes, Hungarian-matched), NMI (arithmetic),",
             "ARI, Cohen's kappa on scenes; *min* = the smallest cluster over the seeds (0: a cluster",
             "emptied); fit time in wall seconds (CPU seconds of all threads in brackets); peak RSS",
             "of the run. Paper numbers are quoted with their source and were obtained with the",
             "paper's settings (usually a GPU), not ours. Label sets under a row: ¹ `kmeans`, k-means",
             "on the learned features (RECAL) or the k-means start on the pretrained features",
             "(DEC/IDEC); ² k-means on the instance head's features (PICI/CC); ³ PICI without CLI;",
             "⁴ `umap`, the start of DEC/IDEC with `init=umap`: UMAP + k-means on the pretrained features.",
             ""]
    for dataset in sorted(by_dataset):
        scene = any("kappa" in r for p in by_dataset[dataset] for r in p["runs"])
        head = ["method", "seeds", "OA" if scene else "ACC", "NMI", "ARI"] + (["κ"] if scene else [])
        head += ["min", "fit s (CPU s)", "peak MB", "paper (ACC / NMI / ARI)", "command"]
        lines += [f"### {dataset}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        metrics = METRICS + (("kappa",) if scene else ())
        for p in sorted(by_dataset[dataset], key=lambda p: (p["method"], p["preset"], p.get("tag") or "")):
            name = p["method"] + ("" if p["preset"] == "fast" else f" ({p['preset']})")
            name += f" [{p['tag']}]" if p.get("tag") else ""
            paper = PAPER_NUMBERS.get((p["method"], dataset, p.get("tag")))
            paper_txt = "–"
            if paper:
                vals = " / ".join("–" if paper.get(m) is None else f"{paper[m]:.3f}" for m in METRICS)
                paper_txt = f"{vals} ({paper['source']})"
            cmd = f"`{p['command']}`" if p.get("command") else ""
            if p["status"] == "data not present":
                lines.append(f"| {name} | – | data not present |" + " |" * (len(head) - 5) + f" {paper_txt} | {cmd} |")
                continue
            runs = p["runs"]
            seeds = ",".join(str(r["seed"]) for r in runs) or "–"
            if p.get("failures"):
                seeds += f" ({len(p['failures'])} failed)"
            cols = [_fmt([r[m] for r in runs if m in r]) for m in metrics]
            smallest = [min(r["sizes"]["cluster_sizes"]) for r in runs if r.get("sizes", {}).get("cluster_sizes")]
            low = f"{min(smallest)}" if smallest and len(smallest) == len(runs) else "–"
            fit = f"{np.mean([r['fit_seconds'] for r in runs]):.1f}" if runs else "–"
            cpu = [r["fit_cpu_seconds"] for r in runs if "fit_cpu_seconds" in r]
            if runs and len(cpu) == len(runs):  # wall (CPU) seconds; older records have no CPU time
                fit += f" ({np.mean(cpu):.0f})"
            mem = f"{max((r['peak_rss_mb'] for r in runs), default=float('nan')):.0f}" if runs else "–"
            lines.append(f"| {name} | {seeds} | {' | '.join(cols)} | {low} | {fit} | {mem} | {paper_txt} | {cmd} |")
            for alt, alt_name in ALTERNATES.items():
                alts = [r[alt] for r in runs if isinstance(r.get(alt), dict)]
                if alts:
                    acols = [_fmt([a[m] for a in alts]) for m in METRICS] + ([""] if scene else [])
                    apaper = PAPER_NUMBERS.get((p["method"] + "+" + alt, dataset, p.get("tag")))
                    atxt = "–"
                    if apaper:
                        atxt = " / ".join("–" if apaper.get(m) is None else f"{apaper[m]:.3f}" for m in METRICS)
                        atxt += f" ({apaper['source']})"
                    lines.append(f"| {name} {alt_name} | {seeds} | {' | '.join(acols)} | | | | {atxt} | |")
        lines.append("")
    lines.append(END)
    generated = "\n".join(lines)
    path = bench_dir / "RESULTS.md"
    if path.exists():
        text = path.read_text()
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            _, tail = rest.split(END, 1)
            text = head + generated + tail
        else:
            text = text.rstrip() + "\n\n" + generated + "\n"
    else:
        text = ("# Benchmark results\n\nMeasured with `deepclust bench` on "
                f"{platform.platform()} ({os.cpu_count()} CPUs, Python {platform.python_version()}); "
                "each results file records its machine and date.\n\n" + generated + "\n")
    path.write_text(text)
    return path
