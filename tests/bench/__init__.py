"""Benchmarks (`make bench`, i.e. `python -m tests.bench`): measurements to read, never tests that can fail."""
