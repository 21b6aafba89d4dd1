"""Read fmaprep OUTPUT without Spark or a JVM (contract 5).

``read_records`` reads both output formats: ``part-*.parquet`` files through
:mod:`fmaprep.parquet_reader` (pyarrow), every other ``part-*`` file as the pickle format below.

``rdd.saveAsPickleFile(path, batchSize)`` writes one Hadoop SequenceFile per partition, in layers:

1. SequenceFile version 6: key NullWritable (0 bytes), value BytesWritable (int length + bytes).
2. Spark's ``saveAsObjectFile`` groups up to 10 elements per record into an ``Array[Array[Byte]]``
   written by Java's ObjectOutputStream.
3. Each inner ``byte[]`` is one PySpark batch: a pickled *list* of up to ``batchSize`` objects.
   PySpark 3.5's BatchedSerializer pickles lists even for ``batchSize=1``.

Pickle runs code on load: read only outputs your own pipeline wrote.
"""

from __future__ import annotations

import os
import pickle
import re
import struct
import zlib
from collections.abc import Collection, Iterator
from typing import IO, Any
from urllib.parse import urlparse

__all__ = ["iter_sequence_file", "parse_byte_arrays", "read_partition", "read_records"]

_SYNC_SIZE = 16
_SYNC_ESCAPE = -1
_BYTES_WRITABLE = "org.apache.hadoop.io.BytesWritable"
_DEFAULT_CODEC = "org.apache.hadoop.io.compress.DefaultCodec"
_INT = struct.Struct(">i")


