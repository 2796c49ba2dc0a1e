"""The ``deepclust`` command.

    deepclust datasets
    deepclust methods
    deepclust run METHOD --dataset NAME | --data FILE [--gt FILE] [--kind images|scene|vectors]
                  [--preset fast|paper] [--seed S] [--out DIR] [--set key=value ...]
                  [--checkpoint-dir DIR [--resume]] [-q | -v]
    deepclust segment recal --dataset SCENE | --data FILE [--n-clusters K] [--out DIR]
    deepclust bench --methods m1,m2 --datasets d1,d2 --seeds 0,1,2 [--out DIR]

Errors a user can fix (bad names, bad files, bad parameters, unknown flags) are printed in one
line on stderr with exit status 2; ``--debug`` shows the traceback instead. Flags are never
abbreviated (``--k`` is an error, not ``--key``), and an unknown flag gets the close matches.
Progress (stage, epoch, loss, ETA) is shown on stderr when it is a terminal; ``-q`` silences it.
SIGTERM is handled like Ctrl-C: staged outputs are removed and the exit status is 143.

Heavy libraries (torch, matplotlib, scikit-learn) are imported inside the commands that need
them, so ``deepclust --help`` and ``deepclust methods`` start in a fraction of a second.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import os
import signal
import sys
import warnings
from pathlib import Path

__all__ = ["main", "build_parser"]

KINDS = ("images", "scene", "vectors")
#: Flags an earlier version spelled otherwise: suggested when the old spelling is typed.
RENAMED = {"--clusters": "--n-clusters", "--bench-dir": "--out"}


class UserError(Exception):
    """An error whose message is enough for the user to fix the problem."""


class Terminated(KeyboardInterrupt):
    """Raised by the SIGTERM handler, so a scheduler's ``kill`` cleans up like Ctrl-C does."""


def _on_sigterm(signum, frame):  # noqa: ARG001 (signal handler signature)
    raise Terminated()


def install_sigterm_handler() -> None:
    """SIGTERM raises :class:`Terminated` (a KeyboardInterrupt) in the main thread."""
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)


