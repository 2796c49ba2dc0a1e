"""Every bad input of docs/reliability.md, end to end through the ``deepclust`` command.

Each case builds its bad input in a temporary folder and checks what the user sees: one line on
stderr starting ``deepclust: error:`` with the expected excerpt, exit status 2, no traceback,
and no output folder (nor a staging folder) left behind. The Python-API rows are at the end.
"""

from __future__ import annotations

import gzip
import io
import os

import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from deepclust.base import DeepClusterer, check_data, check_n_clusters
from deepclust.cli import main
from deepclust.data import fetch, load_file
from deepclust.data.hsi import check_mask, scene_dataset
from deepclust.methods.kmeans import KMeans

RNG = np.random.default_rng(0)


def _npy(tmp, arr, name="x.npy"):
    np.save(tmp / name, arr)
    return str(tmp / name)


def _scene(tmp, gt):
    cube = RNG.normal(size=(6, 7, 5)).astype(np.float32)
    scipy.io.savemat(tmp / "cube.mat", {"cube": cube})
    scipy.io.savemat(tmp / "gt.mat", {"gt": gt})
    return ["--data", str(tmp / "cube.mat"), "--gt", str(tmp / "gt.mat")]


def _png_bytes(size=(8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(RNG.integers(0, 255, size, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _folder(tmp, files: dict[str, bytes]):
    root = tmp / "imgs"
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return ["--data", str(root), "--n-clusters", "2"]


def _good_bytes(tmp, fmt: str) -> tuple[str, bytes]:
    """(file name, the bytes of a small valid file) for each format."""
    X = RNG.normal(size=(12, 3)).astype(np.float32)
    if fmt == "mat":
        scipy.io.savemat(tmp / "g.mat", {"X": X})
        return "x.mat", (tmp / "g.mat").read_bytes()
    if fmt == "npz":
        np.savez_compressed(tmp / "g.npz", X=X)
        return "x.npz", (tmp / "g.npz").read_bytes()
    if fmt == "npy":
        np.save(tmp / "g.npy", X)
        return "x.npy", (tmp / "g.npy").read_bytes()
    if fmt == "h5":
        with h5py.File(tmp / "g.h5", "w") as f:
            f.create_dataset("X", data=X)
        return "x.h5", (tmp / "g.h5").read_bytes()
    if fmt == "idx":
        a = RNG.integers(0, 255, (12, 4, 4), dtype=np.uint8)
        raw = bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape) + a.tobytes()
        return "x-idx3-ubyte.gz", gzip.compress(raw)
    raise AssertionError(fmt)


def _truncated(tmp, fmt):
    name, data = _good_bytes(tmp, fmt)
    (tmp / name).write_bytes(data[: len(data) // 2])
    return ["--data", str(tmp / name), "--n-clusters", "2"]


def _garbage(tmp, fmt):
    name, _ = _good_bytes(tmp, fmt)
    (tmp / name).write_bytes(b"this is not a data file\x00\xff" * 20)
    return ["--data", str(tmp / name), "--n-clusters", "2"]


def _checksum_mismatch(tmp, monkeypatch):
    """A catalog file of the right size whose bytes are not the published ones."""
    root = tmp / "data"
    (root / "images" / "mnist").mkdir(parents=True)
    (root / "images" / "mnist" / "t10k-images-idx3-ubyte.gz").write_bytes(b"\0" * 1_648_877)
    monkeypatch.setenv("DEEPCLUST_DATA", str(root))
    fetch._VERIFIED.clear()
    return ["--dataset", "mnist-test"]


def _missing_dataset(tmp, monkeypatch):
    empty = tmp / "empty"
    empty.mkdir()
    monkeypatch.setenv("DEEPCLUST_DATA", str(empty))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp / "xdg"))
    monkeypatch.delenv("DEEPCLUST_DOWNLOAD", raising=False)
    monkeypatch.setattr(fetch, "_package_checkout", lambda: tmp / "co" / "repo")
    monkeypatch.chdir(empty)
    return ["--dataset", "mnist-test"]


def _text_file(tmp, name):
    (tmp / name).write_text("1,2\n3,4\n")
    return ["--data", str(tmp / name), "--n-clusters", "2"]


def _two_arrays_mat(tmp):
    scipy.io.savemat(tmp / "two.mat", {"a": RNG.normal(size=(5, 3)), "b": RNG.normal(size=(5, 3))})
    return ["--data", str(tmp / "two.mat"), "--n-clusters", "2"]


GT = RNG.integers(0, 3, (6, 7))

# id -> (builder(tmp, monkeypatch) -> argv, excerpt of the message)
CASES = {
    "nan": (lambda t, m: ["--data", _npy(t, np.array([[0.0, 1], [np.nan, 2], [3, 4]])), "--n-clusters", "2"],
            "NaN"),
    "inf": (lambda t, m: ["--data", _npy(t, np.array([[0.0, 1], [np.inf, 2], [3, 4]])), "--n-clusters", "2"],
            "holds 1 NaN or Inf value(s); remove or impute them"),
    "empty-data": (lambda t, m: ["--data", _npy(t, np.zeros((0, 3))), "--n-clusters", "2"], "the array is empty"),
    "one-sample": (lambda t, m: ["--data", _npy(t, np.ones((1, 3))), "--n-clusters", "2"],
                   "1 sample(s); at least 2"),
    "constant-data": (lambda t, m: ["--data", _npy(t, np.ones((20, 3))), "--n-clusters", "2"],
                      "are identical (constant data)"),
    "n-clusters-1": (lambda t, m: ["--dataset", "digits", "--n-clusters", "1"], "at least 2"),
    "n-clusters-0": (lambda t, m: ["--dataset", "digits", "--n-clusters", "0"], "at least 2"),
    "n-clusters-too-many": (lambda t, m: ["--data", _npy(t, RNG.normal(size=(5, 2))), "--n-clusters", "6"],
                            "larger than the number of samples (5)"),
    "n-clusters-via-set": (lambda t, m: ["--dataset", "digits", "--set", "n_clusters=2.5"], "use --n-clusters"),
    "seed-via-set": (lambda t, m: ["--dataset", "digits", "--set", "random_state=3"], "use --seed"),
    "cube-rank-4d-with-gt-map": (lambda t, m: ["--data", _npy(t, np.ones((2, 6, 7, 5)), "c.npy"),
                                               "--gt", _npy(t, GT, "g.npy")], "needs a 3-D hyperspectral cube"),
    "cube-rank-2d-with-gt-map": (lambda t, m: ["--data", _npy(t, np.ones((42, 5)), "c.npy"),
                                               "--gt", _npy(t, GT, "g.npy")], "needs a 3-D hyperspectral cube"),
    "gt-wrong-shape": (lambda t, m: _scene(t, GT[:5]), "the map must be (H, W) = (6, 7)"),
    "gt-no-labelled-pixel": (lambda t, m: _scene(t, np.zeros((6, 7), int)), "no labelled pixel"),
    "gt-not-integer": (lambda t, m: _scene(t, GT + 0.5), "integer class ids"),
    "mixed-size-images": (lambda t, m: _folder(t, {"a/1.png": _png_bytes((8, 8)), "b/2.png": _png_bytes((9, 8))}),
                          "mixed sizes"),
    "unreadable-png": (lambda t, m: _folder(t, {"a/1.png": _png_bytes(), "b/2.png": b"\x89PNG not really"}),
                       "2.png: cannot read the image: Pillow does not recognise it"),
    "truncated-png": (lambda t, m: _folder(t, {"a/1.png": _png_bytes(), "b/2.png": _png_bytes()[:40]}),
                      "2.png: cannot read the image"),
    "truncated-png-body": (lambda t, m: _folder(t, {"a/1.png": _png_bytes(), "b/2.png": _png_bytes()[:-30]}),
                           "2.png: cannot read the image"),
    "empty-image-folder": (lambda t, m: _folder(t, {"notes.txt": b"x"}), "holds no images"),
    "truncated-mat": (lambda t, m: _truncated(t, "mat"), "truncated or corrupt"),
    "garbage-mat": (lambda t, m: _garbage(t, "mat"), "not a readable MATLAB file"),
    "truncated-npz": (lambda t, m: _truncated(t, "npz"), "not a readable npz archive"),
    "garbage-npz": (lambda t, m: _garbage(t, "npz"), "not a readable npz archive"),
    "truncated-npy": (lambda t, m: _truncated(t, "npy"), "not a readable .npy file"),
    "garbage-npy": (lambda t, m: _garbage(t, "npy"), "not a readable .npy file"),
    "truncated-h5": (lambda t, m: _truncated(t, "h5"), "not a readable HDF5"),
    "garbage-h5": (lambda t, m: _garbage(t, "h5"), "not a readable HDF5"),
    "truncated-idx": (lambda t, m: _truncated(t, "idx"), "gzip stream is broken"),
    "garbage-idx": (lambda t, m: _garbage(t, "idx"), "not an IDX file"),
    "pickled-npy": (lambda t, m: ["--data", _npy(t, np.array([{"a": 1}], dtype=object)), "--n-clusters", "2"],
                    "never unpickles"),
    "unsupported-file-type": (lambda t, m: _text_file(t, "x.csv"), "unsupported file type .csv"),
    "missing-data-file": (lambda t, m: ["--data", str(t / "nope.npy")], "nope.npy: no such file"),
    "checksum-mismatch": (_checksum_mismatch, "does not match the catalog"),
    "missing-dataset": (_missing_dataset, "rerun with --download, or set DEEPCLUST_DOWNLOAD=1"),
    "mat-several-arrays-no-key": (lambda t, m: _two_arrays_mat(t), "holds several arrays (a, b); pass key=NAME"),
    "mat-unknown-key": (lambda t, m: _two_arrays_mat(t) + ["--key", "c"], "has no array 'c'; its arrays are: a, b"),
    "unknown-method": (lambda t, m: ["--dataset", "digits"], "unknown method 'kmaens'. Did you mean kmeans"),
    "unknown-dataset": (lambda t, m: ["--dataset", "minst"], "unknown dataset 'minst'; did you mean"),
    "unknown-preset": (lambda t, m: ["--dataset", "digits", "--preset", "huge"], "unknown preset 'huge'"),
    "unknown-set-key": (lambda t, m: ["--dataset", "digits", "--set", "n_inti=3"], "Did you mean n_init"),
    "malformed-set": (lambda t, m: ["--dataset", "digits", "--set", "n_init"], "--set expects key=value"),
    "bad-set-value": (lambda t, m: ["--dataset", "digits", "--set", "n_init=0"], "n_init must be >= 1"),
    "set-wrong-type": (lambda t, m: ["--dataset", "digits", "--set", "n_init=abc"],
                       "n_init='abc': kmeans's parameter n_init expects an integer (default 10)"),
    "set-wrong-type-bool": (lambda t, m: ["--dataset", "digits", "--set", "max_iter=True"],
                            "max_iter expects an integer"),
    "key-for-npy": (lambda t, m: ["--data", _npy(t, RNG.normal(size=(9, 2))), "--key", "x", "--n-clusters", "2"],
                    "a .npy file holds one array; drop --key"),
    "gt-with-dataset": (lambda t, m: ["--dataset", "digits", "--gt", "g.npy"], "--gt only apply to --data FILE"),
    "kind-with-dataset": (lambda t, m: ["--dataset", "digits", "--kind", "images"], "--kind only apply to --data"),
    "labels-fit-the-image-reading": (lambda t, m: ["--data", _npy(t, np.ones((30, 8, 6)), "s.npy"),
                                                   "--gt", _npy(t, np.arange(30) % 3, "y.npy"), "--kind", "scene"],
                                     "one per image if s.npy (30, 8, 6) is read as 30 images of 8x6"),
    "labels-fit-the-scene-reading": (lambda t, m: ["--data", _npy(t, np.ones((8, 6, 5)), "c.npy"),
                                                   "--gt", _npy(t, np.arange(48) % 3, "y.npy")],
                                     "48 = 8x6 is the pixel count if it is read as a scene"),
    "no-labels-no-k": (lambda t, m: ["--data", _npy(t, RNG.normal(size=(9, 2)))], "pass --n-clusters K"),
    "device-cuda-missing": (lambda t, m: ["--dataset", "digits", "--device", "cuda"], "sees no CUDA device"),
    "device-unknown": (lambda t, m: ["--dataset", "digits", "--device", "tpu"], "unknown device 'tpu'"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_cli_bad_input(case, tmp_path, capsys, monkeypatch):
    build, excerpt = CASES[case]
    if case == "device-cuda-missing":
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    method = "kmaens" if case == "unknown-method" else "kmeans"
    argv = build(tmp_path, monkeypatch)
    out = tmp_path / "out" / "run"
    code = main(["run", method, *argv, "--out", str(out), "--set", "n_init=1"]
                if case not in ("malformed-set", "unknown-set-key", "n-clusters-via-set", "seed-via-set",
                                "bad-set-value", "set-wrong-type", "set-wrong-type-bool")
                else ["run", method, *argv, "--out", str(out)])
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith("deepclust: warning:")]
    assert code == 2, err
    if case == "missing-dataset":  # where to put or get the file: one sentence a line, indented
        assert lines[0].startswith("deepclust: error: data file") and all(ln.startswith("  ") for ln in lines[1:])
        assert "download=True" not in err
        lines = [" ".join(ln.strip() for ln in lines)]
    assert len(lines) == 1 and lines[0].startswith("deepclust: error: "), err
    assert excerpt in lines[0], err
    assert "Traceback" not in err
    # never a half-written output directory: neither the folder nor its parents nor a staging folder
    assert not (tmp_path / "out").exists()


def test_cli_non_integer_n_clusters_is_argparse_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "kmeans", "--dataset", "digits", "--n-clusters", "2.5", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "invalid int value: '2.5'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and err.startswith("deepclust run: error: ")  # no usage dump
    assert not (tmp_path / "o").exists()


def test_cli_out_is_a_file_or_under_a_file(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for out, excerpt in ((blocker, "exists and is not a folder"), (blocker / "sub" / "run", "is a file")):
        code = main(["run", "kmeans", "--dataset", "digits", "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and excerpt in err and len(err.strip().splitlines()) == 1
    assert blocker.read_text() == "x"


def test_cli_out_not_writable_creates_nothing(tmp_path, capsys, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    real_access = os.access
    # root writes anywhere: make the permission check see a read-only folder
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(ro) else real_access(p, mode))
    code = main(["run", "kmeans", "--dataset", "digits", "--out", str(ro / "a" / "b")])
    err = capsys.readouterr().err
    assert code == 2 and "is not writable" in err and "Traceback" not in err
    assert list(ro.iterdir()) == []


def _crash_in_fit(monkeypatch, exc):
    def boom(self, X, **kw):
        raise exc

    monkeypatch.setattr(KMeans, "_fit", boom)


@pytest.mark.parametrize(
    "exc,code,excerpt",
    [
        (RuntimeError("CUDA out of memory"), 1,
         "unexpected error (RuntimeError: CUDA out of memory); rerun with --debug"),
        (OSError(28, "No space left on device"), 2, "error: No space left on device"),
        (KeyboardInterrupt(), 130, "interrupted"),
        (FloatingPointError("the train loss became nan"), 2, "the train loss became nan"),
    ],
    ids=["bug-runtime-error", "disk-full", "ctrl-c", "nan-loss"],
)
def test_cli_failure_during_fit_leaves_nothing(exc, code, excerpt, tmp_path, capsys, monkeypatch):
    _crash_in_fit(monkeypatch, exc)
    got = main(["run", "kmeans", "--dataset", "digits", "--out", str(tmp_path / "new" / "run")])
    err = capsys.readouterr().err
    assert got == code and excerpt in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "new").exists()  # nor the parent it would have created


def test_cli_failed_rerun_keeps_previous_outputs(tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    assert main(["run", "kmeans", "--dataset", "digits", "--out", str(out), "--no-pictures",
                 "--set", "n_init=1"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _crash_in_fit(monkeypatch, ValueError("bad"))
    assert main(["run", "kmeans", "--dataset", "digits", "--out", str(out)]) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no staging folder left
    capsys.readouterr()


def test_cli_debug_shows_the_traceback(tmp_path, monkeypatch):
    _crash_in_fit(monkeypatch, RuntimeError("bug"))
    with pytest.raises(RuntimeError, match="bug"):
        main(["--debug", "run", "kmeans", "--dataset", "digits", "--out", str(tmp_path / "o")])


# ----------------------------------------------------------------------------- Python API rows


class _SceneProbe(DeepClusterer):
    """A minimal scene estimator: records the mask it was given (tests base.fit's checks)."""

    input_kind = "scene"

    def __init__(self, n_clusters=2, random_state=None):
        self.n_clusters = n_clusters
        self.random_state = random_state

    def _fit(self, X, mask=None):
        self.mask_ = mask
        n = int(mask.sum()) if mask is not None else X.shape[0] * X.shape[1]
        self.labels_ = np.arange(n, dtype=np.int64) % self.n_clusters


CUBE = RNG.normal(size=(4, 5, 3)).astype(np.float32)


@pytest.mark.parametrize(
    "mask,err,excerpt",
    [
        (np.ones((4, 5), dtype=np.float32), TypeError, "must be a boolean (H, W) array"),
        (np.full((4, 5), "a"), TypeError, "must be a boolean"),
        (np.arange(20).reshape(4, 5), ValueError, "values 0, 1, 2, 3, 4, 5, ..."),
        (np.ones((5, 4), dtype=bool), ValueError, "has shape (5, 4) but the scene is (H, W) = (4, 5)"),
        (np.zeros((4, 5), dtype=bool), ValueError, "selects no pixel"),
    ],
    ids=["float", "string", "class-map", "wrong-shape", "empty"],
)
def test_api_mask_of_wrong_dtype_or_shape(mask, err, excerpt):
    with pytest.raises(err) as info:
        _SceneProbe().fit(CUBE, mask=mask)
    assert excerpt in str(info.value)
    with pytest.raises(err):
        scene_dataset("s", CUBE, mask=mask)


def test_api_mask_accepts_bool_and_01_integers():
    m = np.zeros((4, 5), dtype=np.uint8)
    m[:2] = 1
    est = _SceneProbe().fit(CUBE, mask=m)
    assert est.mask_.dtype == np.bool_ and est.mask_.sum() == 10 and est.labels_.shape == (10,)
    np.testing.assert_array_equal(check_mask(m.astype(bool), (4, 5)), m.astype(bool))
    two = np.zeros((4, 5), dtype=bool)
    two[0, :2] = True
    with pytest.raises(ValueError, match=r"larger than the number of samples \(2\)"):
        _SceneProbe(n_clusters=3).fit(CUBE, mask=two)


@pytest.mark.parametrize(
    "cube,excerpt",
    [
        (np.ones((4, 5)), "must be a hyperspectral cube of shape (H, W, B), got 2 dimension(s)"),
        (np.ones((2, 4, 5, 3)), "got 4 dimension(s)"),
    ],
    ids=["2d", "4d"],
)
def test_api_cube_of_wrong_rank(cube, excerpt):
    with pytest.raises(ValueError) as info:
        _SceneProbe().fit(cube)
    assert excerpt in str(info.value)
    with pytest.raises(ValueError, match=r"cube of shape \(H, W, B\)"):
        scene_dataset("s", cube)


def test_api_constant_scene_and_constant_feature():
    flat = np.ones((4, 5, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="all 20 pixels of X are identical"):
        _SceneProbe().fit(flat)
    mask = np.zeros((4, 5), dtype=bool)
    mask[0, :3] = True
    varied = flat.copy()
    varied[3, 4] = 2.0  # differs, but outside the mask: the clustered pixels are still constant
    with pytest.raises(ValueError, match="all 3 pixels"):
        _SceneProbe().fit(varied, mask=mask)
    # one constant feature among varying ones is fine
    X = RNG.normal(size=(30, 3))
    X[:, 1] = 7.0
    assert KMeans(n_clusters=2, n_init=1, random_state=0).fit(X).labels_.shape == (30,)


@pytest.mark.parametrize(
    "X,err,excerpt",
    [
        (np.zeros((0, 3)), ValueError, "is empty"),
        (np.zeros((3, 0)), ValueError, "0 feature(s)"),
        (np.ones((1, 3)), ValueError, "1 sample(s); at least 2"),
        (np.array([[1.0, np.nan], [0, 1]]), ValueError, "NaN or infinite"),
        (np.array([[1.0, -np.inf], [0, 1]]), ValueError, "NaN or infinite"),
        (np.array([["a", "b"], ["c", "d"]]), TypeError, "must be numeric"),
        (np.ones(5), ValueError, "must be 2-D (n_samples, n_features)"),
        (np.ones((4, 2)) + 1j, ValueError, "Complex data not supported"),
    ],
    ids=["empty", "no-features", "one-sample", "nan", "inf", "strings", "1d", "complex"],
)
def test_api_bad_data(X, err, excerpt):
    with pytest.raises(err) as info:
        KMeans(n_clusters=2).fit(X)
    assert excerpt in str(info.value)


@pytest.mark.parametrize(
    "k,err,excerpt",
    [
        (1, ValueError, "at least 2"),
        (0, ValueError, "at least 2"),
        (-3, ValueError, "at least 2"),
        (11, ValueError, "larger than the number of samples (10)"),
        (2.0, TypeError, "got the float 2.0; pass 2"),
        (2.5, TypeError, "must be an integer"),
        ("3", TypeError, "must be an integer"),
        (True, TypeError, "must be an integer"),
        (None, TypeError, "must be an integer"),
    ],
    ids=["1", "0", "negative", "too-many", "float-2.0", "float-2.5", "string", "bool", "none"],
)
def test_api_bad_n_clusters(k, err, excerpt):
    with pytest.raises(err) as info:
        check_n_clusters(k, 10)
    assert excerpt in str(info.value)
    with pytest.raises(err):
        KMeans(n_clusters=k).fit(RNG.normal(size=(10, 2)))


def test_api_load_file_scene_gt_errors(tmp_path):
    np.save(tmp_path / "c.npy", RNG.normal(size=(6, 7, 5)))
    with pytest.raises(ValueError, match="is 1-D"):
        load_file(tmp_path / "c.npy", gt=np.ones(42, int), kind="scene")
    with pytest.raises(ValueError, match="the map must be"):
        load_file(tmp_path / "c.npy", gt=np.ones((7, 6), int))


def test_check_data_torch_and_sparse():
    import scipy.sparse
    import torch

    assert check_data(torch.ones(3, 2) * torch.arange(3)[:, None], kind="vectors").shape == (3, 2)
    with pytest.raises(TypeError, match="sparse"):
        check_data(scipy.sparse.eye(3).tocsr())
