"""The Hadoop SequenceFile that ``rdd.saveAsPickleFile`` writes, read and written in pure Python.

``rdd.saveAsPickleFile(path, batchSize)`` writes one SequenceFile per partition, in layers:

1. SequenceFile version 6: key NullWritable (0 bytes), value BytesWritable (int length + bytes).
2. Spark's ``saveAsObjectFile`` groups up to 10 elements per record into an ``Array[Array[Byte]]``
   written by Java's ObjectOutputStream.
3. Each inner ``byte[]`` is one PySpark batch: a pickled *list* of up to ``batchSize`` objects.
   PySpark 3.5's BatchedSerializer pickles lists even for ``batchSize=1``.

The reader (:func:`iter_sequence_file`, :func:`parse_byte_arrays`) takes any group size; the
writer (:class:`PickleFileWriter`) writes Spark's bytes but the random 16-byte sync marker, for
records under 32 MB (a 66-minute track at 8 kHz). Pickles themselves are left to
:mod:`fmaprep.formats.records`.
"""

from __future__ import annotations

import os
import pickle
import struct
import zlib
from collections.abc import Iterator
from typing import IO, Any, Protocol

__all__ = ["PICKLE_PROTOCOL", "PickleFileWriter", "iter_sequence_file", "parse_byte_arrays"]

# what pyspark.serializers.pickle_protocol is (a test checks): the writer must not import pyspark
PICKLE_PROTOCOL = pickle.HIGHEST_PROTOCOL
KEY_CLASS = "org.apache.hadoop.io.NullWritable"
VALUE_CLASS = "org.apache.hadoop.io.BytesWritable"
DEFAULT_CODEC = "org.apache.hadoop.io.compress.DefaultCodec"
SYNC_SIZE = 16
SYNC_ESCAPE = -1
_INT = struct.Struct(">i")
# Java Object Serialization Stream Protocol: only what Array[Array[Byte]] needs
STREAM_MAGIC = b"\xac\xed\x00\x05"
TC_NULL, TC_REFERENCE, TC_CLASSDESC, TC_ARRAY, TC_ENDBLOCKDATA = 0x70, 0x71, 0x72, 0x75, 0x78
BASE_HANDLE = 0x7E0000


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
    if value_class != VALUE_CLASS:
        raise ValueError(f"value class {value_class} is not supported, only {VALUE_CLASS}")
    compressed, block = _read_exact(f, 2, "compression flags")
    codec = _read_text(f, "codec class") if compressed else None
    if block:
        raise ValueError(f"block-compressed SequenceFile (codec {codec}) is not supported")
    if compressed and codec != DEFAULT_CODEC:
        raise ValueError(f"compression codec {codec} is not supported, only {DEFAULT_CODEC}")
    for _ in range(_read_int(f, "metadata count")):
        _read_text(f, "metadata key")
        _read_text(f, "metadata value")
    return bool(compressed), _read_exact(f, SYNC_SIZE, "sync marker")


def iter_sequence_file(
    path: str | os.PathLike[str] | IO[bytes], dir_fd: int | None = None, name: str | None = None
) -> Iterator[bytes]:
    """Yield the BytesWritable payloads of one SequenceFile, one record at a time.

    ``path`` is a path (with ``dir_fd``: relative to that open directory, see
    :func:`fmaprep.formats.records.read_records`) or an open binary stream named ``name``.
    """
    label = name or (os.fspath(path) if isinstance(path, (str, os.PathLike)) else "stream")
    try:
        if isinstance(path, (str, os.PathLike)):
            with open(os.open(path, os.O_RDONLY, dir_fd=dir_fd), "rb") as f:
                yield from _iter_values(f)
        else:
            yield from _iter_values(path)
    except ValueError as e:  # name the file: an output has many parts
        raise ValueError(f"{label}: {e}") from e


def _iter_values(f: IO[bytes]) -> Iterator[bytes]:
    compressed, sync = _read_header(f)
    while head := f.read(4):  # a clean end of file falls between records
        length = _INT.unpack(head + _read_exact(f, 4 - len(head), "record length"))[0]
        if length == SYNC_ESCAPE:  # writers put the sync marker every ~100 kB
            if _read_exact(f, SYNC_SIZE, "sync marker") != sync:
                raise ValueError(f"sync marker mismatch at offset {f.tell() - SYNC_SIZE}")
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
        index = self.num() - BASE_HANDLE
        if not 0 <= index < len(self.handles) or not isinstance(self.handles[index], kind):
            raise ValueError(f"Java stream: handle {index + BASE_HANDLE:#x} is no {kind.__name__}")
        return self.handles[index]

    def array_header(self, expected: str) -> int:
        """Read the class descriptor after TC_ARRAY, take the array's handle, return its size."""
        tc = self.num(">B")
        if tc == TC_REFERENCE:
            name = self.reference(str)
        elif tc == TC_CLASSDESC:
            name = bytes(self.take(self.num(">H"))).decode("utf-8")
            self.take(8 + 1)  # serialVersionUID, flags
            self.handles.append(name)
            # Array classes have no fields, no annotations and no serializable superclass.
            if bytes(self.take(4)) != bytes([0, 0, TC_ENDBLOCKDATA, TC_NULL]):
                raise ValueError(f"Java stream: class {name} is not a plain array class")
        else:
            raise ValueError(f"Java stream: expected a class descriptor, got tag {tc:#x}")
        if name != expected:
            raise ValueError(f"Java stream: array of class {name}, expected {expected}")
        self.handles.append(None)  # the array's own handle, set once its contents are read
        return self.num()

    def byte_array(self) -> bytes | None:
        tc = self.num(">B")
        if tc == TC_NULL:
            return None
        if tc == TC_REFERENCE:  # the same byte[] written twice
            value: bytes = self.reference(bytes)
            return value
        if tc != TC_ARRAY:
            raise ValueError(f"Java stream: expected byte[], got tag {tc:#x}")
        size = self.array_header("[B")
        handle = len(self.handles) - 1
        self.handles[handle] = value = bytes(self.take(size))
        return value


