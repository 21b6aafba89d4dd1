"""Reading the inputs in Spark: an RDD of (input, bytes or None), one partition per bin."""

from __future__ import annotations

import hashlib
from typing import Any

from fmaprep.model import InputFile
from fmaprep.storage.checksum import file_sha1
from fmaprep.storage.uris import local_path


def read_inputs(spark_context: Any, bins: list[list[InputFile]]) -> Any:
    """An RDD of (input, bytes or None), one partition per bin.

    Local files are opened by the tasks themselves (bytes None: decoders stream from the
    path). Anything else (hdfs://, s3a://, s3:// with EMRFS) is read by the executors' JVMs
    through Hadoop's FileSystem with ``binaryFiles``, so the tasks need no filesystem client
    and no directory shared with the driver; its byte-sized splits follow the same total.
    """
    items = [item for b in bins for item in b]
    if all(is_local_source(item.source) for item in items):
        return spark_context.parallelize(bins, len(bins)).flatMap(lambda b: [(i, None) for i in b])
    by_source = spark_context.broadcast({item.source: item for item in items})
    paths = ",".join(_escape_hadoop_path(item.source) for item in items)

    def attach(pair: tuple[str, bytes]) -> tuple[InputFile, bytes]:
        source, data = pair
        item = by_source.value.get(source) or InputFile(source, len(data))
        return item, data

    return spark_context.binaryFiles(paths, minPartitions=len(bins)).map(attach)


def is_local_source(source: str) -> bool:
    return "://" not in source or source.startswith("file:")


def _escape_hadoop_path(uri: str) -> str:
    """Hadoop splits input paths on commas and expands globs: escape both in a real name."""
    return "".join("\\" + c if c in ",{}[]*?\\" else c for c in uri)


def hash_inputs(spark_context: Any, bins: list[list[InputFile]]) -> dict[str, str]:
    """sha1 of every input's bytes, computed where the files are read (source -> hex digest)."""

    def digest(pair: tuple[InputFile, bytes | None]) -> tuple[str, str]:
        item, data = pair
        if data is not None:
            return item.source, hashlib.sha1(data).hexdigest()
        try:
            return item.source, file_sha1(local_path(item.source))
        except OSError:
            return item.source, f"unreadable:{item.source}"  # never equal to another file

    pairs = read_inputs(spark_context, bins).map(digest).collect()
    return dict(pairs)
