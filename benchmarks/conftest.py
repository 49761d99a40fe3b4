"""The benchmarks use the suite's server fixtures (:mod:`backends.pytest_plugin`)."""

pytest_plugins = ["backends.pytest_plugin"]
