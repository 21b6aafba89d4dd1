"""fmaprep.formats.records against real Spark output and an independent SequenceFile writer."""

from __future__ import annotations

import io
import os
import pickle
import shutil
import struct
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fmaprep.formats.records import read_partition, read_records
from fmaprep.formats.sequencefile import iter_sequence_file, parse_byte_arrays

NULL_WRITABLE = "org.apache.hadoop.io.NullWritable"
BYTES_WRITABLE = "org.apache.hadoop.io.BytesWritable"
DEFAULT_CODEC = "org.apache.hadoop.io.compress.DefaultCodec"
GENRES = ("Rock", "Jazz", "Hip-Hop", None)
SPLITS = ("train", "valid", "test")
# Lengths include 0 and ~1e6; the big one sits early so its partition has records after it,
# which makes Hadoop's writer put a sync escape in the file.
LENGTHS = [0, 1_000_003, 1, 2, 255, 256, 7_999, 8_000, 8_001, 65_536] + [
    (i * 7_919) % 50_000 for i in range(35)
]


# --- an independent writer, from the Hadoop SequenceFile and Java serialization specs ----------


def hadoop_vint(i: int) -> bytes:
    """WritableUtils.writeVLong, transcribed."""
    if -112 <= i <= 127:
        return struct.pack(">b", i)
    length = -112
    if i < 0:
        i ^= -1
        length = -120
    tmp = i
    while tmp != 0:
        tmp >>= 8
        length -= 1
    out = struct.pack(">b", length)
    n = -(length + 120) if length < -120 else -(length + 112)
    for idx in range(n, 0, -1):
        out += bytes([(i >> ((idx - 1) * 8)) & 0xFF])
    return out


def hadoop_text(s: str) -> bytes:
    b = s.encode("utf-8")
    return hadoop_vint(len(b)) + b


def java_byte_array_array(items: Sequence[bytes | None]) -> bytes:
    """What ObjectOutputStream.writeObject(byte[][]) writes (identical arrays become references)."""
    u16, i32 = struct.Struct(">H").pack, struct.Struct(">i").pack

    def class_desc(name: str, suid: int) -> bytes:
        # TC_CLASSDESC name suid flags=SC_SERIALIZABLE fields=0 TC_ENDBLOCKDATA super=TC_NULL
        flags_fields_end_super = b"\x02\x00\x00xp"
        return (
            b"\x72"
            + u16(len(name))
            + name.encode()
            + struct.pack(">q", suid)
            + flags_fields_end_super
        )

    out = bytearray(b"\xac\xed\x00\x05\x75" + class_desc("[[B", 0x4BFD19156767DB37))
    next_handle = 0x7E0002  # 0x7E0000 = [[B descriptor, 0x7E0001 = the outer array
    out += i32(len(items))
    byte_desc: int | None = None
    seen: dict[int, int] = {}
    for item in items:
        if item is None:
            out += b"\x70"
        elif id(item) in seen:
            out += b"\x71" + i32(seen[id(item)])
        else:
            out += b"\x75"
            if byte_desc is None:
                out += class_desc("[B", -0x530CE807F9F7AB20)  # 0xACF317F8060854E0, signed
                byte_desc, next_handle = next_handle, next_handle + 1
            else:
                out += b"\x71" + i32(byte_desc)
            seen[id(item)], next_handle = next_handle, next_handle + 1
            out += i32(len(item)) + item
    return bytes(out)


