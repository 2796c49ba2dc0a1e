"""TDEC on tiny image sets: the full model, the Table 4 ablations, vector mode, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepclust.methods.tdec import TDEC
from deepclust.metrics import acc
from deepclust.nn.transformer_ae import target_size


def _images(n_per=30, k=3, size=8, seed=0):
    """k classes of 8x8 images: a bright bar in a class-specific place, plus noise."""
    rng = np.random.default_rng(seed)
    X = 0.05 * rng.random((n_per * k, 1, size, size)).astype(np.float32)
    for c in range(k):
        X[c * n_per : (c + 1) * n_per, 0, :, 2 * c + 1 : 2 * c + 3] += 0.9
    return np.clip(X, 0, 1), np.repeat(np.arange(k), n_per)


TINY = dict(depth=1, embed_dim=8, hidden_dims=(32, 32, 32), latent_dim=4, dr_dims=(16, 16),
            n_neighbors=5, pretrain_epochs=4, epochs=2, batch_size=32, perplexity=5.0, lr=3e-3,
            device="cpu")


def test_tdec_full_model_runs_and_sets_attributes():
    X, y = _images()
    m = TDEC(n_clusters=3, random_state=0, **TINY).fit(X)
    assert m.labels_.shape == (90,) and m.labels_.dtype == np.int64
    assert set(np.unique(m.labels_)) <= {0, 1, 2}
    assert m.embedding_.shape == (90, 2) and m.cluster_centers_.shape == (3, 2)
    # density-peak centres are samples of the clustering space
    np.testing.assert_allclose(m.embedding_[m.center_indices_], m.cluster_centers_, atol=1e-5)
    assert {"pretrain", "cluster"} <= set(m.history_.stages)
    assert {"rec", "dim", "clu"} <= set(m.history_.stages["cluster"])
    assert isinstance(m.model_, torch.nn.Module) and "label-free" in m.selection_
    assert acc(y, m.labels_) > 0.6  # three trivially separable classes after a few epochs
    assert m.predict(X[:7]).shape == (7,)
    m2 = TDEC(n_clusters=3, random_state=0, **TINY).fit(X)
    np.testing.assert_array_equal(m.labels_, m2.labels_)


@pytest.mark.parametrize("switch", ["transformer", "clustering_head", "dim_reduction", "bank"])
def test_tdec_ablations(switch):
    X, _ = _images()
    kw = {"neighbor_mode": "bank"} if switch == "bank" else {switch: False}
    m = TDEC(n_clusters=3, random_state=1, **{**TINY, **kw}).fit(X)
    assert m.labels_.shape == (90,)
    if switch == "dim_reduction":
        assert m.embedding_.shape == (90, 4)
        assert "dim" not in m.history_.stages["pretrain"]
    if switch == "clustering_head":
        assert m.model_.centers is not None
    assert m.predict(X).shape == (90,)


def test_tdec_vector_mode_and_resize():
    rng = np.random.default_rng(0)
    V = np.concatenate([rng.normal(c * 4, 0.5, size=(30, 12)) for c in range(3)]).astype(np.float32)
    m = TDEC(n_clusters=3, random_state=0, **TINY).fit(V)
    assert m.labels_.shape == (90,) and m.predict(V[:3]).shape == (3,)
    assert target_size(28, 28) == (32, 32) and target_size(16, 16) == (16, 16)
    X28 = np.random.default_rng(1).random((40, 28, 28)).astype(np.float32)
    m = TDEC(n_clusters=2, random_state=0,
             **{**TINY, "pretrain_epochs": 1, "epochs": 1, "embed_dim": None}).fit(X28)
    assert m.diagnostics_["image_size"] == [32, 32]
    assert m.model_.ae.encoder.embed_dim == 64


def test_tdec_bad_input():
    X, _ = _images()
    with pytest.raises(ValueError, match="too small"):
        TDEC(n_clusters=3, **TINY).fit(np.random.default_rng(0).random((10, 1, 4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="neighbor_mode"):
        TDEC(n_clusters=3, **{**TINY, "neighbor_mode": "x"}).fit(X)
    with pytest.raises(ValueError, match="neighbor_rate"):
        TDEC(n_clusters=3, **{**TINY, "neighbor_rate": 2.0}).fit(X)
    with pytest.raises(ValueError, match="NaN"):
        TDEC(n_clusters=3, **TINY).fit(np.full((10, 1, 8, 8), np.nan, np.float32))


def _dr_params(m):
    return [p.detach().clone() for p in m.model_.dr.parameters()]


def test_clu_to_dr_off_keeps_dr_block_out_of_the_clustering_loss():
    """With beta = 0 the DR block only gets gradient from L_clu; clu_to_dr=False blocks it."""
    X, _ = _images()
    kw = {**TINY, "beta": 0.0, "pretrain_epochs": 1, "epochs": 2, "tol": 0.0}
    init = TDEC(n_clusters=3, random_state=0, **{**kw, "pretrain_epochs": 0, "epochs": 0}).fit(X)
    off = TDEC(n_clusters=3, random_state=0, clu_to_dr=False, **kw).fit(X)
    on = TDEC(n_clusters=3, random_state=0, **kw).fit(X)
    for p0, p1 in zip(_dr_params(init), _dr_params(off), strict=True):
        torch.testing.assert_close(p0, p1)
    assert any(not torch.equal(p0, p1) for p0, p1 in zip(_dr_params(init), _dr_params(on),
                                                         strict=True))
    assert off.n_iter_ > 0 and off.labels_.shape == (90,)


def test_dr_lr_is_a_separate_adam_group():
    X, _ = _images()
    kw = {**TINY, "pretrain_epochs": 2, "epochs": 0}
    init = TDEC(n_clusters=3, random_state=0, **{**kw, "pretrain_epochs": 0}).fit(X)
    slow = TDEC(n_clusters=3, random_state=0, dr_lr=1e-9, **kw).fit(X)
    fast = TDEC(n_clusters=3, random_state=0, **kw).fit(X)
    d_slow = max(float((a - b).abs().max()) for a, b in zip(_dr_params(init), _dr_params(slow),
                                                              strict=True))
    d_fast = max(float((a - b).abs().max()) for a, b in zip(_dr_params(init), _dr_params(fast),
                                                              strict=True))
    assert d_slow < 1e-7 < d_fast  # Adam steps are ~lr in size
    enc0 = next(init.model_.ae.parameters())
    assert not torch.equal(enc0, next(slow.model_.ae.parameters()))  # encoder still trains
    with pytest.raises(ValueError, match="dr_lr"):
        TDEC(n_clusters=3, **{**TINY, "dr_lr": 0.0}).fit(X)
    with pytest.raises(ValueError, match="rec_reduction"):
        TDEC(n_clusters=3, **{**TINY, "rec_reduction": "max"}).fit(X)


def test_dr_epochs_fits_only_the_dr_block_on_fixed_features():
    """The DR-only stage (Algorithm 1 line 1 over v with w fixed) lowers L_dim, leaves the
    autoencoder untouched."""
    X, _ = _images()
    kw = {**TINY, "pretrain_epochs": 2, "epochs": 0, "dr_lr": 1e-2}
    init = TDEC(n_clusters=3, random_state=0, **kw).fit(X)
    m = TDEC(n_clusters=3, random_state=0, dr_epochs=30, **kw).fit(X)
    for a, b in zip(init.model_.ae.parameters(), m.model_.ae.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    dims = m.history_.stages["dr_fit"]["dim"]
    assert len(dims) == 30 and dims[-1] < 0.8 * dims[0], dims
    with pytest.raises(ValueError, match="dr_epochs"):
        TDEC(n_clusters=3, **{**TINY, "dr_epochs": -1}).fit(X)


# -- the stop test, centre identity across refreshes, prediction on the training set ---------

def _reversing_peaks(monkeypatch, every=2):
    """Make the density-peak head return its centres reversed at every ``every``-th call from
    the second on (a renumbering that leaves the partition as it is)."""
    import dataclasses

    import deepclust.cluster.tdec_head as H

    real, calls = H.density_peaks, {"n": 0}

    def peaks(*args, **kwargs):
        dp = real(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] % every == 0:
            dp = dataclasses.replace(dp, centers=dp.centers[::-1].copy())
        return dp

    monkeypatch.setattr(H, "density_peaks", peaks)
    return calls


def _blobs2d(n_per=20, seed=0):
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])
    Z = np.concatenate([rng.normal(m, 0.6, size=(n_per, 2)) for m in means])
    return torch.from_numpy(Z.astype(np.float32)), np.repeat(np.arange(3), n_per)


def test_head_assign_keeps_the_centres_identity(monkeypatch):
    from deepclust.cluster.matching import label_change
    from deepclust.cluster.tdec_head import head_assign

    Z, y = _blobs2d()
    kw = dict(n_neighbors=5, neighbor_rate=0.02, seed=0)
    _reversing_peaks(monkeypatch)
    first = head_assign(Z, 3, **kw)  # call 1: the density-peak order
    l1 = first["q"].argmax(1).numpy()
    assert acc(y, l1) == 1.0
    tracked = head_assign(Z, 3, previous=l1, **kw)  # call 2: peaks reversed, matched back
    np.testing.assert_array_equal(tracked["q"].argmax(1).numpy(), l1)
    np.testing.assert_array_equal(tracked["center_index"], first["center_index"])
    torch.testing.assert_close(tracked["centers"], first["centers"])
    torch.testing.assert_close(tracked["q"], first["q"])
    head_assign(Z, 3, **kw)  # call 3: not reversed
    untracked = head_assign(Z, 3, **kw)  # call 4: reversed, no matching
    l4 = untracked["q"].argmax(1).numpy()
    assert np.mean(l4 != l1) > 0.5 and label_change(l1, l4) == 0.0
    np.testing.assert_array_equal(untracked["center_index"], first["center_index"][::-1])


def _record_refresh_labels(monkeypatch):
    import deepclust.methods.tdec as T

    real, seen = T.head_assign, []

    def head(*args, **kwargs):
        out = real(*args, **kwargs)
        seen.append(out["q"].argmax(1).cpu().numpy())
        return out

    monkeypatch.setattr(T, "head_assign", head)
    return seen


@pytest.mark.parametrize("track", [True, False])
def test_refreshes_keep_cluster_identity_and_the_stop_rule_fires(monkeypatch, track):
    """Every second refresh gets its density peaks in reversed order. With track_centers the
    labels keep their numbers across refreshes; either way the stop test compares partitions,
    so it fires once the partition is stable (the raw indices alone would never agree)."""
    from deepclust.cluster.matching import label_change

    X, _ = _images()
    _reversing_peaks(monkeypatch)
    seen = _record_refresh_labels(monkeypatch)
    kw = {**TINY, "epochs": 6, "tol": 0.02, "update_interval": 1}
    m = TDEC(n_clusters=3, random_state=0, track_centers=track, **kw).fit(X)
    n_batches = int(np.ceil(90 / TINY["batch_size"]))
    assert m.diagnostics_["converged"] and m.n_iter_ < kw["epochs"] * n_batches
    assert "tol=0.02" in m.selection_
    train = seen[:-1]  # the training refreshes; seen[-1] is the final pass
    assert len(train) >= 2 and m.diagnostics_["n_refresh"] == len(seen)
    part = [label_change(a, b) for a, b in zip(train, train[1:])]
    # the fit stopped at the first refresh whose partition changed by less than tol
    assert part[-1] < kw["tol"] and all(p >= kw["tol"] for p in part[:-1]), part
    raw = [float(np.mean(a != b)) for a, b in zip(seen, seen[1:])]
    part_all = [label_change(a, b) for a, b in zip(seen, seen[1:])]
    if track:  # numbers keep their meaning: the raw disagreement is the partition change
        assert raw == pytest.approx(part_all)
    else:  # the stopping refresh renumbered the clusters (all but the middle centre)
        assert raw[len(part) - 1] > 0.3
    np.testing.assert_array_equal(m.labels_, seen[-1])


def test_track_centers_is_validated_and_in_the_presets():
    from deepclust.presets.tdec import PRESETS

    X, _ = _images()
    with pytest.raises(ValueError, match="track_centers"):
        TDEC(n_clusters=3, **{**TINY, "track_centers": "yes"}).fit(X)
    assert PRESETS["paper"]["default"]["track_centers"] is False
    assert PRESETS["fast"]["default"]["track_centers"] is True


@pytest.mark.parametrize("kw", [{}, {"clustering_head": False}, {"track_centers": False}])
def test_predict_on_the_training_set_reproduces_labels(kw):
    """predict leaves a training sample out of its own neighbours, as the fit does (else eq. 5
    gives it a weight of ~1e12 and eq. 6 collapses to its own kernel)."""
    X, _ = _images()
    m = TDEC(n_clusters=3, random_state=0, **{**TINY, "epochs": 3, "tol": 0.0, **kw}).fit(X)
    np.testing.assert_array_equal(m.predict(X), m.labels_)
    np.testing.assert_array_equal(m.predict(X[10:40]), m.labels_[10:40])  # any subset, any order
    perm = np.random.default_rng(0).permutation(90)
    np.testing.assert_array_equal(m.predict(X[perm]), m.labels_[perm])


def test_predict_leaves_a_training_sample_out_of_its_own_neighbours():
    """predict against the eq. 5-6 reference: a training sample's k nearest *other* training
    embeddings, a new sample's k nearest training embeddings. The centres are moved to where
    counting a sample as its own neighbour changes some labels, so the check is not vacuous."""
    from scipy.spatial import cKDTree

    from deepclust.cluster.density_peaks import knn_indices, neighbor_assignment
    from deepclust.methods.tdec import _features

    X, _ = _images()
    k = TINY["n_neighbors"]
    m = TDEC(n_clusters=3, random_state=0, **{**TINY, "epochs": 3, "tol": 0.0}).fit(X)
    E = torch.from_numpy(m.embedding_)
    own = neighbor_assignment(E, E[knn_indices(m.embedding_, k)], torch.from_numpy(m.cluster_centers_))
    np.testing.assert_array_equal(m.labels_, own.argmax(1).numpy())
    tree = cKDTree(m.embedding_.astype(np.float64))
    with_self = torch.from_numpy(tree.query(m.embedding_.astype(np.float64), k=k)[1])  # self first
    for idx in ([29, 30, 59], [0, 30, 60], [14, 44, 74], [59, 60, 89]):
        C = E[idx]
        ref = neighbor_assignment(E, E[knn_indices(m.embedding_, k)], C).argmax(1).numpy()
        if (ref != neighbor_assignment(E, E[with_self], C).argmax(1).numpy()).any():
            break
    else:
        pytest.fail("no centres found for which counting a sample as its own neighbour matters")
    m.cluster_centers_ = C.numpy()
    np.testing.assert_array_equal(m.predict(X), ref)
    # new samples (not in the training set) keep their k nearest training embeddings
    Xn = np.clip(X[::9] + 0.05 * np.random.default_rng(0).random(X[::9].shape, np.float32), 0, 1)
    zn = _features(m.model_, torch.from_numpy(Xn))[1]
    dist, nb = tree.query(zn.double().numpy(), k=k)
    assert (dist[:, 0] > 0).all()
    ref_new = neighbor_assignment(zn, E[torch.from_numpy(nb)], C).argmax(1).numpy()
    np.testing.assert_array_equal(m.predict(Xn), ref_new)


# -- pretraining plateau rule, the DR fit (batch, perplexity, early exaggeration) --------------

def test_pretrain_tol_stops_before_the_cap_and_none_runs_the_cap():
    X, _ = _images()
    kw = {**TINY, "pretrain_epochs": 24, "epochs": 0}
    stop = TDEC(n_clusters=3, random_state=0, pretrain_tol=0.9, pretrain_patience=2, **kw).fit(X)
    # tol = 0.9: two epochs that do not cut the best error to a tenth end it, at the first
    # epoch the rule may decide (2 x patience)
    assert stop.diagnostics_["pretrain_epochs_run"] == 4
    assert len(stop.history_.stages["pretrain"]["rec"]) == 4
    full = TDEC(n_clusters=3, random_state=0, pretrain_patience=2, **kw).fit(X)  # tol None
    assert full.diagnostics_["pretrain_epochs_run"] == 24
    assert len(full.history_.stages["pretrain"]["rec"]) == 24
    # the stopped fit is the first epochs of the full one (the rule only ends the stage)
    np.testing.assert_allclose(stop.history_.stages["pretrain"]["rec"],
                               full.history_.stages["pretrain"]["rec"][:4], rtol=1e-6)


def test_pretrain_rule_is_label_free():
    """The rule reads the loss history only: passing y changes nothing."""
    X, y = _images()
    kw = {**TINY, "pretrain_epochs": 30, "epochs": 1, "pretrain_tol": 0.05, "pretrain_patience": 3}
    a = TDEC(n_clusters=3, random_state=0, **kw).fit(X)
    b = TDEC(n_clusters=3, random_state=0, **kw).fit(X, y)
    assert a.diagnostics_["pretrain_epochs_run"] == b.diagnostics_["pretrain_epochs_run"]
    np.testing.assert_array_equal(a.labels_, b.labels_)
    assert a.history_.to_dict() == b.history_.to_dict()


def test_dr_fit_on_the_whole_set_sees_the_whole_set_affinities():
    """dr_batch_size >= n: every step is the whole set; the first epoch's L_dim is the whole-set
    KL of eqs. 9-11 at dr_perplexity for the pretrained map."""
    from deepclust.losses.tsne import dim_reduction_loss
    from deepclust.methods.tdec import _features

    X, _ = _images()
    kw = {**TINY, "pretrain_epochs": 2, "epochs": 0, "dr_lr": 1e-2}
    init = TDEC(n_clusters=3, random_state=0, **kw).fit(X)
    m = TDEC(n_clusters=3, random_state=0, dr_epochs=25, dr_batch_size=128, dr_perplexity=20.0,
             **kw).fit(X)
    zw = _features(init.model_, torch.from_numpy(X))[0]
    with torch.no_grad():
        expected = float(dim_reduction_loss(zw, init.model_.dr(zw), 20.0))
    dims = m.history_.stages["dr_fit"]["dim"]
    assert dims[0] == pytest.approx(expected, rel=1e-5)
    assert len(dims) == 25 and dims[-1] < 0.99 * dims[0], dims  # 25 whole-set steps
    d = m.diagnostics_
    assert d["dr_full_batch"] and d["dr_batch_size"] == 90 and d["dr_perplexity"] == 20.0
    assert d["dr_epochs_run"] == 25 and d["dr_dim_final"] == dims[-1]
    assert d["dr_exaggeration_epochs_run"] == 0
    for a, b in zip(init.model_.ae.parameters(), m.model_.ae.parameters(), strict=True):
        torch.testing.assert_close(a, b)  # the autoencoder is untouched
    # the default (None) keeps the mini-batches of batch_size and the clustering perplexity
    base = TDEC(n_clusters=3, random_state=0, dr_epochs=2, **kw).fit(X)
    assert not base.diagnostics_["dr_full_batch"] and base.diagnostics_["dr_batch_size"] == 32
    assert base.diagnostics_["dr_perplexity"] == TINY["perplexity"]


def test_dr_early_exaggeration_covers_the_first_epochs_only(monkeypatch):
    import deepclust.nn.tsne_map as tsne_map

    factors = []
    real_terms = tsne_map.dim_reduction_terms

    def spy(*args, exaggeration=1.0, **kw):
        factors.append(exaggeration)
        return real_terms(*args, exaggeration=exaggeration, **kw)

    monkeypatch.setattr(tsne_map, "dim_reduction_terms", spy)
    X, _ = _images()
    kw = {**TINY, "pretrain_epochs": 2, "epochs": 0, "dr_batch_size": 128}
    m = TDEC(n_clusters=3, random_state=0, dr_epochs=5, dr_exaggeration=12.0, dr_exaggeration_epochs=2,
             **kw).fit(X)
    assert factors == [12.0, 12.0, 1.0, 1.0, 1.0]  # one whole-set step per epoch (90 <= 128)
    st = m.history_.stages["dr_fit"]
    # exaggerated objective = KL + 11 E_phi[log(1 + d^2)] >= KL in the first two epochs (equal only
    # while the fresh map is still a point), the plain KL afterwards
    assert all(lo >= d for lo, d in zip(st["loss"][:2], st["dim"][:2], strict=True)), st
    assert st["loss"][2:] == st["dim"][2:]
    assert m.diagnostics_["dr_exaggeration_epochs_run"] == 2
    plain = TDEC(n_clusters=3, random_state=0, dr_epochs=5, **kw).fit(X)
    assert plain.history_.stages["dr_fit"]["dim"][0] == pytest.approx(st["dim"][0])  # same start
    assert any(not torch.allclose(a, b) for a, b in zip(_dr_params(m), _dr_params(plain), strict=True))
    with pytest.warns(UserWarning, match="every DR epoch is exaggerated"):
        TDEC(n_clusters=3, random_state=0, dr_epochs=2, dr_exaggeration=4.0, dr_exaggeration_epochs=2,
             **kw).fit(X)


@pytest.mark.parametrize("bad,match", [
    ({"pretrain_tol": 1.5}, "pretrain_tol"), ({"pretrain_tol": -0.1}, "pretrain_tol"),
    ({"pretrain_patience": 0}, "pretrain_patience"), ({"dr_batch_size": 0}, "dr_batch_size"),
    ({"dr_batch_size": 2.5}, "dr_batch_size"), ({"dr_batch_size": 8193}, r"\(B, B\)"),
    ({"dr_perplexity": 0.5}, "dr_perplexity"), ({"dr_exaggeration": 0.5}, "dr_exaggeration"),
    ({"dr_exaggeration_epochs": -1}, "dr_exaggeration_epochs"),
])
def test_new_switches_are_validated(bad, match):
    X, _ = _images()
    with pytest.raises(ValueError, match=match):
        TDEC(n_clusters=3, **{**TINY, **bad}).fit(X)


def test_crash_and_resume_with_plateau_stop_and_exaggerated_whole_set_dr_fit(tmp_path, monkeypatch):
    """A fit that stops pretraining by the plateau rule and runs an exaggerated whole-set DR fit,
    killed after each of a few checkpoints and resumed, ends as the uninterrupted fit."""
    import deepclust.training as T

    X, _ = _images()
    kw = {**TINY, "pretrain_epochs": 30, "pretrain_tol": 0.9, "pretrain_patience": 2, "dr_epochs": 6,
          "dr_batch_size": 128, "dr_exaggeration": 12.0, "dr_exaggeration_epochs": 3, "epochs": 2,
          "tol": 0.0}
    real = T.atomic_torch_save
    saves = []
    monkeypatch.setattr(T, "atomic_torch_save", lambda obj, path: (saves.append(obj["stage"]), real(obj, path)))
    ref = TDEC(n_clusters=3, random_state=0, checkpoint_path=str(tmp_path / "ref.pt"), **kw).fit(X)
    assert saves.count("pretrain") == 4 and saves.count("dr_fit") == 6, saves
    for k in (2, 5, 8):  # in pretraining, in the exaggerated and in the plain DR epochs
        count = []

        def dying_save(obj, path, k=k, count=count):
            real(obj, path)
            count.append(1)
            if len(count) == k:
                raise KeyboardInterrupt

        monkeypatch.setattr(T, "atomic_torch_save", dying_save)
        path = str(tmp_path / f"run{k}.pt")
        with pytest.raises(KeyboardInterrupt):
            TDEC(n_clusters=3, random_state=0, checkpoint_path=path, **kw).fit(X)
        monkeypatch.setattr(T, "atomic_torch_save", real)
        res = TDEC(n_clusters=3, random_state=0, checkpoint_path=path, resume=True, **kw).fit(X)
        np.testing.assert_array_equal(res.labels_, ref.labels_)
        assert res.history_.to_dict() == ref.history_.to_dict(), k
        assert res.diagnostics_ == ref.diagnostics_


def test_presets_pretrain_rule_and_dr_fit():
    from deepclust.presets.tdec import PRESETS

    paper = PRESETS["paper"]["default"]
    assert paper["pretrain_tol"] is None and paper["dr_epochs"] == 0
    assert paper["dr_batch_size"] is None and paper["dr_perplexity"] is None
    assert paper["dr_exaggeration"] == 1.0 and paper["dr_exaggeration_epochs"] == 0
    fast = PRESETS["fast"]
    caps = {"digits": 150, "usps": 100, "mnist-test": 100, "mnist": 40, "fashion-mnist": 40}
    for name, entry in fast.items():
        cfg = {**fast["default"], **entry}
        assert cfg["pretrain_tol"] == 0.01 and cfg["pretrain_patience"] == 10
        assert (cfg["dr_batch_size"], cfg["dr_perplexity"], cfg["dr_exaggeration"]) == (2048, 30.0, 12.0)
        assert cfg["dr_exaggeration_epochs"] == cfg["dr_epochs"] // 4 > 0
        if name in caps:
            assert cfg["pretrain_epochs"] == caps[name]
        TDEC(n_clusters=10, **cfg)._check_params()


def test_dr_fit_fixed_parts_compute_each_part_affinities_once(monkeypatch):
    """``dr_fixed_batches``: the DR fit visits one seeded partition into near-equal parts, and
    each part's input affinities (eq. 11) are computed once however many epochs run; its own
    learning rate ``dr_fit_lr`` reaches the DR-only stage's optimiser."""
    import deepclust.nn.tsne_map as tsne_map

    calls = []
    real = tsne_map.joint_gaussian_affinity

    def spy(w, perplexity=30.0):
        calls.append(len(w))
        return real(w, perplexity)

    monkeypatch.setattr(tsne_map, "joint_gaussian_affinity", spy)
    rates = []
    real_adam = torch.optim.Adam

    def adam(params, lr=1e-3, **kw):
        rates.append(lr)
        return real_adam(params, lr=lr, **kw)

    monkeypatch.setattr(torch.optim, "Adam", adam)
    X = np.random.default_rng(0).random((45, 1, 8, 8), dtype=np.float32)
    m = TDEC(n_clusters=3, transformer=False, hidden_dims=(16, 16, 32), latent_dim=4, dr_dims=(8, 8, 8),
             pretrain_epochs=1, epochs=0, batch_size=16, dr_epochs=4, dr_batch_size=20, dr_perplexity=5.0,
             dr_fixed_batches=True, dr_fit_lr=0.05, augment=False, random_state=0, device="cpu").fit(X)
    assert sorted(calls) == [15, 15, 15]  # ceil(45 / 20) = 3 parts of 15, computed once each
    assert 0.05 in rates
    assert len(m.history_.stages["dr_fit"]["dim"]) == 4
    with pytest.raises(ValueError, match="dr_fit_lr"):
        TDEC(n_clusters=3, dr_fit_lr=0.0).fit(X)


