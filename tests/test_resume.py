"""Interrupted runs: a fit killed with SIGKILL at a random point and resumed from its checkpoint
gives the same labels, metrics and loss history as an uninterrupted fit with the same seed (CPU).

The fit to be killed runs in a subprocess (a fresh interpreter, one torch thread). It reports each
checkpoint on stdout and pauses briefly after it, so the test can choose *which* checkpoint to
kill after (at random, never the last) and then a random delay within the pause plus one epoch:
the kill lands either between epochs or in the middle of the next one (possibly while the next
checkpoint is being written). The resumed fit and the reference fit run in this process with
one torch thread as well.
"""

from __future__ import annotations

import json
import os
import random
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import deepclust
import deepclust.training as T
from deepclust.metrics import evaluate

REPO = Path(deepclust.__file__).resolve().parents[1]
PAUSE = 0.2  # seconds the child sleeps after each checkpoint

TINY = Path(__file__).with_name("tiny_fits.py")
_tiny = runpy.run_path(str(TINY))
build, CHECKPOINTED = _tiny["build"], _tiny["CHECKPOINTED"]


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _fit_here(method, ckpt, resume, monkeypatch):
    """Fit in this process; returns (estimator, y, number of checkpoints written)."""
    saves = []
    real = T.atomic_torch_save
    monkeypatch.setattr(T, "atomic_torch_save", lambda obj, path: (saves.append(obj["stage"]), real(obj, path)))
    est, args, kwargs, y = build(method, checkpoint_path=str(ckpt), resume=resume)
    est.fit(*args, **kwargs)
    monkeypatch.setattr(T, "atomic_torch_save", real)
    return est, y, saves