def _read_exact(f: IO[bytes], n: int, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        at = f.tell() - len(data)
        raise ValueError(f"truncated: wanted {n} bytes of {what} at offset {at}, got {len(data)}")
    return data


def _read_int(f: IO[bytes], what: str) -> int:
    value: int = _INT.unpack(_read_exact(f, 4, what))[0]
    return value


def _read_vint(f: IO[bytes], what: str) -> int:
    # Hadoop WritableUtils.readVInt: one byte for -112..127, else a size byte then big-endian.
    first = int.from_bytes(_read_exact(f, 1, what), "big", signed=True)
    if first >= -112:
        return first
    negative = first < -120
    value = int.from_bytes(_read_exact(f, (-120 if negative else -112) - first, what), "big")
    return ~value if negative else value


def _read_text(f: IO[bytes], what: str) -> str:
    n = _read_vint(f, what)
    if n < 0:
        raise ValueError(f"negative length {n} for {what}")
    return _read_exact(f, n, what).decode("utf-8")


def _read_header(f: IO[bytes]) -> tuple[bool, bytes]:
    """Check the header; return (record-compressed, sync marker)."""
    magic = f.read(4)
    if not b"SEQ".startswith(magic[:3]):
        raise ValueError(f"not a SequenceFile: magic {magic[:3]!r}, expected b'SEQ'")
    if len(magic) < 4:
        raise ValueError(f"truncated: a {len(magic)}-byte file")
    if magic[3:] != b"\x06":
        raise ValueError(f"SequenceFile version {magic[3:]!r} is not supported, only 6")
    _read_text(f, "key class")  # NullWritable from Spark; keys are skipped whatever they are
    value_class = _read_text(f, "value class")
    if value_class != _BYTES_WRITABLE:
        raise ValueError(f"value class {value_class} is not supported, only {_BYTES_WRITABLE}")
    compressed, block = _read_exact(f, 2, "compression flags")
    codec = _read_text(f, "codec class") if compressed else None
    if block:
        raise ValueError(f"block-compressed SequenceFile (codec {codec}) is not supported")
    if compressed and codec != _DEFAULT_CODEC:
        raise ValueError(f"compression codec {codec} is not supported, only {_DEFAULT_CODEC}")
    for _ in range(_read_int(f, "metadata count")):
        _read_text(f, "metadata key")
        _read_text(f, "metadata value")
    return bool(compressed), _read_exact(f, _SYNC_SIZE, "sync marker")


def iter_sequence_file(path: str | os.PathLike[str], dir_fd: int | None = None) -> Iterator[bytes]:
    """Yield the BytesWritable payloads of one SequenceFile, one record at a time.

    With ``dir_fd``, ``path`` is relative to that open directory (see :func:`read_records`).
    """
    try:
        yield from _iter_values(os.open(path, os.O_RDONLY, dir_fd=dir_fd))
    except ValueError as e:  # name the file: an output has many parts
        raise ValueError(f"{os.fspath(path)}: {e}") from e


def _iter_values(fd: int) -> Iterator[bytes]:
    with open(fd, "rb") as f:
        compressed, sync = _read_header(f)
        while head := f.read(4):  # a clean end of file falls between records
            length = _INT.unpack(head + _read_exact(f, 4 - len(head), "record length"))[0]
            if length == _SYNC_ESCAPE:  # writers put the sync marker every ~100 kB
                if _read_exact(f, _SYNC_SIZE, "sync marker") != sync:
                    raise ValueError(f"sync marker mismatch at offset {f.tell() - _SYNC_SIZE}")
                continue
            key_length = _read_int(f, "key length")
            if not 0 <= key_length <= length:
                raise ValueError(f"bad record lengths {length}, {key_length} at {f.tell() - 8}")
            _read_exact(f, key_length, "key")
            raw = _read_exact(f, length - key_length, "value")
            if compressed:  # record compression: each value is a zlib stream of its own
                try:
                    raw = zlib.decompress(raw)
                except zlib.error as e:
                    raise ValueError(f"bad zlib value ending at offset {f.tell()}: {e}") from e
            # BytesWritable: int length, then the bytes
            if len(raw) < 4 or _INT.unpack_from(raw)[0] != len(raw) - 4:
                raise ValueError(f"bad BytesWritable ({len(raw)} bytes) ending at {f.tell()}")
            yield raw[4:]


# Java Object Serialization Stream Protocol: only what Array[Array[Byte]] needs.
_TC_NULL, _TC_REFERENCE, _TC_CLASSDESC, _TC_ARRAY, _TC_ENDBLOCKDATA = 0x70, 0x71, 0x72, 0x75, 0x78
_BASE_HANDLE = 0x7E0000


class _JavaReader:
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0
        self.handles: list[object] = []  # class names (str) and arrays, in handle order

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(f"truncated Java stream: wanted {n} bytes at offset {self.pos}")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def num(self, fmt: str = ">i") -> int:
        value: int = struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]
        return value

    def reference(self, kind: type) -> Any:
        index = self.num() - _BASE_HANDLE
        if not 0 <= index < len(self.handles) or not isinstance(self.handles[index], kind):
            raise ValueError(f"Java stream: handle {index + _BASE_HANDLE:#x} is no {kind.__name__}")
        return self.handles[index]

    def array_header(self, expected: str) -> int:
        """Read the class descriptor after TC_ARRAY, take the array's handle, return its size."""
        tc = self.num(">B")
        if tc == _TC_REFERENCE:
            name = self.reference(str)
        elif tc == _TC_CLASSDESC:
            name = bytes(self.take(self.num(">H"))).decode("utf-8")
            self.take(8 + 1)  # serialVersionUID, flags
            self.handles.append(name)
            # Array classes have no fields, no annotations and no serializable superclass.
            if bytes(self.take(4)) != bytes([0, 0, _TC_ENDBLOCKDATA, _TC_NULL]):
                raise ValueError(f"Java stream: class {name} is not a plain array class")
        else:
            raise ValueError(f"Java stream: expected a class descriptor, got tag {tc:#x}")
        if name != expected:
            raise ValueError(f"Java stream: array of class {name}, expected {expected}")
        self.handles.append(None)  # the array's own handle, set once its contents are read
        return self.num()

    def byte_array(self) -> bytes | None:
        tc = self.num(">B")
        if tc == _TC_NULL:
            return None
        if tc == _TC_REFERENCE:  # the same byte[] written twice
            value: bytes = self.reference(bytes)
            return value
        if tc != _TC_ARRAY:
            raise ValueError(f"Java stream: expected byte[], got tag {tc:#x}")
        size = self.array_header("[B")
        handle = len(self.handles) - 1
        self.handles[handle] = value = bytes(self.take(size))
        return value


