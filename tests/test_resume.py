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
import signal
import subprocess
import sys
import textwrap
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

# Tiny data and settings, shared by the child (via this module's source) and the test.
BUILD = textwrap.dedent(
    '''
    import numpy as np

    def build(method, ckpt, resume):
        """(estimator, fit args, fit kwargs, y) for a tiny, seconds-long fit."""
        if method == "scdsc":
            from deepclust.methods.scdsc import SCDSC
            rng = np.random.default_rng(0)
            gt = np.zeros((14, 12), dtype=int)
            gt[:7, :6], gt[:7, 6:], gt[7:, :] = 1, 2, 3
            cube = (rng.uniform(0.5, 2.0, size=(4, 10))[gt] + 0.05 * rng.normal(size=(14, 12, 10))).astype(np.float32)
            est = SCDSC(n_clusters=3, n_components=4, patch=3, channels=4, finch_patch=5, finch_pca=10, window=3,
                        epochs=4, pretrain_epochs=2, pretrain_batch_size=64, kmeans_n_init=2, beta2=1.0,
                        device="cpu", random_state=0, checkpoint_path=ckpt, resume=resume)
            return est, (cube,), {"mask": gt > 0}, gt[gt > 0]
        if method == "tdec":
            from deepclust.methods.tdec import TDEC
            rng = np.random.default_rng(0)
            X = 0.05 * rng.random((90, 1, 8, 8)).astype(np.float32)
            for c in range(3):
                X[c * 30:(c + 1) * 30, 0, :, 2 * c + 1:2 * c + 3] += 0.9
            est = TDEC(n_clusters=3, depth=1, embed_dim=8, hidden_dims=(32, 32, 32), latent_dim=4, dr_dims=(16, 16),
                       n_neighbors=5, pretrain_epochs=3, epochs=4, batch_size=32, perplexity=5.0, lr=3e-3, tol=0.0,
                       device="cpu", random_state=0, checkpoint_path=ckpt, resume=resume)
            return est, (np.clip(X, 0, 1),), {}, np.repeat(np.arange(3), 30)
        if method == "pici":
            from deepclust.methods.pici import PICI
            rng = np.random.default_rng(0)
            X = rng.random((25, 3, 16, 16)).astype(np.float32) * 0.3
            X[:8, 0] += 0.6
            X[8:16, 1] += 0.6
            X[16:, 2] += 0.6
            est = PICI(n_clusters=3, img_size=16, patch_size=4, vit_size=None, embed_dim=32, depth=1, num_heads=2,
                       decoder_dim=16, decoder_depth=1, decoder_heads=2, feature_dim=8, batch_size=10,
                       pretrain_epochs=2, train_epochs=2, boost_epochs=2, lr=1e-3, device="cpu", random_state=0,
                       checkpoint_path=ckpt, resume=resume)
            return est, (X,), {}, np.array([0] * 8 + [1] * 8 + [2] * 9)
        raise ValueError(method)
    '''
)

CHILD = BUILD + textwrap.dedent(
    '''
    import os, sys, time
    import torch
    torch.set_num_threads(1)
    import deepclust.training as T

    _save = T.atomic_torch_save

    def save(obj, path):
        _save(obj, path)
        print(f"CKPT {obj['stage']} {obj['epoch']} {time.monotonic()}", flush=True)
        time.sleep(float(os.environ["PAUSE"]))

    T.atomic_torch_save = save
    est, args, kwargs, _ = build(sys.argv[1], sys.argv[2], False)
    est.fit(*args, **kwargs)
    print("DONE", flush=True)
    '''
)

_ns: dict = {}
exec(BUILD, _ns)  # noqa: S102 - our own source above
build = _ns["build"]


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
    est, args, kwargs, y = build(method, str(ckpt), resume)
    est.fit(*args, **kwargs)
    monkeypatch.setattr(T, "atomic_torch_save", real)
    return est, y, saves


def _kill_child(method, ckpt, tmp_path, rnd, n_saves, epoch_seconds):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PAUSE": str(PAUSE)}
    kill_after = rnd.randint(1, n_saves - 2)  # never after the last two: the kill must land mid-fit
    delay = rnd.uniform(0, PAUSE + epoch_seconds)
    proc = subprocess.Popen([sys.executable, str(script), method, str(ckpt)], stdout=subprocess.PIPE,
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
