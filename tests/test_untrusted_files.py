"""Untrusted files never run code: a source scan of the whole package, and the loaders refusing
pickled payloads.

The scan parses every module of ``deepclust`` (so it also covers methods merged later) and fails
on: a ``torch.load`` without ``weights_only=True``; an ``np.load`` without ``allow_pickle=False``;
``allow_pickle=True`` anywhere; any use of pickle-family modules (pickle, cPickle, dill, joblib,
marshal, shelve, cloudpickle) or of ``torch.jit.load``; ``from torch import load``-style imports
that would hide a call from the scan.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import torch

import deepclust
from deepclust.data import load_file
from deepclust.training import load_checkpoint

PACKAGE = Path(deepclust.__file__).parent
NUMPY_LOADERS = {"np.load", "numpy.load", "np.lib.format.read_array", "numpy.lib.format.read_array"}
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "joblib", "marshal", "shelve", "cloudpickle"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _kw_is(call: ast.Call, name: str, value) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is value
               for k in call.keywords)


def scan_source(text: str, filename: str = "<src>") -> list[str]:
    """Violations in one module's source, as 'file:line: what' strings."""
    problems = []
    tree = ast.parse(text, filename)
    for node in ast.walk(tree):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in UNSAFE_MODULES:
                    problems.append(f"{where}: imports {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            mod = (node.module or "").split(".")[0]
            if mod in UNSAFE_MODULES:
                problems.append(f"{where}: imports from {node.module}")
            if mod in ("torch", "numpy") and any(a.name == "load" for a in node.names):
                problems.append(f"{where}: 'from {node.module} import load' hides the call from this scan")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name == "torch.load" and not _kw_is(node, "weights_only", True):
                problems.append(f"{where}: torch.load without weights_only=True")
            if name in NUMPY_LOADERS and not _kw_is(node, "allow_pickle", False):
                problems.append(f"{where}: np.load without allow_pickle=False")
            if name in ("torch.jit.load", "torch.package.PackageImporter"):
                problems.append(f"{where}: {name} runs code from the file")
            if _kw_is(node, "allow_pickle", True):
                problems.append(f"{where}: allow_pickle=True")
    return problems


def test_scanner_catches_violations():
    bad = (
        "import torch, numpy as np, pickle\n"
        "from torch import load\n"
        "torch.load('x')\n"
        "torch.load('x', weights_only=False)\n"
        "np.load('x')\n"
        "np.load('x', allow_pickle=True)\n"
        "torch.jit.load('m.pt')\n"
    )
    got = scan_source(bad)
    assert len(got) == 8, got  # pickle import, from-import, 2 torch.load, 2 np.load (+ allow_pickle=True), jit
    ok = "import torch\nimport numpy as np\ntorch.load('x', map_location='cpu', weights_only=True)\n" \
         "np.load('x', allow_pickle=False)\n"
    assert scan_source(ok) == []


def test_package_source_has_no_unsafe_loading():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 10
    problems = [p for f in files for p in scan_source(f.read_text(), str(f.relative_to(PACKAGE.parent)))]
    assert problems == [], "\n".join(problems)


class _Payload:
    """Unpickling this calls ``Path.touch`` on the marker: what an attacker's file would do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_checkpoint_with_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": _Payload(marker)}, ckpt)
    with pytest.raises(ValueError, match="could not be read"):
        load_checkpoint(ckpt)
    assert not marker.exists()


def test_npy_and_npz_with_objects_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    arr = np.array([_Payload(marker)], dtype=object)
    np.save(tmp_path / "evil.npy", arr, allow_pickle=True)
    np.savez(tmp_path / "evil.npz", X=arr)
    with pytest.raises(ValueError, match="never unpickles"):
        load_file(tmp_path / "evil.npy")
    with pytest.raises(ValueError, match="holds no numeric array"):
        load_file(tmp_path / "evil.npz")
    assert not marker.exists()
