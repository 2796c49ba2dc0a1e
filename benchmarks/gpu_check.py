"""Check deepclust's GPU path: every deep method trained on the device, checkpoints across devices,
the non-deep algorithms and metrics with device tensors, a throughput table (fp32 and bf16
autocast) and, with ``--paper``, a paper preset end to end with its quality.

Prints one line per check (``PASS``, ``FAIL`` or ``SKIP`` with the reason), then the throughput
table and a last line ``N passed, N failed, N skipped``; exits with status 1 when a check failed.
``--json PATH`` also writes every result (checks, throughput, paper run, machine) as JSON;
``--record`` appends the same as one record to ``benchmarks/results/perf__gpu_check.json``
(``--record PATH``: to PATH) through ``benchmarks/results_io.py``.

Here, on the CPU (about a minute; every device check is then trivially true)::

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/gpu_check.py --device cpu --record

On a borrowed GPU machine that has Python with a CUDA torch, numpy, scipy, scikit-learn, h5py,
matplotlib, tqdm and pillow but no network (``../shared`` does not travel; the working tree and
what is carried may hold 64 MiB):

1. Here, once, from the repository root: wheels of the missing packages go into the git-ignored
   ``.whl/`` (26 MB; Python 3.12 on x86-64 there) and the MNIST files into the git-ignored
   ``.gpu_data/`` (12 MB, the layout of ``shared/datasets``)::

       python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \\
           --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \\
           --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \\
           kornia==0.9.0 kornia_rs==0.2.0 faiss-cpu==1.15.1 pooch==1.9.0 platformdirs==4.14.8
       mkdir -p .gpu_data/images && cp -r ../shared/datasets/images/mnist .gpu_data/images/

2. There, carrying ``.whl`` and ``.gpu_data`` (``run`` with ``carry=[".whl", ".gpu_data"]`` and
   ``timeout_s=540``, which leaves room for a second try within 15 minutes of device time)::

       python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \\
           --target /tmp/site .whl/*.whl || exit
       export PYTHONPATH=.:/tmp/site DEEPCLUST_DATA=.gpu_data PYTHONUNBUFFERED=1
       python3 benchmarks/gpu_check.py --device cuda --paper idec-mnist --max-seconds 450 \\
           --json $OUT/gpu_check.json --record $OUT/perf__gpu_check.json 2>&1 | tee $OUT/gpu_check.log

   The checks come first (about a minute), then the IDEC paper preset (skipped, with the reason,
   when less than ``PAPER_SECONDS`` are left), then the throughput rows while the budget lasts;
   a row that no longer fits is a ``SKIP`` line naming the command that runs it alone
   (``--methods cc``, or ``--methods '' --throughput off --paper idec-mnist``).

   ``PYTHONPATH=.`` runs the package from the checkout: the project's version pins do not apply
   there (that machine's torch, 2.11 when last seen, is older than the pinned one).

What each check establishes
---------------------------
* ``fit <method>``: the method's tiny problem of ``tests/tiny_fits.py`` (2-4 epochs per stage)
  fitted on ``--device``. A global forward pre-hook inspects every module call made during the
  fit (the training steps, the augmentations, the evaluation passes): every floating-point input
  and every parameter must be on the device, so a batch or a model that silently stayed on (or
  fell back to) the CPU fails the check. A batch observer of the training loop checks that each
  step's loss is on the device and finite. ``labels_`` must equal ``predict`` on the training
  data (see ``PREDICT_READOUT`` for the methods whose documented readout differs), and the
  estimator's ``device_`` must be the one asked for.
* ``bf16 <method>``: the same tiny fit with ``precision="bf16"``, under the same checks; it must
  run in bf16 on a CUDA device that supports it (in fp32 on the CPU, by design), and its ACC/NMI
  on the tiny problem and the ARI between its partition and the fp32 one are set beside fp32's
  (``--no-bf16`` skips these).
* ``checkpoint``: DEC interrupted mid-stage on the device resumes on it to the labels of an
  uninterrupted fit, and the file it wrote loads on the CPU (``map_location``) and resumes there.
* ``kmeans``/``finch``/``density_peaks``/``metrics``: these run on the CPU by design (scikit-learn,
  numpy/faiss-cpu, scipy); the check is that they take device tensors and return what they return
  for the same numpy arrays. ``faiss-gpu`` is checked where the installed faiss has GPUs.
* throughput: samples/s of the training steps of each stage of each method (the time between
  consecutive optimizer steps, device synchronised, after two warm-up steps), in fp32 and under
  ``precision="bf16"``; ``--throughput paper`` uses the networks of the ``paper`` presets on random
  data of the papers' input shapes (the default on CUDA), ``tiny`` the tiny problems (the default
  on the CPU, where ``bf16`` falls back to fp32 by design).
* ``--paper idec-mnist``: ``deepclust run idec --dataset mnist --preset paper`` (500 pretraining
  epochs, 20,000 iterations), timed end to end, with its ACC/NMI/ARI; the IDEC paper reports
  ACC 0.881 on MNIST. ``--paper-precision bf16`` runs it under bf16 autocast instead (a second
  run, to set bf16's quality and time beside fp32's at the paper's scale).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import runpy
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
DEEP = ("dec", "idec", "edesc", "tdec", "scdsc", "recal", "pici", "cc")

#: Methods whose ``labels_`` are not, by their documentation, ``predict`` of the training data,
#: and what they guarantee instead (checked in place of equality). None so far: every deep
#: method's labels_ is the argmax of the readout predict uses, on the same fitted model.
PREDICT_READOUT: dict[str, str] = {}

#: Agreement of labels_ and predict required on CUDA: cuDNN/cuBLAS may pick kernels that sum in
#: another order between two passes (docs/reliability.md), which can flip a sample that sits on a
#: tie; on the CPU the two must be equal.
CUDA_AGREEMENT = 0.99


class Report:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, name: str, status: str, detail: str = "", echo: bool = True, **extra) -> None:
        self.rows.append({"check": name, "status": status, "detail": detail, **extra})
        if echo:
            self.echo(self.rows[-1])

    @staticmethod
    def echo(row: dict) -> None:
        print(f"{row['status']:4s}  {row['check']:24s} {row['detail']}", flush=True)

    def count(self, status: str) -> int:
        return sum(r["status"] == status for r in self.rows)


def _same(a: torch.device, b: torch.device) -> bool:
    if a.type != b.type:
        return False
    if a.type != "cuda":
        return True
    cur = torch.cuda.current_device()
    return (cur if a.index is None else a.index) == (cur if b.index is None else b.index)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


class DeviceWatch:
    """A global forward pre-hook and a fit_loop observer that record what ran where."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.module_calls = 0
        self.off_device: dict[str, int] = {}
        self.batches = 0
        self.bad_loss: list[str] = []
        self._handle = None

    def _hook(self, module, args):
        self.module_calls += 1
        for t in _tensors(args):
            if t.is_floating_point() and not _same(t.device, self.device):
                key = f"{type(module).__name__} input on {t.device}"
                self.off_device[key] = self.off_device.get(key, 0) + 1
        for name, p in module.named_parameters(recurse=False):
            if not _same(p.device, self.device):
                key = f"{type(module).__name__}.{name} on {p.device}"
                self.off_device[key] = self.off_device.get(key, 0) + 1

    def observe(self, *, stage, epoch, batch, terms, model):
        self.batches += 1
        loss = terms["loss"]
        if not _same(loss.device, self.device):
            self.bad_loss.append(f"{stage} loss on {loss.device}")
        elif self.batches <= 3 and not bool(torch.isfinite(loss)):  # the loop checks every epoch too
            self.bad_loss.append(f"{stage} loss {loss.item()}")

    @contextlib.contextmanager
    def watching(self):
        from torch.nn.modules.module import register_module_forward_pre_hook

        from deepclust.training import observe_batches

        self._handle = register_module_forward_pre_hook(self._hook)
        try:
            with observe_batches(self.observe):
                yield self
        finally:
            self._handle.remove()


