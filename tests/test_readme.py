"""Every command in the README is run here, so none of them can rot.

The commands are read from the README's ``bash`` code blocks (``&&`` splits a line into its
commands; ``#`` starts a comment) and each one is covered by exactly one entry of ``COVERAGE``:

* ``deepclust ...`` and ``python -m deepclust ...``: run as written through the installed console
  script (or ``python -m``), in a scratch folder, with the extra arguments of its entry appended:
  a ``--set`` that caps epochs, iterations or restarts where the line as written trains for minutes
  (a later ``--set`` of the same key wins, so it is the same command path with a smaller budget).
* ``python -m pip install ...``: with ``--dry-run --report``, never installing anything. The CPU
  lines must resolve with the torch 2.13.0 wheel; the GPU line is resolved with a *different*
  torch (2.14.1) visible to pip, and must not reinstall torch: that is the check that a GPU user's
  CUDA build is kept.
* ``python -m pytest -q``: the test suite itself; CI (``.ci/run``) runs the README line holding it
  verbatim in a fresh virtual environment, and this file checks that ``.ci/run`` finds that line.
* The ``python`` code block: run as written.

A README line that no entry covers, or an entry whose line left the README, fails
``test_every_readme_command_is_covered``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from deepclust.data import dataset_status

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TORCH_CPU = "2.13.0"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def readme_commands() -> list[str]:
    """Every command of the README's bash blocks, in order, without comments, de-duplicated."""
    out: list[str] = []
    for block in _blocks("bash"):
        for line in block.splitlines():
            tokens = shlex.split(line, comments=True)
            while tokens:
                cut = tokens.index("&&") if "&&" in tokens else len(tokens)
                cmd = shlex.join(tokens[:cut])
                if cmd not in out:
                    out.append(cmd)
                tokens = tokens[cut + 1:]
    return out


def _scene_files(tmp: Path) -> None:
    import scipy.io

    rng = np.random.default_rng(0)
    cube = rng.normal(size=(9, 8, 5)).astype(np.float32)
    scipy.io.savemat(tmp / "my_scene.mat", {"cube": cube, "wavelengths": np.arange(5.0)})
    scipy.io.savemat(tmp / "my_gt.mat", {"gt": rng.integers(0, 4, (9, 8))})


def _stack_file(tmp: Path) -> None:
    # 60 images of 8x6: without --kind the shapes alone would read it as a scene
    rng = np.random.default_rng(0)
    np.save(tmp / "my_stack.npy", rng.random((60, 8, 6)).astype(np.float32))


def _present(name: str) -> bool:
    if name == "ucmerced-mosaic":
        name = "ucmerced"
    return dataset_status(name)["available"]


#: a smaller autoencoder than the presets' 500-500-2000 (the budget, not the code path, changes)
SMALL_AE = ["--set", "hidden_dims=(64, 64, 128)"]

