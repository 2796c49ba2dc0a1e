"""Every catalog loader on the shared data (skipped, with the reason, where it is absent)."""

from __future__ import annotations

import numpy as np
import pytest

from deepclust.data import CATALOG, DatasetNotFoundError, dataset_status, load_dataset
from deepclust.data.fetch import DataFile

# Figures from shared/datasets/*/MANIFEST.md.
EXPECTED_COUNTS = {
    "mnist-test": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    "usps": [1553, 1269, 929, 824, 852, 716, 834, 792, 708, 821],
    "coil20": [72] * 20,
    "ucmerced": [100] * 21,
}
SCENE_COUNTS = {
    "salinas-a": {1: 391, 10: 1343, 11: 616, 12: 1525, 13: 674, 14: 799},
    "paviau": dict(
        zip(range(1, 10), [6631, 18649, 2099, 3064, 1345, 5029, 1330, 3682, 947], strict=True)
    ),
    "trento": dict(zip(range(1, 7), [4034, 2903, 479, 9123, 10501, 3174], strict=True)),
}


def _present(name: str) -> bool:
    return dataset_status(name)["available"]


def _skip_unless(name: str):
    status = dataset_status(name)
    missing = [f["path"] for f in status["files"] if not f["found"]]
    return pytest.mark.skipif(
        bool(missing),
        reason=f"{name}: {', '.join(missing)} not found in $DEEPCLUST_DATA, shared/datasets or "
        "the cache",
    )


def test_catalog_entries_are_complete():
    assert list(CATALOG) == [
        "digits",
        "mnist",
        "mnist-test",
        "usps",
        "fashion-mnist",
        "coil20",
        "ucmerced",
        "salinas-a",
        "paviau",
        "trento",
        "houston",
        "indian-pines",
        "salinas",
    ]
    for name, e in CATALOG.items():
        assert e.name == name and e.kind in ("images", "scene")
        assert e.citation and e.licence and e.description
        for f in e.files:
            for spec in (f, *f.alternatives):
                assert isinstance(spec, DataFile)
                # every file is either checksummed or says why not
                assert spec.checksums or spec.note or spec.content_check, spec.path
                # and tells where to get it
                assert spec.urls or spec.source, spec.path
    fm = CATALOG["fashion-mnist"]
    assert {c for f in fm.files for c in f.checksums} == {
        "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "md5:25c81989df183df01b3e8a0aad5dffbe",
        "md5:bef4ecab320f06d8554ea6380940ec79",
        "md5:bb300cfdad3c16e7a12a480ee83cd310",
    }
    assert all(
        u.startswith("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/")
        for f in fm.files
        for u in f.urls
    )
    assert "not public" in CATALOG["houston"].note.replace("no public source", "not public")


def test_dataset_status_is_json_able():
    import json

    for name in CATALOG:
        s = dataset_status(name)
        json.dumps(s)
        assert s["name"] == name and isinstance(s["available"], bool)
    assert dataset_status("digits")["available"]


def test_digits():
    ds = load_dataset("digits")
    assert ds.X.shape == (1797, 1, 8, 8) and ds.X.dtype == np.float32
    assert ds.X.min() == 0 and ds.X.max() == 1
    from sklearn.datasets import load_digits

    np.testing.assert_allclose(ds.X.reshape(1797, 64) * 16, load_digits().data)
    assert ds.y.dtype == np.int64


@_skip_unless("mnist")
def test_mnist_train_then_test():
    import time

    t = time.perf_counter()
    ds = load_dataset("mnist")
    elapsed = time.perf_counter() - t
    assert ds.X.shape == (70000, 1, 28, 28) and ds.X.dtype == np.float32
    assert ds.y.shape == (70000,) and ds.y.dtype == np.int64
    assert ds.info["split_sizes"] == [60000, 10000]
    test = load_dataset("mnist-test")
    np.testing.assert_array_equal(ds.X[60000:], test.X)  # train first, then test
    np.testing.assert_array_equal(ds.y[60000:], test.y)
    assert abs(float(ds.X[:60000].mean()) * 255 - 33.3184) < 1e-3  # manifest: mean 33.3184
    assert elapsed < 20, f"loading MNIST took {elapsed:.1f} s"


@pytest.mark.parametrize("name", ["mnist-test", "usps", "coil20", "ucmerced"])
def test_image_sets(name):
    if not _present(name):
        pytest.skip(f"{name}: files not found in $DEEPCLUST_DATA, shared/datasets or the cache")
    e = CATALOG[name]
    ds = load_dataset(name)
    assert ds.X.shape == (e.n_samples, *e.shape) and ds.X.dtype == np.float32
    assert 0.0 <= ds.X.min() and ds.X.max() <= 1.0
    assert ds.y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(ds.y), EXPECTED_COUNTS[name])


@_skip_unless("usps")
def test_usps_h5_fallback_equals_npz(tmp_path):
    import shutil

    src = dataset_status("usps")["files"][0]["found"]
    h5 = tmp_path / "images" / "usps" / "usps.h5"
    h5.parent.mkdir(parents=True)
    shared_h5 = str(src).replace("usps.npz", "usps.h5")
    shutil.copy(shared_h5, h5)
    from_h5 = load_dataset("usps", data_dir=tmp_path)
    from_npz = load_dataset("usps")
    np.testing.assert_array_equal(from_h5.X, from_npz.X)
    np.testing.assert_array_equal(from_h5.y, from_npz.y)


