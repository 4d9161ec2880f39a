"""Benchmarks that write reports/perf.md (ratios against the peer, run side by side)."""
