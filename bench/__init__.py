"""Benchmarks print figures and never pass or fail: `python -m bench.ingest`, `bench.sync`,
`bench.memory` (`make bench` runs the three)."""