@_skip_unless("coil20")
def test_coil20_zip_alternative_equals_npz(tmp_path):
    import shutil

    src = dataset_status("coil20")["files"][0]["found"]
    z = tmp_path / "images" / "coil20" / "coil-20-proc.zip"
    z.parent.mkdir(parents=True)
    shutil.copy(str(src).replace("coil20_128x128.npz", "coil-20-proc.zip"), z)
    with pytest.warns(UserWarning, match="without verification"):
        from_zip = load_dataset("coil20", data_dir=tmp_path)
    from_npz = load_dataset("coil20")
    np.testing.assert_array_equal(from_zip.X, from_npz.X)
    np.testing.assert_array_equal(from_zip.y, from_npz.y)


@pytest.mark.parametrize("name", ["salinas-a", "paviau", "trento"])
def test_scenes(name):
    if not _present(name):
        missing = [f["path"] for f in dataset_status(name)["files"] if not f["found"]]
        pytest.skip(
            f"{name}: {', '.join(missing)} not found in $DEEPCLUST_DATA, shared/datasets "
            "or the cache"
        )
    e = CATALOG[name]
    ds = load_dataset(name)
    assert ds.kind == "scene" and ds.cube.shape == e.shape and ds.cube.dtype == np.float32
    assert ds.gt.dtype == np.int64 and ds.gt.min() == 0
    np.testing.assert_array_equal(ds.mask, ds.gt > 0)
    np.testing.assert_array_equal(ds.index, np.argwhere(ds.mask))
    np.testing.assert_array_equal(ds.X, ds.cube[ds.mask])
    np.testing.assert_array_equal(ds.y, ds.gt[ds.mask])
    ids, counts = np.unique(ds.y, return_counts=True)
    assert dict(zip(ids.tolist(), counts.tolist(), strict=True)) == SCENE_COUNTS[name]


@_skip_unless("salinas-a")
def test_salinas_a_values():
    ds = load_dataset("salinas-a")
    assert ds.cube.min() == -9 and ds.cube.max() == 8373  # manifest: int16 range -9..8373
    assert ds.class_names[0] == "Brocoli_green_weeds_1"


def test_gt_only_scenes_fail_clearly_when_the_cube_is_missing(tmp_path):
    for name in ("paviau", "trento", "salinas", "indian-pines", "houston"):
        with pytest.raises(DatasetNotFoundError) as err:
            load_dataset(name, data_dir=tmp_path)
        first = CATALOG[name].files[0]
        assert first.name in str(err.value)
        assert str(tmp_path / first.folder) in str(err.value)


def _trento_gts():
    from deepclust.data.fetch import locate

    gt = CATALOG["trento"].files[1]
    return locate(gt), locate(gt.alternatives[0])


@pytest.mark.skipif(
    not all(_trento_gts()),
    reason="Trento_gt.mat / allgrd.mat not found in $DEEPCLUST_DATA, shared/datasets or the cache",
)
def test_trento_ground_truths_agree_after_background_mapping():
    from deepclust.data import find_file, read_mat
    from deepclust.data.hsi import check_gt

    scdsc = read_mat(find_file("hsi/Trento/Trento_gt.mat"))  # background -1
    mirror = read_mat(find_file("hsi/Trento/allgrd.mat"))  # background 0
    assert scdsc.min() == -1 and mirror.min() == 0
    dummy = np.zeros((*scdsc.shape, 1), np.float32)
    np.testing.assert_array_equal(check_gt(dummy, scdsc), check_gt(dummy, mirror))
    assert int((check_gt(dummy, scdsc) > 0).sum()) == 30214


def _tif_tree(root, rng):
    from PIL import Image

    files = {}
    for cls in ("beach", "airplane"):
        for i in range(2):
            rel = f"UCMerced_LandUse/Images/{cls}/{cls}{i:02d}.tif"
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, size=(8, 8, 3)).astype(np.uint8)).save(p)
            files[rel] = p
    return files