def _kill_child(method, ckpt, tmp_path, rnd, n_saves, epoch_seconds):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PAUSE": str(PAUSE)}
    kill_after = rnd.randint(1, n_saves - 2)  # never after the last two: the kill must land mid-fit
    delay = rnd.uniform(0, PAUSE + epoch_seconds)
    proc = subprocess.Popen([sys.executable, str(TINY), method, str(ckpt)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    seen = 0
    try:
        for line in proc.stdout:
            if line.startswith("CKPT"):
                seen += 1
                if seen == kill_after:
                    time.sleep(delay)
                    proc.send_signal(signal.SIGKILL)
                    break
            if line.startswith("DONE"):
                break
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
    assert proc.returncode == -signal.SIGKILL, f"the child was not killed mid-fit (rc={proc.returncode}): {err}"
    assert seen == kill_after and ckpt.exists()
    return kill_after, delay


@pytest.mark.parametrize("method,seed", [("scdsc", 0), ("tdec", 1), ("pici", 2)])
def test_sigkill_and_resume_equals_uninterrupted(method, seed, tmp_path, monkeypatch, one_thread):
    rnd = random.Random(f"{method}-{seed}-{os.getpid()}")  # a different kill point on each run
    ref, y, ref_saves = _fit_here(method, tmp_path / "ref.pt", False, monkeypatch)
    n_saves = len(ref_saves)
    assert n_saves >= 4, ref_saves
    epoch_seconds = max(ref.fit_seconds_ / n_saves, 0.05)

    ckpt = tmp_path / "run.pt"
    kill_after, delay = _kill_child(method, ckpt, tmp_path, rnd, n_saves, epoch_seconds)
    res, _, res_saves = _fit_here(method, ckpt, True, monkeypatch)
    note = f"killed after checkpoint {kill_after} of {n_saves} + {delay:.2f}s"

    assert len(res_saves) <= n_saves - kill_after, f"the resumed fit redid finished epochs ({note})"
    np.testing.assert_array_equal(res.labels_, ref.labels_, err_msg=note)
    assert evaluate(y, res.labels_) == evaluate(y, ref.labels_)
    # the loss history is restored from the checkpoint and continued: the same numbers
    assert json.dumps(res.history_.to_dict()) == json.dumps(ref.history_.to_dict()), note
    for key, value in (getattr(ref, "extra_labels_", None) or {}).items():
        np.testing.assert_array_equal(res.extra_labels_[key], value, err_msg=f"{key} ({note})")


def test_fresh_fit_ignores_and_replaces_a_stale_checkpoint(tmp_path, monkeypatch, one_thread):
    """resume=False with an existing checkpoint starts afresh (the stale file is removed first)."""
    ref, _, saves = _fit_here("tdec", tmp_path / "a.pt", False, monkeypatch)
    again, _, saves2 = _fit_here("tdec", tmp_path / "a.pt", False, monkeypatch)
    assert len(saves2) == len(saves)
    np.testing.assert_array_equal(again.labels_, ref.labels_)
    resumed_done, _, saves3 = _fit_here("tdec", tmp_path / "a.pt", True, monkeypatch)
    assert saves3 == []  # everything was finished: nothing is retrained
    np.testing.assert_array_equal(resumed_done.labels_, ref.labels_)


class _Crash(Exception):
    pass


@pytest.mark.parametrize("method", CHECKPOINTED)
def test_crash_after_a_checkpoint_and_resume_equals_uninterrupted(method, tmp_path, monkeypatch, one_thread):
    """Every checkpointing method, in-process: the fit dies right after its k-th checkpoint (k
    random), is resumed, and ends exactly as an uninterrupted fit."""
    ref, y, ref_saves = _fit_here(method, tmp_path / "ref.pt", False, monkeypatch)
    n = len(ref_saves)
    assert n >= 2, f"{method} wrote {n} checkpoint(s)"
    k = random.Random(f"{method}-{os.getpid()}").randint(1, n - 1)
    real = T.atomic_torch_save
    count = []

    def dying_save(obj, path):
        real(obj, path)
        count.append(1)
        if len(count) == k:
            raise _Crash

    monkeypatch.setattr(T, "atomic_torch_save", dying_save)
    est, args, kwargs, _ = build(method, checkpoint_path=str(tmp_path / "run.pt"), resume=False)
    with pytest.raises(_Crash):
        est.fit(*args, **kwargs)
    monkeypatch.setattr(T, "atomic_torch_save", real)
    res, _, res_saves = _fit_here(method, tmp_path / "run.pt", True, monkeypatch)
    note = f"crashed after checkpoint {k} of {n}"
    assert len(res_saves) == n - k, note
    np.testing.assert_array_equal(res.labels_, ref.labels_, err_msg=note)
    assert json.dumps(res.history_.to_dict()) == json.dumps(ref.history_.to_dict()), note


def test_cli_checkpoint_dir_and_resume(tmp_path, capsys, monkeypatch, one_thread):
    from deepclust.cli import main
    from deepclust.fingerprint import _blobs

    X, y = _blobs()
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", y)
    base = ["run", "dec", "--data", str(tmp_path / "x.npy"), "--gt", str(tmp_path / "y.npy"), "--no-pictures",
            "--seed", "4", "--set", "hidden_dims=(32, 32)", "latent_dim=3", "pretrain_epochs=3", "max_iter=12",
            "update_interval=5", "n_init=2", "batch_size=32", "tol=0.0", "device='cpu'"]
    assert main(base + ["--out", str(tmp_path / "ref")]) == 0
    ckdir = tmp_path / "ck"
    real = T.atomic_torch_save
    count = []

    def dying_save(obj, path):
        real(obj, path)
        count.append(1)
        if len(count) == 4:  # inside the clustering stage
            raise _Crash("simulated crash")

    monkeypatch.setattr(T, "atomic_torch_save", dying_save)
    assert main(base + ["--out", str(tmp_path / "run"), "--checkpoint-dir", str(ckdir)]) == 1
    monkeypatch.setattr(T, "atomic_torch_save", real)
    assert not (tmp_path / "run").exists() and (ckdir / "dec-x-seed4.pt").exists()
    assert main(base + ["--out", str(tmp_path / "run"), "--checkpoint-dir", str(ckdir), "--resume"]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "run" / "labels.npy"), np.load(tmp_path / "ref" / "labels.npy"))
    ref_m = json.loads((tmp_path / "ref" / "metrics.json").read_text())
    run_m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert run_m["checkpoint"] == {"path": str(ckdir / "dec-x-seed4.pt"), "resumed": True}
    assert all(run_m[k] == ref_m[k] for k in ("acc", "nmi", "ari"))
    capsys.readouterr()
    # bad uses: one line, exit 2
    for argv, excerpt in (
        (base + ["--out", str(tmp_path / "o"), "--resume"], "--resume needs --checkpoint-dir"),
        (["run", "kmeans", "--dataset", "digits", "--checkpoint-dir", str(ckdir), "--out", str(tmp_path / "o")],
         "kmeans does not write checkpoints"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert excerpt in err and len(err.strip().splitlines()) == 1, err


def test_resume_with_a_checkpoint_of_other_parameters_is_a_clear_error(tmp_path, monkeypatch, one_thread):
    _fit_here("edesc", tmp_path / "a.pt", False, monkeypatch)
    est, args, kwargs, _ = build("edesc", checkpoint_path=str(tmp_path / "a.pt"), resume=True)
    est.set_params(latent=6)  # another network shape
    with pytest.raises(ValueError, match="does not fit this model .* other parameters or data"):
        est.fit(*args, **kwargs)
