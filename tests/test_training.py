"""The one training loop: history, hooks, stop, checkpoint and resume."""

import numpy as np
import pytest
import torch

from deepclust.training import History, atomic_torch_save, fit_loop, load_checkpoint, minibatches


def _setup(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(50, 4, generator=g)
    torch.manual_seed(seed)
    model = torch.nn.Linear(4, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def step(idx):
        rec = ((model(x[idx]) - x[idx]) ** 2).mean()
        return {"loss": rec, "rec": rec}

    return model, opt, step, g


def test_minibatches_cover_all_and_are_seeded():
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    b1 = list(minibatches(10, 4, generator=g1))
    b2 = list(minibatches(10, 4, generator=g2))
    assert [len(b) for b in b1] == [4, 4, 2]
    assert all(torch.equal(a, b) for a, b in zip(b1, b2))
    assert sorted(torch.cat(b1).tolist()) == list(range(10))
    assert [len(b) for b in minibatches(10, 4, drop_last=True, shuffle=False)] == [4, 4]
    with pytest.raises(ValueError):
        list(minibatches(10, 0))


def test_history_hooks_and_stop():
    model, opt, step, g = _setup()
    calls = {"start": 0, "batch": 0}

    def on_start(epoch):
        calls["start"] += 1

    def on_batch(s):
        calls["batch"] += 1

    hist = fit_loop(model=model, optimizer=opt, step=step, epochs=10,
                    batches=lambda e: minibatches(50, 20, generator=g),
                    on_epoch_start=on_start, on_batch_start=on_batch,
                    on_epoch_end=lambda e, m: e == 3)
    assert hist.epochs("train") == 4 and calls["start"] == 4 and calls["batch"] == 12
    rec = hist.stages["train"]["rec"]
    assert rec[-1] < rec[0]


def test_nonfinite_loss_raises_clear_error():
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(FloatingPointError, match="learning rate"):
        fit_loop(model=model, optimizer=opt, step=lambda b: {"loss": model(b).sum() * float("nan")},
                 epochs=1, batches=lambda e: [torch.ones(1, 2)])


def test_checkpoint_resume_equals_uninterrupted(tmp_path):
    # Uninterrupted run.
    model, opt, step, g = _setup()
    fit_loop(model=model, optimizer=opt, step=step, epochs=6,
             batches=lambda e: minibatches(50, 20, generator=g))
    ref = model.weight.detach().clone()

    # Interrupted at the start of epoch 3 (simulated by an exception), then resumed.
    ckpt = tmp_path / "ckpt.pt"
    model, opt, step, g = _setup()

    def crash(epoch):
        if epoch == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_loop(model=model, optimizer=opt, step=step, epochs=6,
                 batches=lambda e: minibatches(50, 20, generator=g), generator=g,
                 checkpoint_path=ckpt, checkpoint_every=1, on_epoch_start=crash)
    state = load_checkpoint(ckpt)
    assert state["epoch"] == 3 and state["stage"] == "train"
    model, opt, step, g = _setup(seed=0)
    torch.nn.init.zeros_(model.weight)  # must be overwritten by the checkpoint
    hist = fit_loop(model=model, optimizer=opt, step=step, epochs=6,
                    batches=lambda e: minibatches(50, 20, generator=g), generator=g,
                    checkpoint_path=ckpt, checkpoint_every=1, resume=True)
    assert hist.epochs("train") == 6
    assert torch.allclose(model.weight, ref, atol=1e-6)
    # A finished stage is skipped on a second resume.
    hist2 = fit_loop(model=model, optimizer=opt, step=step, epochs=6,
                     batches=lambda e: pytest.fail("finished stage must be skipped"),
                     checkpoint_path=ckpt, checkpoint_every=1, resume=True)
    assert hist2.epochs("train") == 6


def test_atomic_save_and_bad_checkpoint(tmp_path):
    p = tmp_path / "a" / "x.pt"
    atomic_torch_save({"w": torch.ones(2)}, p)
    assert torch.equal(load_checkpoint(p)["w"], torch.ones(2))
    assert [f.name for f in p.parent.iterdir()] == ["x.pt"]
    p.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not be read"):
        load_checkpoint(p)


def test_history_roundtrip():
    h = History()
    h.add("pretrain", {"rec": 1.0})
    h.add("pretrain", {"rec": 0.5})
    assert History.from_dict(h.to_dict()).stages == {"pretrain": {"rec": [1.0, 0.5]}}
    assert np.isclose(h.stages["pretrain"]["rec"][-1], 0.5)


def test_recompute_batchnorm_stats_gives_the_data_statistics_and_keeps_modes():
    import torch

    from deepclust.training import recompute_batchnorm_stats

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Dropout(0.5))
    net.eval()
    X = torch.randn(64, 3) * 3 + 1
    recompute_batchnorm_stats(net, X, forward=net, batch_size=16, device="cpu")
    h = net[0](X).detach()
    bn = net[1]
    # cumulative average of the four equal batches' statistics: the data mean exactly, the mean
    # of the per-batch unbiased variances
    torch.testing.assert_close(bn.running_mean, h.mean(0))
    torch.testing.assert_close(bn.running_var, torch.stack([c.var(0) for c in h.split(16)]).mean(0))
    assert bn.momentum == 0.1 and not bn.training and not net[2].training  # modes and momentum back


def test_fused_adam_matches_the_default_adam_and_falls_back():
    """training.fused_adam: torch's fused kernel on the CPU, the same iterates as the default Adam
    to float rounding over a few steps of a small quadratic; fused=False gives the default Adam."""
    from deepclust.training import fused_adam

    def run(fused: bool) -> tuple[torch.Tensor, torch.optim.Optimizer]:
        w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
        opt = fused_adam([w], lr=0.1, fused=fused)
        for _ in range(5):
            opt.zero_grad()
            ((w - torch.tensor([0.5, 0.5, 0.5])) ** 2).sum().backward()
            opt.step()
        return w.detach(), opt

    w_fused, opt_fused = run(True)
    w_plain, opt_plain = run(False)
    assert opt_fused.defaults["fused"] and not opt_plain.defaults.get("fused")
    # hand check of Adam's first step: each coordinate moves by lr against its gradient's sign
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = fused_adam([w], lr=0.1)
    (w ** 2).sum().backward()
    opt.step()
    torch.testing.assert_close(w.detach(), torch.tensor([0.9, -1.9]))
    torch.testing.assert_close(w_fused, w_plain, rtol=1e-6, atol=1e-6)
