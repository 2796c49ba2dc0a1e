"""PICI estimator: three-stage schedule, ablation switches, labels, predict, validation."""

import numpy as np
import pytest
import torch

from deepclust.methods.pici import PICI


def tiny_pici(**kw):
    args = dict(
        n_clusters=3, img_size=16, patch_size=4, vit_size=None, embed_dim=32, depth=1, num_heads=2,
        decoder_dim=16, decoder_depth=1, decoder_heads=2, feature_dim=8, batch_size=10,
        pretrain_epochs=1, train_epochs=2, boost_epochs=1, lr=1e-3, device="cpu", random_state=0,
    )
    args.update(kw)
    return PICI(**args)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    X = rng.random((25, 3, 16, 16)).astype(np.float32) * 0.3
    X[:8, 0] += 0.6  # three colour groups
    X[8:16, 1] += 0.6
    X[16:, 2] += 0.6
    return X


def test_three_stage_schedule_switches_losses(images):
    m = tiny_pici().fit(images)
    h = m.history_.stages
    assert list(h) == ["pretrain", "train", "boost"]
    assert {k: m.history_.epochs(k) for k in h} == {"pretrain": 1, "train": 2, "boost": 1}
    # pretrain: PISD only; train: PISD + PICD; boost: PICD + CLI (no reconstruction)
    assert set(h["pretrain"]) == {"loss", "rec"}
    assert {"rec", "ins", "clu"} <= set(h["train"]) and "cli" not in h["train"]
    assert {"ins", "clu", "cli"} <= set(h["boost"]) and "rec" not in h["boost"]
    # the total is the sum of the stage's terms
    tr = h["train"]
    assert np.allclose(np.array(tr["loss"]), np.array(tr["rec"]) + np.array(tr["ins"]) + np.array(tr["clu"]))
    assert m.labels_.shape == (25,) and m.labels_.dtype == np.int64
    assert set(m.labels_) <= {0, 1, 2}
    assert "boost" in m.selection_


def test_stage_updates_only_algorithm1_modules(images, monkeypatch):
    """Pretraining leaves the heads alone; boosting leaves the decoder alone (Algorithm 1)."""
    import deepclust.methods.pici as pici_mod

    snapshots = {}
    real = pici_mod.fit_loop

    def spy(**kw):
        model = kw["model"]
        before = {k: v.detach().clone() for k, v in model.state_dict().items()}
        out = real(**kw)
        after = model.state_dict()
        snapshots[kw["stage"]] = {k for k in before if not torch.equal(before[k], after[k])}
        return out

    monkeypatch.setattr(pici_mod, "fit_loop", spy)
    tiny_pici().fit(images)
    assert not any(k.startswith(("instance_head", "cluster_head")) for k in snapshots["pretrain"])
    assert any(k.startswith("mae.decoder") for k in snapshots["pretrain"])
    assert not any(k.startswith("mae.decoder") or k == "mae.mask_token" for k in snapshots["boost"])
    assert any(k.startswith("cluster_head") for k in snapshots["boost"])
    assert any(k.startswith("mae.blocks") for k in snapshots["boost"])


def test_ablations(images):
    no_pisd = tiny_pici(pisd=False).fit(images)
    assert "pretrain" not in no_pisd.history_.stages
    assert "rec" not in no_pisd.history_.stages["train"]
    no_cli = tiny_pici(cli=False).fit(images)
    assert "cli" not in no_cli.history_.stages["boost"]
    inst_only = tiny_pici(cli=False, cluster_head=False).fit(images)
    assert "clu" not in inst_only.history_.stages["train"]
    assert np.array_equal(inst_only.labels_, inst_only.extra_labels_["kmeans_instance"])
    clu_only = tiny_pici(cli=False, instance_head=False).fit(images)
    assert "ins" not in clu_only.history_.stages["train"]
    assert clu_only.extra_labels_ == {}


def test_predict_reproducible_and_consistent(images):
    a = tiny_pici().fit(images)
    b = tiny_pici().fit(images)
    assert np.array_equal(a.labels_, b.labels_)
    assert np.array_equal(a.predict(images), a.labels_)
    assert a.transform(images[:4]).shape == (4, 32)
    # fitting does not touch torch's global RNG
    state = torch.get_rng_state()
    tiny_pici(pretrain_epochs=0, train_epochs=1, boost_epochs=0).fit(images)
    assert torch.equal(state, torch.get_rng_state())


