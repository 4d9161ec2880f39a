"""`python -m silc_bench` is the same as the `silc-bench` command."""

from silc_bench.cli import entry

entry()