#: README command -> how it is run: ``extra`` arguments appended, catalog data it ``needs``, a
#: ``setup`` creating the user's files it names, and the output folder to check.
COVERAGE: dict[str, dict] = {
    "python -m pip install torch==2.13.0 -e .": {"pip": "cpu"},
    "python -m deepclust run idec --dataset digits --preset fast --out runs/digits": {
        "extra": [*SMALL_AE, "pretrain_epochs=2", "max_iter=60", "n_init=1"], "out": "runs/digits"},
    "python -m pip install torch==2.13.0 -e '.[test]'": {"pip": "cpu"},
    "python -m pytest -q": {"ci": True},
    "python -m pip install -e .": {"pip": "gpu"},
    "deepclust datasets": {},
    "deepclust methods": {},
    "deepclust run kmeans --dataset digits": {"extra": ["--set", "n_init=1"], "out": "runs/kmeans-digits-seed0"},
    "deepclust run kmeans --dataset salinas-a --seed 0 --out runs/sa": {
        "extra": ["--set", "n_init=1"], "needs": ["salinas-a"], "out": "runs/sa"},
    "deepclust run kmeans --data my_scene.mat --gt my_gt.mat --key cube": {
        "setup": _scene_files, "out": "runs/kmeans-my_scene-seed0"},
    "deepclust run kmeans --data my_stack.npy --kind images --n-clusters 5": {
        "setup": _stack_file, "out": "runs/kmeans-my_stack-seed0"},
    "deepclust run dec --dataset usps --preset fast --set pretrain_epochs=20 max_iter=1000": {
        "extra": [*SMALL_AE, "pretrain_epochs=1", "max_iter=20", "n_init=1"], "needs": ["usps"],
        "out": "runs/dec-usps-seed0"},
    "deepclust bench --methods kmeans --datasets digits,usps --seeds 0,1": {
        "extra": ["--set", "n_init=1"], "needs": ["usps"], "out": "runs/bench"},
    "deepclust run idec --dataset digits --nproc 2 --out runs/digits-2proc": {
        "extra": [*SMALL_AE, "pretrain_epochs=2", "max_iter=40", "n_init=1"], "out": "runs/digits-2proc"},
    "deepclust segment recal --dataset salinas-a --bands liss4 --patch 8 --n-clusters 6 --out runs/seg": {
        "extra": ["--set", "epochs=1"], "needs": ["salinas-a"], "out": "runs/seg"},
    "deepclust segment recal --dataset ucmerced-mosaic --patch 16 --stride 8 --n-clusters 8 --out runs/mosaic": {
        "extra": ["--set", "epochs=1"], "needs": ["ucmerced-mosaic"], "out": "runs/mosaic"},
}


def test_every_readme_command_is_covered():
    commands = readme_commands()
    assert commands, "no commands found in the README's bash blocks"
    assert set(commands) == set(COVERAGE), (
        f"not covered: {sorted(set(commands) - set(COVERAGE))}; "
        f"no longer in the README: {sorted(set(COVERAGE) - set(commands))}"
    )


def test_readme_starts_with_title_sentence_and_the_two_commands():
    text = README.read_text().splitlines()
    assert text[0] == "# deepclust"
    first = _blocks("bash")[0].strip().splitlines()
    assert len(first) == 2
    assert first[0].startswith("python -m pip install torch==2.13.0 -e . && python -m deepclust run idec")
    assert first[1] == 'python -m pip install torch==2.13.0 -e ".[test]" && python -m pytest -q'
    # between the title and the commands: one sentence
    intro = " ".join(line for line in text[1:text.index("```bash")] if line.strip())
    assert intro.count(". ") == 0 and intro.endswith(".")


def test_ci_runs_the_readme_test_line():
    """``.ci/run`` greps the README for the line it evals; it must find the README's second command."""
    script = (ROOT / ".ci" / "run").read_text()
    pattern = re.search(r"grep -m1 -E '([^']+)' README\.md", script).group(1)
    found = [line for line in README.read_text().splitlines() if re.search(pattern, line)]
    assert found and found[0] == 'python -m pip install torch==2.13.0 -e ".[test]" && python -m pytest -q'


def test_package_declares_a_torch_range():
    from packaging.requirements import Requirement

    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    torch_req = [Requirement(d) for d in deps if Requirement(d).name == "torch"]
    assert len(torch_req) == 1
    spec = torch_req[0].specifier
    assert not any(s.operator in ("==", "===", "~=") for s in spec), f"torch is pinned: {spec}"
    assert str(spec) == ">=2.13", "the README states the floor: update it with the floor"
    assert spec.contains(TORCH_CPU) and spec.contains("2.14.1") and not spec.contains("2.12.0")
    assert "`torch>=2.13`" in README.read_text()


