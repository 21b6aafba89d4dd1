"""Faults of the environment (issue 25): each is one ``fmaprep:`` line saying what and where,
that nothing was committed and the command that continues, naming a log file that holds the
traceback; a non-zero exit within seconds of the fault; and a resume that completes once the
fault is gone. Real faults: small tmpfs file systems (full, read-only), a deleted bucket, wrong
keys refused by the S3 server, a closed port, SIGINT to the job's process group as a terminal's
Ctrl-C sends it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fmaprep.storage.clients import StoreSettings, open_store
from job.test_commit import codes, make_corpus, run_cli
from local_services_fixture import local_services, services_environ  # noqa: F401 (fixtures)

from conftest import write_audio

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs (root only)")


def fault_line(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    """The one ``fmaprep:`` line of a failed run, with ``words`` in it, and its log file."""
    assert proc.returncode != 0, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("fmaprep:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "Py4J" not in proc.stderr, proc.stderr[-3000:]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def logged_traceback(line: str) -> str:
    found = re.search(r"\(traceback: (\S+)\)$", line)
    assert found, line
    text = Path(found.group(1)).read_text()
    assert "Traceback (most recent call last)" in text
    return text


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "fs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_bad_master_is_refused_before_spark_starts(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus", n=1, seed=400)
    for master, words in (("garbage", "is not a Spark master"), ("local[0]", "at least one")):
        started = time.monotonic()
        cmd = [sys.executable, "-m", "fmaprep", "preprocess", str(corpus), str(tmp_path / "o"),
               "--master", master]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        assert proc.returncode == 2
        fault_line(proc, master, words)
        assert time.monotonic() - started < 20  # no JVM was started
        assert not (tmp_path / "o").exists()


def test_output_that_is_a_file(tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus", n=1, seed=401)
    (tmp_path / "o").write_bytes(b"a file")
    proc = run_cli(str(corpus), str(tmp_path / "o"), dict(os.environ))
    assert proc.returncode == 2
    fault_line(proc, "is a file, not a directory")
    assert (tmp_path / "o").read_bytes() == b"a file"


@pytest.mark.slow
@root_only
def test_full_disk_under_output_then_resume(tmpfs: Path, tmp_path: Path) -> None:
    """OUTPUT on a 64 kB tmpfs, smaller than the output's estimate: exit 1 before the tasks
    with one line (how much is needed and free, where, the resume command), no commit; once
    the file system grows, the resume completes with every input once."""
    corpus = make_corpus(tmp_path / "corpus", n=8, seed=402)
    out = tmpfs / "out"
    env = dict(os.environ)
    proc = run_cli(str(corpus), str(out), env)
    line = fault_line(proc, "no space for OUTPUT", "KiB needed for 8 inputs", "KiB free", str(out),
                      "nothing was committed", "--mode resume")  # fmt: skip
    assert proc.returncode == 1
    logged_traceback(line)
    assert not (out / "_SUCCESS").exists()
    assert not [p for p in out.rglob("*.fmaprep-tmp")]  # no temporary file left behind
    subprocess.run(["mount", "-o", "remount,size=16m", str(tmpfs)], check=True)
    done = run_cli(str(corpus), str(out), env, "--mode", "resume")
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(codes(str(out), StoreSettings())) == 8


@pytest.mark.slow
@root_only
def test_disk_filling_up_during_the_tasks_then_resume(tmpfs: Path, tmp_path: Path) -> None:
    """The disk under OUTPUT fills up once the first part is written (a ballast file takes the
    rest): the next task's write meets ENOSPC, returns the fault, and the job stops at it
    without retrying (one line: no space left, the part it was writing); the ballast gone, a
    resume keeps the finished parts and completes."""
    subprocess.run(["mount", "-o", "remount,size=2m", str(tmpfs)], check=True)
    corpus = make_corpus(tmp_path / "corpus", n=8, seed=405)
    out = tmpfs / "out"
    cmd = [sys.executable, "-m", "fmaprep", "preprocess", str(corpus), str(out), "--master",
           "local[2]", "--partitions", "8"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    _wait_for(lambda: any(out.glob("part-*")) or proc.poll() is not None)
    ballast = tmpfs / "ballast"
    with open(ballast, "wb", buffering=0) as f:  # take every free block
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    filled = time.monotonic()
    stdout, stderr = proc.communicate(timeout=300)
    line = fault_line(
        subprocess.CompletedProcess([], proc.returncode, stdout, stderr),
        "no space left on the device",
        f"{out}/part-",
        "nothing was committed",
    )
    assert proc.returncode == 1 and time.monotonic() - filled < 60
    assert stderr.count("Lost task") <= 8  # cancelled, not retried four times each
    logged_traceback(line)
    assert not (out / "_SUCCESS").exists()
    ballast.unlink()
    done = run_cli(str(corpus), str(out), dict(os.environ), "--mode", "resume")
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(codes(str(out), StoreSettings())) == 8


@pytest.mark.slow
@root_only
def test_read_only_output_then_resume(tmpfs: Path, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus", n=2, seed=403)
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    started = time.monotonic()
    proc = run_cli(str(corpus), str(tmpfs / "out"), dict(os.environ))
    fault_line(proc, "read-only file system", str(tmpfs / "out"))
    assert time.monotonic() - started < 30  # before Spark: the lease could not be written
    subprocess.run(["mount", "-o", "remount,rw,size=16m", str(tmpfs)], check=True)
    done = run_cli(str(corpus), str(tmpfs / "out"), dict(os.environ), "--mode", "resume")
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow
def test_unreachable_and_refusing_stores(
    services_environ: dict[str, str],  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    """A closed port (S3 endpoint, NameNode): one line in seconds. Keys the S3 server refuses:
    one line naming the refusal."""
    corpus = str(make_corpus(tmp_path / "corpus", n=1, seed=404))
    env = services_environ
    bucket = env["FMAPREP_S3_BUCKET"]
    with socket_closed() as port:
        for out, extra, words in (
            (f"s3a://{bucket}/x", {"FMAPREP_S3_ENDPOINT": f"http://127.0.0.1:{port}"}, "S3"),
            (f"hdfs://127.0.0.1:{port}/x", {"FMAPREP_WEBHDFS_URL": f"http://127.0.0.1:{port}"},
             "NameNode"),
        ):  # fmt: skip
            started = time.monotonic()
            proc = run_cli(corpus, out, {**env, **extra})
            fault_line(proc, "cannot reach", words, "refused")
            assert time.monotonic() - started < 30
    proc = run_cli(corpus, f"s3a://{bucket}/y", {**env, "AWS_SECRET_ACCESS_KEY": "wrong"})
    fault_line(proc, "S3 refused", "SignatureDoesNotMatch")
    # no credentials anywhere (environment, profile files, instance role): boto3's
    # NoCredentialsError is one line too, not its traceback (seen on the multi-host cluster)
    bare = {k: v for k, v in env.items() if not k.startswith("AWS_")}
    nowhere = str(tmp_path / "none")
    bare.update(AWS_SHARED_CREDENTIALS_FILE=nowhere, AWS_CONFIG_FILE=nowhere,
                AWS_EC2_METADATA_DISABLED="true", AWS_DEFAULT_REGION="us-east-1")  # fmt: skip
    proc = run_cli(corpus, f"s3a://{bucket}/z", bare)
    fault_line(proc, "no S3 credentials found", f"s3a://{bucket}/z --mode resume")


class socket_closed:  # noqa: N801 (used as a context manager)
    """A loopback port nothing listens on (bound, then closed)."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    def __exit__(self, *exc: object) -> None:
        return None


