"""load_file on tiny files written by the tests: .mat v5/v7.3, .npy, .npz, .h5, IDX, folders."""

from __future__ import annotations

import gzip

import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from deepclust.data import load_file, read_mat
from deepclust.data.images import read_idx

RNG = np.random.default_rng(0)
CUBE = RNG.random((5, 7, 4)).astype(np.float32)  # (H, W, B), W != B
GT = np.array([[0, 1, 1, 2, 2, 0, 3]] * 5, dtype=np.uint8)  # (5, 7)


def _write_v73(path, arrays: dict):
    """A MATLAB v7.3 file as MATLAB writes it: HDF5 with the axes of each array reversed."""
    with h5py.File(path, "w", userblock_size=512) as f:
        for k, v in arrays.items():
            f.create_dataset(k, data=np.asarray(v).T)
    with open(path, "r+b") as fh:  # MATLAB's text header in the user block
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 .")


# ----------------------------------------------------------------------------- .mat


def test_mat_v5_scene_with_gt_file(tmp_path):
    scipy.io.savemat(tmp_path / "cube.mat", {"paviaU": CUBE})
    scipy.io.savemat(tmp_path / "gt.mat", {"paviaU_gt": GT})
    ds = load_file(tmp_path / "cube.mat", gt=tmp_path / "gt.mat")
    assert ds.kind == "scene"
    np.testing.assert_array_equal(ds.cube, CUBE)
    mask = GT > 0
    np.testing.assert_array_equal(ds.mask, mask)
    np.testing.assert_array_equal(ds.X, CUBE[mask])
    np.testing.assert_array_equal(ds.y, GT[mask].astype(np.int64))
    np.testing.assert_array_equal(ds.index, np.argwhere(mask))  # row-major
    assert ds.gt.dtype == np.int64 and ds.y.dtype == np.int64


def test_mat_v73_is_transposed_back(tmp_path):
    _write_v73(tmp_path / "cube73.mat", {"img": CUBE})
    _write_v73(tmp_path / "gt73.mat", {"gt": GT})
    np.testing.assert_array_equal(read_mat(tmp_path / "cube73.mat"), CUBE)
    ds = load_file(tmp_path / "cube73.mat", gt=tmp_path / "gt73.mat")
    assert ds.cube.shape == (5, 7, 4)
    np.testing.assert_array_equal(ds.gt, GT)


def test_mat_several_keys_needs_key(tmp_path):
    p = tmp_path / "two.mat"
    scipy.io.savemat(p, {"a": CUBE, "b": GT})
    with pytest.raises(ValueError, match=r"several arrays \(a, b\).*key="):
        load_file(p)
    with pytest.raises(ValueError, match="has no array 'c'"):
        load_file(p, key="c")
    ds = load_file(p, key="a", gt_key="b")  # labels from the same file
    assert ds.kind == "scene" and ds.n_samples == int((GT > 0).sum())
    p73 = tmp_path / "two73.mat"
    _write_v73(p73, {"a": CUBE, "b": GT})
    with pytest.raises(ValueError, match="several arrays"):
        load_file(p73)


def test_trento_style_negative_background(tmp_path):
    gt = GT.astype(np.int64)
    gt[gt == 0] = -1
    np.save(tmp_path / "c.npy", CUBE)
    ds = load_file(tmp_path / "c.npy", gt=gt)
    assert ds.gt.min() == 0
    np.testing.assert_array_equal(ds.mask, GT > 0)


def test_wrong_gt_shape_names_both_shapes(tmp_path):
    np.save(tmp_path / "c.npy", CUBE)
    with pytest.raises(ValueError, match=r"\(7, 5\).*\(5, 7, 4\)"):
        load_file(tmp_path / "c.npy", gt=GT.T)


def test_gt_without_labelled_pixel(tmp_path):
    np.save(tmp_path / "c.npy", CUBE)
    with pytest.raises(ValueError, match="no labelled pixel"):
        load_file(tmp_path / "c.npy", gt=np.zeros((5, 7), dtype=int))


@pytest.mark.parametrize("cut", [10, 200, -30])
def test_truncated_mat_is_a_value_error(tmp_path, cut):
    full = tmp_path / "full.mat"
    scipy.io.savemat(full, {"x": RNG.random((20, 20, 5))})
    data = full.read_bytes()
    bad = tmp_path / "bad.mat"
    bad.write_bytes(data[:cut])
    with pytest.raises(ValueError, match="bad.mat"):
        load_file(bad)


