"""The skill panel and the benchmarks (not part of the package)."""
