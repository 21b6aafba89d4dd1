"""Writing, from Python, the very file ``rdd.saveAsPickleFile`` writes (and :mod:`fmaprep.reader`
reads): a Hadoop SequenceFile (NullWritable keys) whose values are BytesWritables holding a
Java-serialized ``byte[][]`` of up to 10 pickled batches (fewer when they pass 32 MB).

For a local OUTPUT the job's Python workers write their partitions with this, so the records
never cross into the JVM: there they were copied five times and Java-serialized, which took
about 7% of a 2-core machine. For records under 32 MB (a 66-minute track at 8 kHz) the bytes
equal Spark's except the random 16-byte sync marker.
"""

from __future__ import annotations

import os
import pickle
import struct
from typing import IO

from pyspark.serializers import pickle_protocol

# SequenceFile version 6, uncompressed, no metadata (org.apache.hadoop.io.SequenceFile.Writer)
_KEY_CLASS = b"org.apache.hadoop.io.NullWritable"
_VALUE_CLASS = b"org.apache.hadoop.io.BytesWritable"
_SYNC_ESCAPE = struct.pack(">i", -1)
_SYNC_INTERVAL = 5 * 1024 * 20  # Hadoop 3: a sync marker once 100 kB passed since the last
# RDD.saveAsObjectFile groups this many elements (pickled batches) into one record; we also
# write a record early once this many bytes wait (long tracks: bounded worker memory; readers
# take any group size, so only the bytes differ from Spark's, not what is read)
OBJECTS_PER_RECORD = 10
MAX_PENDING_BYTES = 32 * 1024 * 1024

# java.io.ObjectOutputStream of byte[][]: stream header, the [[B class descriptor (its
# serialVersionUID as the JVM computes it for array classes), handles from 0x7E0000 on
_STREAM_MAGIC = b"\xac\xed\x00\x05"
_TC_ARRAY, _TC_CLASSDESC, _TC_REFERENCE, _TC_ENDBLOCKDATA, _TC_NULL = 0x75, 0x72, 0x71, 0x78, 0x70
_OUTER_DESC = b"\x00\x03[[B" + bytes.fromhex("4bfd19156767db37") + b"\x02\x00\x00"
_INNER_DESC = b"\x00\x02[B" + bytes.fromhex("acf317f8060854e0") + b"\x02\x00\x00"
_INNER_DESC_HANDLE = 0x7E0002  # 0: [[B descriptor, 1: the outer array, 2: [B descriptor


def _vint_text(text: bytes) -> bytes:
    """Hadoop ``Text.writeString``: a zero-compressed vint length (short names: one byte)."""
    if len(text) > 127:
        raise ValueError("class names here are short")
    return bytes([len(text)]) + text


def java_serialized_parts(arrays: list[bytes]) -> list[bytes]:
    """``Utils.serialize(Array[Array[Byte]])`` byte for byte, as pieces (the arrays themselves
    are not copied: a 3-hour track's codes are 86 MB)."""
    parts = [_STREAM_MAGIC, bytes([_TC_ARRAY, _TC_CLASSDESC]), _OUTER_DESC]
    parts.append(bytes([_TC_ENDBLOCKDATA, _TC_NULL]) + struct.pack(">i", len(arrays)))
    for i, data in enumerate(arrays):
        if i == 0:
            desc = bytes([_TC_CLASSDESC]) + _INNER_DESC + bytes([_TC_ENDBLOCKDATA, _TC_NULL])
        else:
            desc = bytes([_TC_REFERENCE]) + struct.pack(">i", _INNER_DESC_HANDLE)
        parts += [bytes([_TC_ARRAY]) + desc + struct.pack(">i", len(data)), data]
    return parts


class PickleFileWriter:
    """Appends records to one ``saveAsPickleFile`` partition (batchSize=1, as the job uses)."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self._sync = os.urandom(16)
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        header = b"SEQ\x06" + _vint_text(_KEY_CLASS) + _vint_text(_VALUE_CLASS)
        header += b"\x00\x00" + struct.pack(">i", 0) + self._sync
        f.write(header)
        self._pos = len(header)
        self._last_sync = 0

    def append(self, record: object) -> None:
        # saveAsPickleFile(batchSize=1): CPickleSerializer pickles each element as a 1-item list
        data = pickle.dumps([record], pickle_protocol)
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
            self._f.write(_SYNC_ESCAPE + self._sync)
            self._pos += 4 + len(self._sync)
            self._last_sync = self._pos
        # record length, key length (NullWritable: 0), BytesWritable (length + bytes)
        head = struct.pack(">iii", 4 + size, 0, size)
        self._f.write(head)
        for part in parts:
            self._f.write(part)
        self._pos += len(head) + size