def test_truncated_v73_is_a_value_error(tmp_path):
    full = tmp_path / "full73.mat"
    _write_v73(full, {"x": RNG.random((30, 30, 5))})
    bad = tmp_path / "bad73.mat"
    bad.write_bytes(full.read_bytes()[:2000])
    with pytest.raises(ValueError, match="bad73.mat"):
        load_file(bad)


# ----------------------------------------------------------------------------- npy / npz / h5


def test_npy_images_and_rule(tmp_path):
    imgs = RNG.integers(0, 256, size=(6, 9, 9)).astype(np.uint8)  # (N, S, S): images
    np.save(tmp_path / "imgs.npy", imgs)
    ds = load_file(tmp_path / "imgs.npy", gt=np.arange(6) % 2)
    assert ds.kind == "images" and ds.X.shape == (6, 1, 9, 9)
    np.testing.assert_allclose(ds.X[:, 0], imgs / 255.0, rtol=1e-6)
    assert load_file(tmp_path / "imgs.npy").kind == "images"  # square: images
    np.save(tmp_path / "cube.npy", CUBE)
    assert load_file(tmp_path / "cube.npy").kind == "scene"  # not square: a scene
    whole = load_file(tmp_path / "cube.npy")
    assert whole.y is None and whole.n_samples == 35  # no gt: every pixel
    assert load_file(tmp_path / "imgs.npy", kind="scene").kind == "scene"  # override


def test_npy_pickle_refused(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="never unpickles"):
        load_file(tmp_path / "obj.npy")


def test_npz_keys_and_nhwc(tmp_path):
    imgs = RNG.integers(0, 256, size=(4, 8, 8, 3)).astype(np.uint8)
    p = tmp_path / "set.npz"
    np.savez(p, images=imgs, labels=np.array([0, 1, 1, 0]))
    with pytest.raises(ValueError, match="several arrays"):
        load_file(p)
    ds = load_file(p, key="images", gt_key="labels")
    assert ds.X.shape == (4, 3, 8, 8) and ds.X.dtype == np.float32
    np.testing.assert_allclose(ds.X, imgs.transpose(0, 3, 1, 2) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y, [0, 1, 1, 0])
    vec = tmp_path / "vec.npz"
    np.savez(vec, x=RNG.random((10, 3)))
    v = load_file(vec)
    assert v.kind == "vectors" and v.X.shape == (10, 3)


def test_truncated_npz_and_npy(tmp_path):
    p = tmp_path / "set.npz"
    np.savez_compressed(p, x=RNG.random((50, 50)))
    (tmp_path / "cut.npz").write_bytes(p.read_bytes()[:100])
    with pytest.raises(ValueError, match="cut.npz"):
        load_file(tmp_path / "cut.npz")
    np.save(tmp_path / "a.npy", RNG.random((50, 50)))
    (tmp_path / "cut.npy").write_bytes((tmp_path / "a.npy").read_bytes()[:300])
    with pytest.raises(ValueError, match="cut.npy"):
        load_file(tmp_path / "cut.npy")


def test_h5_file(tmp_path):
    with h5py.File(tmp_path / "d.h5", "w") as f:
        f.create_dataset("grp/x", data=RNG.random((12, 5)))
    ds = load_file(tmp_path / "d.h5")
    assert ds.kind == "vectors" and ds.X.shape == (12, 5)


def test_labels_length_mismatch(tmp_path):
    np.save(tmp_path / "imgs.npy", RNG.random((6, 4, 4)))
    with pytest.raises(ValueError, match=r"expected \(6,\)"):
        load_file(tmp_path / "imgs.npy", gt=np.arange(5))