class _Parser(argparse.ArgumentParser):
    """argparse without abbreviations, whose errors are one line with the close matches."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def unknown_flags(self, extras: list[str]):
        """Exit with one line naming the unrecognized arguments and the flags they resemble."""
        options = sorted({o for a in self._actions for o in a.option_strings if o.startswith("--")})
        hints = []
        for token in extras:
            flag = token.split("=", 1)[0]
            if not flag.startswith("-"):
                continue
            close = [RENAMED[flag]] if RENAMED.get(flag) in options else []
            close += [o for o in options if o.startswith(flag) and flag.startswith("--") and o not in close]
            close += [o for o in difflib.get_close_matches(flag, options, n=3, cutoff=0.6) if o not in close]
            if close:
                hints.append(f"{flag}: did you mean {' or '.join(close[:3])}?")
        what = "argument" if len(extras) == 1 else "arguments"
        text = f"unrecognized {what}: {' '.join(extras)}"
        self.error(text + ("; " + "; ".join(hints) if hints else ""))


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every option's default in its help line (unless the help already says it or it is unset)."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        unset = default is None or default is False or default == [] or default == argparse.SUPPRESS
        if action.option_strings and "default" not in text and not unset and action.nargs != 0:
            if isinstance(default, list):
                default = ",".join(str(d) for d in default)
            text += f" (default: {default})"
        return text


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds must be integers separated by commas, got {text!r}") from None


def _methods_epilog() -> str:
    from deepclust.methods import METHOD_INFO

    lines = ["methods (deepclust methods shows the papers):"]
    width = max(len(name) for name in METHOD_INFO)
    for name, (_, kind, good) in METHOD_INFO.items():
        lines.append(f"  {name:{width}s} {kind:7s} {good}")
    return "\n".join(lines)


def _quiet_flags(parser: argparse.ArgumentParser, *, verbose: bool = True) -> None:
    g = parser.add_mutually_exclusive_group()
    g.add_argument("-q", "--quiet", action="store_true",
                   help="no progress and no notes on stderr (errors and warnings are still shown); progress is "
                        "shown by default when stderr is a terminal")
    if verbose:
        g.add_argument("-v", "--verbose", action="store_true", help="also log details (INFO level) on stderr")


def build_parser() -> argparse.ArgumentParser:
    from deepclust import __version__

    p = _Parser(prog="deepclust", description="Deep clustering of images and hyperspectral scenes.")
    p.add_argument("--version", action="version", version=f"deepclust {__version__}")
    p.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("datasets", help="list the dataset catalog and what is present locally",
                   description="The dataset catalog, what is present locally, and where it was found.")
    sub.add_parser("methods", help="list the methods: name, paper, input kind, what each is good for",
                   description="The methods: name, paper, input kind, what each is good for.")

    r = sub.add_parser("run", help="train one method on one dataset and write its outputs",
                       description="Train one method on one dataset and write metrics.json, labels.npy, "
                                   "model.pt and pictures to --out.",
                       epilog=_methods_epilog())
    r.add_argument("method", metavar="METHOD", help="one of the methods below (case-insensitive)")
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="a catalog name (see `deepclust datasets`)")
    src.add_argument("--data", help="your own file: .mat, .npy, .npz, .h5, IDX, or a folder of images")
    r.add_argument("--gt", help="ground-truth file for --data: a scene's (H, W) map or one label per sample")
    r.add_argument("--key", help="array name inside a --data .mat/.npz/.h5 file that holds several")
    r.add_argument("--gt-key", help="array name inside --gt (or inside --data when the labels are there)")
    r.add_argument("--kind", choices=KINDS, default=None,
                   help="how to read a --data array: images (N, H, W[, C]), a scene (H, W, B) or vectors (N, D) "
                        "(default: guessed from the shapes, and the guess is printed)")
    r.add_argument("--preset", default="fast", help="fast (CPU minutes) or paper (the paper's settings)")
    r.add_argument("--seed", type=int, default=0, help="random seed")
    r.add_argument("--out", default=None, help="output folder (default: runs/METHOD-DATASET-seedS)")
    r.add_argument("--n-clusters", type=int, default=None, help="number of clusters (default: the number of classes)")
    r.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default: the preset's, else auto)")
    r.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                   help="override constructor arguments of the method (repeatable; an unknown KEY is an error "
                        "that lists the method's parameters)")
    r.add_argument("--no-pictures", action="store_true", help="skip the PNG pictures")
    r.add_argument("--download", action="store_true",
                   help="download a missing catalog file from its canonical URL (checksum verified)")
    r.add_argument("--checkpoint-dir", default=None,
                   help="write a checkpoint after every epoch into this folder (deep methods)")
    r.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its checkpoint in --checkpoint-dir")
    r.add_argument("--nproc", type=int, default=1,
                   help="train with N local processes (torch.distributed: gloo on CPU, NCCL on GPUs)")
    _quiet_flags(r)

    g = sub.add_parser("segment", help="segment a scene patch-wise (RECAL) and write the map",
                       description="Segment a scene patch-wise with RECAL and write label_map.npy, "
                                   "segmentation.png, metrics.json and model.pt to --out.")
    g.add_argument("method", choices=["recal"], help="the method (recal)")
    gsrc = g.add_mutually_exclusive_group(required=True)
    gsrc.add_argument("--dataset", help="a catalog scene (e.g. salinas-a) or ucmerced-mosaic[-S]")
    gsrc.add_argument("--data", help="your own scene: a .npy cube (H, W, B)")
    g.add_argument("--bands", default=None, help="all (default), liss4 (green/red/NIR means) or i,j,k")
    g.add_argument("--patch", type=int, default=8, help="patch side in pixels")
    g.add_argument("--stride", type=int, default=2, help="step between patch centres")
    g.add_argument("--n-clusters", type=int, default=10, help="number of clusters")
    g.add_argument("--seed", type=int, default=0, help="random seed")
    g.add_argument("--preset", default="fast", help="fast or paper")
    g.add_argument("--model", default=None, help="a model.pt from an earlier segment run to apply")
    g.add_argument("--compare", default=None, help="another label_map.npy: Jaccard consensus (eq. 5)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    g.add_argument("--out", default=None, help="output folder (default: runs/segment-DATA-seedS)")
    g.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                   help="override RECAL constructor arguments (repeatable)")
    g.add_argument("--download", action="store_true",
                   help="download a missing catalog file from its canonical URL (checksum verified)")
    _quiet_flags(g)

    b = sub.add_parser("bench", help="run methods x datasets x seeds and write a results table",
                       description="Run methods x datasets x seeds, each in its own process, and write "
                                   "OUT/results/*.json and OUT/RESULTS.md. The project's own tables are "
                                   "regenerated only when asked: --out benchmarks, from the checkout.")
    b.add_argument("--methods", type=_csv, required=True, help="comma-separated method names")
    b.add_argument("--datasets", type=_csv, required=True, help="comma-separated catalog names")
    b.add_argument("--seeds", type=_seeds, default=[0, 1, 2], help="comma-separated seeds")
    b.add_argument("--preset", default="fast", help="fast or paper")
    b.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                   help="override constructor arguments in every run (repeatable)")
    b.add_argument("--tag", default=None, help="suffix of the results file name (e.g. an ablation)")
    b.add_argument("--out", default="runs/bench", help="folder for results/ and RESULTS.md")
    b.add_argument("--timeout", type=float, default=None, help="seconds per run (default: none)")
    b.add_argument("--keep", default=None, metavar="DIR",
                   help="keep every run's outputs, pictures included, in DIR/<method>__<dataset>__<preset>"
                        "[__tag]/seed<k> (default: runs go to a temporary folder, no pictures)")
    return p


def parse_args(parser: argparse.ArgumentParser, argv: list[str] | None):
    """``parser.parse_args`` with one-line errors that suggest the flag meant."""
    args, extras = parser.parse_known_args(argv)
    if extras:
        target = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction) and getattr(args, "command", None) in action.choices:
                target = action.choices[args.command]
        target.unknown_flags(extras)
    return args


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
    _table(("name", "kind", "samples", "classes", "status", "where / url"), rows)
    return 0


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


def _cmd_methods() -> int:
    from deepclust.methods import METHOD_INFO

    _table(("name", "paper", "input", "good for"),
           [(name, paper, kind, good) for name, (paper, kind, good) in METHOD_INFO.items()])
    return 0


def _note(message: str) -> None:
    """A progress or information line on stderr (module level: it is pickled into DDP workers)."""
    print(f"deepclust: {message}", file=sys.stderr, flush=True)


def _show_progress(args) -> bool:
    return not getattr(args, "quiet", False) and sys.stderr.isatty()


def _normalize_dataset(name: str | None) -> str | None:
    """``Digits`` -> ``digits`` (the catalog's spelling) so presets and output names match."""
    if name is None:
        return None
    from deepclust.data.registry import CATALOG

    key = name.strip().lower().replace("_", "-")
    return key if key in CATALOG else name


def _cmd_run(args) -> int:
    from deepclust.methods import normalize_method

    method = normalize_method(args.method)
    dataset = _normalize_dataset(args.dataset)
    if dataset is not None:
        given = [flag for flag, value in (("--gt", args.gt), ("--key", args.key), ("--gt-key", args.gt_key),
                                          ("--kind", args.kind)) if value is not None]
        if given:
            raise UserError(f"{', '.join(given)} only apply to --data FILE; a catalog --dataset knows its own files")
    if args.nproc < 1:
        raise ValueError(f"--nproc must be >= 1, got {args.nproc}")
    from deepclust.runner import parse_overrides

    src = dataset or Path(args.data).stem
    out = args.out or f"runs/{method}-{src}-seed{args.seed}"
    kwargs = dict(
        dataset=dataset, data=args.data, gt=args.gt, key=args.key, kind=args.kind,
        gt_key=args.gt_key, preset=args.preset, seed=args.seed, out=out,
        overrides=parse_overrides(args.set), n_clusters=args.n_clusters, device=args.device,
        pictures=not args.no_pictures, progress=_show_progress(args), notify=None if args.quiet else _note,
        download=args.download or None, checkpoint_dir=args.checkpoint_dir, resume=args.resume,
    )
    if _under_torchrun():
        # started by torchrun (several nodes): this process is one rank of torchrun's group
        if args.nproc != 1:
            raise ValueError("--nproc starts local workers; under torchrun use its --nproc-per-node instead")
        import torch.distributed as dist

        from deepclust.distributed import init_from_env, rank

        init_from_env()
        try:
            is_rank0 = rank() == 0
            record = _distributed_run(method, **kwargs)
        finally:
            dist.destroy_process_group()
        if not is_rank0:  # only rank 0 writes outputs and reports
            return 0
    elif args.nproc == 1:
        from deepclust.runner import run_experiment

        record = run_experiment(method, **kwargs)
    else:
        from deepclust.distributed import launch_local

        record = launch_local(args.nproc, _distributed_run, {"method": method, **kwargs})
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
    """One worker of ``run --nproc N``: rank 0 writes the outputs and shows the progress, the
    others write nowhere and stay silent."""
    import tempfile

    from deepclust.distributed import rank
    from deepclust.runner import run_experiment, to_jsonable

    install_sigterm_handler()  # the launcher forwards SIGTERM: rank 0 removes its staging folder
    if rank() == 0:
        return to_jsonable(run_experiment(method, **kwargs))  # sent back to the launcher as JSON
    with tempfile.TemporaryDirectory(prefix="deepclust-rank") as tmp:
        kwargs.update(out=str(Path(tmp) / "out"), pictures=False, progress=False, notify=None)
        return run_experiment(method, **kwargs)


def _cmd_segment(args) -> int:
    source = _normalize_dataset(args.dataset) if args.dataset is not None else args.data
    if args.dataset is not None:
        from deepclust.data.registry import CATALOG

        scenes = [n for n, e in CATALOG.items() if e.kind == "scene"]
        mosaic = source == "ucmerced-mosaic" or (source.startswith("ucmerced-mosaic-")
                                                 and source.rsplit("-", 1)[1].isdigit())
        if source not in scenes and not mosaic:
            raise UserError(f"--dataset {args.dataset!r} is not a catalog scene; use one of {', '.join(scenes)} or "
                            "ucmerced-mosaic[-S] (your own cube: --data FILE.npy)")
    if args.data is not None and not Path(args.data).exists():
        raise FileNotFoundError(f"{args.data}: no such file (catalog scenes are given with --dataset NAME)")
    out = args.out or f"runs/segment-{Path(source).stem}-seed{args.seed}"
    from deepclust.methods.recal import run_segment
    from deepclust.runner import parse_overrides

    result = run_segment(
        {"data": source, "bands": args.bands, "patch": args.patch, "stride": args.stride,
         "clusters": args.n_clusters, "seed": args.seed, "preset": args.preset, "model": args.model,
         "compare": args.compare, "device": args.device, "set": parse_overrides(args.set),
         "download": args.download or None, "progress": _show_progress(args)},
        out,
    )
    shown = {k: round(v, 4) for k, v in (result.get("metrics") or {}).items() if isinstance(v, float)}
    if "consensus" in result:
        shown["consensus_mean_jaccard"] = round(result["consensus"]["mean_matched"], 4)
    print(f"recal segmentation of {source} ({result.get('bands')}): {json.dumps(shown)}")
    print(f"outputs written to {out}/")
    return 0


def _cmd_bench(args) -> int:
    from deepclust.bench import run_bench

    run_bench(methods=args.methods, datasets=args.datasets, seeds=args.seeds, preset=args.preset,
              overrides=args.set, tag=args.tag, out=Path(args.out), timeout=args.timeout,
              keep=None if args.keep is None else Path(args.keep))
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings in one line, ``deepclust: warning: ...`` (``--debug`` shows Python's format)."""
    text = " ".join(part.strip() for part in str(message).splitlines() if part.strip())
    print(f"deepclust: warning: {text}", file=file or sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse_args(parser, argv)
    logging.basicConfig(level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    previous = signal.getsignal(signal.SIGTERM)
    install_sigterm_handler()
    try:
        with warnings.catch_warnings():  # restores the caller's warning settings afterwards
            warnings.simplefilter("default")
            if not args.debug:
                warnings.showwarning = _show_warning
            return _dispatch(parser, args)
    finally:
        try:
            signal.signal(signal.SIGTERM, previous)
        except (ValueError, TypeError):  # not the main thread, or a handler Python did not install
            pass


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
    except Terminated:
        print("deepclust: terminated (SIGTERM); partial outputs removed", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("deepclust: interrupted", file=sys.stderr)
        return 130
    except FileNotFoundError as exc:
        if args.debug:
            raise
        if hasattr(exc, "cli_message"):  # a missing catalog file: one sentence a line, where to put or get it
            print(f"deepclust: error: {exc.cli_message}", file=sys.stderr)
        else:
            print(f"deepclust: error: {_one_line(exc) or type(exc).__name__}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, PermissionError, UserError, FloatingPointError) as exc:
        if args.debug:
            raise
        print(f"deepclust: error: {_one_line(exc) or type(exc).__name__}", file=sys.stderr)
        return 2
    except ImportError as exc:
        if args.debug:
            raise
        if not getattr(exc, "install_hint", None):
            return _unexpected(exc)
        # an optional dependency is missing: the message says what to install
        print(f"deepclust: error: {_one_line(exc)}", file=sys.stderr)
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
        return _unexpected(exc)
    parser.error(f"unknown command {args.command}")
    return 2


def _interrupt_in_chain(exc: BaseException) -> BaseException | None:
    """The KeyboardInterrupt (Ctrl-C, or :class:`Terminated` for SIGTERM) that ``exc`` wraps, if
    any: a signal that lands inside Python machinery that re-raises (a class body's
    ``__set_name__`` while a module is being imported, say) arrives as that machinery's
    RuntimeError with the interrupt as its cause."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _unexpected(exc: BaseException) -> int:
    interrupt = _interrupt_in_chain(exc)
    if isinstance(interrupt, Terminated):
        print("deepclust: terminated (SIGTERM); partial outputs removed", file=sys.stderr)
        return 143
    if interrupt is not None:
        print("deepclust: interrupted", file=sys.stderr)
        return 130
    print(f"deepclust: unexpected error ({type(exc).__name__}: {_one_line(exc)}); rerun with --debug "
          "for the traceback and please report it", file=sys.stderr)
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
