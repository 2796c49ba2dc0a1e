"""The label-free rules SCDSC adds to the paper's method: scale-preserving patch normalisation,
pretraining until the reconstruction plateaus, unit-norm bases, degenerate-init rejection and
repair, re-seeding of dying clusters, and labels_ computed as predict computes them."""

import numpy as np
import pytest
import torch

from deepclust.cluster.kmeans import kmeans_nondegenerate, min_cluster_size, repair_partition
from deepclust.data.scene import ScenePatches
from deepclust.methods.scdsc import SCDSC
from deepclust.nn import seeded_init
from deepclust.nn.conv_ae import ConvPatchAutoencoder
from deepclust.nn.mlp_ae import MLPAutoencoder
from deepclust.nn.subspace import BasisClusteringNet, ClusterReseeder, project_unit_columns, recalibrate_batchnorm
from deepclust.stopping import plateau_reached

from .test_scdsc import TINY, tiny_scene


def test_plateau_rule_hand_computed():
    # patience 2, tol 10%: best before the last two = 1.0; recent best 0.95 > 0.9 -> plateau
    assert plateau_reached([3.0, 1.0, 0.97, 0.95], tol=0.1, patience=2)
    # recent best 0.85 <= 0.9 -> still improving
    assert not plateau_reached([3.0, 1.0, 0.97, 0.85], tol=0.1, patience=2)
    # fewer than 2 * patience values: never decided
    assert not plateau_reached([1.0, 1.0, 1.0], tol=0.1, patience=2)
    with pytest.raises(ValueError):
        plateau_reached([1.0] * 4, tol=-1, patience=2)


def test_pretraining_stops_at_plateau_and_is_capped():
    cube, _, mask = tiny_scene()
    kw = {**TINY, "pretrain_epochs": 40, "pretrain_batch_size": 512, "epochs": 1}
    # tol = 1: any value counts as a plateau, so pretraining stops after 2 * patience epochs
    m = SCDSC(n_clusters=3, random_state=0, pretrain_tol=1.0, pretrain_patience=3, **kw).fit(cube, mask=mask)
    assert m.diagnostics_["pretrain_epochs_run"] == 6
    assert len(m.history_.stages["pretrain"]["rec"]) == 6
    # no rule: the cap
    m = SCDSC(n_clusters=3, random_state=0, pretrain_tol=None, **{**kw, "pretrain_epochs": 7}).fit(cube, mask=mask)
    assert m.diagnostics_["pretrain_epochs_run"] == 7


def test_global_scaling_keeps_variance_ratios():
    rng = np.random.default_rng(0)
    cube = np.stack([rng.normal(0, 10, (8, 9)), rng.normal(0, 1, (8, 9))], -1).astype(np.float32)
    rows, cols = np.nonzero(np.ones((8, 9), bool))
    src = ScenePatches(cube, rows, cols, 3)
    mean_f, scale_f = src.feature_stats(scaling="feature")
    mean_g, scale_g = src.feature_stats(scaling="global")
    np.testing.assert_allclose(mean_f, mean_g)
    # hand computation: one scale, the root mean of the per-feature variances
    flat = src.raw(slice(None)).reshape(len(rows), -1).numpy().astype(np.float64)
    expected = np.sqrt(flat.var(0).mean())
    np.testing.assert_allclose(scale_g, expected, rtol=1e-5)
    assert np.ptp(scale_g) == 0
    src.set_normalisation(mean_g, scale_g)
    z = src.materialize().reshape(len(rows), -1).numpy()
    var = z.var(0).reshape(2, 9)  # band 0 keeps ~100x the variance of band 1
    assert var[0].mean() / var[1].mean() > 30
    with pytest.raises(ValueError, match="patch_scaling"):
        src.feature_stats(scaling="bands")


def test_project_unit_columns_and_fit_keeps_unit_bases():
    D = torch.tensor([[3.0, 0.0, 1.0], [4.0, 2.0, 0.0]])
    project_unit_columns(D)
    torch.testing.assert_close(D, torch.tensor([[0.6, 0.0, 1.0], [0.8, 1.0, 0.0]]))
    cube, _, mask = tiny_scene()
    m = SCDSC(n_clusters=3, random_state=0, basis_norm="project", **TINY).fit(cube, mask=mask)
    norms = m.model_.D.detach().norm(dim=0)
    torch.testing.assert_close(norms, torch.ones_like(norms), rtol=1e-5, atol=1e-5)