def test_clustering_stage_without_dim_loss_keeps_the_fitted_map(monkeypatch):
    """``dim_loss_in_clustering=False`` with ``clu_to_dr=False``: the clustering stage records no
    L_dim and leaves the DR block's weights exactly as the DR-only fit left them (the encoder
    still trains); ``map_dim_end`` reports the final map's L_dim, a label-free check."""
    import deepclust.training as training

    snap = {}
    real_loop = training.fit_loop

    def loop(**kw):
        if kw.get("stage") == "cluster":
            net = kw["model"]
            snap["dr"] = {k: v.detach().clone() for k, v in net.dr.state_dict().items()}
            snap["enc"] = {k: v.detach().clone() for k, v in net.ae.state_dict().items()}
            snap["net"] = net
        return real_loop(**kw)

    monkeypatch.setattr(training, "fit_loop", loop)
    X = np.random.default_rng(0).random((40, 1, 8, 8), dtype=np.float32)
    m = TDEC(n_clusters=3, transformer=False, hidden_dims=(16, 16, 32), latent_dim=4, dr_dims=(8, 8, 8),
             pretrain_epochs=1, epochs=2, batch_size=16, dr_epochs=2, perplexity=4.0, n_neighbors=5,
             clu_to_dr=False, dim_loss_in_clustering=False, tol=0.0, augment=False, random_state=0,
             device="cpu").fit(X)
    net = snap["net"]
    assert "dim" not in m.history_.stages["cluster"] and "clu" in m.history_.stages["cluster"]
    for k, v in net.dr.state_dict().items():
        torch.testing.assert_close(v, snap["dr"][k], rtol=0, atol=0)
    assert any(not torch.equal(v, snap["enc"][k]) for k, v in net.ae.state_dict().items())
    assert m.diagnostics_["map_dim_end"] is not None and m.diagnostics_["map_dim_end"] > 0


