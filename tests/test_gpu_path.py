"""What of the GPU path can be checked without a GPU: device selection, map_location loading,
the precision switch (bf16 falls back to fp32 on the CPU; the autocast wiring itself, through
CPU autocast), fp32 losses under autocast, device-resident data, the per-epoch finiteness check
used on CUDA, and benchmarks/gpu_check.py on the CPU."""

import json
import logging
import runpy
from pathlib import Path

import numpy as np
import pytest
import torch

import deepclust.training as T
from deepclust.base import resolve_device
from deepclust.losses.dec import student_t_assignment
from deepclust.methods import METHODS, get_method
from deepclust.metrics import evaluate
from deepclust.training import (
    atomic_torch_save,
    device_data,
    fit_loop,
    fp32_under_autocast,
    load_checkpoint,
    minibatches,
    resolve_precision,
    take_rows,
)

ROOT = Path(__file__).resolve().parents[1]
DEEP = ("dec", "idec", "edesc", "tdec", "scdsc", "recal", "pici", "cc")


# -- device selection ------------------------------------------------------------------------
def test_device_selection_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    for name in ("cuda", "cuda:0", "cuda:1"):
        with pytest.raises(ValueError, match="sees no CUDA device; use device='auto' or 'cpu'"):
            resolve_device(name)
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        resolve_device("gpu")


def test_device_selection_with_two_cuda_devices(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device(torch.device("cuda", 0)) == torch.device("cuda", 0)
    with pytest.raises(ValueError, match=r"torch sees 2 CUDA device\(s\) \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:2")


# -- map_location ----------------------------------------------------------------------------
def test_load_checkpoint_maps_to_cpu(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    atomic_torch_save({"model": {"w": torch.ones(2)}}, path)
    seen = {}
    real = torch.load

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    state = load_checkpoint(path)
    # a file written on CUDA holds CUDA tensors; map_location="cpu" is what lets a CPU-only
    # machine read it (the GPU check writes one on the device and reads it here, on the CPU)
    assert seen["map_location"] == "cpu" and seen["weights_only"] is True
    assert state["model"]["w"].device.type == "cpu"


# -- precision -------------------------------------------------------------------------------
def test_precision_resolution(caplog, monkeypatch):
    assert resolve_precision("fp32", "cpu") == "fp32"
    with caplog.at_level(logging.INFO, logger="deepclust"):
        assert resolve_precision("bf16", "cpu") == "fp32"
    assert "training in fp32" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="deepclust"):
        assert resolve_precision("auto", "cpu") == "fp32"
    assert caplog.text == ""  # auto: silent
    monkeypatch.setattr(T, "_bf16_supported", lambda: True)
    assert resolve_precision("bf16", "cuda") == "bf16"
    assert resolve_precision("auto", "cuda:0") == "bf16"
    assert resolve_precision("fp32", "cuda") == "fp32"
    monkeypatch.setattr(T, "_bf16_supported", lambda: False)
    with pytest.warns(UserWarning, match="does not support bfloat16"):
        assert resolve_precision("bf16", "cuda") == "fp32"
    assert resolve_precision("auto", "cuda") == "fp32"
    for bad in ("fp16", "BF16", None, 16):
        with pytest.raises(ValueError, match="precision must be one of"):
            resolve_precision(bad, "cpu")


def _linear_problem():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 4, generator=g)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 4)
    return x, model, torch.optim.SGD(model.parameters(), lr=0.1), g


def test_bf16_on_cpu_trains_in_fp32():
    x, model, opt, g = _linear_problem()
    seen = []

    def step(idx):
        out = model(x[idx])
        seen.append((torch.is_autocast_enabled("cpu"), out.dtype))
        loss = ((out - x[idx]) ** 2).mean()
        return {"loss": loss}

    fit_loop(model=model, optimizer=opt, step=step, epochs=1, precision="bf16",
             batches=lambda e: minibatches(40, 10, generator=g))
    assert seen and all(s == (False, torch.float32) for s in seen)


def test_autocast_wiring_and_fp32_losses(monkeypatch):
    # The loop's bf16 branch, run through CPU autocast (what CUDA gets, on another device type):
    # the network computes in bf16, the decorated losses in fp32, the parameters stay fp32.
    monkeypatch.setattr(T, "resolve_precision", lambda p, d: "bf16")
    x, model, opt, g = _linear_problem()
    centers = torch.randn(3, 4, generator=g)
    seen = []

    def step(idx):
        z = model(x[idx])
        q = student_t_assignment(z, centers)
        seen.append((torch.is_autocast_enabled("cpu"), z.dtype, q.dtype))
        return {"loss": -q.max(dim=1).values.log().mean()}

    hist = fit_loop(model=model, optimizer=opt, step=step, epochs=2, precision="bf16",
                    batches=lambda e: minibatches(40, 10, generator=g))
    assert seen and all(s == (True, torch.bfloat16, torch.float32) for s in seen)
    assert model.weight.dtype == torch.float32 and np.isfinite(hist.stages["train"]["loss"]).all()


