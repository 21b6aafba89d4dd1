"""fetch-dataset into S3 and HDFS reads the archive in place on its server (Range requests):
local disk never holds the archive (members stream to the store), even with the connection cut;
nothing is published before the archive's sha1 is proven; a server without Range falls back to
a local archive after checking there is room. Loopback services and the archive server of
zipserver.py. (slow)"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from fmaprep.acquire.dataset import fetch_dataset
from fmaprep.acquire.dest import open_destination
from fmaprep.acquire.http import HttpClient, Throttle
from fmaprep.tracks import parse_lines
from local_services_fixture import local_services
from support.zipserver import ZipServer, fma_shaped_zip

from .test_resume import _Interrupt

__all__ = ["local_services"]
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
MEMBER = 10_000_000  # over boto3's 8 MB copy threshold: publishing one is a multipart copy


def _uri(env: dict[str, str], store: str) -> str:
    tag = uuid.uuid4().hex[:8]
    if store == "s3":
        return f"s3a://{env['FMAPREP_S3_BUCKET']}/in-place-{tag}"
    return f"{env['FMAPREP_HDFS_URI']}/fmaprep-test/in-place-{tag}"


@pytest.fixture
def remote_env(local_services: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key in ("FMAPREP_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                "AWS_DEFAULT_REGION", "FMAPREP_WEBHDFS_URL"):  # fmt: skip
        monkeypatch.setenv(key, local_services[key])
    return local_services


def _stored(uri: str, members: dict[int, bytes]) -> None:
    dest = open_destination(uri)
    lines = {x["id"]: x for x in parse_lines(dest.read_text("_tracks.jsonl") or "")}
    assert sorted(lines) == sorted(f"{t:06d}" for t in members)
    for tid, data in members.items():
        assert lines[f"{tid:06d}"]["sha1"] == hashlib.sha1(data).hexdigest()
        name = f"{tid:06d}"
        assert dest.size(f"{name[:3]}/{name}.mp3") == len(data)


@pytest.mark.parametrize("store", ["s3", "hdfs"])
def test_in_place_with_cuts_then_a_rerun_reads_only_what_is_missing(
    remote_env: dict[str, str], zip_server: ZipServer, store: str
) -> None:
    data, members = fma_shaped_zip(6, MEMBER)
    zip_server.files["/fma_x.zip"] = data
    url, digest = zip_server.base + "/fma_x.zip", hashlib.sha1(data).hexdigest()
    uri = _uri(remote_env, store)
    client = HttpClient(Throttle(0.0, 1 << 30, 0.0), retries=3, backoff=0.01)
    zip_server.drops = [0, 5_000_000, 7_000_000]  # (the probe's 1 byte is the first response)
    summary = fetch_dataset("fma_x", uri, url=url, sha1=digest, client=client)
    assert summary.sha1 == digest  # every window was read in order: the sha1 is checked too
    assert zip_server.sent <= 1.1 * len(data), zip_server.sent / len(data)
    _stored(uri, members)
    # a rerun on a complete destination checks it against the fetch record: no archive byte
    sent, asked = zip_server.sent, len(zip_server.requests)
    again = fetch_dataset("fma_x", uri, url=url, sha1=digest, client=client)
    assert again.skipped == len(members) and again.extracted == 0
    assert zip_server.sent == sent and len(zip_server.requests) == asked


def test_ctrl_c_in_place_publishes_nothing_and_the_rerun_verifies_again(
    remote_env: dict[str, str], zip_server: ZipServer
) -> None:
    data, members = fma_shaped_zip(12, MEMBER)  # 120 MB: four 32 MB windows
    zip_server.files["/fma_x.zip"] = data
    url, digest = zip_server.base + "/fma_x.zip", hashlib.sha1(data).hexdigest()
    uri = _uri(remote_env, "s3")
    with pytest.raises(KeyboardInterrupt):
        fetch_dataset("fma_x", uri, url=url, sha1=digest, progress=_Interrupt(tracks=8))
    dest = open_destination(uri)
    # eight members were staged, none published: the archive's sha1 was not proven yet
    assert not any(dest.list_keys(f"{t:06d}"[:3] + "/") for t in members)
    assert dest.read_text("_tracks.jsonl") is None
    first = zip_server.sent
    summary = fetch_dataset("fma_x", uri, url=url, sha1=digest)
    # nothing of the unverified run is trusted: the whole archive is read (and hashed) again
    assert summary.skipped == 0 and summary.extracted == 12 and summary.sha1 == digest
    assert zip_server.sent - first >= len(data)
    assert dest.list_keys("_fetch_staging/") == []
    _stored(uri, members)


def _in_small_tmp(cmd: list[str], tmp_mb: int, tmp_path: Path, env: dict[str, str]) -> Any:
    """``cmd`` with TMPDIR on a tmpfs of ``tmp_mb`` MB that only it sees (a mount namespace)."""
    small = tmp_path / "small-tmp"
    small.mkdir()
    script = f'mount -t tmpfs -o size={tmp_mb}m tmpfs {small} && exec "$@"'
    return subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *cmd],
        env={**env, "TMPDIR": str(small)}, capture_output=True, text=True, timeout=600,
        check=False,
    )  # fmt: skip


needs_unshare = pytest.mark.skipif(
    shutil.which("unshare") is None or os.geteuid() != 0,
    reason="needs root and unshare(1) for a small private tmpfs",
)


@needs_unshare
@pytest.mark.parametrize("store", ["s3", "hdfs"])
def test_local_disk_of_twice_the_largest_member_is_enough(
    remote_env: dict[str, str], zip_server: ZipServer, tmp_path: Path, store: str
) -> None:
    data, members = fma_shaped_zip(8, MEMBER)  # 80 MB archive, 20 MB of local disk
    zip_server.files["/fma_x.zip"] = data
    uri = _uri(remote_env, store)
    cmd = [sys.executable, "-m", "fmaprep", "fetch-dataset", "fma_x", "--dest", uri,
           "--url", zip_server.base + "/fma_x.zip", "--sha1", hashlib.sha1(data).hexdigest(),
           "--no-progress"]  # fmt: skip
    proc = _in_small_tmp(cmd, 2 * MEMBER // 1_000_000, tmp_path, dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-3000:]
    _stored(uri, members)


@needs_unshare
def test_without_range_the_local_disk_is_checked_before_a_byte_is_fetched(
    remote_env: dict[str, str], zip_server: ZipServer, tmp_path: Path
) -> None:
    data, _ = fma_shaped_zip(8, MEMBER)
    zip_server.files["/fma_x.zip"] = data
    zip_server.ignore_range = True
    cmd = [sys.executable, "-m", "fmaprep", "fetch-dataset", "fma_x",
           "--dest", _uri(remote_env, "s3"), "--url", zip_server.base + "/fma_x.zip",
           "--sha1", hashlib.sha1(data).hexdigest(), "--no-progress"]  # fmt: skip
    proc = _in_small_tmp(cmd, 20, tmp_path, dict(os.environ))
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "does not answer Range requests" in proc.stderr
    assert "needs 76.3 MiB of local disk" in proc.stderr and "set TMPDIR" in proc.stderr
    # the 200's body is never read: the server got out only what the socket buffers took
    assert zip_server.sent < len(data) / 4
