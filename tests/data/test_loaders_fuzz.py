"""Fuzzing the file readers (hypothesis): random bytes, truncated files and flipped bytes in every
format ``load_file`` reads never escape as anything but our error types.

Allowed outcomes: a :class:`Dataset` (flipped bytes may still decode, e.g. inside pixel data), or
``ValueError`` (including :class:`ChecksumError`), ``TypeError`` or ``FileNotFoundError``
(including :class:`DatasetNotFoundError`). Anything else — ``OSError`` from h5py, ``zlib.error``,
``EOFError``, ``struct.error``, ``IndexError``, ... — is a bug: a traceback in the CLI.
"""

from __future__ import annotations

import gzip
import io
import itertools
import os
import shutil

import h5py
import numpy as np
import pytest
import scipy.io
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from PIL import Image

from deepclust.data import Dataset, load_file
from deepclust.data.fetch import DataFile, verify_file

OURS = (ValueError, TypeError, FileNotFoundError)
# derandomized: the same examples in every run, so a red CI is reproducible; set
# DEEPCLUST_FUZZ_EXPLORE=1 to draw new ones (and add what they find to the loaders)
FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                derandomize=not os.environ.get("DEEPCLUST_FUZZ_EXPLORE"))
RNG = np.random.default_rng(0)
_counter = itertools.count()


def _v73(path, arrays):
    with h5py.File(path, "w", userblock_size=512) as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=np.asarray(v).T)
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 .")


def _png(size=(6, 6)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(RNG.integers(0, 255, size, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[str, bytes]:
    """Valid files of every format: name -> bytes."""
    d = tmp_path_factory.mktemp("valid")
    X = RNG.normal(size=(10, 4)).astype(np.float32)
    cube = RNG.normal(size=(4, 5, 3)).astype(np.float32)
    out = {}
    scipy.io.savemat(d / "a.mat", {"X": X})
    scipy.io.savemat(d / "c.mat", {"cube": cube}, do_compression=True)
    _v73(d / "v73.mat", {"cube": cube})
    np.save(d / "a.npy", X)
    np.savez_compressed(d / "a.npz", X=X)
    np.savez(d / "b.npz", X=X, y=np.arange(10))
    with h5py.File(d / "a.h5", "w") as f:
        f.create_dataset("X", data=X)
    imgs = RNG.integers(0, 255, (10, 4, 4), dtype=np.uint8)
    raw = bytes([0, 0, 8, 3]) + b"".join(int(v).to_bytes(4, "big") for v in imgs.shape) + imgs.tobytes()
    for name in ("a.mat", "c.mat", "v73.mat", "a.npy", "a.npz", "b.npz", "a.h5"):
        out[name] = (d / name).read_bytes()
    out["x-idx3-ubyte"] = raw
    out["x-idx3-ubyte.gz"] = gzip.compress(raw)
    out["img.png"] = _png()
    return out


def _load(tmp, name: str, data: bytes):
    """Write ``data`` under ``name`` in a fresh folder and load it (a PNG goes into a class folder
    beside a valid image)."""
    folder = tmp / f"case{next(_counter)}"
    folder.mkdir()
    try:
        if name.endswith(".png"):
            (folder / "a").mkdir()
            (folder / "b").mkdir()
            (folder / "a" / "ok.png").write_bytes(_png())
            (folder / "b" / name).write_bytes(data)
            return load_file(folder)
        (folder / name).write_bytes(data)
        return load_file(folder / name, **KEYS.get(name, {}))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


KEYS = {"b.npz": {"key": "X", "gt_key": "y"}}  # two arrays: images and labels from one file


def _check(tmp, name, data):
    try:
        ds = _load(tmp, name, data)
    except OURS:
        return
    assert isinstance(ds, Dataset)


NAMES = ["a.mat", "c.mat", "v73.mat", "a.npy", "a.npz", "b.npz", "a.h5", "x-idx3-ubyte", "x-idx3-ubyte.gz", "img.png"]


def test_valid_samples_load(samples, tmp_path):
    for name in NAMES:
        assert isinstance(_load(tmp_path, name, samples[name]), Dataset), name


@pytest.mark.parametrize("name", NAMES)
def test_truncated_at_every_tenth(name, samples, tmp_path):
    data = samples[name]
    for cut in sorted({0, 1, 7, *range(0, len(data), max(1, len(data) // 10)), len(data) - 1}):
        _check(tmp_path, name, data[:cut])


@pytest.mark.parametrize("name", NAMES)
def test_fuzz_random_bytes(name, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rand")

    @FUZZ
    @given(st.binary(max_size=2048))
    def run(data):
        _check(tmp, name, data)

    run()


@pytest.mark.parametrize("name", NAMES)
def test_fuzz_truncated_and_flipped(name, samples, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("flip")
    good = samples[name]

    @FUZZ
    @given(
        st.integers(0, len(good)),
        st.lists(st.tuples(st.integers(0, len(good) - 1), st.integers(1, 255)), max_size=4),
    )
    @example(cut=min(176, len(good)), flips=[(min(144, len(good) - 1), 24)])  # a.mat: scipy's UnboundLocalError
    def run(cut, flips):
        data = bytearray(good)
        for pos, xor in flips:
            data[pos] ^= xor
        _check(tmp, name, bytes(data[:cut]))

    run()


def test_header_of_one_format_with_the_suffix_of_another(samples, tmp_path):
    """A file whose suffix lies about its content."""
    for (src, data), dst in itertools.product(samples.items(), NAMES):
        if src != dst:
            _check(tmp_path, dst, data)


def test_checksum_mismatch_is_a_checksum_error(tmp_path):
    from deepclust.data import ChecksumError

    p = tmp_path / "f.bin"
    p.write_bytes(b"abc")
    spec = DataFile("x/f.bin", checksums=("sha256:" + "0" * 64,))
    with pytest.raises(ChecksumError, match="does not match the catalog"):
        verify_file(p, spec)
    assert issubclass(ChecksumError, ValueError)
