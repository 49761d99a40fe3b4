"""pytest-benchmark micro benchmarks (run once as tests by ``make test``, for real by ``make bench``)."""
