"""What other tools read from an OUTPUT: Hugging Face ``datasets``, pyarrow and DuckDB on a
``--format parquet`` output (the parts its commit names), and the real ``webdataset`` package on
``fmaprep export --to webdataset`` shards, local and on the loopback S3/HDFS. Codes must equal
``read_records``' byte for byte."""

from __future__ import annotations

import io
import json
import os
import tarfile
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fmaprep.formats.records import read_commit, read_records
from fmaprep.train.webdataset import SHARD_LIST, export_webdataset, read_shard_list
from local_services_fixture import local_services, services_environ  # noqa: F401 (fixtures)

from conftest import write_parquet_output


def committed_parts(output: Path) -> list[str]:
    """The part files a reader should load: those the commit names (docs/training.md)."""
    commit = read_commit(str(output))
    assert commit is not None
    return [str(output / p.name) for p in commit.parts]


def by_track(records: Any) -> dict[str, bytes]:
    return {r["track_id"]: np.asarray(r["codes"], np.uint8).tobytes() for r in records}


@pytest.mark.slow
def test_datasets_pyarrow_and_duckdb_read_a_parquet_output(
    job_outputs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = job_outputs["parquet"]
    want = by_track(read_records(str(out)))
    assert len(want) == 6
    files = committed_parts(out)
    # Hugging Face datasets, offline: it must never reach the hub
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    import datasets

    ds = datasets.load_dataset(
        "parquet", data_files=files, split="train", cache_dir=str(tmp_path / "cache")
    )
    assert {row["track_id"]: row["codes"] for row in ds} == want
    ds.set_format("numpy", columns=["codes"])  # as a training loop would take it
    assert ds[0]["codes"].tobytes() in want.values()
    # pyarrow
    import pyarrow.parquet as pq

    table = pq.read_table(files, columns=["track_id", "codes"])
    assert dict(zip(table["track_id"].to_pylist(), table["codes"].to_pylist(), strict=True)) == want
    # DuckDB
    import duckdb

    rows = duckdb.sql(
        "SELECT track_id, codes, octet_length(codes) AS n FROM read_parquet($files)",
        params={"files": files},
    ).fetchall()
    assert {tid: bytes(codes) for tid, codes, _ in rows} == want
    assert all(n == len(want[tid]) for tid, _, n in rows)


def small_output(root: Path) -> tuple[Path, dict[str, bytes]]:
    rng = np.random.default_rng(3)
    records = [
        {
            "track_id": tid,
            "source": f"/m/{tid}.mp3",
            "sample_rate": 8000,
            "mu": 255,
            "genre": "Rock",
            "codes": rng.integers(0, 256, n).astype(np.uint8),
        }
        for tid, n in [("000002", 3000), ("a.b c", 5000), ("000010", 100), ("000011", 9000)]
    ]
    out = write_parquet_output(root, [records[:2], records[2:]])
    return out, by_track(records)


def read_with_webdataset(urls: list[str]) -> dict[str, tuple[bytes, dict[str, Any]]]:
    import webdataset as wds

    got = {}
    for sample in wds.WebDataset(urls, shardshuffle=False).decode():
        meta, codes = sample["json"], sample["codes.npy"]
        assert codes.dtype == np.uint8 and codes.ndim == 1
        got[meta["track_id"]] = (codes.tobytes(), meta)
    return got


def test_webdataset_shards_read_back_with_webdataset(tmp_path: Path) -> None:
    out, want = small_output(tmp_path / "out")
    dest = tmp_path / "wds"
    result = export_webdataset(str(out), str(dest), shard_bytes=6000)
    # 3000+ bytes, then 5000+ (>= 6000 closes the shard), then 100 + 9000: two samples each
    listed = json.loads((dest / SHARD_LIST).read_text())
    assert listed["shards"] == result.shards and len(result.shards) == 2
    assert sorted(p.name for p in dest.iterdir()) == sorted([SHARD_LIST, *result.shards])
    got = read_with_webdataset([str(dest / name) for name in result.shards])
    assert {tid: codes for tid, (codes, _) in got.items()} == want
    assert got["a.b c"][1]["genre"] == "Rock" and got["a.b c"][1]["sample_rate"] == 8000
    with tarfile.open(dest / result.shards[0]) as tar:  # names: <n>-<safe id>.<ext>
        assert tar.getnames() == [
            "0000000-000002.codes.npy", "0000000-000002.json",
            "0000001-a_b_c.codes.npy", "0000001-a_b_c.json",
        ]  # fmt: skip
        npy = tar.extractfile("0000000-000002.codes.npy")
        assert npy is not None
        assert np.load(io.BytesIO(npy.read())).tobytes() == want["000002"]
    # a second export refuses, unless overwrite: then only the old list's shards go
    with pytest.raises(FileExistsError, match="--overwrite"):
        export_webdataset(str(out), str(dest))
    (dest / "mine.txt").write_text("not fmaprep's")
    again = export_webdataset(str(out), str(dest), overwrite=True)
    assert sorted(os.listdir(dest)) == sorted([SHARD_LIST, "mine.txt", *again.shards])
    assert set(again.shards).isdisjoint(result.shards)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["s3", "hdfs"])
def test_webdataset_export_to_remote_stores(
    kind: str,
    services_environ: dict[str, str],  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    from fmaprep.storage.clients import StoreSettings, open_store

    out, want = small_output(tmp_path / "out")
    env = services_environ
    settings = StoreSettings.from_env()
    tag = uuid.uuid4().hex[:8]
    root = env["FMAPREP_HDFS_URI"] if kind == "hdfs" else f"s3://{env['FMAPREP_S3_BUCKET']}"
    dest = f"{root}/wds-{tag}"
    result = export_webdataset(str(out), dest, shard_bytes=6000, settings=settings)
    assert read_shard_list(dest, settings)["shards"] == result.shards  # type: ignore[index]
    store = open_store(dest, settings)
    local = tmp_path / "copy"
    local.mkdir()
    for name in result.shards:  # webdataset reads local files or pipes; copy the bytes
        (local / name).write_bytes(store.read_bytes(f"{dest}/{name}"))
    got = read_with_webdataset([str(local / name) for name in result.shards])
    assert {tid: codes for tid, (codes, _) in got.items()} == want
