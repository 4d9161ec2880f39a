"""The `silc-bench` command line: one module per subcommand, assembled in `main`."""

from silc_bench.cli.main import entry, main

__all__ = ["entry", "main"]
