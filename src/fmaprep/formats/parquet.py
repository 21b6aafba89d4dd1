"""Read the parquet part files of a ``--format parquet`` OUTPUT with pyarrow (no Spark, no JVM).

One row is one track: metadata columns plus ``codes`` (binary, the uint8 mu-law codes). Rows come
out as the same record dicts the pickle format holds: ``codes`` a 1-D ``numpy.uint8`` array, and
null columns (metadata a track does not have) left out. Reading streams one row group at a time,
in small batches; with filters, a row group's filter columns are read first and the group is
skipped, codes unread, when no row in it matches.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from fmaprep.model import METADATA_KEYS

__all__ = ["PARQUET_COLUMNS", "ParquetPartWriter", "read_parquet_part", "record_to_row"]

# Parquet: one row per track. Fixed columns, so every part file has the same schema; metadata
# a record lacks is null (the reader leaves null columns out of the record dict again).
PARQUET_COLUMNS: tuple[tuple[str, str], ...] = (
    ("track_id", "string"),
    ("source", "string"),
    ("sample_rate", "int"),
    ("mu", "int"),
    ("source_sample_rate", "int"),
    ("gain", "double"),
    *((key, "string") for key in METADATA_KEYS),
    ("sha1", "string"),  # with --dedupe
    ("codes", "binary"),
)
PARQUET_ROW_GROUP_BYTES = 16 * 1024 * 1024  # readers stream one row group at a time


def record_to_row(record: dict[str, Any]) -> tuple[Any, ...]:
    """A record dict as a parquet row (``PARQUET_COLUMNS`` order; ``codes`` as bytes)."""
    unknown = set(record) - {name for name, _ in PARQUET_COLUMNS}
    if unknown:
        raise ValueError(f"record fields without a parquet column: {sorted(unknown)}")
    return tuple(
        record["codes"].tobytes() if name == "codes" else record.get(name)
        for name, _ in PARQUET_COLUMNS
    )


_ARROW_TYPES = {"string": "string", "int": "int32", "double": "float64", "binary": "binary"}
_NOT_NULL = ("track_id", "source", "codes")


def arrow_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            pa.field(name, getattr(pa, _ARROW_TYPES[kind])(), nullable=name not in _NOT_NULL)
            for name, kind in PARQUET_COLUMNS
        ]
    )


class _Sink(io.RawIOBase):
    """A write-only file over any ``write(bytes)`` sink (a store's streaming writer)."""

    def __init__(self, sink: Any) -> None:
        self._sink, self._pos = sink, 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        n = len(data)
        self._sink.write(bytes(data))
        self._pos += n
        return n

    def tell(self) -> int:
        return self._pos


class ParquetPartWriter:
    """Appends records to one parquet part file (a binary stream), a row group each time
    ``PARQUET_ROW_GROUP_BYTES`` of codes wait, so memory stays bounded and readers can stream."""

    def __init__(self, f: Any) -> None:
        import pyarrow.parquet as pq

        self._schema = arrow_schema()
        self._writer = pq.ParquetWriter(_Sink(f), self._schema, compression="snappy")
        self._rows: list[tuple[Any, ...]] = []
        self._bytes = 0

    def append(self, record: dict[str, Any]) -> None:
        self._rows.append(record_to_row(record))
        self._bytes += int(record["codes"].size)
        if self._bytes >= PARQUET_ROW_GROUP_BYTES:
            self._flush()

    def close(self) -> None:
        self._flush()
        self._writer.close()

    def _flush(self) -> None:
        if not self._rows:
            return
        import pyarrow as pa

        columns = list(zip(*self._rows, strict=True))
        self._rows, self._bytes = [], 0
        self._writer.write_table(
            pa.Table.from_arrays(
                [pa.array(c, type=f.type) for c, f in zip(columns, self._schema, strict=True)],
                schema=self._schema,
            )
        )


BATCH_ROWS = 16  # a long track is a few MB of codes: keep each batch small


def _binary_column(column: Any) -> Callable[[int], npt.NDArray[np.uint8]]:
    """Row i of a pyarrow (large_)binary array as a uint8 array (one copy, no Python bytes)."""
    import pyarrow as pa

    offset_type = np.int64 if pa.types.is_large_binary(column.type) else np.int32
    _, offsets_buf, data_buf = column.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=offset_type)[
        column.offset : column.offset + len(column) + 1
    ]
    data = (
        np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, np.uint8)
    )
    return lambda i: data[offsets[i] : offsets[i + 1]].copy()


def parquet_rows(f: IO[bytes], name: str) -> int:
    """The rows a parquet part's footer counts."""
    import pyarrow.parquet as pq

    try:
        return int(pq.ParquetFile(f).metadata.num_rows)
    except Exception as e:  # pyarrow raises ArrowInvalid/OSError for a corrupt file
        raise ValueError(f"{name}: not a readable parquet file: {e}") from e


def read_parquet_part(
    path: str | os.PathLike[str] | IO[bytes],
    filters: Mapping[str, frozenset[Any] | None],
    matches: Callable[[Any, frozenset[Any] | None], bool],
    name: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield the records of one parquet part file whose fields pass every filter.

    ``filters`` maps a column to the allowed values (None: no filter); ``matches(value, allowed)``
    decides one value (a column the file lacks reads as None).
    """
    import pyarrow.parquet as pq

    label = name or (os.fspath(path) if isinstance(path, (str, os.PathLike)) else "parquet part")
    active = {k: v for k, v in filters.items() if v is not None}
    try:
        part = pq.ParquetFile(path)  # a path or an open binary file
    except Exception as e:  # pyarrow raises ArrowInvalid/OSError for a corrupt file
        raise ValueError(f"{label}: not a readable parquet file: {e}") from e
    names = set(part.schema_arrow.names)
    if "codes" not in names or "track_id" not in names:
        raise ValueError(f"{label}: parquet part without codes/track_id columns")
    for group in range(part.num_row_groups):
        if active:
            present = [k for k in active if k in names]
            table = part.read_row_group(group, columns=present) if present else None
            rows = part.metadata.row_group(group).num_rows
            columns = {
                k: table.column(k).to_pylist() if table is not None and k in present else None
                for k in active
            }
            if not any(
                all(matches(None if v is None else v[i], active[k]) for k, v in columns.items())
                for i in range(rows)
            ):
                continue  # no row of this group passes: skip its codes unread
        for batch in part.iter_batches(batch_size=BATCH_ROWS, row_groups=[group]):
            fields = {
                name: batch.column(name).to_pylist()
                for name in batch.schema.names
                if name != "codes"
            }
            codes = _binary_column(batch.column("codes"))
            for i in range(batch.num_rows):
                record = {name: values[i] for name, values in fields.items()}
                if not all(matches(record.get(k), allowed) for k, allowed in active.items()):
                    continue
                record = {k: v for k, v in record.items() if v is not None}
                record["codes"] = codes(i)
                yield record