def _pip_dry_run(args: list[str], tmp_path: Path, extra_path: Path | None = None) -> list[tuple[str, str]]:
    """(name, version) of what ``pip install ARGS`` would install, resolved offline-first, nothing
    installed. Without build isolation when the environment can build the package itself."""
    report = tmp_path / "report.json"
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if extra_path is not None:
        env["PYTHONPATH"] = str(extra_path)
    base = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report), *args]
    attempts = [base + ["--no-build-isolation", "--no-index"], base]
    for cmd in attempts:
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode == 0:
            break
    assert proc.returncode == 0, proc.stderr[-3000:]
    installs = json.loads(report.read_text())["install"]
    return [(i["metadata"]["name"].lower(), i["metadata"]["version"]) for i in installs]


def _fake_dist(folder: Path, name: str, version: str) -> Path:
    """A bare distribution record (metadata only): what pip sees of an installed torch build."""
    info = folder / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "RECORD").write_text("")
    (info / "INSTALLER").write_text("pip\n")
    return folder


def _run_pip(command: str, tmp_path: Path) -> None:
    from importlib.metadata import version

    args = shlex.split(command)[4:]  # after "python -m pip install"
    kind = COVERAGE[command]["pip"]
    if kind == "gpu":
        # a CUDA user's torch, another version than the CPU wheel: pip must keep it
        fake = _fake_dist(tmp_path / "other-torch", "torch", "2.14.1")
        installs = _pip_dry_run(args, tmp_path, extra_path=fake)
        assert not [i for i in installs if i[0] == "torch"], f"pip would replace the user's torch: {installs}"
    else:
        installs = _pip_dry_run(args, tmp_path)
        torch_now = version("torch").split("+")[0]
        for name, ver in installs:
            if name == "torch":
                assert ver.split("+")[0] == TORCH_CPU
        if torch_now == TORCH_CPU:
            assert not [i for i in installs if i[0] == "torch"], installs
    assert ("deepclust", "0.1.0") in installs


def _env() -> dict:
    """The environment of the command: one torch thread unless the caller chose (two threads on a
    2-core machine shared with other jobs spin-wait on each other: several times slower)."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _console_script() -> list[str]:
    script = Path(sys.executable).parent / "deepclust"
    if not script.exists():
        pytest.fail(f"the deepclust console script is not installed beside {sys.executable}")
    return [str(script)]


def _tree_digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.mark.parametrize("command", list(COVERAGE))
def test_readme_command(command, tmp_path):
    spec = COVERAGE[command]
    if spec.get("ci"):
        test_ci_runs_the_readme_test_line()
        return
    if "pip" in spec:
        _run_pip(command, tmp_path)
        return
    missing = [d for d in spec.get("needs", []) if not _present(d)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (../shared/datasets or $DEEPCLUST_DATA)")
    if "setup" in spec:
        spec["setup"](tmp_path)
    tokens = shlex.split(command)
    if tokens[:3] == ["python", "-m", "deepclust"]:
        argv = [sys.executable, "-m", "deepclust", *tokens[3:]]
    else:
        assert tokens[0] == "deepclust"
        argv = _console_script() + tokens[1:]
    bench_before = _tree_digest(ROOT / "benchmarks") if tokens[1:2] == ["bench"] else None
    proc = subprocess.run(argv + spec.get("extra", []), cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env=_env())
    assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    if "out" in spec:
        out = tmp_path / spec["out"]
        expected = "RESULTS.md" if tokens[1:2] == ["bench"] else "metrics.json"
        assert (out / expected).exists(), sorted(p.name for p in out.parent.iterdir())
        assert not list(out.parent.glob(".*.partial-*"))
    if bench_before is not None:  # a user's bench never rewrites the project's own tables
        assert _tree_digest(ROOT / "benchmarks") == bench_before
    if tokens[1:2] == ["methods"]:
        assert "good for" in proc.stdout and "idec" in proc.stdout


def test_readme_python_block(tmp_path):
    blocks = _blocks("python")
    assert blocks
    for code in blocks:
        proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                              env=_env())
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "'acc'" in proc.stdout
