"""Benchmarks (numbers, not pass/fail tests): `python bench/ingest.py`, `python bench/sync.py`."""
