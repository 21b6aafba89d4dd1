"""The preprocess job: extract (list inputs), transform and load (Spark), commit the output.

``run`` (``run_preprocess``, the readable ``main`` of the job), ``commit`` (existing outputs,
resume, the swap into place), ``summary`` (what a finished job reports; its console line is
``fmaprep.progress``), ``warmup`` (a tiny job that writes the JVM start-up archive),
``storage_check`` (the health check's Spark step: the job's storage path on a local session).
May import ``spark``, ``storage``, ``formats``, ``pipeline``, ``config`` and ``model``; never
``acquire``.
"""
