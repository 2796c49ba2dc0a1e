"""Label-free stopping rules for training stages.

A rule reads only the training history (loss values the method already records), never labels,
and is stateless: it recomputes its decision from ``History`` so a resumed fit stops exactly
where an uninterrupted one would.
"""

from __future__ import annotations

from collections.abc import Callable

from deepclust.training import History

__all__ = ["plateau_reached", "plateau_rule"]


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
