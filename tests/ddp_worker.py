"""Worker for tests/test_distributed.py (run in spawned processes; not a test module itself).

Each case builds the same tiny model on every rank, runs ONE optimisation step on this rank's
shard of a fixed union batch with the model wrapped in DistributedDataParallel (gloo, CPU), and
also runs the same step in-process on the union batch without any gathering (the 1-process
reference). It saves both losses and both updated weight sets for the parent to compare.
"""

from __future__ import annotations

import copy

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

from deepclust.losses.contrastive import cluster_contrastive_loss, instance_contrastive_loss
from deepclust.losses.minicluster import minicluster_kl
from deepclust.losses.recal import recal_loss

N, D, H, K = 11, 6, 5, 3  # union batch of 11: ranks hold 6 and 5 rows (unequal on purpose)
N_MINI = 4


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = torch.nn.Linear(D, H)
        self.inst = torch.nn.Linear(H, 4)  # instance projection
        self.clu = torch.nn.Linear(H, K)  # cluster head

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.tanh(self.body(x))
        return self.inst(h), self.clu(h)  # (n, 4), (n, K) logits


def _data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    x = torch.randn(N, D, generator=g, dtype=torch.float64)
    return {
        "x": x,
        "x_b": x + 0.3 * torch.randn(N, D, generator=g, dtype=torch.float64),  # a second "view"
        # every mini-cluster non-empty globally; rank 1's shard misses some of them
        "index": torch.tensor([0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 3]),
    }


def _losses(case: str, model, x, x_b, index, global_batch: bool | None) -> torch.Tensor:
    if case.endswith("_local"):  # control: per-rank losses, which must NOT match the union batch
        case, global_batch = case.removesuffix("_local"), False
    if case == "contrastive":
        z_a, l_a = model(x)
        z_b, l_b = model(x_b)
        ins = instance_contrastive_loss(z_a, z_b, 0.5, global_batch=global_batch)
        clu = cluster_contrastive_loss(l_a.softmax(1), l_b.softmax(1), 1.0, global_batch=global_batch)
        return ins + clu["loss"]
    if case == "recal":
        _, logits = model(x)
        return recal_loss(logits, lambda_=0.7, global_batch=global_batch)["loss"]
    if case == "scdsc":
        _, logits = model(x)
        return minicluster_kl(F.softmax(logits, 1), index, N_MINI, global_batch=global_batch)
    if case == "scdsc_auto_n":  # n_mini found as the max id over the ranks
        _, logits = model(x)
        return minicluster_kl(F.softmax(logits, 1), index, None, global_batch=global_batch)
    raise ValueError(case)


def _step(model, case, batch, global_batch):
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    opt.zero_grad()
    loss = _losses(case, model, batch["x"], batch["x_b"], batch["index"], global_batch)
    loss.backward()
    opt.step()
    inner = model.module if isinstance(model, DDP) else model
    return float(loss.detach()), {k: v.detach().clone() for k, v in inner.state_dict().items()}


def run(rank: int, world: int, init_file: str, out_dir: str, cases: list[str]) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        data = _data()
        cut = [0, 6, N][: world + 1] if world == 2 else torch.linspace(0, N, world + 1).long().tolist()
        shard = {k: v[cut[rank] : cut[rank + 1]] for k, v in data.items()}
        results = {}
        for case in cases:
            torch.manual_seed(0)
            net = _Net().double()
            ref_net = copy.deepcopy(net)
            w0 = {k: v.detach().clone() for k, v in net.state_dict().items()}
            # 1 process on the union batch (no gathering even though a group exists)
            ref_loss, ref_w = _step(ref_net, case, data, global_batch=False)
            # this rank's shard, DDP-averaged gradients, automatic global-batch losses
            ddp = DDP(net, find_unused_parameters=True)  # recal/scdsc leave the instance head unused
            loss, w = _step(ddp, case, shard, global_batch=None)
            results[case] = {"ref_loss": ref_loss, "loss": loss, "ref_w": ref_w, "w": w, "w0": w0}
        results["fit_loop"] = fit_loop_case(out_dir, "ddp")
        torch.save(results, f"{out_dir}/rank{rank}.pt")
        # both ranks done before either destroys the group (gloo aborts a rank with "terminate
        # called without an active exception" otherwise; deepclust.distributed does the same)
        dist.barrier()
    finally:
        dist.destroy_process_group()


def fit_loop_case(out_dir: str, tag: str) -> dict[str, torch.Tensor]:
    """Two epochs of ``fit_loop`` (SGD) on sharded ``minibatches`` with the global contrastive loss.

    Run in 2 processes, ``minibatches(shard=True)`` gives each rank half of every global batch and
    ``fit_loop`` broadcasts rank 0's weights and averages the gradients; run in a plain process it
    is the single-process reference. Rank 1 starts from different weights on purpose.
    """
    from deepclust.distributed import rank
    from deepclust.training import fit_loop, minibatches

    data = _data()
    torch.manual_seed(0 if rank() == 0 else 99)
    net = _Net().double()
    opt = torch.optim.SGD(net.parameters(), lr=0.5, momentum=0.9)  # scale-sensitive (Adam is not)
    gen = torch.Generator().manual_seed(7)  # same seed on every rank -> same permutation

    def step(idx: torch.Tensor) -> dict[str, torch.Tensor]:
        loss = _losses("contrastive", net, data["x"][idx], data["x_b"][idx], data["index"][idx], None)
        return {"loss": loss}

    hist = fit_loop(
        model=net,
        optimizer=opt,
        step=step,
        epochs=2,
        batches=lambda epoch: minibatches(N, 6, generator=gen, shard=True),
        generator=gen,
        checkpoint_path=f"{out_dir}/ckpt_{tag}_r{rank()}.pt",
        checkpoint_every=1,
    )
    out = {k: v.detach().clone() for k, v in net.state_dict().items()}
    out["loss_history"] = torch.tensor(hist.stages["train"]["loss"], dtype=torch.float64)
    return out
