"""Benchmarks of parallel-mcp: each runs its compared variants side by side in one run and prints ratios.

`python -m bench` runs them all and writes `bench/RESULTS.md`; `--quick` is the CI smoke variant
(written to `bench/out/RESULTS-quick.md`); `--only NAME` runs one benchmark.
"""
