"""`silc-bench` command line: run, list, demo.

Bad input ends with one line on stderr and exit code 2; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import warnings
from pathlib import Path

from silc_bench.errors import UserError, first_line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        command = self.prog.removeprefix("silc-bench").strip()
        where = f"{command}: " if command else ""
        self.exit(2, f"silc-bench: error: {where}{message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="silc-bench", description="Evaluate CLIP-like models the way the SILC paper did.")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    # --debug works before or after the subcommand; SUPPRESS keeps a subparser from
    # resetting a --debug given before it
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    r = sub.add_parser("run", parents=[common], help="evaluate a model on a task")
    r.add_argument("--task", required=True, help="zs-cls, fs-cls, retrieval, zs-seg (see `list tasks`)")
    r.add_argument(
        "--model", required=True, help="NAME, NAME:teacher|student, or open_clip:ARCH with --weights"
    )
    r.add_argument("--dataset", help="NAME[,NAME] or imagefolder:PATH (default: all of the task's)")
    r.add_argument(
        "--data-root",
        default=os.environ.get("SILC_BENCH_DATA", "data"),
        help="folder holding the datasets (default: $SILC_BENCH_DATA or ./data)",
    )
    r.add_argument("--out", default="results", help="results folder (default: results/)")
    r.add_argument("--weights", help="checkpoint file (for open_clip:ARCH, or to override a registry path)")
    r.add_argument(
        "--protocol", default=None, help="protocol profile (default: the task's; see `list tasks`)"
    )
    r.add_argument("--device", default="auto", help="auto, cpu or cuda")
    r.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    r.add_argument("--batch-size", type=int, default=64)
    r.add_argument("--compile", action="store_true", help="torch.compile the image tower (recorded)")
    r.add_argument("--channels-last", action="store_true", help="channels-last image tensors (recorded)")
    r.add_argument(
        "--decode", choices=["cpu", "gpu"], default="cpu", help="gpu: JPEGs decoded on the model's device"
    )
    r.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="image decoding workers")
    r.add_argument("--limit", type=int, help="evaluate only the first N images (smoke tests)")
    r.add_argument("--force", action="store_true", help="recompute even if the result exists")
    r.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    r.add_argument(
        "--verify-data",
        action="store_true",
        help="re-hash every data file for the fingerprint, ignoring the memo of earlier hashes",
    )
    r.add_argument(
        "--max-image-pixels",
        type=int,
        help="raise PIL's decompression-bomb limit for images you trust (default: PIL's, ~179M pixels)",
    )
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    seg = r.add_argument_group("zs-seg")
    seg.add_argument(
        "--dense-mode",
        help="patch-proj, maskclip, sclip, clearclip, naclip (default: the model's, from checkpoints.yaml)",
    )
    seg.add_argument(
        "--classnames",
        choices=["mmseg", "spaced", "sclip"],
        help="class-name style instead of the profile's (tcl: mmseg's names, as TCL queries them)",
    )
    seg.add_argument("--pamr", action="store_true", help="TCL only: PAMR refinement (not raw zero-shot)")
    seg.add_argument(
        "--tcl-ensemble",
        action="store_true",
        help="TCL only: the label-tuned 0.3 MaskCLIP mix (not raw zero-shot)",
    )
    seg.add_argument(
        "--save-predictions",
        action="store_true",
        help="write one PNG per image to <out>/<model>/zs-seg/<dataset>/pred/",
    )

    ck = sub.add_parser("check", parents=[common], help="check result files (protocol audit)")
    ck.add_argument("results", nargs="?", default=None, help="a results folder or file (default: results/)")
    ck.add_argument("--results", dest="results_opt", default=None, help="the same, as an option")
    ck.add_argument(
        "--zero-shot-only",
        action="store_true",
        help="fail if any result used refinement or label-tuned constants",
    )
    ck.add_argument(
        "--regression",
        action="store_true",
        help="compare every result with its model's `expected` numbers in checkpoints.yaml",
    )
    ck.add_argument(
        "--tolerance",
        type=float,
        default=1.0,
        help="allowed |result - expected|, in points, where the registry names no `tolerance:` (1.0)",
    )
    ck.add_argument("--models", nargs="+", help="only these registry entries; a missing result fails")
    ck.add_argument("--run", action="store_true", help="first evaluate every expected key that has no result")
    ck.add_argument(
        "--data-root",
        default=os.environ.get("SILC_BENCH_DATA", "data"),
        help="for --run: folder holding the datasets (generated ShapesWorld sets need none)",
    )
    ck.add_argument("--quiet", action="store_true", help="no progress bars (--run)")
    ck.add_argument("--device", default="cpu", help="for --run: cpu (default), cuda or auto")

    tb = sub.add_parser("table", parents=[common], help="the paper's comparison tables, from result files")
    tb.add_argument(
        "which", choices=["1", "2", "3", "4", "all", "shapes"], help="a supplementary table, all, or shapes"
    )
    tb.add_argument("--results", default="results", help="results folder (missing or empty: paper or –)")
    tb.add_argument("--paper", action="store_true", help="show measured / paper (Δ) in every cell")
    tb.add_argument("--format", default="markdown", choices=["markdown", "csv", "latex"])
    tb.add_argument("--out", help="write to this file instead of stdout")

    im = sub.add_parser("import", parents=[common], help="numbers measured elsewhere (CAT-Seg), as results")
    im.add_argument("--task", required=True, help="ov-seg")
    im.add_argument("file", help="CSV (model,checkpoint_sha256,dataset,mIoU[,method]) or a JSON list")
    im.add_argument("--out", default="results", help="results folder (default: results/)")

    fg = sub.add_parser("figure", parents=[common], help="qualitative zs-seg grid (the paper's Figures 1-4)")
    fg.add_argument("--task", default="zs-seg", choices=["zs-seg"])
    fg.add_argument("--models", required=True, help="A,B[,...]: one prediction column per model")
    fg.add_argument("--dataset", required=True, help="a zs-seg dataset (e.g. shapes-seg)")
    fg.add_argument("--n", type=int, default=6, help="images (rows), first in dataset order (default 6)")
    fg.add_argument("--out", default="figures", help="folder that receives only the figure PNGs")
    fg.add_argument("--results", default="results", help="where predictions are saved or found")
    fg.add_argument("--data-root", default=os.environ.get("SILC_BENCH_DATA", "data"))
    fg.add_argument("--confusions", action="store_true", help="class pairs model A confuses and B does not")

    ex = sub.add_parser(
        "export", parents=[common], help="a plain open_clip checkpoint + config others can load"
    )
    ex.add_argument("model", help="NAME or NAME:VARIANT (a registry entry)")
    ex.add_argument("--variant", help="teacher or student (same as NAME:VARIANT)")
    ex.add_argument("--out", required=True, help="a folder that becomes an open_clip `local-dir:` model")

    cv = sub.add_parser(
        "convert", parents=[common], help="big_vision .npz → a verified open_clip safetensors file"
    )
    cv.add_argument("src", metavar="IN.npz", help="the big_vision two-tower checkpoint")
    cv.add_argument("--from", dest="source_format", default="big_vision", choices=["big_vision"])
    cv.add_argument("--out", required=True, help="OUT.safetensors (its folder must exist)")
    cv.add_argument("--arch", help="open_clip architecture to load it into (default: from shapes)")
    cv.add_argument("--tokenizer", help="its sentencepiece .model file (recorded in the metadata)")
    cv.add_argument("--pooling", help="map, gap or tok (default: inferred from the parameters)")
    cv.add_argument("--fp16", action="store_true", help="write float16 tensors (default float32)")
    cv.add_argument("--name", help="the model name --register gives it (default: OUT's stem)")
    cv.add_argument("--register", action="store_true", help="add it to the user models file")

    rs = sub.add_parser(
        "resave", parents=[common], help="one-time: a pickle checkpoint you trust → tensors-only safetensors"
    )
    rs.add_argument("src", metavar="IN.pth")
    rs.add_argument("--out", required=True, help="OUT.safetensors")
    rs.add_argument("--trust-pickle", action="store_true", help="required: unpickling runs the file's code")

    ca = sub.add_parser("cache", parents=[common], help="show or free the feature cache")
    ca.add_argument("action", choices=["list", "clear"])
    ca.add_argument("--model", help="only the entries of this model (NAME[:VARIANT], or any --model form)")
    ca.add_argument("--weights", help="with --model open_clip:ARCH: its checkpoint file")

    ls = sub.add_parser("list", parents=[common], help="list tasks, models or datasets")
    ls.add_argument("what", choices=["tasks", "models", "datasets"])

    d = sub.add_parser("demo", parents=[common], help="the main job on the embedded default (generated data)")
    d.add_argument("--out", default="results")
    d.add_argument("--model", default=None, help="default: silc-tiny (shipped in the package)")
    d.add_argument("--quiet", action="store_true")

    tr = sub.add_parser(
        "train", parents=[common], help="train SILC (or CLIP, PACL) from a YAML config (torchrun for DDP)"
    )
    tr.add_argument("--config", required=True, help="training config YAML (see configs/train/)")
    tr.add_argument("--resume", help="a checkpoint of the same config to continue from")
    return p


def cmd_list(a: argparse.Namespace) -> int:
    from silc_bench.listing import list_command

    print(list_command(a.what))
    return 0


def cmd_check(a: argparse.Namespace) -> int:
    from silc_bench.check import load_results, zero_shot_problems
    from silc_bench.regression import compare, markdown, run_missing

    where = Path(a.results_opt or a.results or "results")
    if not (math.isfinite(a.tolerance) and a.tolerance >= 0):
        raise UserError(f"--tolerance must be a finite number of points >= 0, not {a.tolerance}")
    if (a.run or a.models) and not a.regression:
        raise UserError("--run and --models go with --regression")
    if a.run:
        if not a.models:
            raise UserError(
                "--run needs --models NAME [NAME ...]: the entries whose expected numbers to measure"
            )
        run_missing(a.models, where, Path(a.data_root), progress=not a.quiet, device=a.device)
    if a.models and not (where.exists() and any(where.rglob("*.json"))):
        results, unreadable = [], []  # nothing measured yet: every expected number is missing
    else:
        results, unreadable = load_results(where)
    if unreadable:  # every bad file is named, one line each
        for why in unreadable:
            print(f"silc-bench: error: {why}", file=sys.stderr)
        return 2
    problems = zero_shot_problems(results) if a.zero_shot_only else []
    rows = []
    if a.regression:
        rows = compare(results, a.tolerance, a.models)
        print(markdown(rows))
        problems += [r.problem for r in rows if not r.ok]
        if not rows:
            problems.append(f"no result under {where} has expected numbers in checkpoints.yaml")
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"silc-bench check: {len(problems)} problems in {len(results)} results", file=sys.stderr)
        return 1
    notes = [" (all raw zero-shot)" if a.zero_shot_only else ""]
    if a.regression:
        tol = {r.tolerance for r in rows}
        within = f"±{a.tolerance:g}" if tol == {a.tolerance} else "their tolerance"
        notes.append(f"; {len(rows)} metrics within {within} of expected")
    print(f"silc-bench check: {len(results)} results OK" + "".join(notes))
    return 0


def cmd_table(a: argparse.Namespace) -> int:
    from silc_bench.files import atomic_write_text, writable_dir
    from silc_bench.tables import render_tables

    text = render_tables(a.which, Path(a.results), a.paper, a.format)
    if a.out is not None and a.format == "markdown" and a.which != "shapes":  # a report names its command
        cmd = f"silc-bench table {a.which}{' --paper' if a.paper else ''} --results {a.results} --out {a.out}"
        text = f"# SILC paper tables\n\nGenerated by `{cmd}`; do not edit by hand.\n\n{text}"
    if a.out is None:
        sys.stdout.write(text)
        return 0
    out = Path(a.out)
    if out.is_dir() or not writable_dir(out.parent):
        raise UserError(f"--out: cannot write {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, text)
    print(f"wrote {out}", file=sys.stderr)
    return 0


def cmd_import(a: argparse.Namespace) -> int:
    from silc_bench.importer import import_results

    for path in import_results(a.task, Path(a.file), Path(a.out)):
        print(f"wrote {path}", file=sys.stderr)
    return 0


def cmd_figure(a: argparse.Namespace) -> int:
    from silc_bench.figures import run_figure

    if a.n < 1:
        raise UserError("--n must be positive")
    models = [m for m in a.models.split(",") if m]
    return run_figure(models, a.dataset, a.n, Path(a.out), Path(a.results), Path(a.data_root), a.confusions)


def cmd_cache(a: argparse.Namespace) -> int:
    from tabulate import tabulate

    from silc_bench.cache import cache_root, entries

    found = entries()
    if a.model is not None and not a.model.strip():
        raise UserError("--model: empty name (leave --model out to mean every model)")
    if a.model:
        from silc_bench.models import load_model, parse_model_ref

        ref = parse_model_ref(a.model, a.weights)
        model = load_model(ref)  # its checkpoint_sha256 is what the cache keys on
        found = [e for e in found if e["checkpoint_sha256"] == model.checkpoint_sha256]
        if ref.variant:
            found = [e for e in found if e["variant"] == ref.variant]
    total = sum(e["bytes"] for e in found) / 2**20
    where = cache_root() / "features"
    if a.action == "list":
        rows = [
            [e["kind"], e["checkpoint_sha256"][:12], e["variant"] or "", e["split"][7:19],
             f"{e['bytes'] / 2**20:.2f}", f"{e['age_days']:.1f}"]
            for e in found
        ]  # fmt: skip
        headers = ["kind", "checkpoint", "variant", "data", "MB", "age (days)"]
        print(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))
        print(f"{len(found)} entries, {total:.1f} MB under {where}", file=sys.stderr)
        return 0
    for e in found:
        with contextlib.suppress(FileNotFoundError):  # cleared by another process meanwhile
            e["path"].unlink()
    print(f"silc-bench cache: removed {len(found)} entries ({total:.1f} MB) from {where}", file=sys.stderr)
    return 0


def cmd_demo(a: argparse.Namespace) -> int:
    from silc_bench.demo import DEMO_MODEL, run_demo

    return run_demo(Path(a.out), progress=not a.quiet, model=a.model or DEMO_MODEL)


def cmd_train(a: argparse.Namespace) -> int:
    from silc_bench.train import train_from_config

    result = train_from_config(a.config, a.resume)
    if result.entry is not None:
        print(f"silc-bench train: {result.step} steps; export {', '.join(str(f) for f in result.files)}")
        print(f"silc-bench train: checkpoints.yaml entry {result.entry}")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # usage errors (exit 2, one line) and --help (exit 0)
        return int(e.code or 0)
    if not args.debug:  # library warnings (PIL, torch, mmengine) are noise before our one line
        warnings.filterwarnings("ignore")
    try:
        from silc_bench import model_files, run_command

        commands = {
            "run": run_command.cmd_run,
            "list": cmd_list,
            "demo": cmd_demo,
            "check": cmd_check,
            "train": cmd_train,
            "table": cmd_table,
            "import": cmd_import,
            "figure": cmd_figure,
            "export": model_files.cmd_export,
            "convert": model_files.cmd_convert,
            "resave": model_files.cmd_resave,
            "cache": cmd_cache,
        }
        if args.command not in ("run", "train"):  # train runs DDP under torchrun
            _single_process(args.command)
        return commands[args.command](args)
    except UserError as e:
        if args.debug:
            raise
        if _main_rank():  # under torchrun every rank raised the same error: one prints it
            print(f"silc-bench: error: {e}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:  # `silc-bench list models | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:
        from silc_bench import dist

        if args.debug or not dist.launched():
            raise
        # a rank failed or a collective timed out: one line per surviving rank, no traceback
        detail = first_line(e) or type(e).__name__
        if _main_rank() or not isinstance(e, dist.DistributedFailure):
            print(f"silc-bench: error: [rank {dist.current().rank}] {detail}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        _close_progress_bars()
        print("silc-bench: interrupted", file=sys.stderr)
        return 130


def _single_process(command: str) -> None:
    """Only `run` (and `train`, as DDP) split their work across torchrun's ranks; any other
    command would do the whole job once per rank and write the same files from each."""
    from silc_bench import dist

    if dist.launched():
        raise UserError(
            f"`silc-bench {command}` runs in one process; only `run` and `train` are distributed (torchrun)"
        )


def _main_rank() -> bool:
    from silc_bench import dist

    return dist.current().main and (not dist.launched() or dist.launch_rank() == 0)


def _close_progress_bars() -> None:
    """Clear open progress bars, so 'interrupted' gets a line of its own."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()
    if sys.stderr.isatty():
        sys.stderr.write("\r\x1b[K")
