"""RECAL estimator, scene segmentation, the CLI-side function (tiny, seconds)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deepclust.methods.recal import RECAL, load_recal, run_segment, save_recal, segment_scene
from deepclust.presets import get_preset
from deepclust.training import fit_loop

TINY = dict(width=0.0625, epochs=2, batch_size=16, lr=0.01, kmeans_n_init=2, device="cpu")


def blobs(n=48, c=1, side=16, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.random((n, c, side, side)).astype(np.float32) * 0.2
    for k in range(3):  # a bright square at a class-specific place
        X[y == k, :, 4 * k:4 * k + 6, 4 * k:4 * k + 6] += 0.8
    return X, y


@pytest.mark.parametrize("mode", ["paper", "exact"])
def test_fit_sets_contract_attributes(mode):
    X, _ = blobs()
    est = RECAL(3, random_state=0, virtual_batches=2, virtual_batch=mode, **TINY).fit(X)
    assert est.labels_.shape == (48,) and est.labels_.dtype == np.int64
    assert set(est.labels_) <= {0, 1, 2}
    assert est.extra_labels_["kmeans"].shape == (48,)
    assert est.labels_kmeans_ is est.extra_labels_["kmeans"]
    hist = est.history_.stages["train"]
    assert len(hist["loss"]) == 2 and {"h_phi", "h_psi"} <= set(hist)
    assert isinstance(est.selection_, str) and "last epoch" in est.selection_
    assert isinstance(est.model_, torch.nn.Module)
    json.dumps(est.diagnostics_)
    assert np.array_equal(est.predict(X), est.labels_)  # eval-mode argmax, same data
    assert est.predict_proba(X[:5]).shape == (5, 3)
    np.testing.assert_allclose(est.predict_proba(X[:5]).sum(1), 1.0, rtol=1e-5)
    assert est.transform(X[:5]).shape == (5, est.model_.feature_dim)
    np.testing.assert_allclose(est.mean_, X.mean(axis=(0, 2, 3)), rtol=1e-5)  # eq. 4


def test_same_seed_same_result_and_rgb_resize():
    X, _ = blobs(c=3, side=32)
    a = RECAL(3, random_state=1, resize=16, **TINY).fit(X)
    b = RECAL(3, random_state=1, resize=16, **TINY).fit(X)
    assert a.model_.input_size == (16, 16) and a.model_.in_channels == 3
    assert np.array_equal(a.labels_, b.labels_)
    assert a.predict(X[:4]).shape == (4,)


def test_training_reduces_loss_on_separable_data():
    X, y = blobs(n=96)
    est = RECAL(3, random_state=0, **{**TINY, "epochs": 8}).fit(X)
    loss = est.history_.stages["train"]["loss"]
    assert loss[-1] < loss[0]


def test_bad_inputs():
    X, _ = blobs()
    with pytest.raises(ValueError, match="virtual_batch"):
        RECAL(3, virtual_batch="approx", **TINY).fit(X)
    with pytest.raises(ValueError, match="epochs"):
        RECAL(3, **{**TINY, "epochs": 0}).fit(X)
    with pytest.raises(ValueError, match="images"):
        RECAL(3, **TINY).fit(np.zeros((4, 5)))
    est = RECAL(3, random_state=0, **TINY).fit(X)
    with pytest.raises(ValueError):
        est.predict(np.zeros((2, 1, 8, 8), np.float32))


def test_fit_loop_manual_backward_keeps_step_gradients():
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    x = torch.ones(1, 2)

    def step(batch):  # two backward calls accumulate: gradient of 2 * sum(w x + b)
        for _ in range(2):
            model(x).sum().backward()
        return {"loss": torch.tensor(0.0)}

    w0 = model.weight.detach().clone()
    fit_loop(model=model, optimizer=opt, step=step, epochs=1, batches=lambda e: [0],
             manual_backward=True)
    torch.testing.assert_close(model.weight.detach(), w0 - 2.0)


def test_save_and_load_roundtrip(tmp_path):
    X, _ = blobs()
    est = RECAL(3, random_state=0, **TINY).fit(X)
    save_recal(est, tmp_path / "m.pt")
    back = load_recal(tmp_path / "m.pt", device="cpu")
    assert np.array_equal(back.predict(X), est.predict(X))
    with pytest.raises(ValueError, match="not a RECAL"):
        torch.save({"x": torch.zeros(1)}, tmp_path / "bad.pt")
        load_recal(tmp_path / "bad.pt")


def test_segment_scene_train_and_apply():
    rng = np.random.default_rng(0)
    cube = rng.random((16, 20, 3)).astype(np.float32)
    cube[:, 10:] += 2.0  # two halves
    lab, est, info = segment_scene(cube, n_clusters=2, patch=8, stride=4, random_state=0,
                                   **TINY)
    assert lab.shape == (16, 20) and info["n_patches"] == 4 * 5
    assert est.model_.n_blocks == 3  # the paper's cut for 8x8 patches
    assert info["kmeans_map"].shape == (16, 20)
    lab2, _, _ = segment_scene(cube[::-1].copy(), patch=8, stride=4, model=est)
    assert lab2.shape == (16, 20)
    with pytest.raises(ValueError, match="bands"):
        segment_scene(cube[:, :, :2], patch=8, stride=4, model=est)


def test_run_segment_writes_outputs(tmp_path):
    rng = np.random.default_rng(1)
    cube = rng.random((12, 12, 4)).astype(np.float32)
    np.save(tmp_path / "scene.npy", cube)
    args = {"data": str(tmp_path / "scene.npy"), "patch": 8, "stride": 4, "clusters": 2,
            "seed": 0, "set": {"epochs": 1, "width": 0.0625, "batch_size": 4,
                               "kmeans_n_init": 1, "device": "cpu"}}
    res = run_segment(args, tmp_path / "a")
    assert (tmp_path / "a" / "label_map.npy").exists()
    assert (tmp_path / "a" / "segmentation.png").exists()
    assert (tmp_path / "a" / "model.pt").exists()
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["n_patches"] == 9
    assert res["shape"] == [12, 12, 4]
    # apply the saved model to the scene and compare the two maps (eq. 5)
    res2 = run_segment({**args, "model": str(tmp_path / "a" / "model.pt"),
                        "compare": str(tmp_path / "a" / "label_map.npy")}, tmp_path / "b")
    assert res2["consensus"]["mean_matched"] == pytest.approx(1.0)


def test_presets():
    for ds in ("usps", "coil20", "mnist"):
        fast = get_preset("recal", ds, "fast")
        paper = get_preset("recal", ds, "paper")
        assert paper["lr"] == 1e-4 and paper["momentum"] == 0.9 and paper["width"] == 1.0
        assert fast["width"] < 1.0
        RECAL(10, **fast).get_params()


def test_ssl_epochs_train_the_features_first_and_are_validated():
    """``ssl_epochs``: a contrastive stage ``"ssl"`` runs before eq. 3 and changes the feature
    stack (not the head, whose weights only eq. 3 trains); seeded; 0 leaves the fit as it was."""
    import deepclust.methods.recal as recal_mod

    X, _ = blobs()
    seen = {}
    real = recal_mod._train_recal

    def spy(**kw):
        seen["start"] = {k: v.detach().clone() for k, v in kw["model"].state_dict().items()}
        return real(**kw)

    recal_mod._train_recal = spy
    try:
        a = RECAL(3, random_state=0, ssl_epochs=2, **TINY).fit(X)
        start_ssl = seen["start"]
        b = RECAL(3, random_state=0, **TINY).fit(X)
        start_plain = seen["start"]
    finally:
        recal_mod._train_recal = real
    assert a.history_.epochs("ssl") == 2 and a.history_.epochs("train") == 2
    assert np.isfinite(a.history_.stages["ssl"]["loss"]).all()
    assert b.history_.epochs("ssl") == 0
    feats = [k for k in start_plain if k.startswith("features") and k.endswith("weight")]
    assert feats and any(not torch.equal(start_ssl[k], start_plain[k]) for k in feats)
    heads = [k for k in start_plain if k.startswith("classifier") and k.endswith("weight")]
    assert heads and all(torch.equal(start_ssl[k], start_plain[k]) for k in heads)
    again = RECAL(3, random_state=0, ssl_epochs=2, **TINY).fit(X)
    np.testing.assert_array_equal(again.labels_, a.labels_)
    with pytest.raises(ValueError, match="ssl_epochs"):
        RECAL(3, ssl_epochs=-1, **TINY).fit(X)


def test_ssl_tol_ends_the_contrastive_stage_at_its_plateau(monkeypatch):
    """``ssl_tol``: with a loss curve that is flat from the start, the plateau rule (patience 2)
    stops the stage after 2 * patience epochs, below the cap; it reads the losses only."""
    import deepclust.losses.contrastive as con

    monkeypatch.setattr(con, "instance_contrastive_loss",
                        lambda a, b, t: (a * b).sum() * 0.0 + 3.0)  # flat: no epoch improves
    X, _ = blobs()
    est = RECAL(3, random_state=0, ssl_epochs=20, ssl_tol=0.01, ssl_patience=2, **TINY).fit(X)
    assert est.history_.epochs("ssl") == 4
    capped = RECAL(3, random_state=0, ssl_epochs=3, ssl_tol=None, **TINY).fit(X)
    assert capped.history_.epochs("ssl") == 3


def test_ssl_flip_reaches_the_views_and_is_validated(monkeypatch):
    """``ssl_flip``: the contrastive stage's augmenter is built with it (the views of the default
    keep the flip); anything but a bool is a clear error."""
    import deepclust.augment as augment

    built = []
    real = augment.ViewAugmenter

    class Spy(real):
        def __init__(self, **kw):
            built.append(kw.get("flip", True))
            super().__init__(**kw)

    monkeypatch.setattr(augment, "ViewAugmenter", Spy)
    X, _ = blobs()
    RECAL(3, random_state=0, ssl_epochs=1, ssl_flip=False, **TINY).fit(X)
    RECAL(3, random_state=0, ssl_epochs=1, **TINY).fit(X)
    assert built == [False, True]
    with pytest.raises(ValueError, match="ssl_flip"):
        RECAL(3, ssl_epochs=1, ssl_flip="no", **TINY).fit(X)