def test_ucmerced_from_originals_folder_and_zip(tmp_path):
    """The originals route: per-TIF sha256 checked through the listing digest, box resize."""
    import hashlib
    import zipfile

    from deepclust.data import ChecksumError
    from deepclust.data.loaders import ucmerced_from_originals

    files = _tif_tree(tmp_path, np.random.default_rng(0))
    listing = "".join(
        f"{hashlib.sha256(files[k].read_bytes()).hexdigest()}  {k}\n" for k in sorted(files)
    )
    digest = hashlib.sha256(listing.encode()).hexdigest()
    images = tmp_path / "UCMerced_LandUse" / "Images"
    ds = ucmerced_from_originals(images, image_size=4, expected_digest=digest)
    assert ds.X.shape == (4, 3, 4, 4) and ds.class_names == ["airplane", "beach"]
    np.testing.assert_array_equal(ds.y, [0, 0, 1, 1])
    from PIL import Image

    first = np.asarray(Image.open(files[sorted(files)[0]]), dtype=np.float64)
    box = first.reshape(4, 2, 4, 2, 3).mean(axis=(1, 3))  # 2x2 block means
    np.testing.assert_allclose(
        ds.X[0].transpose(1, 2, 0) * 255, box, atol=1.0
    )  # Pillow rounds in fixed point
    zpath = tmp_path / "UCMerced_LandUse.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        for k in sorted(files, reverse=True):
            zf.write(files[k], k)
    dz = ucmerced_from_originals(zpath, image_size=4, expected_digest=digest)
    np.testing.assert_array_equal(dz.X, ds.X)
    np.testing.assert_array_equal(dz.y, ds.y)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(files[sorted(files)[1]])  # tamper
    with pytest.raises(ChecksumError, match="published sha256 list"):
        ucmerced_from_originals(images, image_size=4, expected_digest=digest)


@pytest.mark.parametrize(
    ("path", "n_labelled", "n_classes"),
    [
        ("hsi/PaviaU/PaviaU_gt.mat", 42776, 9),
        ("hsi/Salinas/Salinas_gt.mat", 54129, 16),
        ("hsi/SalinasA/SalinasA_gt.mat", 5348, 6),
    ],
)
def test_ground_truth_files_of_gt_only_scenes(path, n_labelled, n_classes):
    """The gt files in shared (whose cubes are missing) verify and read as the manifest says."""
    from deepclust.data import find_file, read_mat
    from deepclust.data.fetch import locate
    from deepclust.data.hsi import labelled_mask

    spec = next(f for e in CATALOG.values() for f in e.files if f.path == path)
    if locate(spec) is None:
        pytest.skip(f"{path} not found in $DEEPCLUST_DATA, shared/datasets or the cache")
    gt = read_mat(find_file(path))
    assert int(labelled_mask(gt).sum()) == n_labelled
    assert np.unique(gt[gt > 0]).size == n_classes


def test_wrong_file_in_place_of_a_catalog_npz(isolated, tmp_path, monkeypatch):
    """A file that passes no checksum never reaches the loader; one without checksum is checked."""
    import dataclasses

    from deepclust.data import ChecksumError

    target = tmp_path / "images" / "usps" / "usps.npz"
    target.parent.mkdir(parents=True)
    np.savez(target, a=np.zeros(3))
    with pytest.raises(ChecksumError, match="different version"):
        load_dataset("usps", data_dir=tmp_path)
    entry = CATALOG["usps"]
    unverified = dataclasses.replace(entry.files[0], checksums=(), size=None, note="test")
    monkeypatch.setitem(CATALOG, "usps", dataclasses.replace(entry, files=(unverified,)))
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="lacks the arrays x_train"):
        load_dataset("usps", data_dir=tmp_path)


# -- the catalog file ------------------------------------------------------------------------
_ROW = """
[[dataset]]
name = "tiny-scene"
kind = "scene"
description = "a scene added by one row"
n_samples = 12
n_classes = 2
shape = [4, 5, "unknown"]
loader = "scene"
citation = "nobody"
licence = "none"

[[dataset.files]]
path = "hsi/Tiny/tiny.mat"
checksums = ["sha256:{sha}"]
size = 1_234

[[dataset.files.alternatives]]
path = "hsi/Tiny/tiny_copy.mat"

[[dataset.files]]
path = "hsi/Tiny/tiny_gt.mat"
""".replace("{sha}", "ab" * 32)


def test_adding_a_dataset_is_adding_a_row():
    from deepclust.data.loaders import LOADERS
    from deepclust.data.registry import read_catalog

    (entry,) = read_catalog(_ROW).values()
    assert entry.name == "tiny-scene" and entry.shape == (4, 5, None) and entry.loader is LOADERS["scene"]
    assert [f.path for f in entry.files] == ["hsi/Tiny/tiny.mat", "hsi/Tiny/tiny_gt.mat"]
    assert entry.files[0].size == 1234 and entry.files[0].checksums == ("sha256:" + "ab" * 32,)
    assert entry.files[0].alternatives[0].path == "hsi/Tiny/tiny_copy.mat"
    assert entry.class_names is None and entry.homepage == ""


@pytest.mark.parametrize(
    "edit, match",
    [
        (('loader = "scene"', 'loader = "nope"'), "names loader 'nope'"),
        (('licence = "none"', 'licence = "none"\nlicense = "typo"'), "unknown key"),
        (('size = 1_234', 'sizes = 1_234'), "unknown key"),
    ],
)
def test_catalog_rows_are_checked(edit, match):
    from deepclust.data.registry import read_catalog

    with pytest.raises(ValueError, match=match):
        read_catalog(_ROW.replace(*edit))
    with pytest.raises(ValueError, match="appears twice"):
        read_catalog(_ROW + _ROW)


def test_catalog_file_is_package_data():
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    assert "catalog.toml" in pyproject["tool"]["setuptools"]["package-data"]["deepclust.data"]
    assert list(CATALOG)[:3] == ["digits", "mnist", "mnist-test"] and len(CATALOG) == 13