def _tiny():
    return runpy.run_path(str(ROOT / "tests" / "tiny_fits.py"))["build"]


def _predict_args(method, args, kwargs):
    return args, ({"mask": kwargs["mask"]} if "mask" in kwargs else {})


def check_fit(report: Report, method: str, device: torch.device, precision: str, name: str = "fit") -> dict | None:
    """One tiny fit on ``device`` under the hooks; returns its labels and scores (None on failure)."""
    from deepclust.metrics import evaluate

    build = _tiny()
    est, args, kwargs, y = build(method)
    est.set_params(device=str(device), precision=precision)
    watch = DeviceWatch(device)
    try:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        with watch.watching():
            est.fit(*args, **kwargs)
            pargs, pkw = _predict_args(method, args, kwargs)
            pred = est.predict(*pargs, **pkw)
        _sync(device)
        secs = time.perf_counter() - t0
    except Exception as exc:  # a failure of this method is a FAIL line, not the end of the script
        report.add(f"{name} {method}", "FAIL", f"{type(exc).__name__}: {exc}",
                   traceback=traceback.format_exc(limit=6))  # echoed whatever the caller
        return None
    problems = []
    if not _same(est.device_, device):
        problems.append(f"device_={est.device_}")
    if watch.off_device:
        problems.append("off the device: " + ", ".join(f"{k} x{v}" for k, v in sorted(watch.off_device.items())))
    if watch.batches == 0:
        problems.append("no training step observed")
    problems += watch.bad_loss
    labels = np.asarray(est.labels_)
    agree = float(np.mean(labels == np.asarray(pred))) if labels.shape == np.asarray(pred).shape else 0.0
    need = 1.0 if device.type != "cuda" else CUDA_AGREEMENT
    if method in PREDICT_READOUT:
        pass  # (none at present) the documented guarantee is checked instead
    elif agree < need:
        problems.append(f"labels_ and predict agree on {agree:.3f} of the samples (need {need})")
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    if device.type == "cuda" and not peak:
        problems.append("no CUDA memory was allocated")
    detail = (f"{watch.batches} steps, {watch.module_calls} module calls on {device}, labels_=predict on "
              f"{agree:.3f}, precision {est.precision_}, {secs:.1f} s"
              + (f", peak {peak:.0f} MiB" if peak is not None else "")
              + (" (device checks trivially true on the CPU)" if device.type == "cpu" else ""))
    scores = evaluate(y, labels)  # the tiny problem's labels: scoring only
    detail += f", ACC {scores['acc']:.3f} NMI {scores['nmi']:.3f}"
    report.add(f"{name} {method}", "FAIL" if problems else "PASS", "; ".join(problems) or detail,
               echo=name == "fit", steps=watch.batches, module_calls=watch.module_calls, agreement=agree,
               seconds=round(secs, 2), peak_mib=peak, precision=est.precision_, acc=scores["acc"], nmi=scores["nmi"])
    return {"labels": labels, "acc": scores["acc"], "nmi": scores["nmi"], "precision": est.precision_}