def test_any_channels_and_resize():
    rng = np.random.default_rng(1)
    for c in (1, 8):
        X = rng.random((12, c, 20, 20)).astype(np.float32)
        m = tiny_pici(n_clusters=2, pretrain_epochs=0, train_epochs=1, boost_epochs=1).fit(X)
        assert m.labels_.shape == (12,)
        assert m.predict(X[:3]).shape == (3,)


def test_bad_parameters(images):
    with pytest.raises(ValueError, match="cli=True needs both heads"):
        tiny_pici(cluster_head=False).fit(images)
    with pytest.raises(ValueError, match="mask_ratio"):
        tiny_pici(mask_ratio=1.0).fit(images)
    with pytest.raises(ValueError, match="divisible"):
        tiny_pici(img_size=18).fit(images)
    with pytest.raises(ValueError, match="batch_size"):
        tiny_pici(batch_size=1).fit(images)
    with pytest.raises(ValueError, match="n_clusters"):
        tiny_pici(n_clusters=100).fit(images)
    with pytest.raises(ValueError, match="images"):
        tiny_pici().fit(np.zeros((4, 2, 3, 4, 5)))
    with pytest.warns(UserWarning, match=r"\[0, 1\]"):
        tiny_pici(pretrain_epochs=0, train_epochs=1, boost_epochs=0).fit(images * 255)


def test_resume_from_trained_trunk_equals_straight_run(images, tmp_path):
    """Stage checkpoints: boosting resumed from a pre-trained + trained trunk is the same run."""
    ckpt = tmp_path / "trunk.pt"
    tiny_pici(boost_epochs=0, checkpoint_path=str(ckpt)).fit(images)
    resumed = tiny_pici(checkpoint_path=str(ckpt), resume=True).fit(images)
    straight = tiny_pici().fit(images)
    assert resumed.history_.epochs("train") == 2
    assert np.allclose(resumed.history_.stages["boost"]["loss"], straight.history_.stages["boost"]["loss"])
    assert np.array_equal(resumed.labels_, straight.labels_)


def test_no_cli_branch_gives_both_rows_and_leaves_main_run_unchanged(images):
    plain = tiny_pici().fit(images)
    no_cli = tiny_pici(cli=False).fit(images)
    both = tiny_pici(no_cli_branch=True).fit(images)
    np.testing.assert_array_equal(both.labels_, plain.labels_)  # model, optimizer and RNG restored
    np.testing.assert_array_equal(both.extra_labels_["no_cli"], no_cli.labels_)
    for a, b in zip(both.model_.state_dict().values(), plain.model_.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert both.history_.epochs("boost_no_cli") == 1 and "cli" not in both.history_.stages["boost_no_cli"]
    with pytest.raises(ValueError, match="no_cli_branch"):
        tiny_pici(no_cli_branch=True, cli=False).fit(images)


def test_cli_targets_dataset_refreshes_once_per_boost_epoch(images, monkeypatch):
    """Whole-set CLI targets: one k-means over all 25 samples at the start of each boosting epoch
    (none per batch); the per-batch mode runs k-means on each view of each batch instead."""
    import deepclust.losses.contrastive as con

    calls = []
    real = con._kmeans_labels

    def spy(z, k, seed, n_init):
        calls.append(len(z))
        return real(z, k, seed, n_init)

    monkeypatch.setattr(con, "_kmeans_labels", spy)
    m = tiny_pici(boost_epochs=2).fit(images)
    assert calls == [25, 25] and m.history_.epochs("boost") == 2
    calls.clear()
    tiny_pici(boost_epochs=1, cli_targets="batch").fit(images)
    assert calls == [10, 10, 10, 10, 5, 5]  # 3 batches of 10, 10, 5 rows, two views each


def test_cli_targets_bad_value(images):
    with pytest.raises(ValueError, match="cli_targets"):
        tiny_pici(cli_targets="epoch").fit(images)
