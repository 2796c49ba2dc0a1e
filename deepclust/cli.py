"""The ``deepclust`` command.

    deepclust datasets
    deepclust run METHOD --dataset NAME | --data FILE [--gt FILE] [--preset fast|paper]
                  [--seed S] [--out DIR] [--set key=value ...] [--checkpoint-dir DIR [--resume]]
    deepclust bench --methods m1,m2 --datasets d1,d2 --seeds 0,1,2 [--preset fast]

Errors a user can fix (bad names, bad files, bad parameters) are printed in one line on stderr
with exit status 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from pathlib import Path

__all__ = ["main", "build_parser"]


class UserError(Exception):
    """An error whose message is enough for the user to fix the problem."""


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be integers separated by commas, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    from deepclust import __version__

    p = argparse.ArgumentParser(prog="deepclust", description="Deep clustering of images and hyperspectral scenes.")
    p.add_argument("--version", action="version", version=f"deepclust {__version__}")
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("datasets", help="list the dataset catalog and what is present locally")
    sub.add_parser("methods", help="list the methods")

    r = sub.add_parser("run", help="train one method on one dataset and write its outputs")
    r.add_argument("method")
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="a catalog name (see `deepclust datasets`)")
    src.add_argument("--data", help="your own file: .mat, .npy, .npz, IDX, or a folder of images")
    r.add_argument("--gt", help="ground-truth file for --data (a scene's (H, W) map or labels)")
    r.add_argument("--key", help="array name inside --data when it holds several")
    r.add_argument("--gt-key", help="array name inside --gt when it holds several")
    r.add_argument("--preset", default="fast", help="fast (CPU minutes) or paper (the paper's settings)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--out", default=None, help="output folder (default runs/METHOD-DATASET-seedS)")
    r.add_argument("--n-clusters", type=int, default=None, help="default: the number of classes")
    r.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default: the preset's, else auto)")
    r.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                   help="override constructor arguments (repeatable)")
    r.add_argument("--no-pictures", action="store_true", help="skip the PNG pictures")
    r.add_argument("--download", action="store_true",
                   help="download a missing catalog file from its canonical URL (checksum verified)")
    r.add_argument("--checkpoint-dir", default=None,
                   help="write a checkpoint after every epoch into this folder (deep methods)")
    r.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its checkpoint in --checkpoint-dir")
    r.add_argument("--nproc", type=int, default=1,
                   help="train with N local processes (torch.distributed: gloo on CPU, NCCL on GPUs)")
    r.add_argument("-v", "--verbose", action="store_true", help="progress bars and info logging")

    g = sub.add_parser("segment", help="segment a scene patch-wise (RECAL) and write the map")
    g.add_argument("method", choices=["recal"])
    g.add_argument("--data", required=True,
                   help="salinas-a, ucmerced-mosaic[-S] or a .npy cube (H, W, B)")
    g.add_argument("--bands", default=None, help="all (default), liss4 (green/red/NIR means) or i,j,k")
    g.add_argument("--patch", type=int, default=8, help="patch side in pixels")
    g.add_argument("--stride", type=int, default=2, help="step between patch centres")
    g.add_argument("--clusters", type=int, default=10)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--preset", default="fast")
    g.add_argument("--model", default=None, help="a model.pt from an earlier segment run to apply")
    g.add_argument("--compare", default=None, help="another label_map.npy: Jaccard consensus (eq. 5)")
    g.add_argument("--device", default="auto")
    g.add_argument("--out", default=None, help="output folder (default runs/segment-DATA-seedS)")
    g.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE")

    b = sub.add_parser("bench", help="run methods x datasets x seeds and regenerate benchmarks/RESULTS.md")
    b.add_argument("--methods", type=_csv, required=True)
    b.add_argument("--datasets", type=_csv, required=True)
    b.add_argument("--seeds", type=_seeds, default=[0, 1, 2])
    b.add_argument("--preset", default="fast")
    b.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE")
    b.add_argument("--tag", default=None, help="suffix of the results file name (e.g. an ablation)")
    b.add_argument("--bench-dir", default="benchmarks", help="where results/ and RESULTS.md live")
    b.add_argument("--timeout", type=float, default=None, help="seconds per run")
    b.add_argument("--keep", default=None, metavar="DIR",
                   help="keep every run's outputs, pictures included, in DIR/<method>__<dataset>__<preset>"
                        "[__tag]/seed<k> (default: runs go to a temporary folder, no pictures)")
    return p


def _cmd_datasets() -> int:
    from deepclust.data import CATALOG, dataset_status

    rows = []
    for name in CATALOG:
        st = dataset_status(name)
        files = st.get("files", [])
        missing = [f for f in files if not f.get("found")]
        if st.get("available"):
            where = str(Path(files[0]["found"]).parent) if files else "built in (scikit-learn)"
            status = "present"
        else:
            where = missing[0]["url"] if missing else ""
            status = f"missing {len(missing)} of {len(files)} file(s)"
        rows.append((name, st.get("kind", ""), str(st.get("n_samples", "")), str(st.get("n_classes", "")),
                     status, where))
    header = ("name", "kind", "samples", "classes", "status", "where / url")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(6)]
    for row in [header] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    return 0


def _cmd_methods() -> int:
    from deepclust.methods import METHODS

    for name, target in METHODS.items():
        print(f"{name:8s} {target}")
    return 0


def _cmd_run(args) -> int:
    from deepclust.runner import parse_overrides, run_experiment

    src = args.dataset or Path(args.data).stem
    out = args.out or f"runs/{args.method}-{src}-seed{args.seed}"
    kwargs = dict(
        dataset=args.dataset, data=args.data, gt=args.gt, key=args.key,
        gt_key=args.gt_key, preset=args.preset, seed=args.seed, out=out,
        overrides=parse_overrides(args.set), n_clusters=args.n_clusters, device=args.device,
        pictures=not args.no_pictures, verbose=args.verbose, download=args.download or None,
        checkpoint_dir=args.checkpoint_dir, resume=args.resume,
    )
    if args.nproc < 1:
        raise ValueError(f"--nproc must be >= 1, got {args.nproc}")
    if _under_torchrun():
        # started by torchrun (several nodes): this process is one rank of torchrun's group
        if args.nproc != 1:
            raise ValueError("--nproc starts local workers; under torchrun use its --nproc-per-node instead")
        import torch.distributed as dist

        from deepclust.distributed import init_from_env, rank

        init_from_env()
        try:
            is_rank0 = rank() == 0
            record = _distributed_run(args.method, **kwargs)
        finally:
            dist.destroy_process_group()
        if not is_rank0:  # only rank 0 writes outputs and reports
            return 0
    elif args.nproc == 1:
        record = run_experiment(args.method, **kwargs)
    else:
        from deepclust.distributed import launch_local

        record = launch_local(args.nproc, _distributed_run, {"method": args.method, **kwargs})
    keys = ["acc", "nmi", "ari", "oa", "kappa"]
    shown = {k: round(record[k], 4) for k in keys if k in record}
    for name in ("kmeans",):
        if isinstance(record.get(name), dict):
            shown[f"{name}_acc"] = round(record[name]["acc"], 4)
            shown[f"{name}_nmi"] = round(record[name]["nmi"], 4)
    shown["fit_seconds"] = record["fit_seconds"]
    shown["peak_rss_mb"] = record["peak_rss_mb"]
    print(f"{record['method']} on {record['dataset']} (preset {record['preset']}, seed {record['seed']}, "
          f"n={record['n_samples']}, k={record['n_clusters']})")
    print(json.dumps(shown))
    print(f"outputs written to {out}/")
    return 0


def _under_torchrun() -> bool:
    """True when torchrun (or another launcher) set RANK/WORLD_SIZE for more than one process."""
    return "RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def _distributed_run(method: str, **kwargs) -> dict:
    """One worker of ``run --nproc N``: rank 0 writes the outputs, the others write nowhere."""
    import tempfile

    from deepclust.distributed import rank
    from deepclust.runner import run_experiment, to_jsonable

    if rank() == 0:
        return to_jsonable(run_experiment(method, **kwargs))  # sent back to the launcher as JSON
    with tempfile.TemporaryDirectory(prefix="deepclust-rank") as tmp:
        kwargs.update(out=str(Path(tmp) / "out"), pictures=False)
        return run_experiment(method, **kwargs)


def _cmd_segment(args) -> int:
    from deepclust.methods.recal import run_segment
    from deepclust.runner import parse_overrides

    out = args.out or f"runs/segment-{Path(args.data).stem}-seed{args.seed}"
    result = run_segment(
        {"data": args.data, "bands": args.bands, "patch": args.patch, "stride": args.stride,
         "clusters": args.clusters, "seed": args.seed, "preset": args.preset, "model": args.model,
         "compare": args.compare, "device": args.device, "set": parse_overrides(args.set)},
        out,
    )
    shown = {k: round(v, 4) for k, v in (result.get("metrics") or {}).items() if isinstance(v, float)}
    if "consensus" in result:
        shown["consensus_mean_jaccard"] = round(result["consensus"]["mean_matched"], 4)
    print(f"recal segmentation of {args.data} ({result.get('bands')}): {json.dumps(shown)}")
    print(f"outputs written to {out}/")
    return 0


def _cmd_bench(args) -> int:
    from deepclust.bench import run_bench

    run_bench(methods=args.methods, datasets=args.datasets, seeds=args.seeds, preset=args.preset,
              overrides=args.set, tag=args.tag, bench_dir=Path(args.bench_dir), timeout=args.timeout,
              keep=None if args.keep is None else Path(args.keep))
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings in one line, ``deepclust: warning: ...`` (``--debug`` shows Python's format)."""
    text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    print(f"deepclust: warning: {text}", file=file or sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    with warnings.catch_warnings():  # restores the caller's warning settings afterwards
        warnings.simplefilter("default")
        if not args.debug:
            warnings.showwarning = _show_warning
        return _dispatch(parser, args)


def _one_line(exc: BaseException) -> str:
    # The message's own lines joined, so nothing the user needs is cut off.
    return " ".join(part.strip() for part in str(exc).splitlines() if part.strip())


def _dispatch(parser: argparse.ArgumentParser, args) -> int:
    commands = {"datasets": _cmd_datasets, "methods": _cmd_methods}
    try:
        if args.command in commands:
            return commands[args.command]()
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "bench":
            return _cmd_bench(args)
        if args.command == "segment":
            return _cmd_segment(args)
    except KeyboardInterrupt:
        print("deepclust: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileNotFoundError, PermissionError, UserError, FloatingPointError) as exc:
        if args.debug:
            raise
        print(f"deepclust: error: {_one_line(exc) or type(exc).__name__}", file=sys.stderr)
        return 2
    except OSError as exc:  # disk full, an I/O error while writing, ...
        if args.debug:
            raise
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"deepclust: error: {exc.strerror or _one_line(exc)}{where}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug, not a user error: one line, and how to get the details
        if args.debug:
            raise
        print(f"deepclust: unexpected error ({type(exc).__name__}: {_one_line(exc)}); rerun with --debug "
              "for the traceback and please report it", file=sys.stderr)
        return 1
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