def parse_byte_arrays(data: bytes) -> list[bytes | None]:
    """Parse a Java-serialized ``byte[][]`` (what ``saveAsObjectFile`` writes per record)."""
    r = _JavaReader(data)
    if bytes(r.take(4)) != b"\xac\xed\x00\x05":
        raise ValueError("not a Java serialization stream (magic 0xACED, version 5)")
    if r.num(">B") != _TC_ARRAY:
        raise ValueError("Java stream: top-level object is not an array")
    items = [r.byte_array() for _ in range(r.array_header("[[B"))]
    if r.pos != len(r.data):
        raise ValueError(f"Java stream: {len(r.data) - r.pos} trailing bytes")
    return items


def read_partition(path: str | os.PathLike[str], dir_fd: int | None = None) -> Iterator[Any]:
    """Yield the Python objects of one ``part-*`` file, in write order."""
    for value in iter_sequence_file(path, dir_fd):
        try:
            blobs = parse_byte_arrays(value)
        except ValueError as e:
            raise ValueError(f"{os.fspath(path)}: {e}") from e
        for blob in blobs:
            if blob is None:
                raise ValueError(f"{os.fspath(path)}: null element in a saved object array")
            batch = pickle.loads(blob)
            # PySpark pickles batches as lists; tolerate a bare object as a batch of one.
            yield from batch if isinstance(batch, list) else [batch]


def _local_dir(output: str) -> str:
    parsed = urlparse(output)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"{output}: file:// URIs with a host are not supported")
        return parsed.path
    if len(parsed.scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise ValueError(f"{output}: only local paths and file:// URIs are read, copy it first")
    return output


def _natural_key(name: str) -> list[Any]:
    # Name order, but part-99999 before part-100000 (Spark pads to 5 digits only).
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _matches(value: Any, allowed: frozenset[Any] | None) -> bool:
    try:
        return allowed is None or value in allowed
    except TypeError:  # an unhashable field value is in no filter set
        return False


def read_records(
    output: str,
    *,
    track_ids: Collection[str] | None = None,
    genres: Collection[str] | None = None,
    splits: Collection[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Stream the records of a finished OUTPUT, partition by partition in part-name order.

    Each filter given keeps records whose ``track_id`` / ``genre`` / ``split`` is in it.
    """
    root = _local_dir(output)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{output}: no such output directory")
    if not os.path.exists(os.path.join(root, "_SUCCESS")):
        raise FileNotFoundError(f"{output}: no _SUCCESS, the job did not finish (or still runs)")
    # The directory is opened once and every part is opened relative to it: if the output is
    # replaced meanwhile (--mode overwrite renames the old one away, then deletes it), this
    # reader keeps reading the old generation or fails loudly, and never mixes the two.
    dir_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        # part-* only: skips _SUCCESS/_manifest.jsonl/_stats.json and Hadoop's .crc files.
        names = sorted((n for n in os.listdir(dir_fd) if n.startswith("part-")), key=_natural_key)
        filters = {
            key: None if v is None else frozenset([v] if isinstance(v, str) else v)
            for key, v in (("track_id", track_ids), ("genre", genres), ("split", splits))
        }
        for name in names:
            try:
                if name.endswith(".parquet"):  # --format parquet (a resumed output may hold both)
                    from fmaprep.parquet_reader import read_parquet_part

                    # through a descriptor opened relative to dir_fd: this generation's part
                    with open(os.open(name, os.O_RDONLY, dir_fd=dir_fd), "rb") as part:
                        yield from read_parquet_part(part, filters, _matches, name=name)
                    continue
                records = read_partition(name, dir_fd)
                for record in records:
                    if not isinstance(record, dict):
                        raise ValueError(f"{name}: record is a {type(record).__name__}, not a dict")
                    if all(_matches(record.get(k), allowed) for k, allowed in filters.items()):
                        yield record
            except FileNotFoundError as e:
                raise OutputChangedError(
                    f"{output} was replaced while it was being read ({name} is gone); read it again"
                ) from e
    finally:
        os.close(dir_fd)


class OutputChangedError(RuntimeError):
    """The output directory was replaced or deleted during a read."""
