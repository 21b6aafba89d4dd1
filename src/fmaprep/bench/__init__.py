"""Benchmarks: the job at several thread counts and configs, against decode-only and a plain
multiprocessing + librosa script, with a table and a speedup plot. Not part of the job."""