SLOW_PATH = ("--decoder", "pydub", "--resampler", "resampy")  # seconds per file


def _start(inp: str, out: str, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """A run of the slow pipeline, one task at a time (seconds per file): long enough to be
    interrupted, or to lose its bucket, in the middle of its tasks."""
    cmd = [sys.executable, "-m", "fmaprep", "preprocess", inp, out, "--master", "local[1]",
           "--partitions", "8", *SLOW_PATH, *args]  # fmt: skip
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)  # fmt: skip


def _wait_for(predicate: object, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def _slow_corpus(root: Path, n: int = 8) -> Path:
    from fmaprep.audio.synth import music

    for i in range(n):
        write_audio(root / f"{500 + i:06d}.mp3", music(4.0, 44100, seed=500 + i), 44100)
    return root


@pytest.mark.slow
def test_ctrl_c_is_one_line_and_130_then_resume(tmp_path: Path) -> None:
    corpus = str(_slow_corpus(tmp_path / "corpus"))
    out = tmp_path / "out"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    proc = _start(corpus, str(out), env)
    from job.test_reliability import _worker_pids

    _wait_for(lambda: _worker_pids(proc.pid) or proc.poll() is not None)  # in its tasks
    assert proc.poll() is None, "the run ended before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends: the whole group
    sent = time.monotonic()
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-3000:]
    assert time.monotonic() - sent < 30
    fault_line(subprocess.CompletedProcess([], 130, "", stderr), "interrupted", "--mode resume")
    assert not (out / "_SUCCESS").exists()
    done = subprocess.run(
        [sys.executable, "-m", "fmaprep", "preprocess", corpus, str(out), "--master", "local[2]",
         "--mode", "resume"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(codes(str(out), StoreSettings())) == 8


@pytest.mark.slow
def test_bucket_deleted_mid_run_then_resume(
    services_environ: dict[str, str],  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    """OUTPUT's bucket is emptied and deleted while the tasks run: the first task that writes
    stops the job (one line: the bucket does not exist); the bucket back, a resume completes."""
    from local_services_fixture import s3

    client = s3(services_environ)
    bucket = f"gone-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    out = f"s3a://{bucket}/out"
    corpus = str(_slow_corpus(tmp_path / "corpus"))
    env = {**services_environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    proc = _start(corpus, out, env)

    def run_started() -> bool:
        return bool(client.list_objects_v2(Bucket=bucket, Prefix="out/_fmaprep/run-").get(
            "KeyCount"))  # fmt: skip

    from botocore.exceptions import ClientError

    from job.test_reliability import _worker_pids

    _wait_for(run_started)
    _wait_for(lambda: _worker_pids(proc.pid) or proc.poll() is not None)  # in its tasks
    store = open_store(f"s3a://{bucket}", StoreSettings.from_env(environ=services_environ))
    for _ in range(50):  # the run keeps writing (its lease, parts): empty, delete, again
        store.delete(e.uri for e in list(store.list_files(f"s3a://{bucket}")))
        try:
            client.delete_bucket(Bucket=bucket)
            break
        except ClientError as exc:
            assert exc.response["Error"]["Code"] == "BucketNotEmpty", exc
    else:
        raise AssertionError("the bucket could not be deleted")
    deleted = time.monotonic()
    assert proc.poll() is None, "the run ended before its bucket was gone"
    _, stderr = proc.communicate(timeout=300)
    line = fault_line(subprocess.CompletedProcess([], proc.returncode, "", stderr),
                      "the bucket does not exist", "nothing was committed")  # fmt: skip
    assert proc.returncode == 1 and logged_traceback(line)
    assert time.monotonic() - deleted < 60
    client.create_bucket(Bucket=bucket)
    done = subprocess.run(
        [sys.executable, "-m", "fmaprep", "preprocess", corpus, out, "--master", "local[2]",
         "--mode", "resume"],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(codes(out, StoreSettings.from_env(environ=services_environ))) == 8


@pytest.mark.slow
def test_permission_revoked_mid_run_then_resume(
    services_environ: dict[str, str],  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    """The run writes to HDFS as user ``alice``; once its first part is there, the NameNode's
    superuser takes alice's write permission on OUTPUT away (WebHDFS SETPERMISSION 555): the next
    task's write is refused (403 AccessControlException) and the job stops with one line
    (permission denied, where); permission back, a resume completes."""
    import requests

    env = {**services_environ, "HADOOP_USER_NAME": "alice"}
    base = services_environ["FMAPREP_WEBHDFS_URL"].rstrip("/")
    root = f"/perm-{uuid.uuid4().hex[:8]}"

    import getpass

    superuser = getpass.getuser()  # the user the NameNode runs as: HDFS's superuser
    for op, params in (("MKDIRS", {}), ("SETOWNER", {"owner": "alice"})):
        query = {"op": op, "user.name": superuser, **params}
        response = requests.put(f"{base}/webhdfs/v1{root}", params=query, timeout=30)
        assert response.status_code == 200, response.text
    out = f"{services_environ['FMAPREP_HDFS_URI']}{root}/out"
    corpus = make_corpus(tmp_path / "corpus", n=8, seed=406)
    cmd = [sys.executable, "-m", "fmaprep", "preprocess", str(corpus), out, "--master",
           "local[2]", "--partitions", "8"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)  # fmt: skip
    settings = StoreSettings.from_env(environ=env)
    store = open_store(out, settings)

    def first_part() -> bool:
        try:
            return any("/part-" in e.uri for e in store.list_files(out)) or proc.poll() is not None
        except OSError:
            return False

    _wait_for(first_part)
    query = {"op": "SETPERMISSION", "user.name": superuser, "permission": "555"}
    response = requests.put(f"{base}/webhdfs/v1{root}/out", params=query, timeout=30)
    assert response.status_code == 200, response.text
    revoked = time.monotonic()
    stdout, stderr = proc.communicate(timeout=300)
    fault_line(subprocess.CompletedProcess([], proc.returncode, stdout, stderr),
               "permission denied", "nothing was committed")  # fmt: skip
    assert proc.returncode == 1 and time.monotonic() - revoked < 60
    query = {"op": "SETPERMISSION", "user.name": superuser, "permission": "755"}
    assert requests.put(f"{base}/webhdfs/v1{root}/out", params=query, timeout=30).ok
    done = run_cli(str(corpus), out, env, "--mode", "resume")
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(codes(out, settings)) == 8
