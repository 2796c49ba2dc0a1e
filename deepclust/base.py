"""The scikit-learn contract shared by every estimator in deepclust.

Every method is a class with ``BaseEstimator`` + ``ClusterMixin``: ``__init__`` only stores its
keyword arguments, ``fit`` validates the input, trains and sets ``labels_``, ``predict`` assigns
new samples. Randomness comes from *local* generators built from ``random_state`` (never global
seeding), and ``device="auto"`` picks CUDA when it is present.

Deep methods subclass :class:`DeepClusterer` and implement ``_fit(X, **fit_params)`` and
``_predict(X)``; the public ``fit``/``predict`` wrap them with validation and timing.

Scene inputs are validated with the data layer's helpers (:mod:`deepclust.data.hsi`: masks, and
tiles for a large or memory-mapped cube); the data layer never imports this module.
"""

from __future__ import annotations

import numbers
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin

from deepclust.data import hsi
from deepclust.data.hsi import check_mask, is_large_scene, iter_row_tiles
from deepclust.training import default_precision, resolve_precision

InputKind = Literal["vectors", "images", "scene", "any"]

__all__ = [
    "DeepClusterer",
    "check_bool",
    "check_data",
    "check_n_clusters",
    "check_not_constant",
    "resolve_device",
    "make_generators",
]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a device into a ``torch.device``.

    ``"auto"`` chooses CUDA when available and the CPU otherwise. Asking for CUDA on a machine
    without it raises a ``ValueError`` that says so, instead of failing deep inside torch.
    """
    if isinstance(device, torch.device):
        dev = device
    elif not isinstance(device, str):
        raise TypeError(f"device must be a string such as 'auto', 'cpu' or 'cuda', got {device!r}")
    elif device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(device)
        except RuntimeError as exc:
            raise ValueError(
                f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'"
            ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but this torch build sees no CUDA device; "
            "use device='auto' or 'cpu'"
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise ValueError(
            f"device={device!r} was requested but torch sees {n} CUDA device(s) "
            f"(cuda:0{f' to cuda:{n - 1}' if n > 1 else ''}); check CUDA_VISIBLE_DEVICES"
        )
    return dev


def make_generators(random_state: int | None | np.random.Generator) -> tuple[np.random.Generator, torch.Generator, int]:
    """Local random generators from ``random_state``.

    Returns ``(numpy_generator, torch_cpu_generator, seed)``; ``seed`` is the integer the torch
    generator was seeded with (drawn from fresh entropy when ``random_state`` is None), so it can
    be recorded and reused, e.g. for scikit-learn's ``random_state``.
    """
    if isinstance(random_state, np.random.Generator):
        seed = int(random_state.integers(0, 2**31 - 1))
    elif random_state is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0] % (2**31 - 1))
    elif isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be a non-negative integer, got {random_state}")
        seed = int(random_state)
    else:
        raise TypeError(
            f"random_state must be None, a non-negative int or a numpy Generator, got {random_state!r}"
        )
    rng = np.random.default_rng(seed)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed)
    return rng, gen, seed


def check_bool(name: str, value: Any) -> None:
    """A switch must be ``True`` or ``False`` (numpy's bool too), not a truthy stand-in such as
    ``"no"`` or ``1``: ``ValueError`` naming the parameter otherwise."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def check_n_clusters(n_clusters: Any, n_samples: int | None = None) -> int:
    """Validate ``n_clusters``: an integer >= 2 and no larger than the number of samples."""
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, numbers.Integral):
        if isinstance(n_clusters, float) and float(n_clusters).is_integer():
            raise TypeError(
                f"n_clusters must be an integer, got the float {n_clusters!r}; pass {int(n_clusters)}"
            )
        raise TypeError(f"n_clusters must be an integer >= 2, got {n_clusters!r}")
    n_clusters = int(n_clusters)
    if n_clusters < 2:
        raise ValueError(f"n_clusters must be at least 2, got {n_clusters}")
    if n_samples is not None and n_clusters > n_samples:
        raise ValueError(
            f"n_clusters={n_clusters} is larger than the number of samples ({n_samples}); "
            "use fewer clusters or more data"
        )
    return n_clusters


