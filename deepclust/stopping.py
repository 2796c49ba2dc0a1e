"""Label-free stopping rules for training stages.

A rule reads only the training history (loss values the method already records), never labels,
and is stateless: it recomputes its decision from ``History`` so a resumed fit stops exactly
where an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Callable

from deepclust.training import History

__all__ = ["plateau_reached", "plateau_rule", "partition_settled", "push_partition", "confident_share", "select_epoch"]


def plateau_reached(values: list[float], *, tol: float, patience: int) -> bool:
    """True when the last ``patience`` values improved on the best value before them by less
    than the relative amount ``tol``.

    With ``best_before = min(values[:-patience])`` and ``best_recent = min(values[-patience:])``
    the loss has plateaued when ``best_recent > (1 - tol) * best_before``: ``patience`` more
    epochs bought less than a ``tol`` share of reduction. Needs at least ``2 * patience`` values
    (nothing is decided earlier). Example: tol=0.01, patience=10 stops once ten epochs in a row
    fail to lower the best reconstruction error by 1 %.
    """
    if tol < 0 or patience < 1:
        raise ValueError(f"need tol >= 0 and patience >= 1, got tol={tol}, patience={patience}")
    if len(values) < 2 * patience:
        return False
    best_before = min(values[:-patience])
    best_recent = min(values[-patience:])
    return best_recent > (1.0 - tol) * best_before


def plateau_rule(
    history: History, stage: str, term: str, *, tol: float | None, patience: int
) -> Callable[[int, dict[str, float]], bool] | None:
    """An ``on_epoch_end`` hook for :func:`deepclust.training.fit_loop` that stops ``stage`` when
    ``history.stages[stage][term]`` has plateaued (:func:`plateau_reached`); ``None`` when
    ``tol`` is None (the stage runs all its epochs)."""
    if tol is None:
        return None

    def hook(_epoch: int, _means: dict[str, float]) -> bool:
        values = history.stages.get(stage, {}).get(term, [])
        return plateau_reached(values, tol=float(tol), patience=int(patience))

    return hook


def partition_settled(window: list, *, tol: float, patience: int) -> tuple[bool, float | None]:
    """Whether a hard partition has stopped moving: fewer than the share ``tol`` of the points
    carry a different label now (``window[-1]``) than ``patience`` epochs ago (``window[0]``).
    Returns ``(settled, changed_share)``; ``changed_share`` is None until ``patience + 1``
    partitions (integer arrays of equal length) are held.

    It is DEC's convergence test (stop when fewer than 0.1 % of the points changed cluster; Xie et
    al. 2016) taken over a window of epochs instead of one, so that a slow steady drift, which a
    one-epoch test would take for convergence, still counts as movement. Label-free: it reads the
    model's own hard assignments only.
    """
    import numpy as np

    if tol < 0 or patience < 1:
        raise ValueError(f"need tol >= 0 and patience >= 1, got tol={tol}, patience={patience}")
    if len(window) < patience + 1:
        return False, None
    changed = float(np.mean(np.asarray(window[-1]) != np.asarray(window[-patience - 1])))
    return changed < tol, changed


def push_partition(window: list, labels, *, keep: int) -> float | None:
    """Append a copy of the hard ``labels`` to ``window``, keep its last ``keep`` entries (int16
    where the labels fit), and return the share of points whose label changed since the
    previous entry (None for the first)."""
    import numpy as np

    labels = np.asarray(labels)
    window.append(labels.astype(np.int16 if labels.max(initial=0) < 2**15 else np.int64))
    del window[: max(0, len(window) - keep)]
    return float(np.mean(window[-1] != window[-2])) if len(window) > 1 else None


def confident_share(s, threshold: float = 0.9) -> float:
    """Share of rows of the soft assignments ``s`` (N, k) whose largest entry exceeds
    ``threshold`` (SCDSC's epoch rule; label-free)."""
    return float((s.max(dim=1).values > threshold).float().mean())


def select_epoch(shares: list[float]) -> int:
    """Index of the epoch with the largest confident share (first one on ties)."""
    import numpy as np

    if not shares:
        raise ValueError("no epoch to select from")
    return int(np.argmax(np.asarray(shares)))
