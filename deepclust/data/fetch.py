"""Where data files live: lookup order, checksums and verified downloads.

A catalog file is a path *relative to a data root* (``images/mnist/t10k-labels-idx1-ubyte.gz``,
``hsi/PaviaU/PaviaU_gt.mat``); the folder layout under every root mirrors ``shared/datasets``.

Lookup order (first root holding the file wins). It never depends on the working directory:
the same command finds the same files wherever it is typed.

1. ``data_dir`` when the caller passes one: then it is the *only* root searched, and the place a
   download goes to (explicit beats implicit; a run pinned to a folder never picks up a stray copy).
2. ``$DEEPCLUST_DATA``.
3. The user config: ``data_dir = "/path/to/datasets"`` in ``$XDG_CONFIG_HOME/deepclust/config.toml``
   (default ``~/.config/deepclust/config.toml``).
4. ``shared/datasets`` beside the checkout the package was imported from (``<checkout>/../shared``;
   a source checkout or an editable install -- a wheel installed into site-packages has none).
5. The user cache: ``$XDG_CACHE_HOME/deepclust`` or ``~/.cache/deepclust``.
6. A download into the cache (or ``data_dir``), **only** when ``download=True`` (command line:
   ``--download``) or the environment has ``DEEPCLUST_DOWNLOAD=1``. The default is no network
   access at all, so loading is offline-safe and never stalls on a firewall; the error for a
   missing file says how to enable the download and where to get the file by hand.

Every file found or downloaded is checked against the catalog's checksum(s): sha256, md5 (where
only the md5 is published, e.g. Fashion-MNIST) or a *git blob id* (``sha1("blob <size>\\0" +
bytes)``, what ``git hash-object FILE`` prints; used for the hyperspectral cubes whose only
known fingerprint is the blob id of a copy in a public repository). A mismatch raises
:class:`ChecksumError`. A downloaded file is written to a temporary file in the destination
folder, fsynced, verified and only then renamed into place, so a failed or corrupted download
leaves nothing behind. Files for which no checksum is known are loaded with a ``UserWarning``
saying so (never silently).
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ChecksumError",
    "DataFile",
    "DatasetNotFoundError",
    "cache_dir",
    "config_path",
    "data_roots",
    "download_file",
    "download_enabled",
    "file_digest",
    "locate",
    "resolve",
    "verify_file",
]

_CHUNK = 1 << 20
_HASH_KINDS = ("sha256", "md5", "gitblob")


class DatasetNotFoundError(FileNotFoundError):
    """A catalog file is in none of the data roots (and was not downloaded).

    ``str(err)`` speaks to Python users (``download=True``); ``err.cli_message`` is the same text
    for the command line (``--download``). Both give one sentence per line.
    """

    def __init__(self, message: str, cli_message: str | None = None):
        super().__init__(message)
        self.cli_message = cli_message if cli_message is not None else message


class ChecksumError(ValueError):
    """A file's bytes do not match the checksum the catalog records for it."""


@dataclass(frozen=True)
class DataFile:
    """One file of a catalog dataset.

    Parameters
    ----------
    path
        Path relative to a data root, with ``/`` separators (``"hsi/PaviaU/PaviaU.mat"``).
    checksums
        Accepted fingerprints as ``"sha256:<hex>"``, ``"md5:<hex>"`` or ``"gitblob:<hex>"``; the
        file passes when it matches *any* of them (some cubes circulate as two known copies).
        Empty when no checksum is known.
    size
        Size in bytes when known (a cheap first check).
    urls
        Direct download URLs, tried in order.
    source
        Where a person gets the file (a web page, an archive, a repository path) when there is
        no direct URL, or extra provenance.
    note
        Anything a user must know (e.g. why no checksum is known).
    alternatives
        Other files accepted in this one's place (looked for after the primary, in every root).
    content_check
        When the bytes of the file cannot be checksummed (no canonical checksum known, or a
        folder) but the loader verifies the *content* (e.g. a digest over the images inside),
        a description of that check; the "unverified" warning is then not given.
    """

    path: str
    checksums: tuple[str, ...] = ()
    size: int | None = None
    urls: tuple[str, ...] = ()
    source: str = ""
    note: str = ""
    alternatives: tuple[DataFile, ...] = field(default=(), compare=False)
    content_check: str = ""

    def __post_init__(self) -> None:
        for c in self.checksums:
            kind, _, value = c.partition(":")
            if kind not in _HASH_KINDS or not value:
                raise ValueError(f"bad checksum spec {c!r} for {self.path}: use kind:hex")

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def folder(self) -> str:
        return self.path.rsplit("/", 1)[0] if "/" in self.path else ""

    def describe_checksums(self) -> str:
        if not self.checksums:
            return "no published checksum"
        parts = []
        for c in self.checksums:
            kind, _, value = c.partition(":")
            label = "git blob id" if kind == "gitblob" else kind
            parts.append(f"{label} {value}")
        return " or ".join(parts)


