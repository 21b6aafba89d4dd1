"""Output formats, read and written without Spark: ``sequencefile`` (the files
``saveAsPickleFile`` writes: reader and writer, one set of constants), ``records``
(``read_records`` over any output format), ``parquet`` (the one-row-per-track schema and its
reader), ``manifest`` (``_manifest.jsonl`` and ``_stats.json``). May import ``storage`` and
``model``; never ``spark``, ``job`` or ``pipeline``.
"""
