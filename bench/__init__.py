"""Benchmarks of cvcatalog against a DuckDB limit, a naive pandas baseline and S3 sync tools.

Run ``python -m bench.run`` (or ``make bench``); see bench/README.md.
"""