def check_bf16(report: Report, method: str, device: torch.device, ref: dict | None) -> None:
    """The same tiny fit under ``precision="bf16"``: it must pass the same checks, train in bf16
    where the device supports it (fp32 on the CPU, by design) and its quality is set beside fp32's
    (ACC/NMI on the tiny problem, and the ARI between the two partitions)."""
    from deepclust.metrics import ari

    out = check_fit(report, method, device, "bf16", name="bf16")
    if out is None:
        return
    if ref is None:
        report.echo(report.rows[-1])
        return
    row = report.rows[-1]
    want = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    same = ari(ref["labels"], out["labels"])
    prefix = row["detail"] + "; " if row["status"] == "FAIL" else ""  # the problems found, if any
    row["detail"] = (prefix + f"ran in {out['precision']}; ACC {out['acc']:.3f} vs {ref['acc']:.3f} in fp32, "
                     f"NMI {out['nmi']:.3f} vs {ref['nmi']:.3f}, ARI(bf16, fp32 partitions) {same:.3f}")
    row["ari_vs_fp32"] = same
    if out["precision"] != want:
        row["status"] = "FAIL"
        row["detail"] = f"ran in {out['precision']}, expected {want}; " + row["detail"]
    report.echo(row)


class _Interrupt(Exception):
    pass