def test_fp32_under_autocast_matches_fp32_reference():
    z = torch.randn(6, 3, dtype=torch.float32)
    c = torch.randn(2, 3)

    @fp32_under_autocast
    def kernel(a, b):
        return torch.softmax(a @ b.T, dim=1), a.dtype

    ref, _ = kernel(z, c)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, dtype_inside = kernel(z.bfloat16(), c)
        q = student_t_assignment(z.bfloat16(), c)
    assert dtype_inside == torch.float32 and out.dtype == torch.float32
    torch.testing.assert_close(out, torch.softmax(z.bfloat16().float() @ c.T, dim=1))
    assert q.dtype == torch.float32
    torch.testing.assert_close(q, student_t_assignment(z.bfloat16().float(), c))
    assert ref.dtype == torch.float32


@pytest.mark.parametrize("method", DEEP)
def test_every_deep_method_takes_precision(method):
    est = get_method(method)(n_clusters=2)
    assert est.get_params()["precision"] == "fp32"
    est.set_params(precision="bf16")
    assert est.get_params()["precision"] == "bf16"


def test_non_deep_methods_have_no_precision():
    assert set(DEEP) | {"kmeans", "finch", "umap-kmeans", "patch-kmeans"} == set(METHODS)
    for name in ("kmeans", "finch", "umap-kmeans", "patch-kmeans"):
        assert "precision" not in get_method(name)().get_params()


def test_estimator_precision_falls_back_and_rejects_bad_values():
    tiny = runpy.run_path(str(ROOT / "tests" / "tiny_fits.py"))["build"]
    est, args, kwargs, _ = tiny("dec")
    est.set_params(precision="bf16", pretrain_epochs=1, max_iter=3).fit(*args, **kwargs)
    assert est.precision_ == "fp32"  # on the CPU
    est.set_params(precision="half")
    with pytest.raises(ValueError, match="precision must be one of 'fp32', 'bf16', 'auto'"):
        est.fit(*args, **kwargs)


# -- data on the device, per-epoch reads -------------------------------------------------------
def test_device_data_and_take_rows_on_cpu():
    X = torch.arange(20.0).reshape(10, 2)
    assert device_data(X, "cpu") is X  # nothing to move
    idx = torch.tensor([3, 1, 7])
    torch.testing.assert_close(take_rows(X, idx, torch.device("cpu")), X[idx])

    class Lazy:  # a source that cuts its rows on the fly (as scene patches)
        def __getitem__(self, i):
            return X[i]

    torch.testing.assert_close(take_rows(Lazy(), idx, "cpu"), X[idx])


def test_deferred_finiteness_check_and_same_history(monkeypatch):
    def run():
        x, model, opt, g = _linear_problem()

        def step(idx):
            rec = ((model(x[idx]) - x[idx]) ** 2).mean()
            return {"loss": rec, "rec": rec, "const": 1.0}

        return fit_loop(model=model, optimizer=opt, step=step, epochs=3,
                        batches=lambda e: minibatches(40, 10, generator=g)).stages

    per_batch = run()
    monkeypatch.setattr(T, "_sync_each_batch", lambda device: False)  # what CUDA does
    assert run() == per_batch  # float64 sums on the device = Python float sums, bit for bit
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = []

    def nan_step(b):
        calls.append(1)
        return {"loss": model(b).sum() * (float("nan") if len(calls) == 1 else 1.0)}

    with pytest.raises(FloatingPointError, match="became NaN or Inf at epoch 0"):
        fit_loop(model=model, optimizer=opt, step=nan_step, epochs=2,
                 batches=lambda e: [torch.ones(1, 2), torch.ones(1, 2)])
    assert len(calls) == 2  # reported at the end of the epoch, before a checkpoint of it


def test_metrics_take_tensors():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([1, 1, 0, 0, 2, 0])
    ref = evaluate(y, p)

    class DeviceTensor:  # what a CUDA tensor offers: no numpy view, only a copy to the host
        def __init__(self, a):
            self.a = a

        def detach(self):
            return self

        def cpu(self):
            return torch.from_numpy(self.a)

        def __array__(self, *a, **k):
            raise TypeError("can't convert cuda:0 device type tensor to numpy")

    for yy, pp in ((torch.from_numpy(y), torch.from_numpy(p)), (DeviceTensor(y), DeviceTensor(p))):
        out = evaluate(yy, pp)
        assert all(out[k] == ref[k] for k in ("acc", "nmi", "ari"))


# -- the GPU check script, on the CPU --------------------------------------------------------
def test_gpu_check_runs_green_on_cpu(tmp_path, capsys):
    main = runpy.run_path(str(ROOT / "benchmarks" / "gpu_check.py"))["main"]
    out = tmp_path / "r.json"
    rc = main(["--device", "cpu", "--methods", "dec,edesc", "--throughput", "tiny", "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    res = json.loads(out.read_text())
    status = {r["check"]: r["status"] for r in res["checks"]}
    assert status["fit dec"] == status["fit edesc"] == status["checkpoint"] == "PASS"
    assert status["faiss-gpu"] == "SKIP" and status["metrics"] == "PASS"
    assert "throughput on CPU" in text and "| dec | cluster |" in text
    assert text.strip().splitlines()[-1].startswith(f"{len(status) - 1} passed, 0 failed, 1 skipped")
    assert main(["--device", "cuda" if not torch.cuda.is_available() else "cuda:99"]) == 1
