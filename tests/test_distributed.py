"""Multi-process checks of the global-batch losses (2 gloo processes on CPU) and the no-op helpers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from deepclust import distributed as D
from deepclust.losses.contrastive import cluster_contrastive_loss, instance_contrastive_loss
from deepclust.losses.minicluster import minicluster_kl
from deepclust.losses.recal import recal_entropies

CASES = ["contrastive", "recal", "scdsc", "scdsc_auto_n"]
CONTROLS = ["contrastive_local", "recal_local", "scdsc_local"]  # per-rank losses: must differ


def test_helpers_are_noops_without_a_process_group():
    assert not D.is_distributed()
    assert D.rank() == 0 and D.world_size() == 1
    x = torch.randn(3, 2, requires_grad=True)
    assert D.all_gather_with_grad(x) is x
    assert D.all_reduce_sum(x) is x
    assert D.use_global_batch(None) is False and D.use_global_batch(True) is False


def test_helpers_reject_bad_input(monkeypatch):
    with pytest.raises(TypeError, match="torch.Tensor"):
        D.all_gather_with_grad([1, 2])
    with pytest.raises(ValueError, match="batch dimension"):
        D.all_gather_with_grad(torch.tensor(1.0))
    with pytest.raises(ValueError, match="backend"):
        D.init_from_env("mpi")
    monkeypatch.delenv("RANK", raising=False)
    assert D.init_from_env() is False  # not a torchrun environment
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    with pytest.raises(ValueError, match="MASTER_ADDR"):
        D.init_from_env()


def test_losses_single_process_bit_identical_with_global_flag():
    """global_batch=True without a process group must give exactly the local value."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(7, 4, generator=g), torch.randn(7, 4, generator=g)
    ca, cb = a.softmax(1), b.softmax(1)
    idx = torch.tensor([0, 1, 2, 0, 1, 2, 2])  # no empty mini-cluster (an empty one gives NaN)
    assert torch.equal(instance_contrastive_loss(a, b), instance_contrastive_loss(a, b, global_batch=True))
    assert torch.equal(
        cluster_contrastive_loss(ca, cb)["loss"], cluster_contrastive_loss(ca, cb, global_batch=True)["loss"]
    )
    assert all(torch.equal(u, v) for u, v in zip(recal_entropies(a), recal_entropies(a, global_batch=True)))
    assert torch.equal(minicluster_kl(ca, idx), minicluster_kl(ca, idx, global_batch=True))


def test_two_gloo_processes_match_one_process_on_the_union_batch(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    import ddp_worker

    mp.spawn(
        ddp_worker.run,
        args=(2, str(tmp_path / "init"), str(tmp_path), CASES + CONTROLS),
        nprocs=2,
        join=True,
    )
    ref_fit = ddp_worker.fit_loop_case(str(tmp_path), "single")  # this process has no group
    assert (tmp_path / "ckpt_ddp_r0.pt").exists() and not (tmp_path / "ckpt_ddp_r1.pt").exists()  # rank 0 only
    for r in range(2):
        res = torch.load(tmp_path / f"rank{r}.pt", weights_only=True)
        for case in CASES:
            got = res[case]
            assert abs(got["loss"] - got["ref_loss"]) < 1e-5, (case, r, got["loss"], got["ref_loss"])
            for k, ref in got["ref_w"].items():
                torch.testing.assert_close(got["w"][k], ref, atol=1e-5, rtol=0, msg=f"{case} rank {r} {k}")
            # the step moved the weights (the comparison is not vacuous)
            moved = max(float((got["ref_w"][k] - v).abs().max()) for k, v in got["w0"].items())
            assert moved > 1e-4, (case, moved)
        for case in CONTROLS:  # without the global batch the 2-process step is measurably different
            got = res[case]
            # (NaN counts as different: a rank's shard may miss a mini-cluster entirely)
            assert not abs(got["loss"] - got["ref_loss"]) <= 1e-3, (case, r, got["loss"], got["ref_loss"])
        # fit_loop + sharded minibatches: both ranks end with the single-process weights
        for k, ref in ref_fit.items():
            torch.testing.assert_close(res["fit_loop"][k], ref, atol=1e-5, rtol=0, msg=f"fit_loop rank {r} {k}")


def test_cli_run_with_two_local_processes(tmp_path, monkeypatch):
    import json

    import numpy as np

    from deepclust.cli import main

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    rng = np.random.default_rng(0)
    np.save(tmp_path / "x.npy", rng.random((40, 1, 16, 16)).astype(np.float32))
    np.save(tmp_path / "y.npy", np.arange(40) % 2)
    base = ["run", "cc", "--data", str(tmp_path / "x.npy"), "--gt", str(tmp_path / "y.npy"), "--no-pictures"]
    tiny = ["--set", "epochs=1", "img_size=16", "width=4", "stem=cifar", "batch_size=16"]
    assert main(base + ["--nproc", "0", "--out", str(tmp_path / "bad")] + tiny) == 2
    out = tmp_path / "run"
    ckpt = ["--checkpoint-dir", str(tmp_path / "c")]
    assert main(base + ["--nproc", "2", "--out", str(out)] + ckpt + tiny) == 0
    record = json.loads((out / "metrics.json").read_text())
    assert record["nproc"] == 2 and record["n_samples"] == 40
    assert len(record["peak_rss_mb_per_rank"]) == 2
    assert np.load(out / "labels.npy").shape == (40,)
    assert len(list((tmp_path / "c").glob("*.pt"))) == 1  # written by rank 0
    # the 2-process checkpoint resumes in 1 process (finished: nothing is retrained)
    out1 = tmp_path / "resumed"
    assert main(base + ["--nproc", "1", "--out", str(out1), "--resume"] + ckpt + tiny) == 0
    again = json.loads((out1 / "metrics.json").read_text())
    assert again["nproc"] == 1 and again["checkpoint"]["resumed"] is True
    np.testing.assert_array_equal(np.load(out1 / "labels.npy"), np.load(out / "labels.npy"))


def test_drop_short_last_in_one_process():
    from deepclust.distributed import drop_short_last

    assert not drop_short_last(10, 4)  # a last batch of 2 rows: one process needs >= 1
    assert drop_short_last(9, 4, min_rows=2)  # a last batch of 1 row: BatchNorm needs >= 2
    assert not drop_short_last(3, 4, min_rows=2)  # one batch only: never dropped
