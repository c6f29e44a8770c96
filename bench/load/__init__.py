"""Helpers of the many-viewer benchmarks (bench/load.py, bench/serve.py --postgres)."""