def test_dr_refit_epochs_refit_the_map_at_every_refresh_but_the_first():
    """``dr_refit_epochs``: at every refresh after the first (also the final pass), that many
    DR-only epochs on the clean features of the moment; the labels still come from the network
    as it ends, so ``predict`` on the training set reproduces them."""
    X = np.random.default_rng(0).random((40, 1, 8, 8), dtype=np.float32)
    kw = dict(n_clusters=3, transformer=False, hidden_dims=(16, 16, 32), latent_dim=4, dr_dims=(8, 8, 8),
              pretrain_epochs=1, epochs=3, batch_size=16, dr_epochs=2, dr_batch_size=64, perplexity=4.0,
              n_neighbors=5, clu_to_dr=False, dim_loss_in_clustering=False, tol=0.0, augment=False,
              random_state=0, device="cpu")
    m = TDEC(dr_refit_epochs=4, **kw).fit(X)
    n_refresh = m.diagnostics_["n_refresh"]  # 3 epochs, one refresh each, plus the final pass
    assert n_refresh == 4
    assert m.history_.epochs("dr_refit") == 4 * (n_refresh - 1)
    np.testing.assert_array_equal(m.predict(X), m.labels_)
    off = TDEC(dr_refit_epochs=0, **kw).fit(X)
    assert off.history_.epochs("dr_refit") == 0
    with pytest.raises(ValueError, match="dr_refit_epochs"):
        TDEC(dr_refit_epochs=-1, **kw).fit(X)