def write_sequence_file(
    path: Path,
    values: Sequence[bytes],
    *,
    compress: bool = False,
    metadata: Sequence[tuple[str, str]] = (),
    sync: bytes = bytes(range(16)),
    sync_interval: int = 2_000,
    key_class: str = NULL_WRITABLE,
    key: bytes = b"",
    value_class: str = BYTES_WRITABLE,
    block: bool = False,
    codec: str = DEFAULT_CODEC,
) -> None:
    out = bytearray(b"SEQ\x06" + hadoop_text(key_class) + hadoop_text(value_class))
    out += bytes([compress, block])
    if compress:
        out += hadoop_text(codec)
    out += struct.pack(">i", len(metadata))
    for k, v in metadata:
        out += hadoop_text(k) + hadoop_text(v)
    out += sync
    last_sync = len(out)
    for value in values:
        if len(out) >= last_sync + sync_interval:  # SequenceFile.Writer.checkAndWriteSync
            out += struct.pack(">i", -1) + sync
            last_sync = len(out)
        body = struct.pack(">i", len(value)) + value  # BytesWritable.write
        if compress:
            body = zlib.compress(body)
        out += struct.pack(">ii", len(key) + len(body), len(key)) + key + body
    path.write_bytes(bytes(out))


def pickle_partition(objs: Sequence[Any], batch: int, group: int) -> list[bytes]:
    """PySpark's batching (lists of `batch`), then saveAsObjectFile's (`group` per record)."""
    blobs = [pickle.dumps(list(objs[i : i + batch]), 5) for i in range(0, len(objs), batch)]
    return [java_byte_array_array(blobs[i : i + group]) for i in range(0, len(blobs), group)]


def make_output(root: Path, partitions: Sequence[Sequence[Any]], **kw: Any) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for n, objs in enumerate(partitions):
        write_sequence_file(root / f"part-{n:05d}", pickle_partition(objs, 1, 10), **kw)
        (root / f".part-{n:05d}.crc").write_bytes(b"crc junk")
    (root / "_SUCCESS").touch()
    (root / "_manifest.jsonl").write_text("{}\n")
    return root