def check_checkpoint(report: Report, device: torch.device) -> None:
    from deepclust.training import load_checkpoint, observe_batches

    build = _tiny()
    need = 1.0 if device.type != "cuda" else CUDA_AGREEMENT
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "dec.pt"
        try:
            ref, args, kwargs, _ = build("dec")
            ref.set_params(device=str(device)).fit(*args, **kwargs)

            est, _, _, _ = build("dec", checkpoint_path=str(path), resume=False)
            est.set_params(device=str(device))
            seen = {"n": 0}

            def stop_mid_stage(*, stage, epoch, **_):
                if stage == "cluster" and epoch >= 2:  # after two checkpointed epochs of the stage
                    raise _Interrupt

            with observe_batches(stop_mid_stage), contextlib.suppress(_Interrupt):
                est.fit(*args, **kwargs)
            raw = torch.load(path, map_location=None if device.type == "cuda" else "cpu", weights_only=True)
            written_on = {str(t.device) for t in raw["model"].values()}
            if raw["stage"] != "cluster" or int(raw["epoch"]) < 1:
                raise AssertionError(f"interrupted at stage {raw['stage']} epoch {raw['epoch']}, not mid-stage")

            resumed, _, _, _ = build("dec", checkpoint_path=str(path), resume=True)
            resumed.set_params(device=str(device)).fit(*args, **kwargs)
            agree = float(np.mean(resumed.labels_ == ref.labels_))
            seen["n"] = int(resumed.n_iter_)

            cpu_state = load_checkpoint(path)  # map_location="cpu"
            on_cpu = {str(t.device) for t in cpu_state["model"].values()}
            on_cpu_est, _, _, _ = build("dec", checkpoint_path=str(path), resume=True)
            on_cpu_est.set_params(device="cpu").fit(*args, **kwargs)  # every stage done: loads, skips
            agree_cpu = float(np.mean(on_cpu_est.labels_ == resumed.labels_))
        except Exception as exc:
            report.add("checkpoint", "FAIL", f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc(limit=6))
            return
    problems = []
    if agree < need:
        problems.append(f"resumed labels agree with an uninterrupted fit on {agree:.3f}")
    if on_cpu != {"cpu"}:
        problems.append(f"map_location='cpu' left tensors on {sorted(on_cpu)}")
    if agree_cpu < need:
        problems.append(f"the CPU resume agrees with the {device} fit on {agree_cpu:.3f}")
    detail = (f"written on {sorted(written_on)} at cluster epoch {raw['epoch']}, resumed on {device} "
              f"(labels = uninterrupted on {agree:.3f}), loaded on cpu (map_location) and resumed there "
              f"(agreement {agree_cpu:.3f})")
    report.add("checkpoint", "FAIL" if problems else "PASS", "; ".join(problems) or detail)


