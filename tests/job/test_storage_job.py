"""The job between real HDFS and a real S3-API server on loopback (started by the test run):
S3 -> HDFS and HDFS -> S3 give the same records as a local run on the same files. (slow)"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fmaprep.audio.synth import music
from fmaprep.config import load_config
from fmaprep.formats.records import read_records
from fmaprep.job.run import run_preprocess
from local_services_fixture import local_services, s3

from conftest import write_audio, write_mp3_lame

__all__ = ["local_services"]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("remote-corpus")
    for i in range(5):
        tid = f"{200 + i:06d}"
        frames = music(3.0, (44100, 48000, 22050)[i % 3], seed=50 + i, stereo=i != 4)
        writer = write_mp3_lame if i % 2 else write_audio
        writer(root / tid[:3] / f"{tid}.mp3", frames, (44100, 48000, 22050)[i % 3])
    (root / "000" / "000999.mp3").write_text("<html>not audio</html>")
    tracks = [
        {"id": 200 + i, "title": f"Remote {i}", "artist": "S", "genre": "Jazz"} for i in range(5)
    ]
    (root / "_tracks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tracks))
    return root


@pytest.fixture(scope="module")
def local_codes(
    spark: Any, corpus: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, bytes]:
    out = tmp_path_factory.mktemp("local") / "out"
    run_preprocess(str(corpus), str(out), load_config(job_overrides={"max_error_rate": 0.5}), spark)
    return {r["track_id"]: r["codes"].tobytes() for r in read_records(str(out))}


def _hdfs(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        ["hdfs", "dfs", *args], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _job(env: dict[str, str], src: str, dst: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "fmaprep", "preprocess", src, dst, "--master", "local[2]",
           "--max-error-rate", "0.5"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert env["AWS_SECRET_ACCESS_KEY"] not in proc.stderr + proc.stdout  # never log secrets
    return proc


def _s3(env: dict[str, str]) -> Any:
    return s3(env), env["FMAPREP_S3_BUCKET"]


def _upload(env: dict[str, str], corpus: Path, prefix: str) -> None:
    client, bucket = _s3(env)
    for path in sorted(p for p in corpus.rglob("*") if p.is_file()):
        client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(corpus)}")


def _download(env: dict[str, str], prefix: str, dest: Path) -> None:
    client, bucket = _s3(env)
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
    for page in pages:
        for obj in page.get("Contents", []):
            rel = obj["Key"][len(prefix) + 1 :]
            if not rel or rel.endswith("/"):
                continue  # directory markers left by S3A
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, obj["Key"], str(target))


def _check(out: Path, local_codes: dict[str, bytes], scheme: str) -> None:
    records = {r["track_id"]: r for r in read_records(str(out))}
    assert {k: r["codes"].tobytes() for k, r in records.items()} == local_codes
    assert all(r["source"].startswith(scheme) for r in records.values())
    assert all(r["title"].startswith("Remote ") and r["genre"] == "Jazz" for r in records.values())
    lines = {line["track_id"]: line for line in map(json.loads, (out / "_manifest.jsonl").open())}
    assert len(lines) == 6 and lines["000999"]["error"].startswith("not_audio: ")
    assert all(np.isfinite(line.get("gain", 1.0)) for line in lines.values())


def test_s3_to_hdfs(
    local_services: dict[str, str], corpus: Path, local_codes: dict[str, bytes], tmp_path: Path
) -> None:
    env = local_services
    run = uuid.uuid4().hex[:8]  # the services keep their data between test runs
    _upload(env, corpus, f"raw-a-{run}")
    bucket = env["FMAPREP_S3_BUCKET"]
    _job(env, f"s3a://{bucket}/raw-a-{run}/", f"hdfs:///fmaprep-tests/{run}/out-a")
    _hdfs(env, "-get", f"/fmaprep-tests/{run}/out-a", str(tmp_path / "out"))
    _check(tmp_path / "out", local_codes, "s3a://")


def test_hdfs_to_s3(
    local_services: dict[str, str], corpus: Path, local_codes: dict[str, bytes], tmp_path: Path
) -> None:
    env = local_services
    run = uuid.uuid4().hex[:8]
    _hdfs(env, "-mkdir", "-p", f"/fmaprep-tests/{run}/raw-b")
    _hdfs(env, "-put", "-f", *[str(p) for p in corpus.iterdir()], f"/fmaprep-tests/{run}/raw-b/")
    bucket = env["FMAPREP_S3_BUCKET"]
    _job(env, f"{env['FMAPREP_HDFS_URI']}/fmaprep-tests/{run}/raw-b", f"s3a://{bucket}/out-b-{run}")
    _download(env, f"out-b-{run}", tmp_path / "out")
    _check(tmp_path / "out", local_codes, "hdfs://")
