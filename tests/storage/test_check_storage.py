"""scripts/check-storage.sh against the real local HDFS and S3, healthy and with injected faults.

Each fault is injected for real (a stopped NameNode, safe mode, HDFS permissions, a deleted
bucket, wrong keys, a closed endpoint port), must fail with exit 1 and exactly one FAIL line that
names the fault and a fix, and is undone before the next test.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local_services_fixture import CHECK, ROOT, local_services, run, s3, services_up

__all__ = ["local_services"]  # the fixture, re-exported for pytest

pytestmark = pytest.mark.slow

SECRET_PARTS = ("fmaprep-local-secret",)


def check(env: dict[str, str], *uris: str, json_out: bool = False, spark: bool = False) -> Any:
    args = ["bash", str(CHECK)]
    if json_out:
        args.append("--json")
    if not spark:
        args.append("--no-spark")
    proc = run([*args, *uris], env=env, timeout=600)
    for secret in (*SECRET_PARTS, env.get("AWS_SECRET_ACCESS_KEY", "x" * 40)):
        assert secret not in proc.stdout + proc.stderr, "a secret was printed"
    return proc


def hdfs(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    proc = subprocess.run(
        ["hdfs", *args], env=env, input=stdin, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def fail_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("FAIL")]


def assert_one_failure(proc: Any, check_name: str, *words: str) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    fails = fail_lines(proc.stdout)
    assert len(fails) == 1, proc.stdout
    line = fails[0]
    assert line.split()[1] == check_name, line
    for word in words:
        assert word.lower() in line.lower(), line
    assert " Fix: " in line, line
    return line


@pytest.fixture(scope="module")
def data(local_services: dict[str, str]) -> Iterator[dict[str, str]]:
    """An HDFS input dir and an S3 input prefix, each holding one real file (removed after)."""
    env = local_services
    tag = uuid.uuid4().hex[:8]
    hdfs_dir = f"/check-{tag}/in"
    hdfs(env, "dfs", "-mkdir", "-p", hdfs_dir)
    hdfs(env, "dfs", "-put", "-", f"{hdfs_dir}/000002.mp3", stdin="not really an mp3")
    bucket = env["FMAPREP_S3_BUCKET"]
    s3(env).put_object(Bucket=bucket, Key=f"check-{tag}/raw/000/000002.mp3", Body=b"ID3 bytes")
    yield {
        "hdfs_in": f"{env['FMAPREP_HDFS_URI']}{hdfs_dir}/",
        "hdfs_out": f"hdfs:///check-{tag}/out/",
        "s3_in": f"s3a://{bucket}/check-{tag}/raw/",
        "s3_out": f"s3a://{bucket}/check-{tag}/out/",
        "tag": tag,
    }
    subprocess.run(
        ["hdfs", "dfs", "-rm", "-r", "-f", "-skipTrash", f"/check-{tag}"],
        env=env,
        capture_output=True,
        check=False,
    )
    client = s3(env)
    for item in client.list_objects_v2(Bucket=bucket, Prefix=f"check-{tag}/").get("Contents", []):
        client.delete_object(Bucket=bucket, Key=item["Key"])


def test_healthy_services_pass_with_spark(
    local_services: dict[str, str], data: dict[str, str], tmp_path: Path
) -> None:
    uris = [data["hdfs_in"], data["s3_out"], data["s3_in"], data["hdfs_out"], str(tmp_path)]
    proc = check(local_services, *uris, json_out=True, spark=True)
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert all(r["status"] == "pass" for r in results), proc.stdout
    by_uri: dict[str, list[str]] = {}
    for r in results:
        by_uri.setdefault(r["uri"], []).append(r["check"])
    hdfs_order = [
        "tools",
        "hdfs.defaultfs",
        "hdfs.namenode",
        "hdfs.safemode",
        "hdfs.datanodes",
        "hdfs.roundtrip",
        "spark",
    ]
    s3_order = ["tools", "s3.endpoint", "s3.credentials", "s3.bucket", "s3.roundtrip", "spark"]
    assert by_uri[data["hdfs_in"]] == hdfs_order
    assert by_uri[data["hdfs_out"]] == hdfs_order
    assert by_uri[data["s3_in"]] == s3_order
    assert by_uri[data["s3_out"]] == s3_order
    spark = {r["uri"]: r["message"] for r in results if r["check"] == "spark"}
    # The driver listed as the job plans, and a Spark task read the one real input and wrote its
    # probe with the job's own clients (boto3, WebHDFS): the JVM never touches S3.
    for uri, client in ((data["s3_in"], "S3Store"), (data["hdfs_in"], "HDFSStore")):
        assert "listed 1 input file;" in spark[uri], spark[uri]
        assert "bytes of " in spark[uri] and "000002.mp3" in spark[uri]
        assert f"via {client} in a Spark task" in spark[uri]
    for uri in (data["s3_out"], data["hdfs_out"]):
        assert "listed 0 input files; no input file to read" in spark[uri], spark[uri]
    # hdfs:/// was resolved against fs.defaultFS, and the check says where relative paths go.
    defaultfs = next(
        r["message"]
        for r in results
        if r["uri"] == data["hdfs_out"] and r["check"] == "hdfs.defaultfs"
    )
    assert local_services["FMAPREP_HDFS_URI"] + f"/check-{data['tag']}/out/" in defaultfs
    assert "relative path would land in" in defaultfs
    # No probe is left behind, and the not-yet-existing output dirs were not created.
    listing = hdfs(local_services, "dfs", "-ls", "-R", f"/check-{data['tag']}")
    assert "probe" not in listing and "/out" not in listing
    keys = [
        o["Key"]
        for o in s3(local_services)
        .list_objects_v2(Bucket=local_services["FMAPREP_S3_BUCKET"], Prefix=f"check-{data['tag']}")
        .get("Contents", [])
    ]
    # (keys ending in "/" would be s3proxy's on-disk directories, which real S3 does not have)
    assert [k for k in keys if not k.endswith("/")] == [f"check-{data['tag']}/raw/000/000002.mp3"]
    assert not any("probe" in k for k in keys)


def test_human_output_is_one_line_per_check(
    local_services: dict[str, str], data: dict[str, str]
) -> None:
    proc = check(local_services, data["hdfs_in"], data["s3_in"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 11
    assert all(line.startswith("ok ") for line in lines)


@pytest.fixture
def stopped_namenode(local_services: dict[str, str]) -> Iterator[None]:
    pidfile = ROOT / ".services" / "pids" / "namenode.pid"
    pid = int(pidfile.read_text())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    try:
        yield
    finally:
        services_up()  # restarts the NameNode, waits for the DataNode and for safe mode off


def test_namenode_stopped(
    local_services: dict[str, str], data: dict[str, str], stopped_namenode: None
) -> None:
    proc = check(local_services, data["hdfs_in"], spark=True)
    assert_one_failure(proc, "hdfs.namenode", "NameNode not reachable", "local-services.sh up")


@pytest.fixture
def safe_mode(local_services: dict[str, str]) -> Iterator[None]:
    assert "ON" in hdfs(local_services, "dfsadmin", "-safemode", "enter")
    try:
        yield
    finally:
        hdfs(local_services, "dfsadmin", "-safemode", "leave")


def test_hdfs_in_safe_mode(
    local_services: dict[str, str], data: dict[str, str], safe_mode: None
) -> None:
    proc = check(local_services, data["hdfs_out"], spark=True)
    assert_one_failure(proc, "hdfs.safemode", "safe mode", "-safemode leave")


def test_target_dir_not_writable(local_services: dict[str, str], data: dict[str, str]) -> None:
    # Tests run as root, the HDFS superuser: act as another HDFS user (simple auth) instead.
    locked = f"/locked-{data['tag']}"
    hdfs(local_services, "dfs", "-mkdir", "-p", locked)
    hdfs(local_services, "dfs", "-chmod", "755", locked)
    env = {**local_services, "HADOOP_USER_NAME": "fmaprep-tester"}
    try:
        proc = check(env, f"hdfs://{local_services['FMAPREP_HDFS_URI'][7:]}{locked}/out/")
        line = assert_one_failure(proc, "hdfs.roundtrip", "not writable", "fmaprep-tester")
        assert "Permission denied" in line and "-chown fmaprep-tester" in line
        # The same directory passes for its owner.
        owner = check(local_services, f"hdfs://{local_services['FMAPREP_HDFS_URI'][7:]}{locked}")
        assert owner.returncode == 0, owner.stdout
    finally:
        hdfs(local_services, "dfs", "-rm", "-r", "-skipTrash", locked)


def test_s3_bucket_missing(local_services: dict[str, str]) -> None:
    bucket = f"fmaprep-gone-{uuid.uuid4().hex[:8]}"
    client = s3(local_services)
    client.create_bucket(Bucket=bucket)
    client.delete_bucket(Bucket=bucket)
    proc = check(local_services, f"s3a://{bucket}/raw/", spark=True)
    assert_one_failure(proc, "s3.bucket", f"bucket {bucket} does not exist")


@pytest.mark.parametrize(
    ("variable", "code"),
    [
        ("AWS_SECRET_ACCESS_KEY", "SignatureDoesNotMatch"),
        ("AWS_ACCESS_KEY_ID", "InvalidAccessKeyId"),
    ],
)
def test_wrong_s3_credentials(
    local_services: dict[str, str], data: dict[str, str], variable: str, code: str
) -> None:
    env = {**local_services, variable: "WRONG" + uuid.uuid4().hex}
    proc = check(env, data["s3_in"], spark=True)
    assert_one_failure(proc, "s3.credentials", "wrong S3 credentials", code, "AWS_ACCESS_KEY_ID")


def test_s3_endpoint_down(local_services: dict[str, str], data: dict[str, str]) -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**local_services, "FMAPREP_S3_ENDPOINT": f"http://127.0.0.1:{port}"}
    proc = check(env, data["s3_in"], spark=True)
    assert_one_failure(proc, "s3.endpoint", "not reachable", f"127.0.0.1:{port}")


def test_failures_are_reported_per_uri_and_as_json(
    local_services: dict[str, str], data: dict[str, str]
) -> None:
    """A failing URI does not hide a healthy one; --json carries the same verdicts."""
    env = {**local_services, "AWS_SECRET_ACCESS_KEY": "WRONG"}
    proc = check(env, data["s3_in"], data["hdfs_in"], json_out=True, spark=True)
    assert proc.returncode == 1
    results = [json.loads(line) for line in proc.stdout.splitlines()]
    failed = [r for r in results if r["status"] == "fail"]
    assert [(r["check"], r["uri"]) for r in failed] == [("s3.credentials", data["s3_in"])]
    assert failed[0]["fix"]
    assert [r["status"] for r in results if r["uri"] == data["hdfs_in"]][:-1] == ["pass"] * 6
    assert {r["status"] for r in results if r["check"] == "spark"} == {"skip"}


def test_a_webhdfs_the_tasks_cannot_reach_fails_the_spark_step(
    local_services: dict[str, str], data: dict[str, str]
) -> None:
    """The hdfs tool reaches the NameNode over RPC, the job's tasks over WebHDFS: a wrong
    NameNode HTTP address passes every hdfs.* check and fails only the job-path step."""
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**local_services, "FMAPREP_WEBHDFS_URL": f"http://127.0.0.1:{port}"}
    proc = check(env, data["hdfs_in"], spark=True)
    line = assert_one_failure(proc, "spark", f"127.0.0.1:{port}", "FMAPREP_WEBHDFS_URL")
    assert "could not list" in line


def test_usage_errors() -> None:
    proc = run(["bash", str(CHECK)])
    assert proc.returncode == 2 and "Usage" in proc.stderr
    proc = run(["bash", str(CHECK), "--no-spark", "ftp://example/x"])
    assert proc.returncode == 1 and "unsupported scheme" in proc.stdout