def make_records(lengths: Sequence[int], seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    return [
        {
            "track_id": f"{i + 2:06d}",
            "source": f"file:///music/{i // 1000:03d}/{i + 2:06d}.mp3",
            "sample_rate": 8000,
            "codes": rng.integers(0, 256, n).astype(np.uint8),
            "genre": GENRES[i % len(GENRES)],
            "split": SPLITS[i % len(SPLITS)],
            "title": f"Track {i} \u266b",
        }
        for i, n in enumerate(lengths)
    ]


def assert_same_records(got: Sequence[Any], want: Sequence[Any]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert isinstance(g, dict)
        assert g.keys() == w.keys()
        for k in w:
            if isinstance(w[k], np.ndarray):
                assert g[k].dtype == w[k].dtype and g[k].ndim == 1
                assert np.array_equal(g[k], w[k]), k
            else:
                assert g[k] == w[k], k


# --- real Spark output ------------------------------------------------------------------------


def spark_read_in_name_order(sc: Any, out: Path) -> list[Any]:
    # One pickleFile per part: Hadoop's directory listing order is not guaranteed.
    parts = sorted(p for p in os.listdir(out) if p.startswith("part-"))
    return [x for p in parts for x in sc.pickleFile(str(out / p)).collect()]


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return make_records(LENGTHS)


@pytest.fixture(scope="module")
def spark_out(
    spark: Any, records: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("spark") / "b1"
    spark.sparkContext.parallelize(records, 3).saveAsPickleFile(str(out), batchSize=1)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [1, None, 0])  # None: the default (10); 0: automatic
def test_reads_spark_pickle_output(
    spark: Any,
    records: list[dict[str, Any]],
    spark_out: Path,
    tmp_path: Path,
    batch_size: int | None,
) -> None:
    out = spark_out
    if batch_size != 1:
        out = tmp_path / "out"
        rdd = spark.sparkContext.parallelize(records, 3)
        if batch_size is None:
            rdd.saveAsPickleFile(str(out))
        else:
            rdd.saveAsPickleFile(str(out), batchSize=batch_size)
    got = list(read_records(str(out)))
    assert_same_records(got, records)  # partitions in name order = the RDD's order
    assert_same_records(got, spark_read_in_name_order(spark.sparkContext, out))
    assert_same_records(list(read_records(out.as_uri())), records)
    assert len(list(read_records(str(out), track_ids=["000003", "nope"]))) == 1


def header_sync(data: bytes) -> bytes:
    # Uncompressed, no metadata: value class, 2 flag bytes, int metadata count 0, sync.
    at = data.index(BYTES_WRITABLE.encode()) + len(BYTES_WRITABLE) + 2 + 4
    assert data[at - 6 : at] == bytes(6)
    return data[at : at + 16]


@pytest.mark.slow
def test_spark_output_has_sync_escapes(spark_out: Path) -> None:
    # Guards the corruption tests below: the big record's partition must contain a sync escape.
    data = (spark_out / "part-00000").read_bytes()
    sync = header_sync(data)
    assert data.find(b"\xff\xff\xff\xff" + sync) > 0


@pytest.mark.slow
def test_spark_record_compressed_output(
    spark: Any, records: list[dict[str, Any]], tmp_path: Path
) -> None:
    # saveAsObjectFile honours the Hadoop output compression settings (checked in the header).
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    settings_ = {
        "mapreduce.output.fileoutputformat.compress": "true",
        "mapreduce.output.fileoutputformat.compress.type": "RECORD",
        "mapreduce.output.fileoutputformat.compress.codec": DEFAULT_CODEC,
    }
    old = {k: conf.get(k) for k in settings_}
    out, block_out = tmp_path / "record", tmp_path / "block"
    try:
        for k, v in settings_.items():
            conf.set(k, v)
        spark.sparkContext.parallelize(records[:20], 2).saveAsPickleFile(str(out), batchSize=1)
        conf.set("mapreduce.output.fileoutputformat.compress.type", "BLOCK")
        spark.sparkContext.parallelize(records[:3], 1).saveAsPickleFile(str(block_out))
    finally:
        for k, v in old.items():
            if v is None:
                conf.unset(k)
            else:
                conf.set(k, v)
    head = (out / "part-00000").read_bytes()[:200]
    assert b"BytesWritable\x01\x00" + hadoop_text(DEFAULT_CODEC) in head
    assert_same_records(list(read_records(str(out))), records[:20])
    with pytest.raises(ValueError, match=r"block-compressed.*DefaultCodec"):
        list(read_records(str(block_out)))


@pytest.mark.slow
def test_corrupt_sync_marker_in_spark_output(spark_out: Path, tmp_path: Path) -> None:
    out = Path(shutil.copytree(spark_out, tmp_path / "out"))
    part = out / "part-00000"
    data = bytearray(part.read_bytes())
    sync = header_sync(bytes(data))
    at = data.index(b"\xff\xff\xff\xff" + sync, 100) + 4 + 5
    data[at] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"part-00000: sync marker mismatch at offset \d+"):
        list(read_records(str(out)))


@pytest.mark.slow
@pytest.mark.parametrize("keep", [0.5, 0.999, 10, 3])
def test_truncated_spark_output(spark_out: Path, tmp_path: Path, keep: float) -> None:
    out = Path(shutil.copytree(spark_out, tmp_path / "out"))
    part = out / "part-00000"
    data = part.read_bytes()
    part.write_bytes(data[: int(keep * len(data)) if keep < 1 else int(keep)])
    with pytest.raises(ValueError, match=r"part-00000: (truncated|not a SequenceFile)"):
        list(read_records(str(out)))


# --- hand-built output: no Spark ----------------------------------------------------------------


def test_record_compressed_hand_built(tmp_path: Path) -> None:
    recs = make_records([0, 5, 70_000, 3])
    out = make_output(tmp_path / "o", [recs[:2], recs[2:]], compress=True, sync_interval=100)
    assert_same_records(list(read_records(str(out))), recs)


def test_filters(tmp_path: Path) -> None:
    recs = make_records([3] * 12)
    out = str(make_output(tmp_path / "o", [recs[:5], recs[5:]]))

    def ids(**kw: Any) -> list[str]:
        return [r["track_id"] for r in read_records(out, **kw)]

    assert ids() == [r["track_id"] for r in recs]
    assert ids(track_ids={"000004", "000011", "999999"}) == ["000004", "000011"]
    assert ids(track_ids="000004") == ["000004"]  # a single id, not its characters
    assert ids(genres=["Jazz"]) == [r["track_id"] for r in recs if r["genre"] == "Jazz"]
    assert ids(genres=["Jazz"], splits=("train",)) == [
        r["track_id"] for r in recs if r["genre"] == "Jazz" and r["split"] == "train"
    ]
    assert ids(splits=[]) == []
    # The package-level entry point forwards the filters.
    import fmaprep

    assert [r["track_id"] for r in fmaprep.read_records(out, splits=["test"])] == ids(
        splits=["test"]
    )


def test_missing_success_raises(tmp_path: Path) -> None:
    out = make_output(tmp_path / "o", [make_records([4])])
    (out / "_SUCCESS").unlink()
    with pytest.raises(FileNotFoundError, match="_SUCCESS"):
        next(read_records(str(out)))
    with pytest.raises(FileNotFoundError, match="no such output"):
        next(read_records(str(tmp_path / "absent")))


def test_output_locations(tmp_path: Path) -> None:
    recs = make_records([1, 2])
    out = make_output(tmp_path / "o", [recs])
    assert_same_records(list(read_records(out.as_uri())), recs)
    assert_same_records(list(read_records(f"file:{out}")), recs)  # Hadoop's file:/ form
    with pytest.raises(ValueError, match="gs://"):
        next(read_records("gs://bucket/out"))  # no client for that store
    with pytest.raises(ValueError, match="host"):
        next(read_records("file://otherhost/out"))


def test_parts_sorted_by_number_and_empty_parts(tmp_path: Path) -> None:
    recs = make_records([1] * 4)
    out = make_output(tmp_path / "o", [])
    for name, objs in [("part-100000", recs[3:]), ("part-00002", recs[1:3]), ("part-00001", [])]:
        write_sequence_file(out / name, pickle_partition(objs, 1, 10))
    write_sequence_file(out / "part-00000", pickle_partition(recs[:1], 1, 10))
    assert_same_records(list(read_records(str(out))), recs)


def test_corrupt_parquet_part_is_an_error_naming_the_file(tmp_path: Path) -> None:
    # parquet parts are read by fmaprep.formats.parquet (tests/test_parquet_reader.py)
    out = tmp_path / "o"
    out.mkdir()
    (out / "_SUCCESS").touch()
    (out / "part-00000-abc.snappy.parquet").write_bytes(b"PAR1")
    with pytest.raises(ValueError, match=r"part-00000-abc\.snappy\.parquet: not a readable"):
        next(read_records(str(out)))


def test_unbatched_pickles_are_single_objects(tmp_path: Path) -> None:
    recs = make_records([3, 4, 5])
    value = java_byte_array_array([pickle.dumps(r) for r in recs[:2]] + [pickle.dumps(recs[2:])])
    write_sequence_file(tmp_path / "p", [value])
    assert_same_records(list(read_partition(tmp_path / "p")), recs)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"compress": True, "codec": "org.apache.hadoop.io.compress.SnappyCodec"}, "SnappyCodec"),
        ({"compress": True, "block": True}, "block-compressed.*DefaultCodec"),
        ({"value_class": "org.apache.hadoop.io.Text"}, "value class org.apache.hadoop.io.Text"),
    ],
)
def test_unsupported_headers(tmp_path: Path, kw: dict[str, Any], message: str) -> None:
    write_sequence_file(tmp_path / "p", [b"x"], **kw)
    with pytest.raises(ValueError, match=message):
        list(iter_sequence_file(tmp_path / "p"))


