"""The ``deepclust`` command: outputs of a run, the bench runner, and bad input."""

import json
import os

import numpy as np
import pytest
import scipy.io

from deepclust.cli import main
from deepclust.data import dataset_status

HAS_SALINAS_A = dataset_status("salinas-a")["available"]


def _run(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_run_kmeans_digits_writes_outputs(tmp_path, capsys):
    out = tmp_path / "run"
    code, stdout, _ = _run(["run", "kmeans", "--dataset", "digits", "--seed", "0", "--out", str(out),
                            "--set", "n_init=3", "--set", "max_iter=100"], capsys)
    assert code == 0 and '"acc"' in stdout
    m = json.loads((out / "metrics.json").read_text())
    for key in ("method", "dataset", "preset", "seed", "n_samples", "n_clusters", "acc", "nmi", "ari",
                "fit_seconds", "peak_rss_mb", "device", "torch_threads", "selection"):
        assert key in m, key
    assert m["n_samples"] == 1797 and m["n_clusters"] == 10 and m["params"]["n_init"] == 3
    assert m["params"]["max_iter"] == 100  # repeated --set flags accumulate
    assert 0.6 < m["acc"] <= 1.0
    labels = np.load(out / "labels.npy")
    assert labels.shape == (1797,)
    assert (out / "confusion.png").exists()
    assert not list(tmp_path.glob(".run.partial-*"))


@pytest.mark.skipif(not HAS_SALINAS_A, reason="Salinas-A not found (needs ../shared/datasets or $DEEPCLUST_DATA)")
def test_run_kmeans_scene_writes_maps(tmp_path, capsys):
    out = tmp_path / "sa"
    code, _, _ = _run(["run", "kmeans", "--dataset", "salinas-a", "--seed", "0", "--out", str(out),
                       "--set", "n_init=2"], capsys)
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert {"oa", "kappa", "per_class"} <= set(m) and len(m["per_class"]) == 6
    lm = np.load(out / "label_map.npy")
    labels = np.load(out / "labels.npy")
    assert lm.shape == (83, 86) and (lm >= 0).sum() == labels.size == 5348
    assert (out / "cluster_map.png").exists() and np.load(out / "full_map.npy").min() >= 0


def test_run_user_file_scene_and_bad_gt(tmp_path, capsys):
    rng = np.random.default_rng(0)
    cube = rng.normal(size=(6, 7, 5)).astype(np.float32)
    gt = rng.integers(0, 3, (6, 7))
    scipy.io.savemat(tmp_path / "cube.mat", {"cube": cube})
    scipy.io.savemat(tmp_path / "gt.mat", {"gt": gt})
    code, _, err = _run(["run", "kmeans", "--data", str(tmp_path / "cube.mat"), "--gt", str(tmp_path / "gt.mat"),
                         "--out", str(tmp_path / "o"), "--no-pictures"], capsys)
    assert code == 0, err
    assert np.load(tmp_path / "o" / "label_map.npy").shape == (6, 7)
    scipy.io.savemat(tmp_path / "gt_bad.mat", {"gt": gt[:5]})
    code, _, err = _run(["run", "kmeans", "--data", str(tmp_path / "cube.mat"), "--gt",
                         str(tmp_path / "gt_bad.mat"), "--out", str(tmp_path / "o2")], capsys)
    assert code == 2 and "shape" in err and "Traceback" not in err
    assert not (tmp_path / "o2").exists()


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["run", "kmeans", "--dataset", "minst"], "did you mean"),
        (["run", "kmaens", "--dataset", "digits"], "Did you mean kmeans"),
        (["run", "kmeans", "--dataset", "digits", "--preset", "huge"], "unknown preset"),
        (["run", "kmeans", "--dataset", "digits", "--set", "n_inti=3"], "Did you mean n_init"),
        (["run", "kmeans", "--dataset", "digits", "--n-clusters", "1"], "at least 2"),
        (["run", "kmeans", "--dataset", "digits", "--n-clusters", "5000"], "larger than the number"),
        (["run", "kmeans", "--data", "/nonexistent/file.npy"], "file.npy"),
    ],
)
def test_bad_input_one_line_exit_2(argv, needle, capsys, tmp_path):
    code, _, err = _run(argv + ["--out", str(tmp_path / "o")], capsys)
    assert code == 2
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_nan_data_and_unwritable_out(tmp_path, capsys):
    X = np.random.default_rng(0).normal(size=(20, 3))
    X[3, 1] = np.nan
    np.save(tmp_path / "x.npy", X)
    code, _, err = _run(["run", "kmeans", "--data", str(tmp_path / "x.npy"), "--n-clusters", "2",
                         "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "NaN" in err
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = _run(["run", "kmeans", "--dataset", "digits", "--out", str(blocker)], capsys)
    assert code == 2 and "not a folder" in err
    code, _, err = _run(["run", "kmeans", "--data", str(tmp_path / "x.npy"), "--out", str(tmp_path / "o")], capsys)
    assert code == 2  # no labels, no --n-clusters


def test_out_not_writable(tmp_path, capsys, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    if os.geteuid() == 0:  # root writes anywhere: make the permission check see a read-only folder
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(ro) else real_access(p, mode))
    code, _, err = _run(["run", "kmeans", "--dataset", "digits", "--out", str(ro / "x")], capsys)
    assert code == 2 and "writable" in err
    assert not (ro / "x").exists()


def test_bench_writes_results_and_table(tmp_path, capsys):
    code, stdout, _ = _run(["bench", "--methods", "kmeans", "--datasets", "digits,paviau", "--seeds", "0,1",
                            "--set", "n_init=2", "--out", str(tmp_path)], capsys)
    assert code == 0
    res = json.loads((tmp_path / "results" / "kmeans__digits__fast.json").read_text())
    assert [r["seed"] for r in res["runs"]] == [0, 1] and res["status"] == "ok"
    table = (tmp_path / "RESULTS.md").read_text()
    assert "### digits" in table and "| kmeans | 0,1 |" in table
    assert res["fingerprint"] and res["command"] == (f"deepclust bench --methods kmeans --datasets digits --seeds 0,1 "
                                                     f"--set n_init=2 --out {tmp_path}")
    assert "data not present" in table  # paviau's cube is not in the shared data


def test_bench_keep_leaves_each_run_with_pictures(tmp_path, capsys):
    keep = tmp_path / "runs"
    code, _, _ = _run(["bench", "--methods", "kmeans", "--datasets", "digits", "--seeds", "3", "--set", "n_init=1",
                       "--tag", "k1", "--out", str(tmp_path), "--keep", str(keep)], capsys)
    assert code == 0
    run_dir = keep / "kmeans__digits__fast__k1" / "seed3"
    record = json.loads((run_dir / "metrics.json").read_text())
    assert record["seed"] == 3 and (run_dir / "confusion.png").exists()
    assert "| kmeans [k1] | 3 |" in (tmp_path / "RESULTS.md").read_text()


def test_datasets_and_methods_listing(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "digits" in out and "houston" in out and "present" in out
    assert main(["methods"]) == 0
    assert "scdsc" in capsys.readouterr().out


def test_a_signal_wrapped_by_python_machinery_still_ends_as_an_interrupt(monkeypatch, tmp_path, capsys):
    """SIGTERM landing inside a class body's ``__set_name__`` (a module being imported) reaches
    the CLI as a RuntimeError caused by :class:`Terminated`: it must end as a SIGTERM (143) and a
    Ctrl-C as an interrupt (130), not as an 'unexpected error'."""
    import deepclust.cli as cli

    def raise_wrapped(kind):
        def run(_args):
            try:
                raise kind()
            except KeyboardInterrupt as inner:
                raise RuntimeError("Error calling __set_name__ on 'Field' instance 'size'") from inner
        return run

    monkeypatch.setattr(cli, "_cmd_run", raise_wrapped(cli.Terminated))
    assert main(["run", "kmeans", "--dataset", "digits", "--out", str(tmp_path / "a")]) == 143
    assert "terminated (SIGTERM)" in capsys.readouterr().err
    monkeypatch.setattr(cli, "_cmd_run", raise_wrapped(KeyboardInterrupt))
    assert main(["run", "kmeans", "--dataset", "digits", "--out", str(tmp_path / "b")]) == 130
    assert "interrupted" in capsys.readouterr().err