def check_data(
    X: Any,
    *,
    kind: InputKind = "any",
    min_samples: int = 2,
    dtype: type = np.float32,
    name: str = "X",
    lazy_scene: bool = False,
) -> np.ndarray:
    """Validate an input array and return it as a C-contiguous float array.

    ``kind`` states what the estimator takes: ``"vectors"`` (N, D) — higher-rank arrays are
    flattened per sample; ``"images"`` (N, C, H, W) — (N, H, W) is read as one channel;
    ``"scene"`` (H, W, B); ``"any"`` keeps the sample axis and the rest as given.
    Raises ``ValueError`` (empty data, too few samples, NaN/Inf, wrong rank) or ``TypeError``
    (non-numeric data) with a message that says how to fix the input.
    """
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    if hasattr(X, "toarray") and hasattr(X, "nnz"):
        raise TypeError(
            f"{name} is a scipy sparse matrix; sparse input is not supported: pass X.toarray()"
        )
    try:
        arr = np.asarray(X)
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"{name} could not be read as one numeric array ({exc}); "
            "are the samples of different shapes?"
        ) from exc
    if np.iscomplexobj(arr):
        raise ValueError(f"Complex data not supported: {name} has dtype {arr.dtype}; pass real values")
    if arr.dtype == object:
        try:
            arr = arr.astype(np.float64)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"{name} must be numeric; its object array holds non-numbers ({exc})") from exc
    if not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(f"{name} must be numeric, got an array of dtype {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError(f"{name} must be an array of samples, got a scalar")
    if arr.ndim >= 2 and arr.shape[0] > 0 and arr.size == 0:
        raise ValueError(
            f"{name} has 0 feature(s) (shape={arr.shape}) while a minimum of 1 is required."
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); pass at least {min_samples} samples")
    if kind == "scene":
        if arr.ndim != 3:
            raise ValueError(
                f"{name} must be a hyperspectral cube of shape (H, W, B), got {arr.ndim} "
                f"dimension(s) {arr.shape}; a 2-D (pixels, bands) array needs reshaping to (H, W, B)"
            )
    elif kind == "vectors":
        if arr.ndim == 1:
            raise ValueError(
                f"{name} must be 2-D (n_samples, n_features), got shape {arr.shape}; "
                "use X.reshape(-1, 1) for a single feature or X.reshape(1, -1) for a single sample"
            )
        if arr.ndim > 2:
            arr = arr.reshape(arr.shape[0], -1)
    elif kind == "images":
        if arr.ndim == 3:
            arr = arr[:, None]
        if arr.ndim != 4:
            raise ValueError(
                f"{name} must be images of shape (N, C, H, W) or (N, H, W), got shape {arr.shape}"
            )
    elif arr.ndim == 1:
        raise ValueError(
            f"{name} must have a sample axis and at least one feature axis, got shape {arr.shape}; "
            "use X.reshape(-1, 1) for a single feature"
        )
    n = arr.shape[0] if kind != "scene" else arr.shape[0] * arr.shape[1]
    if n < min_samples:
        raise ValueError(f"{name} has {n} sample(s); at least {min_samples} are needed")
    if kind == "scene" and lazy_scene and is_large_scene(arr):
        bad = sum(int((~np.isfinite(t)).sum()) for t in iter_row_tiles(arr))
        if bad:
            raise ValueError(
                f"{name} contains {bad} NaN or infinite value(s); remove or impute them "
                "(e.g. sklearn.impute.SimpleImputer) before clustering"
            )
        return arr
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise ValueError(
            f"{name} contains {bad} NaN or infinite value(s); remove or impute them "
            "(e.g. sklearn.impute.SimpleImputer) before clustering"
        )
    return arr


def check_not_constant(X: np.ndarray, *, kind: InputKind = "any", mask: np.ndarray | None = None,
                       name: str = "X") -> None:
    """Raise ``ValueError`` when every sample to be clustered is identical.

    Constant *features* (a band or pixel that never changes) are fine and accepted; data in
    which all samples are the same point has no cluster structure at all, and every method would
    return an arbitrary partition (or fail inside a standardisation by a zero deviation). For a
    scene the samples are the pixels (those in ``mask`` when given). Costs one pass over ``X``.
    """
    if kind == "scene" and is_large_scene(X):  # tile by tile: no copy of the cube
        first = None
        W = X.shape[1]
        rows = max(1, hsi.TILE_PIXELS // max(1, W))  # as iter_row_tiles
        n = 0
        for r, t in zip(range(0, X.shape[0], rows), iter_row_tiles(X), strict=True):
            if mask is not None:
                t = t[np.asarray(mask[r : r + rows]).reshape(-1)]
            if t.shape[0] == 0:
                continue
            if first is None:
                first = t[:1].copy()
            n += t.shape[0]
            if not bool((t == first).all()):
                return
        if n >= 2:
            raise ValueError(
                f"all {n} pixels of {name} are identical (constant data): there is "
                "nothing to cluster; check that the right array or file was loaded"
            )
        return
    if kind == "scene":
        samples = X[mask] if mask is not None else X.reshape(-1, X.shape[-1])
    else:
        samples = X.reshape(X.shape[0], -1)
    if samples.shape[0] >= 2 and bool((samples == samples[:1]).all()):
        what = "pixels" if kind == "scene" else "samples"
        raise ValueError(
            f"all {samples.shape[0]} {what} of {name} are identical (constant data): there is "
            "nothing to cluster; check that the right array or file was loaded"
        )


class DeepClusterer(ClusterMixin, BaseEstimator):
    """Base class of every deepclust estimator.

    Subclasses set the class attribute ``input_kind`` and implement

    * ``_fit(self, X, **fit_params) -> None``: train and set ``labels_`` (and whatever else);
    * ``_predict(self, X) -> np.ndarray``: labels for new (validated) samples.

    ``fit`` validates ``X`` with :func:`check_data`, checks ``n_clusters``, resolves the device,
    builds the local generators (``self._rng``, ``self._torch_gen``) and records
    ``fit_seconds_``, ``device_``, ``precision_`` and ``seed_``. Deep methods take
    ``precision="fp32" | "bf16" | "auto"``: their training steps run under bf16 autocast on CUDA
    when it resolves to bf16 (:func:`deepclust.training.resolve_precision`).
    """

    input_kind: InputKind = "any"
    #: Scene estimators that read a large (or memory-mapped) cube in tiles set this to True:
    #: ``fit``/``predict`` then validate such a cube without copying it (see :func:`check_data`).
    _lazy_scene: bool = False
    #: Minimum number of samples ``fit`` accepts.
    _min_samples: int = 2

    # -- public API ------------------------------------------------------------------------
    def fit(self, X, y=None, **fit_params):
        """Fit the model on ``X`` (``y`` is ignored: clustering uses no labels)."""
        X = check_data(
            X, kind=self.input_kind, min_samples=self._min_samples, lazy_scene=self._lazy_scene
        )
        if self.input_kind == "scene" and fit_params.get("mask") is not None:
            fit_params["mask"] = check_mask(fit_params["mask"], X.shape[:2])
        n_samples = self._n_samples_of(X, fit_params)
        if hasattr(self, "n_clusters"):
            check_n_clusters(self.n_clusters, n_samples)
        check_not_constant(X, kind=self.input_kind, mask=fit_params.get("mask"))
        self.device_ = resolve_device(getattr(self, "device", "cpu"))
        # the precision the training steps run in ("bf16" autocast on CUDA or "fp32", see
        # deepclust.training.resolve_precision); estimators without the parameter train in fp32
        self.precision_ = resolve_precision(getattr(self, "precision", "fp32"), self.device_)
        self._rng, self._torch_gen, self.seed_ = make_generators(getattr(self, "random_state", None))
        self._prepare_checkpoint()
        start = time.perf_counter()
        with default_precision(self.precision_):
            self._fit(X, **fit_params)
        self.fit_seconds_ = time.perf_counter() - start
        self.n_features_in_ = int(np.prod(X.shape[1:])) if self.input_kind != "scene" else X.shape[-1]
        return self

    def predict(self, X, **predict_params) -> np.ndarray:
        """Cluster labels of new samples (same layout as in ``fit``)."""
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "labels_")
        X = self._check_new_data(X)
        if self.input_kind == "scene" and predict_params.get("mask") is not None:
            predict_params["mask"] = check_mask(predict_params["mask"], X.shape[:2])
        return self._predict(X, **predict_params)

    def _check_new_data(self, X):
        """``X`` validated as at fit time, with the training data's number of features (what
        ``predict`` and a fitted estimator's ``transform`` accept)."""
        X = check_data(X, kind=self.input_kind, min_samples=1, lazy_scene=self._lazy_scene)
        n_feat = int(np.prod(X.shape[1:])) if self.input_kind != "scene" else X.shape[-1]
        if n_feat != self.n_features_in_:
            raise ValueError(
                f"X has {n_feat} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input (the training data's); "
                "pass data shaped like the training data"
            )
        return X

    def fit_predict(self, X, y=None, **fit_params) -> np.ndarray:
        """Fit and return ``labels_``."""
        return self.fit(X, y, **fit_params).labels_

    # -- hooks -----------------------------------------------------------------------------
    def _fit(self, X: np.ndarray, **fit_params) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _predict(self, X: np.ndarray, **predict_params) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _prepare_checkpoint(self) -> None:
        """Estimators with ``checkpoint_path``/``resume``: a fresh fit (``resume=False``) removes
        an old checkpoint first, so a stale file never leaks finished stages into the new fit;
        ``resume=True`` without a path is an error."""
        path = getattr(self, "checkpoint_path", None)
        resume = bool(getattr(self, "resume", False))
        if path is None:
            if resume:
                raise ValueError("resume=True needs checkpoint_path= (the checkpoint file to resume from)")
            return
        path = Path(path)
        if path.exists() and not path.is_file():
            raise ValueError(f"checkpoint_path {path} is a folder; give a file path such as {path / 'fit.pt'}")
        if not resume and path.exists():
            from deepclust.distributed import rank

            if rank() == 0:  # under a process group rank 0 owns the file (it writes it)
                path.unlink(missing_ok=True)

    def _n_samples_of(self, X: np.ndarray, fit_params: dict) -> int:
        """Number of samples to be clustered (scene methods count masked pixels)."""
        if self.input_kind == "scene":
            mask = fit_params.get("mask")
            return int(np.count_nonzero(mask)) if mask is not None else X.shape[0] * X.shape[1]
        return X.shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags
