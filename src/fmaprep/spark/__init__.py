"""Spark: the session (Java, JVM start-up archive), partitions, reading inputs in tasks, the
record writers, the workers' environment check and the environment archive.

``session`` (+ ``jvmstart``), ``partition`` (byte-packed bins), ``inputs`` (an RDD of inputs per
bin), ``writers`` (pickle and parquet partitions, manifest lines back to the driver),
``workerenv`` (can the executors import the pipeline?), ``packaging`` (``fmaprep package-env``).
May import ``pipeline``, ``formats``, ``storage``, ``config`` and ``model``; never ``job``.
"""
