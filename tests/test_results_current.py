"""The project's own results are the code's results: every file in ``benchmarks/results/``
names the current package version and carries its method's current behaviour fingerprint
(:mod:`deepclust.fingerprint`). A result measured with code that behaves differently now fails
here: re-run its command (``deepclust bench ... --out benchmarks``) or move the file to
``benchmarks/results/superseded/``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import deepclust
from deepclust.fingerprint import PROBED, current_fingerprint, fingerprint, probe

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted(f for f in (ROOT / "benchmarks" / "results").glob("*.json") if not f.name.startswith("perf__"))


def _current(method: str, dataset: str | None = None, preset: str | None = None) -> str:
    if method == "umap-kmeans":
        pytest.importorskip("umap")
    return current_fingerprint(method, dataset, preset)  # the probe once per process and method


def test_every_method_has_a_probe():
    from deepclust.methods import METHODS

    assert set(METHODS) == set(PROBED)


def test_fingerprint_is_deterministic_and_sees_a_change(monkeypatch):
    a = fingerprint("kmeans")
    assert fingerprint("kmeans") == a and len(a) == 16
    import deepclust.presets.finch as presets  # a preset edit is a behaviour change

    before = fingerprint("finch")
    changed = {**presets.PRESETS, "paper": {"default": {"n_init": 99}}}  # a preset the probe does not run
    monkeypatch.setattr(presets, "PRESETS", changed)
    assert fingerprint("finch") != before


def test_a_data_set_fingerprint_sees_its_own_preset_entry_only(monkeypatch):
    import deepclust.presets.finch as presets

    before = {d: fingerprint("finch", d, "fast") for d in ("digits", "usps")}
    assert before["digits"] != before["usps"] != fingerprint("finch")  # the data set is part of it
    fast = presets.PRESETS["fast"]
    changed = {**presets.PRESETS, "fast": {**fast, "digits": {**fast.get("digits", {}), "metric": "euclidean"}}}
    monkeypatch.setattr(presets, "PRESETS", changed)
    assert fingerprint("finch", "digits", "fast") != before["digits"]
    assert fingerprint("finch", "usps", "fast") == before["usps"]


def test_probes_fit_quickly():
    est, args, kwargs, y = probe("kmeans", with_preset=True)
    assert len(est.fit(*args, **kwargs).labels_) == len(y)


@pytest.mark.parametrize("path", FILES, ids=[f.name for f in FILES])
def test_results_file_is_current(path):
    payload = json.loads(path.read_text())
    rerun = f"re-run it (`{payload.get('command', 'deepclust bench ... --out benchmarks')}`) or move it to " \
            "benchmarks/results/superseded/"
    for run in payload.get("runs", []):
        assert run.get("deepclust_version", deepclust.__version__) == deepclust.__version__, (
            f"{path.name} was measured with deepclust {run.get('deepclust_version')}, this is "
            f"{deepclust.__version__}: {rerun}")
    assert "fingerprint" in payload, f"{path.name} has no behaviour fingerprint: {rerun}"
    now = _current(payload["method"], payload["dataset"], payload.get("preset", "fast"))
    assert payload["fingerprint"] == now, (
        f"{path.name}: {payload['method']} on {payload['dataset']} behaves differently from the code "
        f"that measured it (fingerprint {payload['fingerprint']}, now {now}): {rerun}")
