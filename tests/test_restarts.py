"""Label-free restarts (deepclust.restarts): attempts, seeds, the kept state, checkpoint files."""

from __future__ import annotations

from types import SimpleNamespace

from deepclust.restarts import RESTART_STRIDE, fit_with_restarts


def _run(scores, restarts, checkpoint_path=None):
    est = SimpleNamespace(seed_=7, _rng=None, _torch_gen=None)
    seen = []

    def fit_once(ckpt):
        seen.append((est.seed_, ckpt))
        est.labels_ = f"fit {len(seen)}"

    it = iter(scores)
    current = {}

    def score():
        current["s"] = next(it)
        return current["s"]

    tried = fit_with_restarts(est, fit_once, score, restarts=restarts, checkpoint_path=checkpoint_path,
                              resume=False)
    return est, seen, tried


def test_stops_at_the_first_clean_attempt():
    est, seen, tried = _run([(2, -0.9), (0, -0.1), (0, -0.99)], restarts=3)
    assert [s for s, _ in seen] == [7, 7 + RESTART_STRIDE]  # the third never ran
    assert est.labels_ == "fit 2" and est.seed_ == 7
    assert [t["score"] for t in tried] == [[2, -0.9], [0, -0.1]]


def test_keeps_the_lowest_score_when_every_attempt_fails():
    est, seen, _ = _run([(2, -0.9), (1, -0.5), (1, -0.1)], restarts=2)
    assert len(seen) == 3 and est.labels_ == "fit 2"  # fewest failures, then the higher share


def test_no_restart_is_one_fit(tmp_path):
    est, seen, _ = _run([(5, 0.0)], restarts=0, checkpoint_path=str(tmp_path / "a.pt"))
    assert seen == [(7, str(tmp_path / "a.pt"))] and est.labels_ == "fit 1"


def test_each_attempt_has_its_own_checkpoint(tmp_path):
    stale = tmp_path / "a.restart1.pt"
    stale.write_text("old")
    _, seen, _ = _run([(1, 0.0), (0, 0.0)], restarts=1, checkpoint_path=str(tmp_path / "a.pt"))
    assert [c for _, c in seen] == [str(tmp_path / "a.pt"), str(stale)]
    assert not stale.exists()  # a fresh fit removed the stale attempt's file before the attempt