def _blobs(n=300, d=6, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(k), n // k)
    X = (np.eye(k, d)[y] * 6 + rng.normal(size=(len(y), d))).astype(np.float32)
    return X, y


def check_classical(report: Report, device: torch.device) -> None:
    from deepclust.cluster.density_peaks import density_peaks
    from deepclust.cluster.finch import FINCH
    from deepclust.methods.kmeans import KMeans
    from deepclust.metrics import evaluate

    X, y = _blobs()
    Xd = torch.from_numpy(X).to(device)
    yd = torch.from_numpy(y).to(device)
    on = f"{device} tensors in, same result as numpy (runs on the CPU by design)"
    cases = {
        "kmeans": lambda A: KMeans(n_clusters=3, n_init=2, random_state=0).fit(A).labels_,
        "finch": lambda A: FINCH(n_clusters=3).fit(A).labels_,
        "density_peaks": lambda A: density_peaks(A, 3).centers,
    }
    for name, fn in cases.items():
        try:
            same = np.array_equal(np.asarray(fn(X)), np.asarray(fn(Xd)))
            report.add(name, "PASS" if same else "FAIL", on if same else f"{device} input changed the result")
        except Exception as exc:
            report.add(name, "FAIL", f"{type(exc).__name__}: {exc}")
    try:
        pred = KMeans(n_clusters=3, n_init=2, random_state=0).fit(X).labels_
        a = evaluate(y, pred)
        b = evaluate(yd, torch.from_numpy(pred).to(device))
        same = all(a[k] == b[k] for k in ("acc", "nmi", "ari"))
        report.add("metrics", "PASS" if same else "FAIL", on if same else f"{a} != {b}")
    except Exception as exc:
        report.add("metrics", "FAIL", f"{type(exc).__name__}: {exc}")
    try:
        import faiss
    except ImportError:
        report.add("faiss-gpu", "SKIP", "faiss is not installed")
        return
    n_gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if device.type != "cuda":
        report.add("faiss-gpu", "SKIP", "device is the CPU")
    elif n_gpus == 0:
        report.add("faiss-gpu", "SKIP", f"faiss {faiss.__version__} is a CPU build (faiss-cpu, the declared "
                   "dependency): kNN and faiss k-means run on the CPU")
    else:  # a faiss-gpu install: k-means on the GPU agrees with the CPU one on separated blobs
        km = faiss.Kmeans(X.shape[1], 3, niter=20, seed=0, gpu=True)
        km.train(X)
        _, lab = km.index.search(X, 1)
        from deepclust.metrics import ari

        score = ari(y, lab.ravel())
        report.add("faiss-gpu", "PASS" if score > 0.99 else "FAIL", f"faiss GPU k-means ARI {score:.3f} on blobs")


# -- throughput -------------------------------------------------------------------------------

def _paper_problem(method: str, small: bool = False):
    """(estimator, fit args, fit kwargs): the paper preset's network on random data of the paper's
    input shape, every stage cut to one epoch (or a few iterations) over a few batches. ``small``:
    the same networks on batches of 4-8 samples (a CPU smoke test of these configurations)."""
    from deepclust.methods import get_method
    from deepclust.presets import get_preset

    rng = np.random.default_rng(0)
    cls = get_method(method)
    p = get_preset(method, None, "paper")
    if small:
        for key in ("batch_size", "pretrain_batch_size"):
            if key in p:
                p[key] = 8
    nb = 3 if small else None  # batches per epoch

    def images(batch, n_batches, side, channels=3):
        return rng.random((batch * n_batches, channels, side, side), dtype=np.float32)

    if method in ("dec", "idec"):  # MNIST vectors, batch 256
        p.update(pretrain_epochs=1, max_iter=nb * 2 if small else 40, update_interval=nb or 20, n_init=1)
        X = rng.random((p["batch_size"] * (nb or 20), 784), dtype=np.float32)
        return cls(n_clusters=10, random_state=0, **p), (X,), {}
    if method == "edesc":  # MNIST vectors, batch 512
        p.update(pretrain_epochs=1, epochs=1, kmeans_n_init=2)
        X = rng.random((p["batch_size"] * (nb or 10), 784), dtype=np.float32)
        return cls(n_clusters=10, random_state=0, **p), (X,), {}
    if method == "tdec":  # MNIST 28x28 grey images (resized for the 4x4 patches by the method)
        # lr 1e-3 instead of the preset's 0.01, which makes the pretraining loss NaN within the
        # first epoch here (on random images and on MNIST alike); the step's speed does not depend on it
        p.update(pretrain_epochs=1, epochs=1, lr=1e-3)
        if small:  # a t-SNE perplexity and neighbour count that 8-sample batches can hold
            p.update(n_neighbors=5, perplexity=3.0)
        return cls(n_clusters=10, random_state=0, **p), (images(p["batch_size"], nb or 8, 28, 1),), {}
    if method == "scdsc":  # an Indian-Pines-sized cube (145 x 145 x 200)
        p.update(pretrain_epochs=1, epochs=2, kmeans_n_init=2)
        side = 24 if small else 145
        cube = rng.random((side, side, 200), dtype=np.float32)
        return cls(n_clusters=16, random_state=0, **p), (cube,), {}
    if method == "recal":  # VGG16-BN on 96 x 96 colour images, 4 mini-batches per virtual batch
        p.update(epochs=1, kmeans_n_init=1)
        X = images(p["batch_size"], p.get("virtual_batches", 1) * (nb or 8), 96)
        return cls(n_clusters=10, random_state=0, **p), (X,), {}
    if method == "pici":  # ViT-S/16 on 224 x 224 colour images
        p.update(pretrain_epochs=1, train_epochs=1, boost_epochs=1, cli_n_init=1)
        return cls(n_clusters=10, random_state=0, **p), (images(p["batch_size"], nb or 8, 224),), {}
    if method == "cc":  # ResNet-34 on 224 x 224 colour images
        p.update(epochs=1)
        return cls(n_clusters=10, random_state=0, **p), (images(p["batch_size"], nb or 8, 224),), {}
    raise ValueError(method)


def _batch_samples(batch) -> int | None:
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.ndim else 1
    if isinstance(batch, (list, tuple)) and batch and all(isinstance(b, torch.Tensor) for b in batch):
        return sum(int(b.shape[0]) for b in batch)
    if isinstance(batch, slice) and batch.stop is not None:
        return int(batch.stop - (batch.start or 0))
    return None


def measure_throughput(method: str, device: torch.device, precision: str, size: str) -> dict:
    """samples/s and steps/s of the training steps of each stage (see the module docstring)."""
    from deepclust.training import observe_batches

    if size in ("paper", "paper-small"):
        est, args, kwargs = _paper_problem(method, small=size == "paper-small")
    else:
        est, args, kwargs, _ = _tiny()(method)
    est.set_params(device=str(device), precision=precision)
    marks: dict[str, list] = {}
    kinds: dict[str, list] = {}

    def mark(*, stage, epoch, batch, terms, model):
        _sync(device)
        marks.setdefault(stage, []).append((time.perf_counter(), _batch_samples(batch)))
        kinds.setdefault(stage, []).append(None if batch is None else type(batch).__name__)

    t0 = time.perf_counter()
    with observe_batches(mark):
        est.fit(*args, **kwargs)
    fit_s = time.perf_counter() - t0
    stages = {}
    for stage, m in marks.items():
        m = m[2:]  # two warm-up steps (allocation, cuDNN autotuning, first kernels)
        if len(m) < 2:
            stages[stage] = {"steps_timed": 0}
            continue
        dt = m[-1][0] - m[0][0]
        steps = len(m) - 1
        # a batch of None is a full-batch step (SCDSC's joint training): all clustered samples
        samples = [len(est.labels_) if s is None and b is None else s for (_, s), b in zip(m[1:], kinds[stage][3:])]
        rec = {"steps_timed": steps, "steps_per_s": steps / dt}
        if all(s is not None for s in samples):
            rec["batch"] = round(sum(samples) / len(samples), 1)
            rec["samples_per_s"] = sum(samples) / dt
        stages[stage] = rec
    return {"method": method, "precision": precision, "resolved": est.precision_, "size": size,
            "fit_seconds": round(fit_s, 2), "stages": stages}


#: What one method's two throughput fits are expected to need on one GPU at most: a method is
#: skipped (with the reason) when less than this is left of --max-seconds.
THROUGHPUT_SECONDS = 40


def run_throughput(report: Report, device: torch.device, size: str, methods, deadline: float) -> list[dict]:
    rows = []
    for method in methods:
        if time.perf_counter() > deadline:
            report.add(f"throughput {method}", "SKIP", f"less than {THROUGHPUT_SECONDS} s left of --max-seconds; "
                       f"run it alone: --methods {method}")
            continue
        for precision in ("fp32", "bf16"):
            try:
                rows.append(measure_throughput(method, device, precision, size))
            except Exception as exc:
                report.add(f"throughput {method}", "FAIL", f"{precision}: {type(exc).__name__}: {exc}",
                           traceback=traceback.format_exc(limit=6))
    return rows


def throughput_table(rows: list[dict], device: torch.device, size: str) -> str:
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} thread(s)"
    fallback = any(r["precision"] == "bf16" and r["resolved"] != "bf16" for r in rows)
    lines = [f"throughput on {where} ({size} problems; samples/s of the training steps, after 2 warm-up steps)"]
    if fallback:
        lines.append("bf16 falls back to fp32 on this device: the bf16 column is a second fp32 run, and the "
                     "ratio shows the run-to-run spread")
    lines += ["| method | stage | batch | fp32 samples/s | bf16 samples/s | bf16 / fp32 |",
              "|---|---|---:|---:|---:|---:|"]
    by = {(r["method"], r["precision"]): r for r in rows}
    for method in dict.fromkeys(r["method"] for r in rows):
        f, b = by.get((method, "fp32")), by.get((method, "bf16"))
        for stage in (f or b)["stages"]:
            sf = (f or {}).get("stages", {}).get(stage, {})
            sb = (b or {}).get("stages", {}).get(stage, {})
            if not sf.get("steps_timed"):
                continue
            vf, vb = sf.get("samples_per_s"), sb.get("samples_per_s")
            if vf and vb:
                lines.append(f"| {method} | {stage} | {sf.get('batch', '-')} | {vf:,.0f} | {vb:,.0f} | {vb / vf:.2f} |")
            else:  # batches that are not index sets (a full-batch step): steps/s
                vb_steps = sb.get("steps_per_s")
                lines.append(f"| {method} | {stage} | full | {sf['steps_per_s']:.1f} steps/s | "
                             f"{vb_steps:.1f} steps/s | " + (f"{vb_steps / sf['steps_per_s']:.2f} |" if vb_steps
                                                             else "- |"))
    return "\n".join(lines)


