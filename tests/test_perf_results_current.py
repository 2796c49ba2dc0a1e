"""The performance records in ``benchmarks/results/perf__*.json`` are the code's: every record
names the current package version and, for each method it measures, that method's current
behaviour fingerprint (:mod:`deepclust.fingerprint`). A record measured with code that behaves
differently now fails here: re-run its command or move the file to
``benchmarks/results/superseded/``."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import pytest

import deepclust
from deepclust.fingerprint import current_fingerprint

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted((ROOT / "benchmarks" / "results").glob("perf__*.json"))
FIELDS = {"date", "deepclust_version", "command", "machine", "fingerprints"}


def _current(method: str) -> str:
    if method == "umap-kmeans":
        pytest.importorskip("umap")
    return current_fingerprint(method)  # once per process, shared by both freshness tests


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_perf_results_file_is_current(path):
    doc = json.loads(path.read_text())
    assert doc["kind"] == "performance" and path.name == f"perf__{doc['name']}.json" and doc["records"]
    for i, rec in enumerate(doc["records"]):
        rerun = f"re-run `{rec.get('command')}` or move {path.name} to benchmarks/results/superseded/"
        assert FIELDS <= set(rec), f"{path.name} record {i} lacks {sorted(FIELDS - set(rec))}: {rerun}"
        assert rec["deepclust_version"] == deepclust.__version__, (
            f"{path.name} record {i} was measured with deepclust {rec['deepclust_version']}, this is "
            f"{deepclust.__version__}: {rerun}")
        for method, fp in rec["fingerprints"].items():
            assert fp == _current(method), (
                f"{path.name} record {i}: {method} behaves differently from the code that measured it "
                f"(fingerprint {fp}, now {_current(method)}): {rerun}")


def test_append_record_writes_the_format(tmp_path):
    io = runpy.run_path(str(ROOT / "benchmarks" / "results_io.py"))
    out = tmp_path / "perf__x.json"
    for s in (1.0, 2.0):
        io["append_record"]("x", {"seconds": s}, methods=["kmeans"], command="python b.py", out=out)
    doc = json.loads(out.read_text())
    assert doc["kind"] == "performance" and doc["name"] == "x"
    assert [r["seconds"] for r in io["load_records"]("x", out=out)] == [1.0, 2.0]
    rec = doc["records"][0]
    assert FIELDS <= set(rec) and rec["command"] == "python b.py"
    assert rec["fingerprints"] == {"kmeans": _current("kmeans")} and len(rec["date"]) == 10
    assert {"platform", "cpu_count", "load_1min", "omp_num_threads"} <= set(rec["machine"])