def test_bad_files(tmp_path: Path) -> None:
    p = tmp_path / "p"
    write_sequence_file(p, [java_byte_array_array([b"a"])] * 30, sync_interval=50)
    good = p.read_bytes()
    p.write_bytes(b"PAR1" + good[4:])
    with pytest.raises(ValueError, match="not a SequenceFile"):
        list(iter_sequence_file(p))
    p.write_bytes(b"SEQ\x05" + good[4:])
    with pytest.raises(ValueError, match="version"):
        list(iter_sequence_file(p))
    p.write_bytes(good.replace(bytes(range(16)), bytes(16), 2))  # header sync kept, one escape bad
    with pytest.raises(ValueError, match="sync marker mismatch"):
        list(iter_sequence_file(p))
    p.write_bytes(good[:-3])
    with pytest.raises(ValueError, match="truncated: wanted"):
        list(iter_sequence_file(p))
    p.write_bytes(b"")  # a part whose writer died before the header
    with pytest.raises(ValueError, match="truncated: a 0-byte file"):
        list(iter_sequence_file(p))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\xac\xed\x00\x04", "magic"),
        (b"\xac\xed\x00\x05\x74\x00\x01a", "not an array"),
        (java_byte_array_array([b"ab"])[:-1], "truncated Java stream"),
        (java_byte_array_array([b"ab"]) + b"\x00", "trailing"),
        (java_byte_array_array([]).replace(b"[[B", b"[[I"), r"\[\[I"),
        (java_byte_array_array([b"a"]).replace(b"\x00\x00xp", b"\x00\x01xp", 2), "plain array"),
    ],
)
def test_bad_java_streams(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_byte_arrays(data)


def test_java_references_and_nulls() -> None:
    a, b = b"shared", b"other"
    assert parse_byte_arrays(java_byte_array_array([a, None, b, a, a])) == [a, None, b, a, a]
    assert b"\x71\x00\x7e\x00\x03" in java_byte_array_array([a, a])  # the writer did reference


@given(st.integers(-(2**31), 2**31 - 1))
def test_vint_round_trip(i: int) -> None:
    from fmaprep.formats.sequencefile import _read_vint

    assert _read_vint(io.BytesIO(hadoop_vint(i)), "vint") == i


record = st.fixed_dictionaries(
    {
        "track_id": st.text(max_size=8),
        "codes": st.binary(max_size=300).map(lambda b: np.frombuffer(b, np.uint8).copy()),
        "genre": st.sampled_from(GENRES),
    }
)


@settings(max_examples=60, deadline=None)
@given(
    partitions=st.lists(st.lists(record, max_size=25), max_size=4),
    batch=st.integers(1, 4),
    group=st.integers(1, 10),
    compress=st.booleans(),
    metadata=st.lists(st.tuples(st.text(max_size=200), st.text(max_size=200)), max_size=3),
    sync=st.binary(min_size=16, max_size=16),
    sync_interval=st.integers(1, 3_000),
    key=st.sampled_from([b"", b"\x00\x00\x00\x07", b"k" * 200]),
)
def test_round_trip_independent_writer(
    *,
    partitions: list[list[dict[str, Any]]],
    batch: int,
    group: int,
    compress: bool,
    metadata: list[tuple[str, str]],
    sync: bytes,
    sync_interval: int,
    key: bytes,
) -> None:
    with tempfile.TemporaryDirectory() as d:
        out = Path(d)
        for n, objs in enumerate(partitions):
            values = pickle_partition(objs, batch, group)
            write_sequence_file(
                out / f"part-{n:05d}",
                values,
                compress=compress,
                metadata=metadata,
                sync=sync,
                sync_interval=sync_interval,
                key=key,
            )
            assert list(iter_sequence_file(out / f"part-{n:05d}")) == values
        (out / "_SUCCESS").touch()
        assert_same_records(list(read_records(d)), [r for objs in partitions for r in objs])
