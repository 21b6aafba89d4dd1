"""The training side, without Spark or a JVM: ``data`` (memmap exports, ``WindowSampler``),
``torch`` (a PyTorch ``IterableDataset``, imported only on request), ``export`` (``fmaprep
export --to memmap``), ``preview`` (one track as a wav). May import ``formats``, ``storage``,
``audio`` (mu-law decoding) and ``model``.
"""
