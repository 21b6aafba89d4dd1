"""Replacing a track on HDFS is atomic, and acquisition takes its settings where every command
does. ``scrape`` and ``fetch-dataset`` (archive read in place) run as real commands against the
loopback HDFS; the process is killed (tests/acquire/replacecrash/sitecustomize.py) at each step
of replacing a track that is already there: the track is the old file or the new one, whole,
never missing, and the rerun completes with no leftover. Then both commands write into S3 and
HDFS with no FMAPREP_S3_ENDPOINT nor FMAPREP_WEBHDFS_URL: the S3 endpoint comes from the
storage TOML, the NameNode from Hadoop's configuration files. (slow)"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fmaprep.acquire.dataset import fetch_dataset
from fmaprep.acquire.dest import Destination, open_destination
from fmaprep.storage.clients import StoreSettings
from fmaprep.tracks import parse_lines
from local_services_fixture import local_services, services_environ
from support.zipserver import ZipServer, fma_shaped_zip

from .conftest import FakeFMA, FakeTrack, make_mp3

__all__ = ["local_services", "services_environ"]
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
CRASH_DIR = Path(__file__).resolve().parent / "replacecrash"
KEY = "000/000002.mp3"
STEPS = ("created", "before-rename", "after-rename")


def _sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def _run(
    args: list[str], env: dict[str, str], crash_at: str = ""
) -> subprocess.CompletedProcess[str]:
    run_env = dict(env)
    if crash_at:
        run_env["FMAPREP_REPLACE_CRASH_AT"] = crash_at
        run_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(CRASH_DIR), env.get("PYTHONPATH", "")) if p
        )
    return subprocess.run(
        [sys.executable, "-m", "fmaprep", *args, "--no-progress"],
        env=run_env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def _lines(dest: Destination) -> dict[str, dict[str, Any]]:
    return {x["id"]: x for x in parse_lines(dest.read_text("_tracks.jsonl") or "")}


def _replace_at_every_step(
    dest: Destination, args: list[str], env: dict[str, str], new: bytes,
    forget: Callable[[], None],
) -> None:  # fmt: skip
    """For each step: an old track 2 is there (and nothing records it), the command dies while
    replacing it, the track is whole (old before the rename, new after), the rerun completes."""
    old = make_mp3(1000.0, seconds=0.3)
    assert old != new
    for step in STEPS:
        forget()
        dest.store.write_bytes(dest.key_uri(KEY), old)
        crashed = _run(args, env, crash_at=step)
        assert crashed.returncode == 137, (step, crashed.stderr[-2000:])
        with dest.open_read(KEY) as stream:
            there = stream.read()
        assert there == (new if step == "after-rename" else old), step
        rerun = _run(args, env)
        assert rerun.returncode == 0, (step, rerun.stderr[-2000:])
        with dest.open_read(KEY) as stream:
            assert _sha1(stream.read()) == _sha1(new), step
        assert _lines(dest)["000002"]["sha1"] == _sha1(new), step
        assert list(dest.leftovers()) == [], step  # the killed writer's temporary file went
        assert dest.list_keys("_fetch_staging/") == [], step


def _hdfs(env: dict[str, str]) -> tuple[str, Destination]:
    uri = f"{env['FMAPREP_HDFS_URI']}/fmaprep-test/replace-{uuid.uuid4().hex[:8]}"
    return uri, open_destination(uri, StoreSettings(webhdfs=env["FMAPREP_WEBHDFS_URL"]))


def test_scrape_replaces_a_track_on_hdfs_atomically(
    local_services: dict[str, str], serve: Any
) -> None:
    new = make_mp3(440.0, seconds=0.3)
    site = serve(FakeFMA([FakeTrack(2, new), FakeTrack(5, make_mp3(550.0))], page_size=5))
    uri, dest = _hdfs(local_services)
    args = ["scrape", "--dest", uri, "--base-url", site.base_url, "--genre", "Test",
            "--limit", "2", "--pause", "0", "--min-delay", "0", "--retries", "1",
            "--concurrency", "1"]  # fmt: skip

    def forget() -> None:
        dest.delete("_tracks.jsonl")

    _replace_at_every_step(dest, args, dict(os.environ) | local_services, new, forget)


def test_fetch_dataset_replaces_a_track_on_hdfs_atomically(
    local_services: dict[str, str], zip_server: ZipServer
) -> None:
    data, members = fma_shaped_zip(3, 200_000)
    zip_server.files["/fma_x.zip"] = data
    uri, dest = _hdfs(local_services)
    args = ["fetch-dataset", "fma_x", "--dest", uri, "--url", zip_server.base + "/fma_x.zip",
            "--sha1", _sha1(data)]  # fmt: skip

    def forget() -> None:
        dest.delete("_tracks.jsonl")
        dest.delete("_fetched/fma_x.json")

    _replace_at_every_step(dest, args, dict(os.environ) | local_services, members[2], forget)


OVERRIDES = ("FMAPREP_S3_ENDPOINT", "FMAPREP_WEBHDFS_URL", "FMAPREP_HDFS_URI",
             "FMAPREP_STORAGE_CONF", "HADOOP_CONF_DIR")  # fmt: skip


@pytest.mark.parametrize("store", ["s3", "hdfs"])
def test_both_commands_take_their_settings_from_the_storage_conf(
    services_environ: dict[str, str], serve: Any, zip_server: ZipServer, tmp_path: Path, store: str
) -> None:
    """No FMAPREP_S3_ENDPOINT, FMAPREP_WEBHDFS_URL nor FMAPREP_HDFS_URI: S3's endpoint comes from
    the storage TOML (then --s3-endpoint over a TOML that names a dead one), HDFS's NameNode
    (for hdfs:///) from Hadoop's configuration files, as the job's driver finds them."""
    services = services_environ  # (in this process's environment too: the reads below)
    env = {k: v for k, v in (dict(os.environ) | services).items() if k not in OVERRIDES}
    conf = tmp_path / "storage.toml"
    conf.write_text(f'[s3]\nendpoint = "{services["FMAPREP_S3_ENDPOINT"]}"\n')
    env["FMAPREP_STORAGE_CONF"] = str(conf)
    env["HADOOP_CONF_DIR"] = str(ROOT / ".services" / "hadoop-conf")
    tag = uuid.uuid4().hex[:8]
    if store == "s3":
        base = f"s3a://{services['FMAPREP_S3_BUCKET']}/conf-{tag}"
        settings = StoreSettings.from_env(environ=services)
    else:
        base = f"hdfs:///fmaprep-test/conf-{tag}"
        settings = StoreSettings(webhdfs=services["FMAPREP_WEBHDFS_URL"])
    audio = make_mp3(660.0, seconds=0.2)
    site = serve(FakeFMA([FakeTrack(7, audio)], page_size=5))
    scraped = _run(["scrape", "--dest", f"{base}/scraped", "--base-url", site.base_url,
                    "--genre", "Test", "--limit", "1", "--pause", "0", "--min-delay", "0"],
                   env)  # fmt: skip
    assert scraped.returncode == 0, scraped.stderr[-2000:]
    data, members = fma_shaped_zip(2, 50_000)
    zip_server.files["/fma_x.zip"] = data
    fetch = ["fetch-dataset", "fma_x", "--dest", f"{base}/fetched",
             "--url", zip_server.base + "/fma_x.zip", "--sha1", _sha1(data)]  # fmt: skip
    if store == "s3":  # the flag wins over the file
        conf.write_text('[s3]\nendpoint = "http://127.0.0.1:1"\n')
        fetch += ["--s3-endpoint", services["FMAPREP_S3_ENDPOINT"]]
    fetched = _run(fetch, env)
    assert fetched.returncode == 0, fetched.stderr[-2000:]

    scraped_dest = open_destination(f"{base}/scraped", settings)
    with scraped_dest.open_read("000/000007.mp3") as stream:
        assert stream.read() == audio
    fetched_dest = open_destination(f"{base}/fetched", settings)
    assert sorted(_lines(fetched_dest)) == sorted(f"{t:06d}" for t in members)
    for tid, member in members.items():
        with fetched_dest.open_read(f"{tid:06d}"[:3] + f"/{tid:06d}.mp3") as stream:
            assert _sha1(stream.read()) == _sha1(member)


def test_a_killed_runs_unfinished_uploads_are_aborted_on_s3(
    services_environ: dict[str, str],
) -> None:
    """A writer killed mid-track on S3 leaves an unfinished multipart upload (invisible, but
    stored and billed): the next run aborts those to the destination's keys, and no other."""
    from local_services_fixture import s3

    env = services_environ
    bucket, tag = env["FMAPREP_S3_BUCKET"], uuid.uuid4().hex[:8]
    client = s3(env)
    ours = client.create_multipart_upload(Bucket=bucket, Key=f"dest-{tag}/000/000002.mp3")
    beside = client.create_multipart_upload(Bucket=bucket, Key=f"dest-{tag}-other/000/000002.mp3")
    hidden = client.create_multipart_upload(Bucket=bucket, Key=f"dest-{tag}/000/.not-ours")
    try:
        open_destination(f"s3://{bucket}/dest-{tag}").cleanup()
        left = {u["UploadId"] for u in client.list_multipart_uploads(
            Bucket=bucket, Prefix=f"dest-{tag}").get("Uploads", [])}  # fmt: skip
        assert ours["UploadId"] not in left
        assert {beside["UploadId"], hidden["UploadId"]} <= left
    finally:
        for upload in (beside, hidden):
            client.abort_multipart_upload(
                Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )


def test_a_rerun_rides_out_throttling_and_cut_reads_on_s3(
    services_environ: dict[str, str], zip_server: ZipServer
) -> None:
    """Acquisition's reads are the store's: on a rerun the fetch record and _tracks.jsonl are
    read through 503 SlowDown answers and connections cut mid-body (counted at a recording proxy
    in front of s3proxy), and the complete destination still costs no archive byte."""
    from support.httpproxy import S3Proxy

    env = services_environ
    data, members = fma_shaped_zip(3, 50_000)
    zip_server.files["/fma_x.zip"] = data
    uri = f"s3a://{env['FMAPREP_S3_BUCKET']}/reads-{uuid.uuid4().hex[:8]}"
    url = zip_server.base + "/fma_x.zip"
    with S3Proxy(env["FMAPREP_S3_ENDPOINT"]) as proxy:
        first = fetch_dataset("fma_x", uri, url=url, sha1=_sha1(data), s3_endpoint=proxy.url)
        assert first.extracted == len(members)
        sent = zip_server.sent
        proxy.reset()
        proxy.fail_next("GetObject", 2)
        proxy.drop_next("GetObject")
        again = fetch_dataset("fma_x", uri, url=url, sha1=_sha1(data), s3_endpoint=proxy.url)
        gets = [r for r in proxy.requests() if r.operation == "GetObject"]
    assert again.skipped == len(members) and again.extracted == 0 and not again.failures
    assert zip_server.sent == sent  # the record was read, whatever the faults: no archive byte
    assert [r.fault for r in gets[:4]] == ["SlowDown", "SlowDown", "dropped", None], gets
    record_key = uri.split("/", 3)[3] + "/_fetched/fma_x.json"
    assert gets[2].key == gets[3].key == record_key  # the cut read went on (a Range request)
