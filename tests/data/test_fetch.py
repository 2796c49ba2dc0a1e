"""Lookup order, checksums and the verified download (against a local HTTP server)."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import warnings

import numpy as np
import pytest

from deepclust.data import (
    CATALOG,
    ChecksumError,
    DataFile,
    DatasetEntry,
    DatasetNotFoundError,
    fetch,
    find_file,
    load_dataset,
)
from deepclust.data.loaders import _idx_pairs

PAYLOAD = b"deepclust test payload\n" * 100


def _spec(path="x/y/file.bin", data=PAYLOAD, kind="sha256", urls=()):
    if kind == "gitblob":
        digest = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
    else:
        digest = hashlib.new(kind, data).hexdigest()
    return DataFile(path=path, checksums=(f"{kind}:{digest}",), size=len(data), urls=urls)


def _put(root, spec, data=PAYLOAD):
    p = root / spec.path
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


# ----------------------------------------------------------------------------- checksums


def test_file_digest_matches_hashlib_and_git(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(PAYLOAD)
    assert fetch.file_digest(p, "sha256") == hashlib.sha256(PAYLOAD).hexdigest()
    assert fetch.file_digest(p, "md5") == hashlib.md5(PAYLOAD).hexdigest()
    blob = hashlib.sha1(b"blob %d\0" % len(PAYLOAD) + PAYLOAD).hexdigest()
    assert fetch.file_digest(p, "gitblob") == blob
    try:  # the reference: git itself, when installed
        out = subprocess.run(["git", "hash-object", str(p)], capture_output=True, text=True)
    except FileNotFoundError:
        return
    if out.returncode == 0:
        assert out.stdout.strip() == blob


@pytest.mark.parametrize("kind", ["sha256", "md5", "gitblob"])
def test_verify_accepts_good_and_rejects_bad(tmp_path, kind):
    spec = _spec(kind=kind)
    good = _put(tmp_path, spec)
    fetch._VERIFIED.clear()
    fetch.verify_file(good, spec)  # no error
    bad = tmp_path / "bad.bin"
    bad.write_bytes(PAYLOAD[:-1] + b"X")  # same size, one byte changed
    with pytest.raises(ChecksumError, match="does not match the catalog"):
        fetch.verify_file(bad, spec)


def test_verify_size_mismatch_and_no_checksum_warns(tmp_path):
    spec = _spec()
    short = tmp_path / "short.bin"
    short.write_bytes(PAYLOAD[:10])
    with pytest.raises(ChecksumError, match="truncated"):
        fetch.verify_file(short, spec)
    with pytest.warns(UserWarning, match="without verification"):
        fetch.verify_file(short, DataFile(path="a/short.bin"))


def test_verify_any_of_several_checksums(tmp_path):
    p = tmp_path / "f.bin"
    p.write_bytes(PAYLOAD)
    spec = DataFile(
        path="f.bin",
        checksums=("gitblob:" + "0" * 40, "sha256:" + hashlib.sha256(PAYLOAD).hexdigest()),
    )
    fetch.verify_file(p, spec)


# ----------------------------------------------------------------------------- lookup order


def test_lookup_order_env_beats_shared_beats_cache(isolated, monkeypatch):
    spec = _spec()
    shared = isolated / "co" / "shared" / "datasets"
    env = isolated / "envroot"
    cache = isolated / "xdg" / "deepclust"
    for root in (shared, env, cache):
        _put(root, spec)

    # all three present: env wins
    monkeypatch.setenv("DEEPCLUST_DATA", str(env))
    assert find_file(spec) == env / spec.path
    origins = [o for o, _ in fetch.data_roots()]
    assert origins[0] == "DEEPCLUST_DATA" and origins[-1] == "cache" and "shared" in origins
    # no env: shared (beside the checkout) beats the cache
    monkeypatch.delenv("DEEPCLUST_DATA")
    assert find_file(spec) == shared / spec.path
    # no shared: the cache
    (shared / spec.path).unlink()
    assert find_file(spec) == cache / spec.path
    # data_dir given: only there
    other = isolated / "explicit"
    with pytest.raises(DatasetNotFoundError):
        find_file(spec, data_dir=other)
    _put(other, spec)
    assert find_file(spec, data_dir=other) == other / spec.path


def test_lookup_does_not_depend_on_the_working_directory(isolated, monkeypatch):
    """A shared/datasets beside the cwd (or an ancestor) is not searched: the same command finds
    the same files wherever it is typed."""
    spec = _spec()
    elsewhere = isolated / "elsewhere"
    _put(elsewhere / "shared" / "datasets", spec)
    _put(elsewhere / "sub" / "shared" / "datasets", spec)
    monkeypatch.chdir(elsewhere / "sub")
    assert all(o != "shared" for o, _ in fetch.data_roots())
    with pytest.raises(DatasetNotFoundError):
        find_file(spec)
    # the checkout's own ../shared/datasets is found from any folder
    _put(isolated / "co" / "shared" / "datasets", spec)
    assert find_file(spec) == isolated / "co" / "shared" / "datasets" / spec.path


def test_user_config_data_dir(isolated, monkeypatch):
    spec = _spec()
    configured = isolated / "mydata"
    _put(configured, spec)
    _put(isolated / "xdg" / "deepclust", spec)  # the cache comes after the config
    cfg = fetch.config_path()
    assert cfg == isolated / "config" / "deepclust" / "config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text(f'data_dir = "{configured}"\n')
    assert [o for o, _ in fetch.data_roots()][0] == "config"
    assert find_file(spec) == configured / spec.path
    monkeypatch.setenv("DEEPCLUST_DATA", str(isolated / "envroot"))  # the variable beats the config
    assert [o for o, _ in fetch.data_roots()][:2] == ["DEEPCLUST_DATA", "config"]
    cfg.write_text("data_dir = 3\n")
    with pytest.raises(ValueError, match="data_dir must be a string"):
        fetch.data_roots()
    cfg.write_text("data_dir = [\n")
    with pytest.raises(ValueError, match="not a readable TOML"):
        fetch.data_roots()


def test_missing_file_message_names_file_folder_and_url(isolated):
    spec = _spec(urls=("https://example.org/data/file.bin",))
    with pytest.raises(DatasetNotFoundError) as err:
        find_file(spec)
    msg = str(err.value)
    assert "file.bin" in msg
    assert str(isolated / "xdg" / "deepclust" / "x" / "y") in msg  # the folder to put it in
    assert "https://example.org/data/file.bin" in msg
    assert "DEEPCLUST_DOWNLOAD=1" in msg
    assert isinstance(err.value, FileNotFoundError)
    # one sentence a line; the command-line variant names the flag, not the keyword argument
    assert "download=True" in msg and "--download" not in msg
    cli = err.value.cli_message
    assert "--download" in cli and "download=True" not in cli
    lines = cli.splitlines()
    assert lines[0] == "data file 'file.bin' was not found." and len(lines) >= 4
    assert any(line.strip().startswith("Get it from https://example.org/data/file.bin") for line in lines)


def test_missing_catalog_dataset_message(isolated, tmp_path):
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("paviau", data_dir=tmp_path / "empty")
    msg = str(err.value)
    assert "PaviaU.mat" in msg and "https://www.ehu.eus/ccwintco/uploads/e/ee/PaviaU.mat" in msg
    assert str(tmp_path / "empty" / "hsi" / "PaviaU") in msg
    with pytest.raises(DatasetNotFoundError, match="no public source"):
        load_dataset("houston", data_dir=tmp_path / "empty")


def test_corrupt_local_file_raises_checksum_error(isolated, tmp_path):
    spec = _spec()
    _put(tmp_path, spec, data=PAYLOAD[:-1] + b"!")
    with pytest.raises(ChecksumError):
        find_file(spec, data_dir=tmp_path)


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ValueError, match="did you mean 'mnist'"):
        load_dataset("mnsit")
    with pytest.raises(ValueError, match="Known datasets: digits"):
        load_dataset("no-such-thing")
    assert load_dataset("DIGITS").name == "digits"  # case-insensitive


def test_no_download_by_default(isolated, http_root, monkeypatch):
    served, base = http_root
    spec = _spec(urls=(base + "file.bin",))
    _put(served, DataFile(path="file.bin"))
    with pytest.raises(DatasetNotFoundError, match="download=True"):
        find_file(spec)
    assert not (isolated / "xdg" / "deepclust" / spec.path).exists()


# ----------------------------------------------------------------------------- download


def test_download_good_file(isolated, http_root, tmp_path):
    served, base = http_root
    (served / "file.bin").write_bytes(PAYLOAD)
    for kind in ("sha256", "md5", "gitblob"):
        spec = _spec(path=f"{kind}/file.bin", kind=kind, urls=(base + "file.bin",))
        dest_root = tmp_path / "dl"
        path = find_file(spec, data_dir=dest_root, download=True)
        assert path == dest_root / spec.path
        assert path.read_bytes() == PAYLOAD
        assert [p.name for p in path.parent.iterdir()] == ["file.bin"]  # no temp files left


def test_download_via_env_goes_to_cache(isolated, http_root, monkeypatch):
    served, base = http_root
    (served / "file.bin").write_bytes(PAYLOAD)
    monkeypatch.setenv("DEEPCLUST_DOWNLOAD", "1")
    spec = _spec(urls=(base + "file.bin",))
    path = find_file(spec)
    assert path == isolated / "xdg" / "deepclust" / spec.path
    assert path.read_bytes() == PAYLOAD


def test_download_corrupted_file_leaves_nothing(isolated, http_root, tmp_path):
    served, base = http_root
    (served / "file.bin").write_bytes(PAYLOAD[:-1] + b"?")  # same size, wrong bytes
    spec = _spec(urls=(base + "file.bin",))
    dest_root = tmp_path / "dl"
    with pytest.raises(ChecksumError, match="nothing was saved"):
        find_file(spec, data_dir=dest_root, download=True)
    folder = dest_root / spec.folder
    assert not (dest_root / spec.path).exists()
    assert not folder.exists() or list(folder.iterdir()) == []
    # a wrong size is caught too
    (served / "file.bin").write_bytes(PAYLOAD[:50])
    with pytest.raises(ChecksumError):
        find_file(spec, data_dir=dest_root, download=True)
    assert not folder.exists() or list(folder.iterdir()) == []


def test_download_http_error_is_clear(isolated, http_root, tmp_path):
    _, base = http_root
    spec = _spec(urls=(base + "missing.bin",))
    with pytest.raises(DatasetNotFoundError, match="could not download"):
        find_file(spec, data_dir=tmp_path / "dl", download=True)
    assert not (tmp_path / "dl" / spec.path).exists()


def test_download_without_checksum_warns_with_sha256(isolated, http_root, tmp_path):
    served, base = http_root
    (served / "file.bin").write_bytes(PAYLOAD)
    spec = DataFile(path="u/file.bin", urls=(base + "file.bin",))
    with pytest.warns(UserWarning, match=hashlib.sha256(PAYLOAD).hexdigest()):
        find_file(spec, data_dir=tmp_path / "dl", download=True)


def _idx_bytes(arr: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape)
    return gzip.compress(header + arr.astype(np.uint8).tobytes(), mtime=0)


def test_load_dataset_downloads_a_catalog_entry(isolated, http_root, tmp_path, monkeypatch):
    """End to end: a tiny IDX dataset entry is downloaded, verified and loaded."""
    served, base = http_root
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(6, 4, 4))
    y = np.array([0, 1, 2, 0, 1, 2])
    files = []
    for name, arr in (("tiny-images-idx3-ubyte.gz", x), ("tiny-labels-idx1-ubyte.gz", y)):
        data = _idx_bytes(arr)
        (served / name).write_bytes(data)
        files.append(_spec(path=f"images/tiny/{name}", data=data, urls=(base + name,)))
    entry = DatasetEntry(
        name="tiny",
        kind="images",
        description="test",
        n_samples=6,
        n_classes=3,
        shape=(1, 4, 4),
        files=tuple(files),
        citation="",
        licence="",
        loader=_idx_pairs,
    )
    monkeypatch.setitem(CATALOG, "tiny", entry)
    ds = load_dataset("tiny", data_dir=tmp_path / "root", download=True)
    np.testing.assert_allclose(ds.X[:, 0], x / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y, y)
    assert (tmp_path / "root" / "images" / "tiny" / files[0].name).exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset("tiny", data_dir=tmp_path / "root")  # now local, verified, silent
    assert sorted(os.listdir(tmp_path / "root" / "images" / "tiny")) == sorted(
        f.name for f in files
    )  # no temporary files left behind


def test_download_falls_back_to_the_next_mirror(isolated, http_root, tmp_path):
    served, base = http_root
    (served / "bad.bin").write_bytes(PAYLOAD[::-1])
    (served / "good.bin").write_bytes(PAYLOAD)
    spec = _spec(urls=(base + "missing.bin", base + "bad.bin", base + "good.bin"))
    path = find_file(spec, data_dir=tmp_path / "dl", download=True)
    assert path.read_bytes() == PAYLOAD