# -- the paper preset -------------------------------------------------------------------------

#: What the IDEC paper preset on MNIST is expected to need on one GPU at most (500 pretraining
#: epochs of 274 steps and 20,000 iterations of a 784-500-500-2000-10 MLP: about 160,000 small
#: steps): below this much time left the run is skipped rather than cut short.
PAPER_SECONDS = 300


def run_paper(report: Report, device: torch.device, which: str, deadline: float,
              precision: str = "fp32") -> dict | None:
    if which != "idec-mnist":
        raise ValueError(f"unknown --paper {which!r}; known: idec-mnist")
    from deepclust.data import load_dataset

    try:
        load_dataset("mnist", download=False)
    except Exception as exc:
        report.add("paper idec-mnist", "SKIP", f"MNIST not found ({type(exc).__name__}); carry it in "
                   "DEEPCLUST_DATA (see the docstring)")
        return None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, "-m", "deepclust", "run", "idec", "--dataset", "mnist", "--preset", "paper",
               "--seed", "0", "--device", str(device), "--out", str(out), "--no-pictures", "-q",
               "--set", f"precision={precision}"]
        left = deadline - time.perf_counter()
        if left < PAPER_SECONDS:
            report.add("paper idec-mnist", "SKIP", f"{left:.0f} s left of --max-seconds; run it alone: "
                       "--methods '' --throughput off --paper idec-mnist")
            return None
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=left)
        except subprocess.TimeoutExpired:
            report.add("paper idec-mnist", "SKIP", f"stopped after {left:.0f} s (--max-seconds); run it alone: "
                       "--methods '' --throughput off --paper idec-mnist --max-seconds 900")
            return None
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            report.add("paper idec-mnist", "FAIL", f"exit {proc.returncode}: {proc.stderr.strip()[-400:]}")
            return None
        m = json.loads((out / "metrics.json").read_text())
    rec = {"command": " ".join(["deepclust"] + cmd[3:]), "wall_seconds": round(wall, 1),
           "fit_seconds": m.get("fit_seconds"), "acc": m.get("acc"), "nmi": m.get("nmi"), "ari": m.get("ari"),
           "paper_acc": 0.881, "device": m.get("device"), "gpu": m.get("gpu"), "precision": m.get("precision"),
           "selection": m.get("selection"), "diagnostics": m.get("diagnostics")}
    report.add("paper idec-mnist", "PASS",
               f"ACC {rec['acc']:.4f} NMI {rec['nmi']:.4f} ARI {rec['ari']:.4f} (paper ACC 0.881), "
               f"{wall:.0f} s end to end, fit {rec['fit_seconds']:.0f} s on {rec['device']}", **rec)
    return rec


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (default), cuda:N, cpu or auto")
    ap.add_argument("--methods", default=",".join(DEEP), help="comma-separated deep methods (default: all)")
    ap.add_argument("--throughput", choices=("auto", "tiny", "paper", "paper-small", "off"), default="auto",
                    help="auto: the paper presets' networks on CUDA, the tiny problems on the CPU; "
                         "paper-small: the paper networks on batches of 8 (a CPU smoke test)")
    ap.add_argument("--paper", default=None, help="also run a paper preset end to end: idec-mnist")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "auto"),
                    help="precision of the per-method fit checks (default fp32)")
    ap.add_argument("--no-bf16", action="store_true", help="skip the bf16 repeat of each tiny fit")
    ap.add_argument("--paper-precision", default="fp32", choices=("fp32", "bf16"),
                    help="precision of the --paper run (default fp32, the paper's)")
    ap.add_argument("--json", default=None, help="write every result to this JSON file")
    ap.add_argument("--record", nargs="?", const="", default=None, metavar="PATH",
                    help="append the run as one record to benchmarks/results/perf__gpu_check.json (or PATH)")
    ap.add_argument("--max-seconds", type=float, default=450,
                    help="time budget: later throughput rows and the paper run are skipped (with a reason) "
                         "when it would be exceeded (default 450)")
    args = ap.parse_args(argv)

    from deepclust.base import resolve_device

    report = Report()
    started = time.perf_counter()
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        report.add("device", "FAIL", str(exc))
        print("0 passed, 1 failed, 0 skipped")
        return 1
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(methods) - set(DEEP)
    if unknown:
        ap.error(f"unknown method(s) {sorted(unknown)}; choose from {', '.join(DEEP)}")
    machine = {"torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform(),
               "device": str(device), "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if device.type == "cuda":
        machine.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                       bf16=bool(torch.cuda.is_bf16_supported()))
    print("machine: " + ", ".join(f"{k}={v}" for k, v in machine.items()), flush=True)
    report.add("device", "PASS", f"{args.device!r} -> {device}")

    for method in methods:
        ref = check_fit(report, method, device, args.precision)
        if args.precision == "fp32" and not args.no_bf16:
            check_bf16(report, method, device, ref)
    if "dec" in methods:
        check_checkpoint(report, device)
    check_classical(report, device)

    # the paper preset before the throughput table: it is the number a reader looks for, and the
    # throughput rows that no longer fit the budget are skipped one by one (with the reason)
    paper = (run_paper(report, device, args.paper, started + args.max_seconds, args.paper_precision)
             if args.paper else None)
    size = args.throughput if args.throughput != "auto" else ("paper" if device.type == "cuda" else "tiny")
    rows, table = [], ""
    if size != "off" and methods:
        rows = run_throughput(report, device, size, methods, started + args.max_seconds - THROUGHPUT_SECONDS)
        table = throughput_table(rows, device, size)
        print(table, flush=True)

    total = time.perf_counter() - started
    summary = (f"{report.count('PASS')} passed, {report.count('FAIL')} failed, {report.count('SKIP')} skipped "
               f"({total:.0f} s)")
    print(summary, flush=True)
    result = {"checks": report.rows, "throughput": rows, "throughput_table": table, "paper": paper,
              "summary": summary, "seconds": round(total, 1)}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(
            {"machine": machine, "argv": sys.argv, **result},
            indent=1, default=lambda o: None if isinstance(o, float) and not math.isfinite(o) else str(o)))
    if args.record is not None:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from results_io import append_record, command_line

        append_record("gpu_check", {"environment": machine, **result}, methods=methods, command=command_line(),
                      out=args.record or None)
    return 1 if report.count("FAIL") else 0


if __name__ == "__main__":
    sys.exit(main())
