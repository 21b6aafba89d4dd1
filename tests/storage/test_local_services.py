"""scripts/local-services.sh: real HDFS and S3 on loopback, started by the test session."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from local_services_fixture import ROOT, SERVICES, local_services, run, services_up

__all__ = ["local_services"]  # the fixture, re-exported for pytest

pytestmark = pytest.mark.slow


def _pids(state: Path) -> dict[str, int]:
    return {p.stem: int(p.read_text()) for p in (state / "pids").glob("*.pid")}


def test_env_prints_the_documented_exports(local_services: dict[str, str]) -> None:
    out = run(["bash", str(SERVICES), "env"]).stdout
    names = [m.group(1) for m in re.finditer(r"^export (\w+)=", out, re.MULTILINE)]
    assert names == [
        "FMAPREP_HDFS_URI",
        "FMAPREP_WEBHDFS_URL",
        "FMAPREP_S3_ENDPOINT",
        "FMAPREP_S3_BUCKET",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "PATH",
    ]
    assert re.fullmatch(r"hdfs://127\.0\.0\.1:\d+", local_services["FMAPREP_HDFS_URI"])
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", local_services["FMAPREP_S3_ENDPOINT"])
    assert local_services["PATH"].split(":")[0] == str(ROOT / "scripts" / "bin")


def test_status_and_idempotent_up(local_services: dict[str, str]) -> None:
    before = _pids(ROOT / ".services")
    services_up()
    assert _pids(ROOT / ".services") == before  # nothing restarted
    status = run(["bash", str(SERVICES), "status"])
    assert status.returncode == 0
    assert [line.split(":")[0] for line in status.stdout.splitlines()] == [
        "namenode",
        "datanode",
        "s3proxy",
    ]
    assert all("running" in line for line in status.stdout.splitlines())


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_services_listen_on_loopback_only(local_services: dict[str, str]) -> None:
    pids = set(_pids(ROOT / ".services").values())
    listening = run(["ss", "-Hltnp"]).stdout.splitlines()
    ours = [line for line in listening if any(f"pid={pid}," in line for pid in pids)]
    assert len(ours) >= 6  # NameNode RPC + HTTP, DataNode data + HTTP + IPC, S3
    for line in ours:
        local = line.split()[3]
        assert local.rsplit(":", 1)[0] in {"127.0.0.1", "[::ffff:127.0.0.1]"}, line


def test_hdfs_launcher_dfs_dfsadmin_getconf(local_services: dict[str, str]) -> None:
    env = local_services
    hdfs = shutil.which("hdfs", path=env["PATH"])
    assert hdfs == str(ROOT / "scripts" / "bin" / "hdfs")
    conf = run([hdfs, "getconf", "-confKey", "fs.defaultFS"], env=env)
    assert conf.stdout.strip() == env["FMAPREP_HDFS_URI"]
    assert "Safe mode is OFF" in run([hdfs, "dfsadmin", "-safemode", "get"], env=env).stdout
    report = run([hdfs, "dfsadmin", "-report", "-live"], env=env).stdout
    assert re.search(r"Live datanodes \(1\)", report), report
    path = f"/tmp-test-{uuid.uuid4().hex[:8]}.txt"
    payload = "hello hdfs\n"
    put = subprocess.run(
        [hdfs, "dfs", "-put", "-", path],
        input=payload,
        env=env,
        text=True,
        check=False,
        capture_output=True,
    )
    assert put.returncode == 0, put.stderr
    assert run([hdfs, "dfs", "-cat", path], env=env).stdout == payload
    assert run([hdfs, "dfs", "-rm", "-skipTrash", path], env=env).returncode == 0


def test_s3_server_checks_credentials(local_services: dict[str, str]) -> None:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    def client(secret: str) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=local_services["FMAPREP_S3_ENDPOINT"],
            aws_access_key_id=local_services["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=secret,
            region_name=local_services["AWS_DEFAULT_REGION"],
            config=Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )

    good = client(local_services["AWS_SECRET_ACCESS_KEY"])
    bucket = local_services["FMAPREP_S3_BUCKET"]
    names = [b["Name"] for b in good.list_buckets()["Buckets"]]
    assert bucket in names
    bad = client("not-the-secret")
    with pytest.raises(ClientError) as err:
        bad.list_objects_v2(Bucket=bucket)
    assert err.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_down_leaves_foreign_processes_alone(tmp_path: Path) -> None:
    """A PID file that points at a process `up` did not start (PID reuse) is not killed."""
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / "pids").mkdir()
        for name in ("namenode", "datanode", "s3proxy"):
            (tmp_path / "pids" / f"{name}.pid").write_text(str(stranger.pid))
        env = {"FMAPREP_SERVICES_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
        down = run(["bash", str(SERVICES), "down"], env=env)
        assert down.returncode == 0, down.stderr
        assert stranger.poll() is None  # still running
        assert not list((tmp_path / "pids").glob("*.pid"))
    finally:
        stranger.kill()
        stranger.wait()


def test_a_port_base_given_now_wins_over_every_remembered_port(tmp_path: Path) -> None:
    """Two checkouts on one machine: a state dir remembering base 29100 must not keep its NameNode
    and S3 ports when FMAPREP_PORT_BASE names another block (they would collide)."""
    (tmp_path / "ports.env").write_text(
        "SAVED_PORT_BASE=29100\nSAVED_NN_PORT=29100\nSAVED_NN_HTTP_PORT=29101\n"
        "SAVED_DN_PORT=29102\nSAVED_S3_PORT=29105\n"
    )
    env = {"PATH": "/usr/bin:/bin", "FMAPREP_SERVICES_DIR": str(tmp_path)}
    script = ["bash", str(ROOT / "scripts" / "local-services.sh"), "env"]
    remembered = subprocess.run(script, env=env, capture_output=True, text=True, check=True)
    moved = subprocess.run(
        script,
        env={**env, "FMAPREP_PORT_BASE": "29900"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "hdfs://127.0.0.1:29100" in remembered.stdout
    assert "http://127.0.0.1:29105" in remembered.stdout
    ports = {int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", moved.stdout)}
    assert ports and all(29900 <= p < 29900 + 100 for p in ports), moved.stdout
