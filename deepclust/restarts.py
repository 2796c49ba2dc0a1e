"""Label-free restarts: refit from a fresh seed while a fit shows a label-free sign of failure.

k-means keeps the best of several restarts by its own objective; a deep method can do the same
with a label-free score of a finished fit. :func:`fit_with_restarts` runs ``fit_once`` up to
``1 + restarts`` times, attempt ``i`` from seed ``seed + RESTART_STRIDE * i`` (never another
seed's first attempt), stops at the first attempt whose score says it did not fail, and leaves
the estimator with the best attempt's fitted state (the lowest score; scores are tuples).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from deepclust.base import make_generators

__all__ = ["RESTART_STRIDE", "fit_with_restarts"]

RESTART_STRIDE = 100_003


def _attempt_path(path: str | None, i: int) -> str | None:
    """Attempt ``i``'s checkpoint file: ``path`` itself for the first, ``stem.restart<i>.suffix`` after."""
    if path is None or i == 0:
        return path
    p = Path(path)
    return str(p.with_suffix(f".restart{i}{p.suffix}"))


def fit_with_restarts(est, fit_once: Callable[[str | None], None], score: Callable[[], tuple], *,
                      restarts: int, checkpoint_path: str | None, resume: bool) -> list[dict]:
    """Run ``fit_once(checkpoint_path)`` until ``score()[0] == 0`` or ``restarts`` extra attempts
    are spent; keep the attempt with the lowest ``score()``. Returns one record per attempt
    (seed and score), for ``diagnostics_``. ``est.seed_`` is left at the first attempt's seed."""
    base, kept, tried = est.seed_, None, []
    for i in range(int(restarts) + 1):
        ckpt = _attempt_path(checkpoint_path, i)
        if i:
            est._rng, est._torch_gen, est.seed_ = make_generators(base + RESTART_STRIDE * i)
            if ckpt is not None and not resume:
                Path(ckpt).unlink(missing_ok=True)  # a stale attempt never leaks into a fresh fit
        fit_once(ckpt)
        s = tuple(score())
        tried.append({"seed": est.seed_, "score": [round(float(v), 4) for v in s]})
        if kept is None or s < kept[0]:
            kept = (s, {k: v for k, v in vars(est).items() if k.endswith("_") or k == "_cube"})
        if s[0] == 0:
            break
    vars(est).update(kept[1])
    est.seed_ = base
    return tried
