"""RECAL eq. 3 vs hand computations; virtual batches: exact vs full batch, paper vs Alg. 2."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from deepclust.losses.recal import (
    PaperVirtualBatch,
    exact_virtual_batch_backward,
    paper_virtual_batch_loss,
    recal_entropies,
    recal_loss,
)


def test_eq3_hand_computed():
    # p = [[0.5, 0.5], [0.9, 0.1]]; logits = log p reproduce p through the softmax (eq. 2)
    p = torch.tensor([[0.5, 0.5], [0.9, 0.1]], dtype=torch.float64)
    out = recal_loss(p.log(), lambda_=2.0)
    h_phi = (math.log(2) - (0.9 * math.log(0.9) + 0.1 * math.log(0.1))) / 2  # 0.50911...
    # p_l = (0.5+0.9, 0.5+0.1) / 2 = (0.7, 0.3)
    h_psi = -(0.7 * math.log(0.7) + 0.3 * math.log(0.3))  # 0.61086...
    assert out["h_phi"].item() == pytest.approx(h_phi, abs=1e-12)
    assert out["h_psi"].item() == pytest.approx(h_psi, abs=1e-12)
    assert out["loss"].item() == pytest.approx(2.0 * h_phi - h_psi, abs=1e-12)
    assert out["loss"].item() == pytest.approx(0.407366, abs=1e-6)


def test_eq3_numpy_reference():
    rng = np.random.default_rng(0)
    r = rng.normal(size=(13, 5)) * 3
    p = np.exp(r - r.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    h_phi = -(p * np.log(p)).sum(1).mean()
    pl = p.sum(0) / p.sum()
    h_psi = -(pl * np.log(pl)).sum()
    got_phi, got_psi = recal_entropies(torch.from_numpy(r))
    np.testing.assert_allclose(got_phi.item(), h_phi, rtol=1e-12)
    np.testing.assert_allclose(got_psi.item(), h_psi, rtol=1e-12)
    # extremes: one-hot uniform partition -> H_Phi 0, H_Psi log K; a single cluster -> H_Psi 0
    onehot = torch.eye(4).repeat(3, 1) * 60.0
    a, b = recal_entropies(onehot)
    assert a.item() == pytest.approx(0.0, abs=1e-6) and b.item() == pytest.approx(math.log(4))
    a, b = recal_entropies(torch.tensor([[60.0, 0.0, 0.0]] * 5))
    assert b.item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="n_clusters"):
        recal_entropies(torch.zeros(3))


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4))


def grads(model: nn.Module) -> list[torch.Tensor]:
    return [p.grad.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("lam", [1.0, 0.3])
def test_exact_virtual_batch_equals_full_batch_gradient(lam):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(16, 6, generator=gen) * 2
    batches = [torch.arange(0, 5), torch.arange(5, 12), torch.arange(12, 16)]
    model = tiny_model()
    full = recal_loss(model(x), lambda_=lam)
    model.zero_grad()
    full["loss"].backward()
    g_full = grads(model)

    model.zero_grad()
    out = exact_virtual_batch_backward(lambda b: model(x[b]), batches, lambda_=lam)
    g_exact = grads(model)
    assert out["loss"].item() == pytest.approx(full["loss"].item(), abs=1e-6)
    assert out["h_psi"].item() == pytest.approx(full["h_psi"].item(), abs=1e-6)
    for a, b in zip(g_exact, g_full, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)

    # the paper's mode is a different (cheaper) gradient: only the last mini-batch carries it
    model.zero_grad()
    paper = paper_virtual_batch_loss(lambda b: model(x[b]), batches, lambda_=lam)
    assert paper["loss"].item() == pytest.approx(full["loss"].item(), abs=1e-6)
    paper["loss"].backward()
    same = [torch.allclose(a, b, atol=1e-4) for a, b in zip(grads(model), g_full, strict=True)]
    assert not all(same)


def algorithm2_reference(model, x, minibatches, t, lam, lr, momentum):
    """Algorithm 2 transcribed line by line (eq. 3's sign in line 8; h reset with line 14).

    Returns the list of (loss value, parameters after the update) of each update.
    """
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)  # line 1
    mini_batch_size = 0
    h_phi = torch.zeros(())
    h_psi = torch.zeros(4)
    visited = 0
    record = []
    for b in minibatches:  # line 3
        mini_batch_size += len(b)  # line 4
        p = torch.softmax(model(x[b]), dim=1)  # line 5
        visited += 1
        if visited == t:  # line 6
            h_phi = h_phi + (p * torch.log(p)).sum()  # line 7
            H_phi = -h_phi / mini_batch_size  # line 8 (sign of eq. 3)
            h_psi = h_psi + p.sum(dim=0)  # line 9
            p_l = h_psi / h_psi.sum()  # line 10
            H_psi = -(p_l * torch.log(p_l)).sum()  # line 11
            loss = lam * H_phi - H_psi  # line 12
            opt.zero_grad()
            loss.backward()  # line 13
            opt.step()
            record.append((loss.item(), [q.detach().clone() for q in model.parameters()]))
            mini_batch_size = 0  # line 14
            h_phi, h_psi, visited = torch.zeros(()), torch.zeros(4), 0
        else:
            h_phi = (h_phi + (p * torch.log(p)).sum()).detach()  # line 16, stored (18)
            h_psi = (h_psi + p.sum(dim=0)).detach()  # line 17, stored (18)
    return record


def test_paper_mode_matches_algorithm2_step_by_step():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(36, 6, generator=gen)
    mbs = [torch.arange(i, i + 4) for i in range(0, 36, 4)]  # 9 mini-batches, t=3 -> 3 updates
    t, lam, lr, mom = 3, 0.7, 0.05, 0.9
    ref = algorithm2_reference(tiny_model(0), x, mbs, t, lam, lr, mom)

    model = tiny_model(0)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=mom)
    for k in range(3):
        out = paper_virtual_batch_loss(lambda b: model(x[b]), mbs[k * t:(k + 1) * t], lam)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        assert out["loss"].item() == pytest.approx(ref[k][0], abs=1e-6)
        for a, b in zip(model.parameters(), ref[k][1], strict=True):
            torch.testing.assert_close(a.detach(), b, atol=1e-6, rtol=1e-6)


def test_paper_accumulator_keeps_k_plus_one_numbers():
    acc = PaperVirtualBatch(3)
    acc.add(torch.randn(5, 3))
    assert acc.h_phi.shape == () and acc.h_psi.shape == (3,) and acc.size == 5
    assert not acc.h_phi.requires_grad
    out = acc.loss(torch.randn(2, 3, requires_grad=True))
    assert out["loss"].requires_grad
    assert acc.size == 0 and acc.h_psi.sum().item() == 0.0
    with pytest.raises(ValueError, match="at least one"):
        exact_virtual_batch_backward(lambda b: b, [])
