"""Tests of the benchmark scripts' helpers (benchmarks/)."""
