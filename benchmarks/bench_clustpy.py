"""deepclust's DEC / IDEC against ClustPy's, side by side: same data, layers, batch, learning
rates, pretraining epochs and number of clustering updates; labels only to score.

Each (method, seed) runs ours and then ClustPy's estimator in the same process and thread
setting, and appends one record per run to ``benchmarks/results/perf__clustpy.json``
(``--out`` another file): ACC / NMI / ARI, wall and CPU seconds of the whole fit and the number
of clustering updates made.

``--speed N``: the speed per update instead. Both libraries skip pretraining
(``pretrain_epochs=0``; the clustering stage then starts from k-means on the untrained
encoder) and make N, then 2N clustering updates (ours with ``tol=0`` so its stop rule cannot
end the stage early; ClustPy whole epochs, at least N); both start from one k-means run
(``n_init=1``, ours with ``init="kmeans"``). Each record gives the whole fit's seconds per
update (``s_per_update``, fixed costs included: the start, the final predictions) and, on the
2N record, the marginal cost of one more update, ``marginal_s_per_update`` = (t(2N) - t(N)) /
(updates(2N) - updates(N)), in which the fixed costs cancel. Ours includes its whole-set target
refresh every ``update_interval`` steps (a forward pass over all samples), part of DEC's
algorithm. Before any timing, one Adam step on a throwaway tensor loads what torch imports on
an optimizer's first use (``torch._dynamo``, about 2 s), which would otherwise be charged to
whichever library runs first. ``--repeats R`` runs the pairs R times and prints the median of
the speed ratios (ours / ClustPy updates per second); this machine's speed drifts by 10-15 %
over minutes, so one pair is not enough. Quality numbers of such runs mean nothing.

Usage (repository root; ClustPy 0.0.3 is an optional benchmark dependency)::

    python -m pip install --no-deps "clustpy==0.0.3" pandas   # beside the CPU torch: see below
    OMP_NUM_THREADS=2 PYTHONPATH=$PWD python benchmarks/bench_clustpy.py --dataset usps \\
        --methods dec idec --seeds 0 1 2

``--no-deps``: ClustPy asks for torchvision, whose PyPI wheels do not import against the CPU
torch 2.13 wheel (and would pull a CUDA torch). ClustPy's deep module imports torchvision only
for type hints and for its convolutional autoencoders (not used here), so this script puts
empty ``torchvision`` modules in ``sys.modules`` when the real one cannot be imported, and says
so in each record.

Settings: ours runs its ``fast`` preset for the data set with ``--set``-style overrides given
by ``--ours KEY=VALUE``; ClustPy gets the same layers (``[d, 500, 500, 2000, 10]``), batch
size, pretraining epochs and learning rate (Adam), and ``clustering_epochs`` =
ceil(ours' max_iter / batches per epoch), so both make about the same number of updates (ours
may stop earlier by its label-free rules; the record gives the updates each made).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import append_record, command_line  # noqa: E402


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _import_clustpy():
    stubbed = False
    try:
        import torchvision  # noqa: F401
    except Exception:  # not installed, or a wheel built for another torch
        # ClustPy names torchvision only in type hints and in its convolutional / ResNet
        # autoencoders, which this comparison does not use
        import enum

        for name in ("torchvision", "torchvision.models", "torchvision.models._api"):
            mod = types.ModuleType(name)
            mod.__path__ = []  # a package, so its submodules import
            sys.modules[name] = mod
        sys.modules["torchvision.models._api"].Weights = type("Weights", (), {})
        sys.modules["torchvision.models._api"].WeightsEnum = enum.Enum
        stubbed = True
    try:
        from clustpy.deep import DEC as CDEC
        from clustpy.deep import IDEC as CIDEC
    except ImportError as exc:
        raise SystemExit(
            f"ClustPy is not importable ({exc}). Install it beside the CPU torch with\n"
            '    python -m pip install --no-deps "clustpy==0.0.3" pandas'
        ) from exc
    return {"dec": CDEC, "idec": CIDEC}, stubbed


def run_ours(method: str, X: np.ndarray, k: int, seed: int, dataset: str, overrides: dict) -> dict:
    from deepclust.runner import build_estimator

    est = build_estimator(method, dataset=dataset, preset="fast", seed=seed, n_clusters=k,
                          overrides=overrides)
    t0, c0 = time.perf_counter(), _cpu()
    est.fit(X)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    hist = est.history_.to_dict()
    return {"labels": est.labels_, "wall_s": wall, "cpu_s": cpu, "updates": int(est.n_iter_),
            "pretrain_epochs_run": int(est.diagnostics_.get("pretrain_epochs_run", -1)),
            "params": {k2: v for k2, v in est.get_params().items() if not callable(v)},
            "stages": {s: len(next(iter(t.values()), [])) for s, t in hist.items()}}


def run_clustpy(cls, method: str, X: np.ndarray, k: int, seed: int, params: dict, speed: bool = False) -> dict:
    import torch

    n = len(X)
    batches = math.ceil(n / params["batch_size"])
    epochs = max(1, math.ceil(params["max_iter"] / batches))
    kw = dict(n_clusters=k, batch_size=params["batch_size"], pretrain_epochs=params["pretrain_epochs"],
              clustering_epochs=epochs, embedding_size=params["latent_dim"],
              pretrain_optimizer_params={"lr": params["pretrain_lr"]},
              clustering_optimizer_params={"lr": params["lr"]},
              random_state=np.random.RandomState(seed), device=torch.device("cpu"))
    if speed:  # one k-means run on each side, so the start costs the same
        kw["initial_clustering_params"] = {"n_init": 1}
    from clustpy.deep.neural_networks import FeedforwardAutoencoder

    kw["neural_network"] = (FeedforwardAutoencoder, {"layers": [X.shape[1], *params["hidden_dims"],
                                                                params["latent_dim"]]})
    est = cls(**kw)
    t0, c0 = time.perf_counter(), _cpu()
    est.fit(X)
    wall, cpu = time.perf_counter() - t0, _cpu() - c0
    return {"labels": np.asarray(est.dec_labels_ if hasattr(est, "dec_labels_") else est.labels_),
            "wall_s": wall, "cpu_s": cpu, "updates": epochs * batches, "clustering_epochs": epochs}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="usps")
    ap.add_argument("--methods", nargs="+", default=["dec", "idec"], choices=["dec", "idec"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--ours", nargs="*", default=[], help="KEY=VALUE overrides of our fast preset")
    ap.add_argument("--skip-clustpy", action="store_true")
    ap.add_argument("--skip-ours", action="store_true",
                    help="run ClustPy only, with the settings of our preset (ours: deepclust bench)")
    ap.add_argument("--speed", type=int, default=0, metavar="N",
                    help="time N clustering updates without pretraining (see the module docstring)")
    ap.add_argument("--repeats", type=int, default=1, metavar="R",
                    help="with --speed: run the N / 2N pairs R times, back to back, and print the median "
                         "ratios (this machine's speed drifts by 10-15 %% over minutes)")
    ap.add_argument("--out", default=None, help="results file (default benchmarks/results/perf__clustpy.json)")
    a = ap.parse_args(argv)

    import torch

    from deepclust.data import load_dataset
    from deepclust.metrics import evaluate
    from deepclust.runner import parse_overrides

    classes, stubbed = (None, False) if a.skip_clustpy else _import_clustpy()
    ds = load_dataset(a.dataset)
    X = ds.X.reshape(len(ds.X), -1).astype(np.float32)
    k = int(len(np.unique(ds.y)))
    overrides = parse_overrides(a.ours)
    if a.speed:
        # init="kmeans": both sides start from one k-means run (the fast preset's UMAP start
        # would add UMAP's time to ours and measure nothing about the updates)
        overrides.update(pretrain_epochs=0, tol=0.0, max_iter=int(a.speed), n_init=1, init="kmeans")
        # one-time imports of an optimizer's first use, charged to neither library
        w = torch.zeros(1, requires_grad=True)
        opt = torch.optim.Adam([w])
        w.sum().backward()
        opt.step()
    budgets = [int(a.speed), 2 * int(a.speed)] if a.speed else [None]
    ratios: dict[str, list] = {}  # method -> [(whole-fit ratio at 2N, marginal ratio), ...], ours / ClustPy speed
    for method in a.methods:
        for seed in a.seeds:
            for repeat in range(max(1, a.repeats) if a.speed else 1):
                first: dict = {}  # library -> the N-update run, for the marginal cost of the 2N run
                last: dict = {}  # library -> the 2N record
                for budget in budgets:
                    if budget is not None:
                        overrides["max_iter"] = budget
                    for lib, r in _run_pair(a, method, seed, X, k, overrides, classes):
                        res = evaluate(ds.y, r["labels"])
                        rec = {"library": lib, "method": method, "dataset": a.dataset,
                               "seed": seed, **{m: round(float(res[m]), 4) for m in ("acc", "nmi", "ari")},
                               "wall_s": round(r["wall_s"], 1), "cpu_s": round(r["cpu_s"], 1),
                               "updates": r["updates"], "speed_run": bool(a.speed),
                               "s_per_update": round(r["wall_s"] / max(1, r["updates"]), 5),
                               "torch_threads": torch.get_num_threads()}
                        if a.speed:
                            rec["repeat"] = repeat
                        if lib in first:
                            f = first[lib]
                            rec["marginal_s_per_update"] = round(
                                (r["wall_s"] - f["wall_s"]) / max(1, r["updates"] - f["updates"]), 5)
                            rec["marginal_cpu_s_per_update"] = round(
                                (r["cpu_s"] - f["cpu_s"]) / max(1, r["updates"] - f["updates"]), 5)
                            last[lib] = rec
                        elif a.speed:
                            first[lib] = r
                        if lib == "deepclust":
                            rec.update(overrides=a.ours, pretrain_epochs_run=r["pretrain_epochs_run"],
                                       stages=r["stages"])
                        else:
                            rec.update(clustering_epochs=r["clustering_epochs"], torchvision_stubbed=stubbed)
                        print(json.dumps(rec), flush=True)
                        append_record("clustpy", rec, methods=[method], command=command_line(), out=a.out)
                if len(last) == 2:
                    o, c = last["deepclust"], last["clustpy"]
                    ratios.setdefault(method, []).append((c["s_per_update"] / o["s_per_update"],
                                                          c["marginal_s_per_update"] / o["marginal_s_per_update"]))
    for method, rs in ratios.items():  # > 1: ours makes more updates per second
        print(f"{method}: ours / ClustPy updates per second over {len(rs)} repeat(s): whole fit of 2N "
              f"{[round(w, 3) for w, _ in rs]} (median {np.median([w for w, _ in rs]):.3f}), marginal "
              f"{[round(m, 3) for _, m in rs]} (median {np.median([m for _, m in rs]):.3f})", flush=True)


def _run_pair(a, method: str, seed: int, X: np.ndarray, k: int, overrides: dict, classes) -> list:
    """Ours, then ClustPy's estimator with our resolved settings: ``[(library, run), ...]``."""
    if a.skip_ours:
        from deepclust.runner import build_estimator

        params = build_estimator(method, dataset=a.dataset, preset="fast", seed=seed, n_clusters=k,
                                 overrides=overrides).get_params()
        ours, runs = {"params": params}, []
    else:
        ours = run_ours(method, X, k, seed, a.dataset, overrides)
        runs = [("deepclust", ours)]
    if classes is not None:
        runs.append(("clustpy", run_clustpy(classes[method], method, X, k, seed, ours["params"],
                                             speed=bool(a.speed))))
    return runs


if __name__ == "__main__":
    main()
