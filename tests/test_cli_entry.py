"""The ``deepclust`` console script in a subprocess, as a user meets it: progress in a terminal,
signals, flag errors, help, start-up cost, method names, file modes and the reading of 3-D arrays."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import numpy as np
import pytest

TINY_DEC = ["--set", "pretrain_epochs=3", "max_iter=40", "n_init=1", "hidden_dims=(32, 32, 64)"]


def _script() -> str:
    script = Path(sys.executable).parent / "deepclust"
    if not script.exists():
        pytest.fail(f"the deepclust console script is not installed beside {sys.executable}")
    return str(script)


def _env() -> dict:
    """One torch thread unless the caller chose (two threads on a shared 2-core machine spin-wait)."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _run(args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([_script(), *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=_env())


def _run_in_terminal(args, cwd) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal (stdout a pipe); returns (status, stdout, terminal text)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 110, 0, 0))  # rows, columns
    proc = subprocess.Popen([_script(), *args], cwd=cwd, stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL,
                            env=_env())
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    out = proc.stdout.read().decode()
    return proc.wait(timeout=60), out, b"".join(chunks).decode(errors="replace")


def test_progress_shown_in_a_terminal_only(tmp_path):
    code, out, term = _run_in_terminal(["run", "dec", "--dataset", "digits", "--out", "a", *TINY_DEC], tmp_path)
    assert code == 0, term
    assert "dec on digits" in out and "outputs written to a/" in out
    # stage, epoch n/total, elapsed<ETA and the loss terms, on the terminal
    assert "fitting dec (preset fast, seed 0) on digits" in term
    assert "pretrain: epoch 3/3" in term and "<" in term and "loss=" in term
    assert "evaluating and writing the outputs" in term
    # -q: nothing but the result
    code, out, term = _run_in_terminal(["run", "dec", "--dataset", "digits", "--out", "b", "-q", *TINY_DEC], tmp_path)
    assert code == 0 and "dec on digits" in out
    assert "epoch" not in term and "fitting" not in term
    # stderr not a terminal (a pipe, a log file): no progress bar
    proc = _run(["run", "dec", "--dataset", "digits", "--out", "c", *TINY_DEC], tmp_path)
    assert proc.returncode == 0 and "epoch" not in proc.stderr and "\r" not in proc.stderr


