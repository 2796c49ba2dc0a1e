"""Networks, one module per family (conv_ae, mlp_ae, vit, transformer_ae, vgg, resnet), the basis
model of the subspace methods (subspace), the autoencoder stages they share (pretrain), and
:func:`seeded_init`, the one way a method draws its initial weights from its own seed."""

from __future__ import annotations

import contextlib

import torch

__all__ = ["seeded_init"]


@contextlib.contextmanager
def seeded_init(seed: int):
    """Seed torch's default generator for weight initialisation only, restoring it afterwards
    (layers draw their initial weights from the global generator; this keeps that local)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
