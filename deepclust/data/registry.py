# ruff: noqa: E501  (a data table: checksums and citations read best unwrapped)
"""The dataset catalog: every named dataset, its files, checksums, sources and loader.

Checksums and provenance come from ``shared/datasets/*/MANIFEST.md``. Where no sha256 of the
canonical file is known, the entry records what is known and says so in the file's ``note``:

* Fashion-MNIST: the publisher's md5 (verified as md5);
* the large hyperspectral cubes (PaviaU, Salinas, Indian Pines, Trento): the **git blob id**
  of copies seen in public repositories (``git hash-object FILE``), verified as such; where two
  different copies circulate, both ids are accepted;
* Indian Pines ground truth and the SCDSC Houston crop: nothing is known; they load with a
  warning that they are unverified.

Folder layout under a data root mirrors ``shared/datasets``: ``images/<name>/...`` and
``hsi/<Scene>/...``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepclust.data.dataset import Dataset
from deepclust.data.fetch import DataFile
from deepclust.data.files import read_mat
from deepclust.data.hsi import scene_dataset
from deepclust.data.images import read_idx, read_image_zip, read_npz, to_nchw_unit

__all__ = ["CATALOG", "DatasetEntry"]

Resolved = list[tuple[Path, DataFile]]  # aligned with DatasetEntry.files


@dataclass(frozen=True)
class DatasetEntry:
    """One catalog dataset.

    ``shape`` is (C, H, W) of one image for image datasets and (H, W, B) of the cube for scenes
    (``None`` where unknown). ``n_samples`` counts images, or labelled (clustered) pixels.
    ``loader(entry, resolved)`` builds the :class:`Dataset` from the resolved files (one
    ``(path, matched DataFile)`` per entry of ``files``, in order).
    """

    name: str
    kind: str
    description: str
    n_samples: int
    n_classes: int
    shape: tuple[int | None, ...]
    files: tuple[DataFile, ...]
    citation: str
    licence: str
    loader: Callable[[DatasetEntry, Resolved], Dataset]
    homepage: str = ""
    note: str = ""
    class_names: tuple[str, ...] | None = None


# ----------------------------------------------------------------------------- loaders


def _load_digits(entry: DatasetEntry, resolved: Resolved) -> Dataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    X = (d.data.astype(np.float32) / np.float32(16.0)).reshape(-1, 1, 8, 8)  # (1797, 1, 8, 8)
    return Dataset(
        name=entry.name,
        kind="images",
        X=np.ascontiguousarray(X),
        y=d.target.astype(np.int64),
        class_names=list(entry.class_names or ()),
        info={"source": "sklearn.datasets.load_digits"},
    )


def _idx_pairs(entry: DatasetEntry, resolved: Resolved) -> Dataset:
    """IDX image/label pairs, concatenated in catalog order (train before test)."""
    images, labels = [], []
    for (img_path, _), (lab_path, _) in zip(resolved[0::2], resolved[1::2], strict=True):
        x = read_idx(img_path)
        y = read_idx(lab_path)
        if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise ValueError(f"{img_path} {x.shape} and {lab_path} {y.shape} do not form a dataset")
        images.append(x)
        labels.append(y)
    x = np.concatenate(images) if len(images) > 1 else images[0]  # (N, 28, 28) uint8
    X, note = to_nchw_unit(x, layout="NHW")
    y = np.concatenate(labels).astype(np.int64)
    return Dataset(
        name=entry.name,
        kind="images",
        X=X,
        y=y,
        class_names=list(entry.class_names or ()),
        info={"scaling": note, "split_sizes": [int(a.shape[0]) for a in images]},
    )


def _npz(path: Path, *keys: str) -> dict[str, np.ndarray]:
    """Arrays ``keys`` of an npz; ValueError naming the missing ones (a different file)."""
    z = read_npz(path)
    missing = [k for k in keys if k not in z]
    if missing:
        raise ValueError(
            f"{path}: lacks the arrays {', '.join(missing)} (it holds {', '.join(z) or 'none'}); "
            "it is not the catalog's file"
        )
    return z


def _load_usps(entry: DatasetEntry, resolved: Resolved) -> Dataset:
    path, spec = resolved[0]
    if path.suffix == ".npz":
        z = _npz(path, "x_train", "y_train", "x_test", "y_test")
        parts = [(z["x_train"], z["y_train"]), (z["x_test"], z["y_test"])]
    else:
        import h5py

        try:
            with h5py.File(path, "r") as f:
                parts = [
                    (f[s]["data"][()].reshape(-1, 16, 16), f[s]["target"][()])
                    for s in ("train", "test")
                ]
        except (OSError, KeyError) as exc:
            raise ValueError(
                f"{path}: expected groups train/test with data and target ({exc})"
            ) from exc
    x = np.concatenate([p[0] for p in parts]).astype(np.float32)  # (9298, 16, 16) in [0, 1]
    y = np.concatenate([p[1] for p in parts]).astype(np.int64)
    X, note = to_nchw_unit(x, layout="NHW")
    return Dataset(
        name=entry.name,
        kind="images",
        X=X,
        y=y,
        class_names=list(entry.class_names or ()),
        info={"scaling": note, "split_sizes": [int(p[0].shape[0]) for p in parts]},
    )


_COIL_NAME = re.compile(r"obj(\d+)__(\d+)\.png$")


def _load_coil20(entry: DatasetEntry, resolved: Resolved) -> Dataset:
    path, spec = resolved[0]
    if path.suffix == ".npz":
        z = _npz(path, "images", "labels", "pose")
        X, note = to_nchw_unit(z["images"], layout="NHW")  # (1440, 1, 128, 128)
        y = z["labels"].astype(np.int64)
        info = {"scaling": note, "pose": z["pose"].astype(np.int64)}
    else:  # the original coil-20-proc.zip of PNGs: order obj1 poses 0..71, obj2, ...
        X, names = read_image_zip(path)
        keys = []
        for n in names:
            m = _COIL_NAME.search(n)
            if m is None:
                raise ValueError(f"{path}: unexpected member {n!r} (expected objO__P.png)")
            keys.append((int(m.group(1)), int(m.group(2))))
        order = sorted(range(len(keys)), key=keys.__getitem__)
        X = X[order]
        y = np.asarray([keys[i][0] - 1 for i in order], dtype=np.int64)
        info = {
            "scaling": "uint8/255",
            "pose": np.asarray([keys[i][1] for i in order], dtype=np.int64),
        }
    return Dataset(name=entry.name, kind="images", X=X, y=y, info=info)


# sha256 of SHA256SUMS_original_tifs.txt (shared/datasets/images/ucmerced): the text
# "<sha256>  UCMerced_LandUse/Images/<class>/<file>.tif\n" for the 2,100 original TIFs, sorted by
# path. Rebuilding that text from the TIFs read and hashing it verifies every image's bytes
# without shipping 2,100 hashes.
UCMERCED_TIFS_LISTING_SHA256 = "905817e4f12f15aeb7217bf0baf1779bc817056c00a5971b7c730785b161406b"
_UCM_MEMBER = re.compile(r"(?:^|/)UCMerced_LandUse/Images/([^/]+)/([^/]+\.tif)$")


def _load_ucmerced(entry: DatasetEntry, resolved: Resolved) -> Dataset:
    path, _ = resolved[0]
    if path.suffix == ".npz":
        z = _npz(path, "images", "labels", "class_names", "filenames")
        X, note = to_nchw_unit(z["images"], layout="NHWC")  # (2100, 3, 64, 64)
        return Dataset(
            name=entry.name,
            kind="images",
            X=X,
            y=z["labels"].astype(np.int64),
            class_names=[str(c) for c in z["class_names"]],
            info={"scaling": note, "files": [str(f) for f in z["filenames"]]},
        )
    return ucmerced_from_originals(path, image_size=entry.shape[1:], name=entry.name)


def ucmerced_from_originals(
    path: str | Path,
    *,
    image_size: int | tuple[int, int] | None = 64,
    name: str = "ucmerced",
    expected_digest: str | None = None,
) -> Dataset:
    """UC Merced from the original TIFs: ``UCMerced_LandUse.zip`` or its unzipped ``Images`` folder.

    Every TIF's sha256 is checked against the published list (through the digest of the list,
    :data:`UCMERCED_TIFS_LISTING_SHA256`); a mismatch raises :class:`ChecksumError`. Images are
    converted to RGB and resized with a box filter to ``image_size`` (64 reproduces the
    catalog's 64x64 npz exactly; None keeps 256x256 but then the 44 off-size originals make it
    fail: pass 256 to resize them). Order: by class (alphabetical), then file name.
    """
    import hashlib

    from deepclust.data.fetch import ChecksumError
    from deepclust.data.images import _as_size, _read_images

    path = Path(path)
    digests: dict = {}
    size = _as_size(image_size)
    if path.is_dir():
        files = sorted(path.rglob("*.tif"))
        rel = {f: "UCMerced_LandUse/Images/" + "/".join(f.relative_to(path).parts) for f in files}
        members = sorted(files, key=rel.__getitem__)
        X = _read_images(members, lambda f: open(f, "rb"), size=size, digests=digests)
        keys = [rel[f] for f in members]
    else:
        import zipfile

        try:
            with zipfile.ZipFile(path) as zf:
                names = sorted(n for n in zf.namelist() if _UCM_MEMBER.search(n))
                if not names:
                    raise ValueError(f"{path}: no UCMerced_LandUse/Images/<class>/*.tif inside")
                X = _read_images(names, zf.open, size=size, digests=digests)
        except zipfile.BadZipFile as exc:
            raise ValueError(f"{path}: not a readable zip archive ({exc})") from exc
        members = names
        keys = [n[n.index("UCMerced_LandUse/") :] for n in names]
    listing = "".join(f"{digests[m]}  {k}\n" for m, k in zip(members, keys, strict=True))
    got = hashlib.sha256(listing.encode()).hexdigest()
    want = expected_digest or UCMERCED_TIFS_LISTING_SHA256
    if got != want:
        raise ChecksumError(
            f"{path}: the {len(keys)} TIFs do not match the published sha256 list of the 2,100 "
            f"UC Merced originals (listing digest {got}, expected {want}); some images are "
            "missing, extra or modified"
        )
    classes = sorted({k.split("/")[2] for k in keys})
    y = np.asarray([classes.index(k.split("/")[2]) for k in keys], dtype=np.int64)
    return Dataset(
        name=name,
        kind="images",
        X=X,
        y=y,
        class_names=classes,
        info={"files": ["/".join(k.split("/")[2:]) for k in keys], "source": str(path)},
    )


def _load_scene(entry: DatasetEntry, resolved: Resolved) -> Dataset:
    (cube_path, _), (gt_path, _) = resolved[0], resolved[1]
    cube = read_mat(cube_path)
    gt = read_mat(gt_path)
    H, W = entry.shape[0], entry.shape[1]
    B = entry.shape[2] if len(entry.shape) > 2 else None
    if cube.ndim != 3 or cube.shape[:2] != (H, W) or (B is not None and cube.shape[2] != B):
        raise ValueError(
            f"{cube_path}: the cube has shape {cube.shape}, expected ({H}, {W}, {B or 'B'}) "
            f"for {entry.name}; it is a different version of the scene or stored transposed"
        )
    ds = scene_dataset(entry.name, cube, gt, info={"cube_dtype": str(cube.dtype)})
    if entry.class_names is not None:
        ids = np.unique(ds.y)
        ds.class_names = [
            entry.class_names[i - 1] if 1 <= i <= len(entry.class_names) else str(i) for i in ids
        ]
    return ds


# ----------------------------------------------------------------------------- files

_EHU = "https://www.ehu.eus/ccwintco/uploads/"
_EHU_PAGE = "https://www.ehu.eus/ccwintco/index.php/Hyperspectral_Remote_Sensing_Scenes"
_EHU_LICENCE = (
    "No licence stated by the EHU GIC page; free for research. Cite the EHU page and "
    "the data's originators."
)
_MNIST_URLS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


def _mnist_file(name: str, sha256: str, md5: str, size: int) -> DataFile:
    return DataFile(
        path=f"images/mnist/{name}",
        checksums=(f"sha256:{sha256}", f"md5:{md5}"),
        size=size,
        urls=tuple(u + name for u in _MNIST_URLS),
        source="http://yann.lecun.com/exdb/mnist/",
    )


_MNIST_TRAIN = (
    _mnist_file(
        "train-images-idx3-ubyte.gz",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        9_912_422,
    ),
    _mnist_file(
        "train-labels-idx1-ubyte.gz",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "d53e105ee54ea40749a09fcbcd1e9432",
        28_881,
    ),
)
_MNIST_TEST = (
    _mnist_file(
        "t10k-images-idx3-ubyte.gz",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "9fb629c4189551a2d022fa330f9573f3",
        1_648_877,
    ),
    _mnist_file(
        "t10k-labels-idx1-ubyte.gz",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        "ec29112dd5afa0611ce80d1b7f02629c",
        4_542,
    ),
)


def _fashion_file(name: str, md5: str) -> DataFile:
    return DataFile(
        path=f"images/fashion-mnist/{name}",
        checksums=(f"md5:{md5}",),
        urls=(_FASHION_URL + name,),
        source="https://github.com/zalandoresearch/fashion-mnist",
        note="only the publisher's md5 is known (no sha256): the file is verified by md5",
    )


_FASHION = (
    _fashion_file("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    _fashion_file("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
    _fashion_file("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
    _fashion_file("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
)

_GITBLOB_NOTE = (
    "no sha256 of the canonical file is known; the checksum is the git blob id "
    "(`git hash-object FILE`) of the copy in a public repository, per the manifest"
)

_SALINAS_CLASSES = (
    "Brocoli_green_weeds_1",
    "Brocoli_green_weeds_2",
    "Fallow",
    "Fallow_rough_plow",
    "Fallow_smooth",
    "Stubble",
    "Celery",
    "Grapes_untrained",
    "Soil_vinyard_develop",
    "Corn_senesced_green_weeds",
    "Lettuce_romaine_4wk",
    "Lettuce_romaine_5wk",
    "Lettuce_romaine_6wk",
    "Lettuce_romaine_7wk",
    "Vinyard_untrained",
    "Vinyard_vertical_trellis",
)

_DIGITS = tuple(str(i) for i in range(10))


def _entries() -> dict[str, DatasetEntry]:
    e: list[DatasetEntry] = []
    e.append(
        DatasetEntry(
            name="digits",
            kind="images",
            description="scikit-learn's 8x8 handwritten digits (UCI optdigits test part), 0..16 -> [0, 1]",
            n_samples=1797,
            n_classes=10,
            shape=(1, 8, 8),
            files=(),
            citation="E. Alpaydin, C. Kaynak, 'Optical Recognition of Handwritten Digits', UCI Machine "
            "Learning Repository, 1998",
            licence="CC BY 4.0 (UCI); shipped with scikit-learn",
            loader=_load_digits,
            homepage="https://archive.ics.uci.edu/dataset/80",
            class_names=_DIGITS,
        )
    )
    mnist_cite = (
        "Y. LeCun, L. Bottou, Y. Bengio, P. Haffner, 'Gradient-based learning applied to "
        "document recognition', Proc. IEEE 86(11), 1998"
    )
    mnist_lic = (
        "No formal licence on the original page; commonly redistributed and described as "
        "CC BY-SA 3.0 (Y. LeCun, C. Cortes)"
    )
    e.append(
        DatasetEntry(
            name="mnist",
            kind="images",
            description="MNIST handwritten digits, train (60,000) then test (10,000), as the papers use it",
            n_samples=70_000,
            n_classes=10,
            shape=(1, 28, 28),
            files=_MNIST_TRAIN + _MNIST_TEST,
            citation=mnist_cite,
            licence=mnist_lic,
            loader=_idx_pairs,
            homepage="http://yann.lecun.com/exdb/mnist/",
            class_names=_DIGITS,
        )
    )
    e.append(
        DatasetEntry(
            name="mnist-test",
            kind="images",
            description="MNIST test set only (10,000)",
            n_samples=10_000,
            n_classes=10,
            shape=(1, 28, 28),
            files=_MNIST_TEST,
            citation=mnist_cite,
            licence=mnist_lic,
            loader=_idx_pairs,
            homepage="http://yann.lecun.com/exdb/mnist/",
            class_names=_DIGITS,
        )
    )
    e.append(
        DatasetEntry(
            name="usps",
            kind="images",
            description="USPS handwritten digits 16x16, train (7,291) then test (2,007)",
            n_samples=9298,
            n_classes=10,
            shape=(1, 16, 16),
            files=(
                DataFile(
                    path="images/usps/usps.npz",
                    checksums=(
                        "sha256:e5a85b6f967c7df14a420a6ad41b365d14eb2af64bff29cfc6bacb5eb7602c8b",
                    ),
                    size=2_408_968,
                    source="deepclust's npz of the arrays of the widely used usps.h5 (Kaggle 'USPS dataset', "
                    "bistaumanga); the h5 is accepted instead",
                    alternatives=(
                        DataFile(
                            path="images/usps/usps.h5",
                            checksums=(
                                "sha256:734f88c541104a956d88be2c95d03b4a463ffd74ccc2ba9c80841fb98e3fcb36",
                            ),
                            size=2_913_522,
                            source="https://www.kaggle.com/datasets/bistaumanga/usps-dataset (usps.h5); a copy is "
                            "in github.com/niuers/Learning-From-Data-A-Short-Course data/usps.h5",
                        ),
                    ),
                ),
            ),
            citation="J. J. Hull, 'A database for handwritten text recognition research', IEEE TPAMI "
            "16(5), 1994",
            licence="None stated; used as a research benchmark",
            loader=_load_usps,
            homepage="https://www.csie.ntu.edu.tw/~cjlin/libsvmtools/datasets/multiclass.html#usps",
            class_names=_DIGITS,
        )
    )
    e.append(
        DatasetEntry(
            name="fashion-mnist",
            kind="images",
            description="Fashion-MNIST 28x28, train (60,000) then test (10,000)",
            n_samples=70_000,
            n_classes=10,
            shape=(1, 28, 28),
            files=_FASHION,
            citation="H. Xiao, K. Rasul, R. Vollgraf, 'Fashion-MNIST: a novel image dataset for "
            "benchmarking machine learning algorithms', arXiv:1708.07747, 2017",
            licence="MIT (Zalando Research)",
            loader=_idx_pairs,
            homepage="https://github.com/zalandoresearch/fashion-mnist",
            note="not in shared/datasets; verified by the publisher's md5 (no sha256 is published)",
            class_names=(
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ),
        )
    )
    e.append(
        DatasetEntry(
            name="coil20",
            kind="images",
            description="COIL-20 processed: 20 objects x 72 poses, 128x128 grey",
            n_samples=1440,
            n_classes=20,
            shape=(1, 128, 128),
            files=(
                DataFile(
                    path="images/coil20/coil20_128x128.npz",
                    checksums=(
                        "sha256:a688bed7e35716552f778401193abca6379feff1958769f1615fca3c1e446325",
                    ),
                    size=12_179_121,
                    source="deepclust's npz of the 1,440 PNGs; the original coil-20-proc.zip is accepted "
                    "instead",
                    alternatives=(
                        DataFile(
                            path="images/coil20/coil-20-proc.zip",
                            urls=(
                                "http://www.cs.columbia.edu/CAVE/databases/SLAM_coil-20_coil-100/coil-20/"
                                "coil-20-proc.zip",
                            ),
                            source="https://www.cs.columbia.edu/CAVE/software/softlib/coil-20.php",
                            note="no checksum of the canonical archive is known (the copy in shared/datasets "
                            "is a re-pack with sha256 17399be3f8b5701db976ba1ed977c361e9800c96eb6825877267"
                            "af1f25b3231c); its content is checked: 1,440 PNGs objO__P.png of 128x128",
                        ),
                    ),
                ),
            ),
            citation="S. A. Nene, S. K. Nayar, H. Murase, 'Columbia Object Image Library (COIL-20)', "
            "Technical Report CUCS-005-96, 1996",
            licence="Columbia CAVE terms: research / non-commercial use",
            loader=_load_coil20,
            homepage="https://www.cs.columbia.edu/CAVE/software/softlib/coil-20.php",
        )
    )
    e.append(
        DatasetEntry(
            name="ucmerced",
            kind="images",
            description="UC Merced Land Use, 21 classes x 100 RGB aerial images, downsampled to 64x64 "
            "(box filter) from the 256x256 originals",
            n_samples=2100,
            n_classes=21,
            shape=(3, 64, 64),
            files=(
                DataFile(
                    path="images/ucmerced/ucmerced_64x64.npz",
                    checksums=(
                        "sha256:aa2aff1b39448a3bcabbec8fcebf04eb96f659b98c1ea34d3b730d857b57f75e",
                    ),
                    size=21_464_254,
                    source="a 64x64 derivative kept in shared/datasets (no public URL); the "
                    "original archive (or its unzipped Images folder) is accepted instead and "
                    "gives the same arrays",
                    alternatives=(
                        DataFile(
                            path="images/ucmerced/UCMerced_LandUse.zip",
                            urls=(
                                "http://weegee.vision.ucmerced.edu/datasets/UCMerced_LandUse.zip",
                            ),
                            source="http://weegee.vision.ucmerced.edu/datasets/landuse.html",
                            note="no checksum of the archive itself is known",
                            content_check="every TIF's sha256 against the published list",
                        ),
                        DataFile(
                            path="images/ucmerced/UCMerced_LandUse/Images",
                            source="the unzipped UCMerced_LandUse.zip",
                            content_check="every TIF's sha256 against the published list",
                        ),
                    ),
                ),
            ),
            citation="Y. Yang, S. Newsam, 'Bag-of-visual-words and spatial extensions for land-use "
            "classification', ACM SIGSPATIAL GIS 2010",
            licence="USGS National Map imagery, public domain",
            loader=_load_ucmerced,
            homepage="http://weegee.vision.ucmerced.edu/datasets/landuse.html",
            note="PICI uses the 256x256 originals; this entry is 64x64 (box filter). For "
            "full size: deepclust.data.registry.ucmerced_from_originals(zip_or_folder, "
            "image_size=256)",
        )
    )
    e.append(
        DatasetEntry(
            name="salinas-a",
            kind="scene",
            description="Salinas-A (AVIRIS), 83x86 pixels, 204 bands, 6 classes (ids 1, 10..14 of Salinas)",
            n_samples=5348,
            n_classes=6,
            shape=(83, 86, 204),
            files=(
                DataFile(
                    path="hsi/SalinasA/SalinasA_corrected.mat",
                    checksums=(
                        "sha256:d75684ed3ab71a1024cee0f9db9061f50a3523a92ff5edfbbb1eed976b9f1721",
                    ),
                    size=1_539_086,
                    urls=(_EHU + "1/1a/SalinasA_corrected.mat",),
                    source=_EHU_PAGE,
                ),
                DataFile(
                    path="hsi/SalinasA/SalinasA_gt.mat",
                    checksums=(
                        "sha256:17814c1d3296c0e29b27f320f2c4174d2a68adb87e376abe78f02923e2c2e454",
                    ),
                    size=587,
                    urls=(_EHU + "a/aa/SalinasA_gt.mat",),
                    source=_EHU_PAGE,
                ),
            ),
            citation="AVIRIS Salinas-A scene (NASA JPL), via the EHU GIC Hyperspectral Remote Sensing "
            "Scenes page",
            licence=_EHU_LICENCE,
            loader=_load_scene,
            homepage=_EHU_PAGE,
            note="class ids are kept as in the ground truth (1, 10, 11, 12, 13, 14)",
            class_names=_SALINAS_CLASSES,
        )
    )
    e.append(
        DatasetEntry(
            name="paviau",
            kind="scene",
            description="Pavia University (ROSIS), 610x340 pixels, 103 bands, 9 classes",
            n_samples=42_776,
            n_classes=9,
            shape=(610, 340, 103),
            files=(
                DataFile(
                    path="hsi/PaviaU/PaviaU.mat",
                    checksums=("gitblob:6eecc933bedec1130bb046483dd12e25cf091b24",),
                    urls=(_EHU + "e/ee/PaviaU.mat",),
                    source=_EHU_PAGE,
                    note=_GITBLOB_NOTE,
                ),
                DataFile(
                    path="hsi/PaviaU/PaviaU_gt.mat",
                    checksums=(
                        "sha256:23f6a426928f9b32984adffe659e29f554f9fb6c93b5a107528d308d5087a829",
                    ),
                    size=11_005,
                    urls=(_EHU + "5/50/PaviaU_gt.mat",),
                    source=_EHU_PAGE,
                ),
            ),
            citation="ROSIS Pavia University scene, courtesy of Prof. P. Gamba, University of Pavia; "
            "via the EHU GIC Hyperspectral Remote Sensing Scenes page",
            licence=_EHU_LICENCE,
            loader=_load_scene,
            homepage=_EHU_PAGE,
            class_names=(
                "Asphalt",
                "Meadows",
                "Gravel",
                "Trees",
                "Painted metal sheets",
                "Bare Soil",
                "Bitumen",
                "Self-Blocking Bricks",
                "Shadows",
            ),
        )
    )
    e.append(
        DatasetEntry(
            name="trento",
            kind="scene",
            description="Trento (AISA Eagle HSI), 166x600 pixels, 63 bands, 6 classes; the SCDSC "
            "author's files (background -1 mapped to 0)",
            n_samples=30_214,
            n_classes=6,
            shape=(166, 600, 63),
            files=(
                DataFile(
                    path="hsi/Trento/Trento.mat",
                    checksums=("gitblob:c575aa9ccc7073f1ef4ae4d5b233670d49ff8b07",),
                    urls=(
                        "https://github.com/lxlscut/superpixel_ssc/raw/"
                        "ea065a728a9a8a5b1743d02f54202d2edcb8412e/data/trento/Trento.mat",
                    ),
                    source="the SCDSC first author's repository lxlscut/superpixel_ssc, data/trento/",
                    note=_GITBLOB_NOTE,
                    alternatives=(
                        DataFile(
                            path="hsi/Trento/Italy_hsi.mat",
                            checksums=(
                                "sha256:7b965fd405314b5c91451042e547a1923be6f5a38c6da83969032cff79729280",
                                "gitblob:f8c998df64036459df4817d67aacbf473fbb2475",
                            ),
                            urls=(
                                "https://github.com/tyust-dayu/Trento/raw/"
                                "929599b54968dbfaffe1d9511627fc8230ea732b/Italy_hsi.mat",
                            ),
                            source="community mirror https://github.com/tyust-dayu/Trento",
                        ),
                    ),
                ),
                DataFile(
                    path="hsi/Trento/Trento_gt.mat",
                    checksums=(
                        "sha256:b6e44caf1f1664422b5bc7024342d56b42968e5a775c21a8c4f0f1a5629ac6ef",
                    ),
                    size=796_984,
                    urls=(
                        "https://github.com/lxlscut/superpixel_ssc/raw/"
                        "ea065a728a9a8a5b1743d02f54202d2edcb8412e/data/trento/Trento_gt.mat",
                    ),
                    source="lxlscut/superpixel_ssc data/trento/Trento_gt.mat (background -1)",
                    alternatives=(
                        DataFile(
                            path="hsi/Trento/allgrd.mat",
                            checksums=(
                                "sha256:7e3fb2a2ea22c2661dfc768db3cb93c9643b324e7e64fadedfa57f5edbf1818f",
                            ),
                            size=3235,
                            urls=(
                                "https://github.com/tyust-dayu/Trento/raw/"
                                "929599b54968dbfaffe1d9511627fc8230ea732b/allgrd.mat",
                            ),
                            source="community mirror https://github.com/tyust-dayu/Trento (background 0)",
                        ),
                    ),
                ),
            ),
            citation="P. Ghamisi, B. Hoefle, X. X. Zhu, 'Hyperspectral and LiDAR data fusion using "
            "extinction profiles and deep convolutional neural network', IEEE JSTARS 2017; "
            "data courtesy of Prof. L. Bruzzone, University of Trento",
            licence="No official open download and no licence stated (RSLab, University of Trento)",
            loader=_load_scene,
            homepage="https://github.com/tyust-dayu/Trento",
            class_names=("Apple trees", "Buildings", "Ground", "Woods", "Vineyard", "Roads"),
        )
    )
    houston_note = (
        "the SCDSC Houston crop (130x130, 7 classes, 6,104 labelled pixels) has no "
        "public source: the SCDSC repository ships no data and no crop code, and the "
        "crop cannot be cut from the 2013 GRSS DFC ground truth. If you have the "
        "authors' Houston_corrected.mat and Houston_gt.mat, put them here; they are "
        "loaded unverified (no checksum is known)"
    )
    e.append(
        DatasetEntry(
            name="houston",
            kind="scene",
            description="Houston as used by SCDSC: a 130x130 crop, 7 classes, 6,104 labelled pixels "
            "(source not public)",
            n_samples=6104,
            n_classes=7,
            shape=(130, 130, None),
            files=(
                DataFile(
                    path="hsi/Houston/Houston_corrected.mat",
                    note=houston_note,
                    source="not public (see note)",
                ),
                DataFile(
                    path="hsi/Houston/Houston_gt.mat",
                    note=houston_note,
                    source="not public (see note)",
                ),
            ),
            citation="SCDSC's crop of University of Houston hyperspectral data (2013/2018 IEEE GRSS "
            "Data Fusion Contest; Debes et al., IEEE JSTARS 7(6), 2014)",
            licence="GRSS DFC terms (acknowledge the UH Hyperspectral Image Analysis group and NSF NCALM)",
            loader=_load_scene,
            homepage="https://hyperspectral.ee.uh.edu/?page_id=459",
            note=houston_note,
        )
    )
    e.append(
        DatasetEntry(
            name="indian-pines",
            kind="scene",
            description="Indian Pines (AVIRIS), 145x145 pixels, 200 bands (water absorption removed), "
            "16 classes",
            n_samples=10_249,
            n_classes=16,
            shape=(145, 145, 200),
            files=(
                DataFile(
                    path="hsi/IndianPines/Indian_pines_corrected.mat",
                    checksums=(
                        "gitblob:75b6d6e7df046fce91eda23e7559e274c92da711",
                        "gitblob:519d923883b7c45ed73e4ee3e692ec68cbaec763",
                    ),
                    urls=(_EHU + "6/67/Indian_pines_corrected.mat",),
                    source=_EHU_PAGE,
                    note=_GITBLOB_NOTE + " (two copies circulate; either is accepted)",
                ),
                DataFile(
                    path="hsi/IndianPines/Indian_pines_gt.mat",
                    urls=(_EHU + "c/c4/Indian_pines_gt.mat",),
                    source=_EHU_PAGE,
                    note="no checksum of any copy is known: loaded (and downloaded) unverified",
                ),
            ),
            citation="M. F. Baumgardner, L. L. Biehl, D. A. Landgrebe, '220 band AVIRIS hyperspectral "
            "image data set: June 12, 1992 Indian Pine Test Site 3', Purdue University "
            "Research Repository, 2015",
            licence=_EHU_LICENCE,
            loader=_load_scene,
            homepage=_EHU_PAGE,
            note="not in shared/datasets",
            class_names=(
                "Alfalfa",
                "Corn-notill",
                "Corn-mintill",
                "Corn",
                "Grass-pasture",
                "Grass-trees",
                "Grass-pasture-mowed",
                "Hay-windrowed",
                "Oats",
                "Soybean-notill",
                "Soybean-mintill",
                "Soybean-clean",
                "Wheat",
                "Woods",
                "Buildings-Grass-Trees-Drives",
                "Stone-Steel-Towers",
            ),
        )
    )
    e.append(
        DatasetEntry(
            name="salinas",
            kind="scene",
            description="Salinas Valley (AVIRIS), 512x217 pixels, 204 bands, 16 classes",
            n_samples=54_129,
            n_classes=16,
            shape=(512, 217, 204),
            files=(
                DataFile(
                    path="hsi/Salinas/Salinas_corrected.mat",
                    checksums=(
                        "gitblob:3446a941928f16b89e990d9ba8f91d6618318469",
                        "gitblob:2a745377a77369bd5a9d430c722f0bf5e0d0ffc1",
                    ),
                    urls=(_EHU + "a/a3/Salinas_corrected.mat",),
                    source=_EHU_PAGE,
                    note=_GITBLOB_NOTE + " (two copies circulate; either is accepted)",
                ),
                DataFile(
                    path="hsi/Salinas/Salinas_gt.mat",
                    checksums=(
                        "sha256:ecfab4d31ef5553f097943235d8ea502038eb4a2067b2ad10b33e37c949955e2",
                    ),
                    size=4277,
                    urls=(_EHU + "f/fa/Salinas_gt.mat",),
                    source=_EHU_PAGE,
                ),
            ),
            citation="AVIRIS Salinas Valley scene (NASA JPL), via the EHU GIC Hyperspectral Remote "
            "Sensing Scenes page",
            licence=_EHU_LICENCE,
            loader=_load_scene,
            homepage=_EHU_PAGE,
            class_names=_SALINAS_CLASSES,
        )
    )
    return {entry.name: entry for entry in e}


CATALOG: dict[str, DatasetEntry] = _entries()
