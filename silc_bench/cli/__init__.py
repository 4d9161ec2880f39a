"""The `silc-bench` command line: one module per subcommand, assembled in `main`."""

from silc_bench.cli.main import main

__all__ = ["main"]