def test_min_cluster_size():
    assert min_cluster_size(600, 6, 0.1) == 10
    assert min_cluster_size(600, 6, None) == 0
    assert min_cluster_size(5, 6, 0.1) == 1


def three_blobs_with_outliers(far=40.0):
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(c, 0.3, (60, 2)) for c in ((0, 0), (5, 0), (0, 5))] + [[[far, far]] * 2])
    return z.astype(np.float32)


def test_repair_partition_removes_a_tiny_cluster():
    z = three_blobs_with_outliers()
    # a degenerate partition: the two outliers alone, blobs 0 and 1 merged
    labels = np.array([0] * 120 + [1] * 60 + [2] * 2)
    fixed, rounds = repair_partition(z, labels, 3, min_size=10, seed=0)
    assert rounds == 1
    assert np.bincount(fixed, minlength=3).min() >= 10
    # the merged blobs were split: blob 0 and blob 1 now carry different labels
    assert len(set(fixed[:60])) == 1 and len(set(fixed[60:120])) == 1 and fixed[0] != fixed[60]
    # a healthy partition is left alone
    ok, rounds = repair_partition(z, fixed, 3, min_size=10, seed=0)
    assert rounds == 0 and np.array_equal(ok, fixed)


def test_kmeans_nondegenerate_rejects_tiny_clusters():
    z = three_blobs_with_outliers(far=20.0)
    lab, _, info = kmeans_nondegenerate(z, 3, n_init=8, seed=0, backend="sklearn", min_size=10)
    # the lowest-inertia restart (1 of 8 here) spends a cluster on the two outliers; rejected
    plain, _, _ = kmeans_nondegenerate(z, 3, n_init=8, seed=0, backend="sklearn", min_size=0)
    assert np.bincount(plain, minlength=3).min() == 2
    assert np.bincount(lab, minlength=3).min() >= 10
    assert info["kmeans_restarts_rejected"] >= 1 and "kmeans_all_degenerate" not in info
    # far outliers: every restart isolates them; the lowest inertia is kept and the info says so
    zf = three_blobs_with_outliers(far=40.0)
    lab_f, _, info_f = kmeans_nondegenerate(zf, 3, n_init=4, seed=0, backend="sklearn", min_size=10)
    assert info_f["kmeans_all_degenerate"] and np.bincount(lab_f, minlength=3).min() == 2
    # weights count: each outlier weighing 10 makes the outlier cluster big enough
    z = zf
    w = np.ones(len(z))
    w[-2:] = 10
    lab_w, _, info_w = kmeans_nondegenerate(z, 3, n_init=8, seed=0, backend="sklearn", min_size=10, sample_weight=w)
    assert np.bincount(lab_w, weights=w, minlength=3).min() >= 10


def test_reseeder_splits_the_largest_residual_cluster():
    rng = np.random.default_rng(0)
    k, d, latent = 3, 1, 4
    with seeded_init(0):
        net = BasisClusteringNet(MLPAutoencoder(4, hidden=(8,), latent=latent), n_clusters=k, d=d)
    X = torch.tensor(rng.normal(size=(90, 4)), dtype=torch.float32)
    torch.nn.init.normal_(net.D)
    project_unit_columns(net.D)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net(X)[2].sum().backward()
    opt.step()
    labels = np.array([0] * 60 + [1] * 30 + [], dtype=np.int64)  # cluster 2 is empty
    rs = ClusterReseeder(k=k, d=d, min_size=5, max_reseeds=2, quiet_epochs=1, epochs=10, seed=0, patience=2)
    before = net.D.detach().clone()
    assert not rs(0, labels, net, X, opt, "cpu")  # first epoch with a dead cluster: patience
    torch.testing.assert_close(net.D.detach(), before)
    assert rs(1, labels, net, X, opt, "cpu")  # second consecutive one: re-seeded
    ev = rs.events[0]
    assert ev["dead"] == 2 and ev["dead_size"] == 0 and ev["split"] in (0, 1)
    # the re-seeded columns are unit vectors, and their Adam moments were reset
    cols = net.D.detach()[:, [ev["split"], 2]]
    torch.testing.assert_close(cols.norm(dim=0), torch.ones(2))
    assert float(opt.state[net.D]["exp_avg"][:, 2].abs().sum()) == 0.0
    # no re-seed in the quiet last epoch, nor beyond max_reseeds
    assert not rs(9, labels, net, X, opt, "cpu")


