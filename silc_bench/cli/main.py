"""`silc-bench`: assembles one subcommand per module of this package and maps failures to
exit codes.

Each command module owns its flags (`register(subparsers, common)`) and its work (`run(args)`),
as lm-eval's `_cli/` does. This module imports none of their heavy libraries: a typo, `--help`
or `list` answers before torch is imported.

Bad input ends with one line on stderr and exit code 2; `--debug` shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from silc_bench import __version__
from silc_bench.core.errors import UserError, first_line

# subcommand → its module in this package, in the order `--help` lists them
COMMANDS = {
    "run": "run", "check": "check", "table": "table", "import": "import_results", "figure": "figure",
    "export": "export", "convert": "convert", "resave": "resave", "cache": "cache", "list": "listing",
    "demo": "demo", "train": "train", "train-plot": "train_plot", "data": "data",
}  # fmt: skip
DISTRIBUTED = ("run", "train")  # the commands torchrun may launch (train as DDP)


class _Defaults(argparse.HelpFormatter):
    """Shows a flag's default when it has one worth showing (not None, not a switch's False)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.default not in (None, False, [], argparse.SUPPRESS) and "%(default)" not in text
        if shown and action.option_strings and "(default" not in text:
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """One-line usage errors; every --help shows each flag's default."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        kwargs.setdefault("formatter_class", _Defaults)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        command = self.prog.removeprefix("silc-bench").strip()
        where = f"{command}: " if command else ""
        self.exit(2, f"silc-bench: error: {where}{message} (see --help)\n")


def _module(command: str):  # noqa: ANN202
    return importlib.import_module(f"silc_bench.cli.{COMMANDS[command]}")


def parser() -> argparse.ArgumentParser:
    p = Parser(prog="silc-bench", description="Evaluate CLIP-like models the way the SILC paper did.")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    p.add_argument("--version", action="version", version=f"silc-bench {__version__}")
    # --debug works before or after the subcommand; SUPPRESS keeps a subparser from
    # resetting a --debug given before it
    common = Parser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        _module(command).register(sub, common)
    return p


def entry(argv: list[str] | None = None) -> None:
    """The console script: `main`, then under torchrun an exit that skips interpreter
    teardown (see `dist.leave`), so torchrun reports this rank's real exit code."""
    code = main(argv)
    from silc_bench.core import dist

    dist.leave(code)
    raise SystemExit(code)


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:  # usage errors (exit 2, one line) and --help (exit 0)
        return int(e.code or 0)
    if not args.debug:  # library warnings (PIL, torch, mmengine) are noise before our one line
        warnings.filterwarnings("ignore")
    try:
        if args.command not in DISTRIBUTED:
            _single_process(args.command)
        return _module(args.command).run(args)
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
        from silc_bench.core import dist

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
    from silc_bench.core import dist

    if dist.launched():
        raise UserError(
            f"`silc-bench {command}` runs in one process; only `run` and `train` are distributed (torchrun)"
        )


def _main_rank() -> bool:
    from silc_bench.core import dist

    return dist.current().main and (not dist.launched() or dist.launch_rank() == 0)


def _close_progress_bars() -> None:
    """Clear open progress bars, so 'interrupted' gets a line of its own."""
    if "tqdm" not in sys.modules:
        return
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()
    if sys.stderr.isatty():
        sys.stderr.write("\r\x1b[K")