def _wait_for(pattern: str, folder: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if list(folder.glob(pattern)):
            time.sleep(1.0)  # well inside the training loop
            return
        if proc.poll() is not None:
            pytest.fail(f"finished before {pattern} appeared: {proc.communicate()}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"{pattern} never appeared")


@pytest.mark.parametrize("nproc", [1, 2])
def test_sigterm_removes_the_staged_outputs(nproc, tmp_path):
    """``kill PID`` (a scheduler's time limit) cleans up like Ctrl-C; with ``--nproc 2`` the
    launcher forwards it to the workers, and none outlives the launcher."""
    out = tmp_path / "runs" / "long"
    proc = subprocess.Popen([_script(), "run", "dec", "--dataset", "digits", "--out", str(out), "--nproc", str(nproc),
                             "--set", "pretrain_epochs=100000", "hidden_dims=(32, 32, 64)"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    _wait_for("runs/.long.partial-*", tmp_path, proc)
    children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 143, err
    assert "terminated" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # neither the staging folder nor the parent it created
    time.sleep(1.0)
    alive = [c for c in children if Path(f"/proc/{c}").exists() and "Z" not in _proc_state(c)]
    assert not alive, alive


def _proc_state(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return "Z"


def _default_sigint() -> None:
    # a shell without job control starts background jobs with SIGINT ignored, and a child inherits
    # that; Ctrl-C in a terminal reaches a command whose SIGINT has its default disposition
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_during_segment_leaves_no_folder(tmp_path):
    np.save(tmp_path / "cube.npy", np.random.default_rng(0).random((24, 24, 4)).astype(np.float32))
    proc = subprocess.Popen([_script(), "segment", "recal", "--data", "cube.npy", "--n-clusters", "3",
                             "--patch", "8", "--stride", "4", "--out", "seg", "--set", "epochs=100000"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(),
                            preexec_fn=_default_sigint)
    _wait_for(".seg.partial-*", tmp_path, proc)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode == 130, err
    assert "interrupted" in err
    assert not (tmp_path / "seg").exists() and not list(tmp_path.glob(".seg.partial-*"))


@pytest.mark.parametrize("args,hint", [
    (["run", "kmeans", "--dataset", "digits", "--k", "3"], "--k: did you mean --key or --kind?"),
    (["run", "kmeans", "--dataset", "digits", "--clusters", "3"], "--clusters: did you mean --n-clusters?"),
    (["segment", "recal", "--dataset", "salinas-a", "--clusters", "3"], "--clusters: did you mean --n-clusters?"),
    (["run", "kmeans", "--dataset", "digits", "--seed", "x"], "argument --seed: invalid int value: 'x'"),
    (["bench", "--methods", "kmeans", "--datasets", "digits", "--bench-dir", "x"], "--bench-dir: did you mean"),
])
def test_flag_errors_are_one_line_with_close_matches(args, hint, tmp_path):
    proc = _run(args, tmp_path)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and hint in proc.stderr, proc.stderr
    assert "usage:" not in proc.stderr and not list(tmp_path.iterdir())


def test_run_help_lists_methods_and_defaults(tmp_path):
    from deepclust.methods import METHODS

    proc = _run(["run", "--help"], tmp_path)
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    for name in METHODS:
        assert f"\n  {name} " in proc.stdout, name
    for default in ("(default: fast)", "(default: 0)", "(default: 1)", "(default: runs/METHOD-DATASET-seedS)",
                    "(default: the number of classes)"):
        assert default in text, default


def test_help_and_methods_import_no_heavy_library():
    code = (
        "import sys\n"
        "from deepclust.cli import main\n"
        "for argv in (['--help'], ['run', '--help'], ['segment', '--help'], ['bench', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "main(['methods'])\n"
        "print('HEAVY', sorted(m for m in ('torch', 'matplotlib', 'sklearn', 'scipy') if m in sys.modules))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout


def test_methods_table_matches_the_estimators(tmp_path):
    from deepclust.methods import METHOD_INFO, METHODS, get_method

    proc = _run(["methods"], tmp_path)
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["name", "paper", "input", "good", "for"]
    assert [ln.split()[0] for ln in lines[1:]] == list(METHODS)
    for name, (_, kind, _) in METHOD_INFO.items():
        assert get_method(name).input_kind == kind, name


def test_method_and_dataset_names_are_case_insensitive(tmp_path):
    proc = _run(["run", "KMeans", "--dataset", "Digits", "--set", "n_init=1", "--no-pictures"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    m = json.loads((tmp_path / "runs" / "kmeans-digits-seed0" / "metrics.json").read_text())
    assert m["method"] == "kmeans" and m["dataset"] == "digits"


def test_model_files_of_run_and_segment_have_the_same_mode(tmp_path):
    mask = os.umask(0)
    os.umask(mask)
    assert _run(["run", "dec", "--dataset", "digits", "--out", "r", "-q", "--no-pictures", *TINY_DEC],
                tmp_path).returncode == 0
    np.save(tmp_path / "cube.npy", np.random.default_rng(0).random((16, 16, 3)).astype(np.float32))
    proc = _run(["segment", "recal", "--data", "cube.npy", "--n-clusters", "2", "--patch", "8", "--stride", "4",
                 "--out", "s", "--set", "epochs=1"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    modes = {p: (tmp_path / p / "model.pt").stat().st_mode & 0o777 for p in ("r", "s")}
    assert modes["r"] == modes["s"] == 0o666 & ~mask, modes
    assert (tmp_path / "s" / "segmentation.png").exists() and not (tmp_path / "s" / "ground_truth.png").exists()


def test_3d_arrays_are_read_as_said_and_kind_overrides(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "stack.npy", rng.random((30, 8, 6)).astype(np.float32))  # images, non-square
    np.save(tmp_path / "cube.npy", rng.random((12, 12, 12)).astype(np.float32))  # a cube, equal sides

    def run(name, *extra):
        proc = _run(["run", "kmeans", "--data", f"{name}.npy", "--n-clusters", "3", "--no-pictures",
                     "--set", "n_init=1", "--out", f"o-{name}-{len(extra)}", *extra], tmp_path)
        assert proc.returncode == 0, proc.stderr
        m = json.loads((tmp_path / f"o-{name}-{len(extra)}" / "metrics.json").read_text())
        return proc.stderr, m

    err, m = run("stack")
    assert "read stack.npy (30, 8, 6) as a scene of 30x8 = 240 pixels with 6 bands" in err
    assert "pass --kind images to read it as 30 images of 8x6" in err
    assert m["n_samples"] == 240 and m["data_kind"]["kind"] == "scene"
    err, m = run("stack", "--kind", "images")
    assert "read stack.npy" not in err and m["n_samples"] == 30 and m["data_kind"]["kind"] == "images"
    err, m = run("cube")
    assert "read cube.npy (12, 12, 12) as 12 images of 12x12" in err and "pass --kind scene" in err
    assert m["n_samples"] == 12
    err, m = run("cube", "--kind", "scene", "-q")
    assert err == "" and m["n_samples"] == 144


def test_bench_writes_to_the_users_folder(tmp_path):
    proc = _run(["bench", "--methods", "kmeans", "--datasets", "digits", "--seeds", "0", "--set", "n_init=1"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    table = tmp_path / "runs" / "bench" / "RESULTS.md"
    assert "| kmeans | 0 |" in table.read_text()
    assert (tmp_path / "runs" / "bench" / "results" / "kmeans__digits__fast.json").exists()
    assert "torch 2.13.0 CPU" not in table.read_text()  # the header describes this machine, not ours
    assert not (tmp_path / "benchmarks").exists()


def test_segment_sources_are_named_like_run(tmp_path):
    proc = _run(["segment", "recal", "--dataset", "digits"], tmp_path)
    assert proc.returncode == 2 and "is not a catalog scene" in proc.stderr and "salinas-a" in proc.stderr
    proc = _run(["segment", "recal", "--data", "salinas-a"], tmp_path)
    assert proc.returncode == 2 and "catalog scenes are given with --dataset NAME" in proc.stderr
    assert not list(tmp_path.iterdir())