# ----------------------------------------------------------------------------- roots


def cache_dir() -> Path:
    """The user cache root: ``$XDG_CACHE_HOME/deepclust`` or ``~/.cache/deepclust``."""
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "deepclust"


def _package_checkout() -> Path:
    """The directory holding the ``deepclust`` package source (<checkout>/deepclust/...)."""
    return Path(__file__).resolve().parents[2]


def config_path() -> Path:
    """The user config file: ``$XDG_CONFIG_HOME/deepclust/config.toml`` or ``~/.config/...``."""
    base = os.environ.get("XDG_CONFIG_HOME")
    return (Path(base) if base else Path.home() / ".config") / "deepclust" / "config.toml"


def _config_data_dir() -> Path | None:
    """``data_dir`` from the user config file, or None (no file, or no such key)."""
    import tomllib

    path = config_path()
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as fh:
            value = tomllib.load(fh).get("data_dir")
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: not a readable TOML file ({exc}); fix it or delete it") from exc
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"{path}: data_dir must be a string (a folder), got {value!r}")
    return Path(value).expanduser()


def _shared_candidates() -> list[Path]:
    """``shared/datasets`` beside the checkout holding the package source (never the cwd)."""
    return [_package_checkout().parent / "shared" / "datasets"]


def data_roots(data_dir: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """The data roots searched, in order, as ``(origin, path)`` pairs.

    With ``data_dir`` only that folder is returned. Otherwise: ``$DEEPCLUST_DATA`` (when set),
    the user config's ``data_dir`` (when set), ``shared/datasets`` beside the checkout (when it
    exists), and the cache (always listed last, even when it does not exist yet).
    """
    if data_dir is not None:
        return [("data_dir", Path(data_dir).expanduser())]
    roots: list[tuple[str, Path]] = []
    env = os.environ.get("DEEPCLUST_DATA")
    if env:
        roots.append(("DEEPCLUST_DATA", Path(env).expanduser()))
    configured = _config_data_dir()
    if configured is not None:
        roots.append(("config", configured))
    for p in _shared_candidates():
        if p.is_dir():
            roots.append(("shared", p))
    roots.append(("cache", cache_dir()))
    unique, seen = [], set()
    for origin, path in roots:  # the same folder reached twice is searched once
        key = path.resolve() if path.exists() else path
        if key not in seen:
            seen.add(key)
            unique.append((origin, path))
    return unique


def download_enabled(download: bool | None) -> bool:
    """``download`` if given, else whether ``DEEPCLUST_DOWNLOAD`` is set to 1/true/yes."""
    if download is not None:
        return bool(download)
    return os.environ.get("DEEPCLUST_DOWNLOAD", "").strip().lower() in ("1", "true", "yes", "on")


# ----------------------------------------------------------------------------- checksums


def _hashers(kinds: Iterable[str]) -> dict:
    return {k: (hashlib.sha1() if k == "gitblob" else hashlib.new(k)) for k in set(kinds)}


def file_digest(path: str | os.PathLike, kind: str = "sha256") -> str:
    """Hex digest of a file: ``sha256``, ``md5`` or ``gitblob`` (``git hash-object``)."""
    if kind not in _HASH_KINDS:
        raise ValueError(f"unknown checksum kind {kind!r}; use one of {_HASH_KINDS}")
    path = Path(path)
    h = hashlib.sha1() if kind == "gitblob" else hashlib.new(kind)
    if kind == "gitblob":
        h.update(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


_VERIFIED: dict[tuple, bool] = {}


def verify_file(path: str | os.PathLike, spec: DataFile, *, what: str | None = None) -> None:
    """Check ``path`` against ``spec``'s size and checksums; raise :class:`ChecksumError`.

    Results are memoised per (path, size, mtime) within the process, so a file is hashed once.
    A spec without checksums gives a ``UserWarning`` (the file is used unverified).
    """
    path = Path(path)
    st = path.stat()
    label = what or str(path)
    if spec.content_check and not spec.checksums:
        return  # the loader verifies the content
    if path.is_dir():
        raise ChecksumError(f"{label} is a folder, but the catalog expects the file {spec.name}")
    if not spec.checksums:
        warnings.warn(
            f"{label}: no checksum is known for {spec.name}, so it is used without verification"
            + (f" ({spec.note})" if spec.note else ""),
            UserWarning,
            stacklevel=3,
        )
        return
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, spec.checksums)
    if _VERIFIED.get(key):
        return
    if spec.size is not None and st.st_size != spec.size:
        raise ChecksumError(
            f"{label} has {st.st_size:,} bytes but {spec.name} should have {spec.size:,}: the file "
            f"is truncated or a different version; delete it and fetch it again"
            + (f" from {spec.urls[0]}" if spec.urls else "")
        )
    kinds = [c.partition(":")[0] for c in spec.checksums]
    hashers = _hashers(kinds)
    if "gitblob" in hashers:
        hashers["gitblob"].update(b"blob %d\0" % st.st_size)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            for h in hashers.values():
                h.update(chunk)
    got = {k: h.hexdigest() for k, h in hashers.items()}
    if not any(got[c.partition(":")[0]] == c.partition(":")[2].lower() for c in spec.checksums):
        shown = ", ".join(f"{'git blob id' if k == 'gitblob' else k} {v}" for k, v in got.items())
        raise ChecksumError(
            f"{label} does not match the catalog: expected {spec.describe_checksums()}, got "
            f"{shown}. The file is corrupted or a different version; delete it and fetch it again"
            + (f" from {spec.urls[0]}" if spec.urls else "")
            + " (to use this copy anyway, read it with deepclust.data.load_file)"
        )
    _VERIFIED[key] = True


# ----------------------------------------------------------------------------- download


def download_file(
    spec: DataFile, dest: str | os.PathLike, *, timeout: float = 60.0, quiet: bool = False
) -> Path:
    """Download ``spec`` to ``dest`` atomically, verifying its checksum before the final rename.

    The bytes go to a temporary file in ``dest``'s folder; it is fsynced, its size and digests
    are checked, and only then is it renamed to ``dest``. On any failure (network, checksum) the
    temporary file is removed and nothing is left at ``dest``. URLs are tried in order.
    """
    dest = Path(dest)
    if not spec.urls:
        raise _not_found(spec, [], download_tried=False)
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    bad: list[str] = []
    for url in spec.urls:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        tmp = Path(tmp_name)
        try:
            kinds = [c.partition(":")[0] for c in spec.checksums] or ["sha256"]
            hashers = _hashers([*kinds, "sha256"])
            n = 0
            with os.fdopen(fd, "wb") as out:
                req = urllib.request.Request(url, headers={"User-Agent": "deepclust"})
                with urllib.request.urlopen(req, timeout=timeout) as resp:
                    while chunk := resp.read(_CHUNK):
                        out.write(chunk)
                        n += len(chunk)
                        for k, h in hashers.items():
                            if k != "gitblob":
                                h.update(chunk)
                out.flush()
                os.fsync(out.fileno())
            if "gitblob" in hashers:  # the blob header needs the size first: hash again
                hashers["gitblob"] = hashlib.sha1(b"blob %d\0" % n)
                with open(tmp, "rb") as f:
                    while chunk := f.read(_CHUNK):
                        hashers["gitblob"].update(chunk)
            got = {k: h.hexdigest() for k, h in hashers.items()}
            if spec.size is not None and n != spec.size:
                raise ChecksumError(
                    f"download of {spec.name} from {url} gave {n:,} bytes, expected {spec.size:,}; "
                    "nothing was saved"
                )
            if spec.checksums:
                if not any(
                    got[c.partition(":")[0]] == c.partition(":")[2].lower() for c in spec.checksums
                ):
                    raise ChecksumError(
                        f"download of {spec.name} from {url} does not match the catalog: expected "
                        f"{spec.describe_checksums()}, got "
                        + ", ".join(f"{k} {got[k]}" for k in kinds)
                        + "; nothing was saved"
                    )
            elif not spec.content_check:
                warnings.warn(
                    f"{spec.name} was downloaded from {url} without verification: no checksum is "
                    f"known for it. Its sha256 is {got['sha256']}; compare it with a trusted copy",
                    UserWarning,
                    stacklevel=3,
                )
            os.replace(tmp, dest)
            try:  # make the rename durable
                dir_fd = os.open(dest.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
            except OSError:
                pass
            _VERIFIED[(str(dest.resolve()), n, dest.stat().st_mtime_ns, spec.checksums)] = True
            if not quiet:
                logging.getLogger("deepclust.data").info("downloaded %s (%d bytes)", dest, n)
            return dest
        except ChecksumError as exc:  # a bad mirror: try the next URL, report if none is good
            bad.append(str(exc))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            errors.append(f"{url}: {exc}")
        finally:
            if tmp.exists():
                tmp.unlink()
    if bad:
        raise ChecksumError("; ".join(bad + errors))
    raise DatasetNotFoundError(
        f"could not download {spec.name}: "
        + "; ".join(errors)
        + f". Fetch it by hand and put it at <data root>/{spec.path}"
    )


# ----------------------------------------------------------------------------- lookup


def locate(
    spec: DataFile, data_dir: str | os.PathLike | None = None
) -> tuple[Path, DataFile] | None:
    """First ``(path, spec)`` found for ``spec`` (or one of its alternatives) in the roots.

    The primary file is looked for in every root before any alternative is; no checksum is
    computed here.
    """
    roots = data_roots(data_dir)
    for candidate in (spec, *spec.alternatives):
        for _, root in roots:
            p = root / candidate.path
            if p.exists():
                return p, candidate
    return None


def _missing_message(spec: DataFile, roots: list[tuple[str, Path]], *, download_tried: bool,
                     cli: bool = False) -> str:
    """One sentence a line: what is missing, where it was looked for, where to put or get it."""
    lines = [f"data file {spec.name!r} was not found."]
    if roots:
        lines.append("Looked for " + spec.path + " in: " + ", ".join(f"{r} ({o})" for o, r in roots) + ".")
        first = roots[0][1] if roots[0][0] in ("data_dir", "DEEPCLUST_DATA", "config") else cache_dir()
        lines.append(f"Put it in the folder {first / spec.folder}, or point DEEPCLUST_DATA at the folder "
                     f"that holds {spec.path.split('/', 1)[0]}/.")
    if spec.urls:
        lines.append(f"Get it from {spec.urls[0]}")
        if not download_tried:
            how = "rerun with --download" if cli else "pass download=True"
            lines.append(f"or let deepclust download it (checksum verified): {how}, or set DEEPCLUST_DOWNLOAD=1.")
    if spec.source:
        lines.append(f"Source: {spec.source}")
    if spec.alternatives:
        lines.append("Also accepted instead: " + ", ".join(a.path for a in spec.alternatives))
    if spec.note:
        lines.append(f"Note: {spec.note}")
    return lines[0] + "\n  " + "\n  ".join(lines[1:])


def _not_found(spec: DataFile, roots: list[tuple[str, Path]], *, download_tried: bool,
               extra: str = "") -> DatasetNotFoundError:
    return DatasetNotFoundError(
        _missing_message(spec, roots, download_tried=download_tried) + extra,
        _missing_message(spec, roots, download_tried=download_tried, cli=True) + extra,
    )


def resolve(
    spec: DataFile,
    *,
    data_dir: str | os.PathLike | None = None,
    download: bool | None = None,
    verify: bool = True,
) -> tuple[Path, DataFile]:
    """Find (or download) ``spec`` and verify it; return ``(path, the spec that matched)``.

    Raises
    ------
    DatasetNotFoundError
        The file is in no root and was not (or could not be) downloaded. The message names the
        file, the folder to put it in and where to get it.
    ChecksumError
        The file found or downloaded does not match the catalog.
    """
    found = locate(spec, data_dir)
    if found is not None:
        path, matched = found
        if verify:
            verify_file(path, matched)
        return path, matched
    roots = data_roots(data_dir)
    if download_enabled(download):
        for candidate in (spec, *spec.alternatives):
            if candidate.urls:
                target_root = Path(data_dir).expanduser() if data_dir is not None else cache_dir()
                path = download_file(candidate, target_root / candidate.path)
                return path, candidate
        raise _not_found(spec, roots, download_tried=True,
                         extra="\n  (download was enabled, but there is no public URL for this file)")
    raise _not_found(spec, roots, download_tried=False)
