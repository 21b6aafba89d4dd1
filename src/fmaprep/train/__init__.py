"""The training side, without Spark or a JVM: ``data`` (memmap exports, ``WindowSampler``),
``shards`` (which rank and DataLoader worker serves which window; resume arithmetic), ``remote``
(memmap exports on S3/HDFS read in place), ``torch`` (a PyTorch ``IterableDataset``, imported only
on request), ``export`` (``fmaprep export --to memmap``), ``webdataset`` (``--to webdataset``),
``preview`` (one track as a wav). May import ``formats``, ``storage``, ``audio`` (mu-law
decoding) and ``model``.
"""
