import torch

from deepclust.training import fit_loop


def test_manual_backward_matches_automatic():
    """fit_loop(manual_backward=True): the step back-propagates itself (e.g. in chunks)."""
    x = torch.linspace(-1, 1, 12).reshape(12, 1)
    y = 3 * x + 1
    results = []
    for manual in (False, True):
        torch.manual_seed(0)
        model = torch.nn.Linear(1, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)

        def step(_, manual=manual, model=model):
            if not manual:
                loss = ((model(x) - y) ** 2).mean()
                return {"loss": loss}
            total = torch.zeros(())
            for a in range(0, 12, 5):  # gradient accumulated over chunks
                part = ((model(x[a : a + 5]) - y[a : a + 5]) ** 2).sum() / 12
                part.backward()
                total = total + part.detach()
            return {"loss": total}

        hist = fit_loop(
            model=model,
            optimizer=opt,
            step=step,
            epochs=3,
            batches=lambda e: [None],
            manual_backward=manual,
        )
        results.append(
            (
                torch.cat([p.detach().flatten() for p in model.parameters()]),
                hist.stages["train"]["loss"],
            )
        )
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(torch.tensor(results[0][1]), torch.tensor(results[1][1]))