def test_missing_and_unsupported(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_file(tmp_path / "nope.mat")
    (tmp_path / "a.txt").write_text("1 2 3")
    with pytest.raises(ValueError, match="unsupported file type"):
        load_file(tmp_path / "a.txt")


# ----------------------------------------------------------------------------- IDX


def _idx(arr, dtype_code=0x08):
    arr = np.asarray(arr)
    header = bytes([0, 0, dtype_code, arr.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in arr.shape
    )
    return header + arr.astype({0x08: ">u1", 0x0B: ">i2", 0x0D: ">f4"}[dtype_code]).tobytes()


def test_idx_raw_and_gz(tmp_path):
    imgs = RNG.integers(0, 256, size=(5, 6, 6))
    labels = np.array([3, 1, 4, 1, 5])
    (tmp_path / "imgs-idx3-ubyte").write_bytes(_idx(imgs))
    (tmp_path / "labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(labels)))
    np.testing.assert_array_equal(read_idx(tmp_path / "imgs-idx3-ubyte"), imgs)
    ds = load_file(tmp_path / "imgs-idx3-ubyte", gt=tmp_path / "labels-idx1-ubyte.gz")
    assert ds.kind == "images" and ds.X.shape == (5, 1, 6, 6)
    np.testing.assert_array_equal(ds.y, labels)
    other = np.arange(6, dtype=np.int16).reshape(2, 3) - 3
    (tmp_path / "s.idx").write_bytes(_idx(other, 0x0B))
    np.testing.assert_array_equal(read_idx(tmp_path / "s.idx"), other)


def test_idx_truncated_and_bad_magic(tmp_path):
    data = _idx(RNG.integers(0, 256, size=(5, 6, 6)))
    (tmp_path / "cut-idx3-ubyte").write_bytes(data[:-7])
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "cut-idx3-ubyte")
    gz = gzip.compress(data)
    (tmp_path / "cut-idx3-ubyte.gz").write_bytes(gz[: len(gz) // 2])
    with pytest.raises(ValueError, match="cut-idx3-ubyte.gz"):
        load_file(tmp_path / "cut-idx3-ubyte.gz")
    (tmp_path / "junk-idx3-ubyte").write_bytes(b"\x01\x02\x03\x04abcdef")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "junk-idx3-ubyte")


# ----------------------------------------------------------------------------- image folders


def _png(path, arr, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path)


def test_image_folder_with_classes(tmp_path):
    root = tmp_path / "imgs"
    a = RNG.integers(0, 256, size=(8, 10, 3)).astype(np.uint8)
    b = RNG.integers(0, 256, size=(8, 10, 3)).astype(np.uint8)
    _png(root / "cat" / "1.png", a)
    _png(root / "cat" / "2.png", b)
    _png(root / "dog" / "1.png", b)
    ds = load_file(root)
    assert ds.kind == "images" and ds.X.shape == (3, 3, 8, 10)
    np.testing.assert_array_equal(ds.y, [0, 0, 1])
    assert ds.class_names == ["cat", "dog"]
    np.testing.assert_allclose(ds.X[0], a.transpose(2, 0, 1) / 255.0, rtol=1e-6)


def test_flat_grey_folder_has_no_labels(tmp_path):
    root = tmp_path / "flat"
    for i in range(3):
        _png(root / f"{i}.png", RNG.integers(0, 256, size=(5, 5)).astype(np.uint8))
    ds = load_file(root)
    assert ds.y is None and ds.X.shape == (3, 1, 5, 5)


def test_image_folder_mixed_sizes_and_bad_file(tmp_path):
    root = tmp_path / "mixed"
    _png(root / "a" / "1.png", np.zeros((5, 5), np.uint8))
    _png(root / "a" / "2.png", np.zeros((6, 5), np.uint8))
    with pytest.raises(ValueError, match="mixed sizes"):
        load_file(root)
    bad = tmp_path / "bad"
    _png(bad / "a" / "1.png", np.zeros((5, 5), np.uint8))
    (bad / "a" / "2.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="2.png: cannot read the image"):
        load_file(bad)


def test_mat_ignores_non_numeric_variables(tmp_path):
    p = tmp_path / "with_meta.mat"
    scipy.io.savemat(p, {"img": CUBE, "info": "a text note", "meta": {"bands": 4}})
    ds = load_file(p, gt=GT)  # the only numeric array is picked
    np.testing.assert_array_equal(ds.cube, CUBE)


def test_mat_v73_skips_matlab_text(tmp_path):
    p = tmp_path / "text73.mat"
    _write_v73(p, {"img": CUBE})
    with h5py.File(p, "a") as f:
        d = f.create_dataset("note", data=np.frombuffer(b"h\x00i\x00", dtype=np.uint16))
        d.attrs["MATLAB_class"] = np.bytes_(b"char")
    np.testing.assert_array_equal(read_mat(p), CUBE)
