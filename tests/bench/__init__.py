"""Benchmarks (`make bench`, i.e. `python -m tests.bench`): measurements to read, never tests that can fail."""

# Config tables every benchmark daemon shares: no per-token API limit (the load is the benchmark's own), and paper
# prices that stand still with depth enough that no market order waits for it.
UNLIMITED_API = "[security]\napi_requests_per_second = 100000\napi_burst = 100000\n"
STEADY_PAPER = "[paper]\nvolatility = 0.0\ndepth_per_second = 1000000\n"
