"""The one writer of the performance benchmarks' results.

Each performance script appends its records to ``benchmarks/results/perf__<name>.json``::

    {"kind": "performance", "name": "<name>", "records": [{...}, ...]}

and every record carries, besides its measurements, ``date`` (YYYY-MM-DD), ``deepclust_version``,
``command`` (the command line that produced it), ``machine`` and ``fingerprints``: the
behaviour fingerprint (:func:`deepclust.fingerprint.fingerprint`) of each method it measures,
so that ``tests/test_perf_results_current.py`` can tell when the code no longer behaves as the
code that measured it.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def results_path(name: str) -> Path:
    return RESULTS / f"perf__{name}.json"


@cache
def _fingerprint(method: str) -> str:
    from deepclust.fingerprint import fingerprint

    return fingerprint(method)


def command_line() -> str:
    """This process's command line, script path relative to the checkout; a script that runs
    itself in children passes its own command down in ``BENCH_COMMAND``."""
    if os.environ.get("BENCH_COMMAND"):
        return os.environ["BENCH_COMMAND"]
    script = Path(sys.argv[0]).resolve()
    arg0 = str(script.relative_to(ROOT)) if script.is_relative_to(ROOT) else sys.argv[0]
    return shlex.join(["python", arg0, *sys.argv[1:]])


def machine() -> dict:
    return {"platform": platform.platform(), "cpu_count": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}


def append_record(name: str, record: dict, *, methods, command: str, out=None) -> dict:
    """Append ``record`` (with the fields above) to ``perf__<name>.json`` or to ``out``; returns it."""
    import deepclust

    path = Path(out) if out else results_path(name)
    doc = json.loads(path.read_text()) if path.exists() else {"kind": "performance", "name": name, "records": []}
    record = {**record, "date": datetime.date.today().isoformat(), "deepclust_version": deepclust.__version__,
              "command": command, "machine": machine(),
              "fingerprints": {m: _fingerprint(m) for m in methods}}
    doc["records"].append(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    os.replace(tmp, path)
    return record


def load_records(name: str, out=None) -> list[dict]:
    path = Path(out) if out else results_path(name)
    return json.loads(path.read_text())["records"] if path.exists() else []
