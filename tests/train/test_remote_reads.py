"""WindowSampler on memmap exports in the loopback S3 and HDFS, read in place: the same windows as
the local export, only the bytes the windows need (plus read-ahead), a bounded cache."""

from __future__ import annotations

import pickle
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fmaprep.cli import main
from fmaprep.storage.clients import StoreSettings
from fmaprep.train.data import WindowSampler
from fmaprep.train.export import export_memmap
from fmaprep.train.remote import RemoteExport, export_memmap_to_store
from local_services_fixture import local_services, services_environ  # noqa: F401 (fixtures)

from conftest import write_parquet_output

BLOCK = 16 * 1024
LENGTHS = [40_000, 3_000, 120_000, 70_000, 900, 66_000]  # 299,900 codes


def windows(sampler: WindowSampler, **kw: Any) -> list[bytes]:
    return [x.tobytes() + y.tobytes() for x, y in sampler.iter_shard(**kw)]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["s3", "hdfs"])
def test_a_remote_export_serves_the_local_exports_windows(
    kind: str,
    services_environ: dict[str, str],  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(6)
    records = [
        {"track_id": f"{i:06d}", "source": f"/m/{i}.mp3", "sample_rate": 8000,
         "codes": rng.integers(0, 256, n).astype(np.uint8)}
        for i, n in enumerate(LENGTHS)
    ]  # fmt: skip
    out = str(write_parquet_output(tmp_path / "out", [records[:3], records[3:]]))
    local = tmp_path / "mm"
    export_memmap(out, str(local))
    env = services_environ
    root = env["FMAPREP_HDFS_URI"] if kind == "hdfs" else f"s3://{env['FMAPREP_S3_BUCKET']}"
    dest = f"{root}/mm-{uuid.uuid4().hex[:8]}"
    assert main(["-q", "export", out, dest, "--to", "memmap"]) == 0
    index = RemoteExport(dest).tracks
    assert [(x["track_id"], x["length"]) for x in index] == [
        (r["track_id"], r["codes"].size) for r in records
    ]
    with pytest.raises(FileExistsError, match="remove it first"):
        export_memmap_to_store(out, dest)

    def remote(**kw: Any) -> RemoteExport:
        return RemoteExport(dest, StoreSettings.from_env(), block_bytes=BLOCK, **kw)

    # sequential, two ranks, two workers: the same windows as the local export
    for rank in range(2):
        for worker in range(2):
            kw = {"mode": "sequential", "rank": rank, "world_size": 2}
            want = windows(WindowSampler(str(local), 1000, 512, **kw), shard=worker, shards=2)  # type: ignore[arg-type]
            got = windows(WindowSampler(remote(), 1000, 512, **kw), shard=worker, shards=2)  # type: ignore[arg-type]
            assert got == want and len(want) > 20
    # one sequential pass reads each byte once, in one request: the read-ahead never fetches
    # a block twice nor opens a second request, however late its thread runs (a few passes:
    # on a busy machine a stale read-ahead used to refetch a block about once in ten passes)
    for _ in range(8):
        export = remote(cache_bytes=5 * BLOCK, read_ahead=2)
        assert len(windows(WindowSampler(export, 1000, 512, mode="sequential"))) > 200
        assert export.file.bytes_fetched == sum(LENGTHS)
        assert export.file.requests == 1
    # random windows touch only their blocks and the read-ahead (4 windows of 1512 codes)
    export = remote(cache_bytes=4 * BLOCK, read_ahead=1)
    sampler = WindowSampler(export, 1000, 512, seed=3, num_windows=4)
    local_sampler = WindowSampler(str(local), 1000, 512, seed=3, num_windows=4)
    assert windows(sampler) == windows(local_sampler)
    assert 0 < export.file.bytes_fetched <= 4 * (2 + 1) * BLOCK < sum(LENGTHS)
    # by URI (settings from the environment), and pickled into a worker by URI, not by bytes
    by_uri = WindowSampler(dest, 1000, 512, mode="sequential", rank=1, world_size=2)
    assert windows(by_uri) == windows(
        WindowSampler(str(local), 1000, 512, mode="sequential", rank=1, world_size=2)
    )
    blob = pickle.dumps(by_uri)
    assert len(blob) < 20_000
    assert windows(pickle.loads(blob)) == windows(by_uri)