def parse_byte_arrays(data: bytes) -> list[bytes | None]:
    """Parse a Java-serialized ``byte[][]`` (what ``saveAsObjectFile`` writes per record)."""
    r = _JavaReader(data)
    if bytes(r.take(4)) != STREAM_MAGIC:
        raise ValueError("not a Java serialization stream (magic 0xACED, version 5)")
    if r.num(">B") != TC_ARRAY:
        raise ValueError("Java stream: top-level object is not an array")
    items = [r.byte_array() for _ in range(r.array_header("[[B"))]
    if r.pos != len(r.data):
        raise ValueError(f"Java stream: {len(r.data) - r.pos} trailing bytes")
    return items


# the writer: SequenceFile version 6, uncompressed, no metadata (SequenceFile.Writer)
_SYNC_INTERVAL = 5 * 1024 * 20  # Hadoop 3: a sync marker once 100 kB passed since the last
# RDD.saveAsObjectFile groups this many elements (pickled batches) into one record; we also
# write a record early once this many bytes wait (long tracks: bounded worker memory; readers
# take any group size, so only the bytes differ from Spark's, not what is read)
OBJECTS_PER_RECORD = 10
MAX_PENDING_BYTES = 32 * 1024 * 1024

# java.io.ObjectOutputStream of byte[][]: stream header, the [[B class descriptor (its
# serialVersionUID as the JVM computes it for array classes), handles from 0x7E0000 on
_OUTER_DESC = b"\x00\x03[[B" + bytes.fromhex("4bfd19156767db37") + b"\x02\x00\x00"
_INNER_DESC = b"\x00\x02[B" + bytes.fromhex("acf317f8060854e0") + b"\x02\x00\x00"
_INNER_DESC_HANDLE = BASE_HANDLE + 2  # 0: [[B descriptor, 1: the outer array, 2: [B descriptor


def _vint_text(text: bytes) -> bytes:
    """Hadoop ``Text.writeString``: a zero-compressed vint length (short names: one byte)."""
    if len(text) > 127:
        raise ValueError("class names here are short")
    return bytes([len(text)]) + text


def java_serialized_parts(arrays: list[bytes]) -> list[bytes]:
    """``Utils.serialize(Array[Array[Byte]])`` byte for byte, as pieces (the arrays themselves
    are not copied: a 3-hour track's codes are 86 MB)."""
    parts = [STREAM_MAGIC, bytes([TC_ARRAY, TC_CLASSDESC]), _OUTER_DESC]
    parts.append(bytes([TC_ENDBLOCKDATA, TC_NULL]) + struct.pack(">i", len(arrays)))
    for i, data in enumerate(arrays):
        if i == 0:
            desc = bytes([TC_CLASSDESC]) + _INNER_DESC + bytes([TC_ENDBLOCKDATA, TC_NULL])
        else:
            desc = bytes([TC_REFERENCE]) + struct.pack(">i", _INNER_DESC_HANDLE)
        parts += [bytes([TC_ARRAY]) + desc + struct.pack(">i", len(data)), data]
    return parts


class BinarySink(Protocol):
    def write(self, data: bytes, /) -> Any: ...


class PickleFileWriter:
    """Appends records to one ``saveAsPickleFile`` partition (batchSize=1, as the job uses)."""

    def __init__(self, f: BinarySink) -> None:
        self._f = f
        self._sync = os.urandom(16)
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        header = b"SEQ\x06" + _vint_text(KEY_CLASS.encode()) + _vint_text(VALUE_CLASS.encode())
        header += b"\x00\x00" + struct.pack(">i", 0) + self._sync
        f.write(header)
        self._pos = len(header)
        self._last_sync = 0

    def append(self, record: object) -> None:
        # saveAsPickleFile(batchSize=1): CPickleSerializer pickles each element as a 1-item list
        data = pickle.dumps([record], PICKLE_PROTOCOL)
        self._pending.append(data)
        self._pending_bytes += len(data)
        if len(self._pending) == OBJECTS_PER_RECORD or self._pending_bytes >= MAX_PENDING_BYTES:
            self._flush()

    def close(self) -> None:
        """Write what is pending; the caller closes (and renames) the file."""
        if self._pending:
            self._flush()

    def _flush(self) -> None:
        parts = java_serialized_parts(self._pending)
        self._pending, self._pending_bytes = [], 0
        size = sum(len(part) for part in parts)
        if self._pos >= self._last_sync + _SYNC_INTERVAL:
            self._f.write(_INT.pack(SYNC_ESCAPE) + self._sync)
            self._pos += 4 + len(self._sync)
            self._last_sync = self._pos
        # record length, key length (NullWritable: 0), BytesWritable (length + bytes)
        head = struct.pack(">iii", 4 + size, 0, size)
        self._f.write(head)
        for part in parts:
            self._f.write(part)
        self._pos += len(head) + size