def test_recalibrated_batchnorm_makes_eval_equal_train_on_full_batch():
    torch.manual_seed(0)
    ae = ConvPatchAutoencoder(3, 3, channels=4)
    net = BasisClusteringNet(ae, n_clusters=2, d=1)
    torch.nn.init.normal_(net.D)
    X = torch.randn(50, 3, 3, 3) * 3 + 1
    net.train()
    with torch.no_grad():
        s_train = net(X)[2].clone()
    recalibrate_batchnorm(net, X, chunk=50, device="cpu")
    net.eval()
    with torch.no_grad():
        s_eval = net(X)[2]
    # train mode normalises with the biased variance, running_var stores the unbiased one
    torch.testing.assert_close(s_eval, s_train, rtol=2e-2, atol=2e-3)


@pytest.mark.parametrize("selection", ["confident", "last"])
def test_labels_equal_predict(selection):
    cube, _, mask = tiny_scene()
    m = SCDSC(n_clusters=3, random_state=0, selection=selection, **TINY).fit(cube, mask=mask)
    np.testing.assert_array_equal(m.labels_, m.predict(cube, mask=mask))
    np.testing.assert_array_equal(m.predict_scene()[mask], m.labels_)


def test_every_switch_off_is_the_faithful_path_and_bad_values_are_refused():
    cube, _, mask = tiny_scene()
    faithful = dict(patch_scaling="feature", pretrain_tol=None, basis_norm="penalty", init="kmeans",
                    init_repair=False, reseed=False, min_cluster_share=None)
    m = SCDSC(n_clusters=3, random_state=0, **faithful, **TINY).fit(cube, mask=mask)
    assert m.diagnostics_["reseeds"] == [] and "init_repairs" not in m.diagnostics_
    m2 = SCDSC(n_clusters=3, random_state=0, init="minicluster", nonlocal_=False, **TINY).fit(cube, mask=mask)
    assert m2.labels_.shape == (mask.sum(),)
    for bad in (dict(patch_scaling="band"), dict(basis_norm="none"), dict(init="random"),
                dict(min_cluster_share=1.5), dict(pretrain_tol=-0.1)):
        with pytest.raises(ValueError):
            SCDSC(n_clusters=3, **bad, **TINY).fit(cube, mask=mask)


def test_partition_settled_compares_with_the_partition_patience_epochs_ago():
    from deepclust.stopping import partition_settled, push_partition

    a = np.zeros(1000, dtype=np.int16)
    drift = [a.copy() for _ in range(4)]
    for t, part in enumerate(drift):  # 1 pixel more moves each epoch: 0.1 % per epoch
        part[:t] = 1
    assert partition_settled(drift[:3], tol=0.002, patience=3) == (False, None)  # too few yet
    # every single epoch changes 0.1 % < 0.2 %, but over 3 epochs 0.3 % moved: not settled
    assert partition_settled(drift, tol=0.002, patience=3) == (False, 0.003)
    assert partition_settled(drift, tol=0.004, patience=3) == (True, 0.003)
    assert partition_settled([a, a, a, a], tol=0.001, patience=3) == (True, 0.0)
    window: list = []
    assert push_partition(window, a, keep=2) is None
    assert push_partition(window, drift[3], keep=2) == 0.003 and len(window) == 2
    assert push_partition(window, a, keep=2) == 0.003 and window[0].dtype == np.int16
    with pytest.raises(ValueError, match="patience"):
        partition_settled([a], tol=0.001, patience=0)


def test_joint_stage_stops_once_the_partition_settles():
    cube, _, mask = tiny_scene()
    # a tolerance near 1 (any change counts as settled) stops once `patience` + 1 epochs are held
    m = SCDSC(n_clusters=3, random_state=0, **{**TINY, "epochs": 8}, stop_tol=0.999, stop_patience=2,
              reseed=False).fit(cube, mask=mask)
    assert m.diagnostics_["stopped_early"] and m.diagnostics_["epochs_run"] == 3
    assert len(m.history_.stages["train"]["loss"]) == 3
    np.testing.assert_array_equal(m.labels_, m.predict(cube, mask=mask))
    m2 = SCDSC(n_clusters=3, random_state=0, **TINY).fit(cube, mask=mask)  # None: every epoch runs
    assert not m2.diagnostics_["stopped_early"] and m2.diagnostics_["epochs_run"] == TINY["epochs"]
    for bad in (dict(stop_tol=1.5), dict(stop_tol=0.001, stop_patience=0)):
        with pytest.raises(ValueError, match="stop_"):
            SCDSC(n_clusters=3, **bad, **TINY).fit(cube, mask=mask)
