"""The EMR scripts for real, not --dry-run: the AWS CLI (awscli 1.x, pinned in the dev extras)
against moto's AWS API server on loopback, so the CLI's parameter validation and the EMR and
S3 service models check every option, the steps JSON, the configurations JSON and the bootstrap
action. Then the cluster, its bootstrap action and its steps are read back with boto3 and
compared with what the job needs. (slow: builds the wheel once)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
BUCKET = "fma-emr-test"


@pytest.fixture(scope="module")
def aws() -> Iterator[dict[str, Any]]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        env.pop(name, None)
    import boto3

    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                            region_name="us-east-1")  # fmt: skip
    s3 = session.client("s3", endpoint_url=url)
    s3.create_bucket(Bucket=BUCKET)
    # what `aws emr create-default-roles` makes
    iam = session.client("iam", endpoint_url=url)
    trust = json.dumps({"Version": "2012-10-17", "Statement": []})
    iam.create_role(RoleName="EMR_DefaultRole", AssumeRolePolicyDocument=trust)
    iam.create_role(RoleName="EMR_EC2_DefaultRole", AssumeRolePolicyDocument=trust)
    iam.create_instance_profile(InstanceProfileName="EMR_EC2_DefaultRole")
    try:
        yield {"url": url, "env": env, "s3": s3, "emr": session.client("emr", endpoint_url=url)}
    finally:
        server.stop()


def _script(aws: dict[str, Any], script: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", script, "--endpoint-url", aws["url"], *args], cwd=ROOT, env=aws["env"],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


def test_create_cluster_with_upload_is_accepted_and_reads_back(aws: dict[str, Any]) -> None:
    proc = _script(aws, "scripts/emr-create-cluster.sh", "--bucket", BUCKET, "--upload",
                   "--region", "us-east-1", "--core-count", "3")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    cluster_id = json.loads(proc.stdout[proc.stdout.index("{") :])["ClusterId"]
    emr, s3 = aws["emr"], aws["s3"]
    cluster = emr.describe_cluster(ClusterId=cluster_id)["Cluster"]
    assert cluster["ReleaseLabel"] == "emr-7.5.0"
    assert sorted(a["Name"] for a in cluster["Applications"]) == ["Hadoop", "Spark"]
    assert cluster["LogUri"] == f"s3://{BUCKET}/fmaprep/logs/"
    assert cluster["ServiceRole"] == "EMR_DefaultRole"
    assert cluster["Ec2InstanceAttributes"]["IamInstanceProfile"] == "EMR_EC2_DefaultRole"
    want = json.loads((ROOT / "conf" / "emr-configurations.json").read_text())
    assert _no_empty(cluster["Configurations"]) == _no_empty(want)
    groups = {g["InstanceGroupType"]: g for g in
              emr.list_instance_groups(ClusterId=cluster_id)["InstanceGroups"]}  # fmt: skip
    assert groups["CORE"]["RequestedInstanceCount"] == 3
    [action] = emr.list_bootstrap_actions(ClusterId=cluster_id)["BootstrapActions"]
    version = next(line.split('"')[1] for line in (ROOT / "pyproject.toml").read_text()
                   .splitlines() if line.startswith("version = "))  # fmt: skip
    wheel = f"s3://{BUCKET}/fmaprep/dist/fmaprep-{version}-py3-none-any.whl"
    assert action["ScriptPath"] == f"s3://{BUCKET}/fmaprep/bootstrap/install-fmaprep.sh"
    assert action["Args"] == [wheel, f"s3://{BUCKET}/fmaprep/bootstrap/requirements-emr.txt"]
    # what the bootstrap action and its arguments name was uploaded, byte for byte
    for key in ("bootstrap/install-fmaprep.sh", "bootstrap/requirements-emr.txt"):
        body = s3.get_object(Bucket=BUCKET, Key=f"fmaprep/{key}")["Body"].read()
        assert body == (ROOT / key).read_bytes()
    head = s3.head_object(Bucket=BUCKET, Key=wheel.split(f"{BUCKET}/", 1)[1])
    assert head["ContentLength"] > 10_000


def _no_empty(configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Configurations as EMR stores them, without the empty members it fills in."""
    out = []
    for c in configs:
        item = {"Classification": c["Classification"]}
        if c.get("Properties"):
            item["Properties"] = c["Properties"]
        if c.get("Configurations"):
            item["Configurations"] = _no_empty(c["Configurations"])
        out.append(item)
    return out


@pytest.fixture(scope="module")
def cluster_id(aws: dict[str, Any]) -> str:
    flow = aws["emr"].run_job_flow(
        Name="t", ReleaseLabel="emr-7.5.0", JobFlowRole="EMR_EC2_DefaultRole",
        ServiceRole="EMR_DefaultRole",
        Instances={"MasterInstanceType": "m5.xlarge", "SlaveInstanceType": "m5.xlarge",
                   "InstanceCount": 3, "KeepJobFlowAliveWhenNoSteps": True},
    )  # fmt: skip
    return str(flow["JobFlowId"])


def test_submit_adds_the_step_the_job_needs(aws: dict[str, Any], cluster_id: str) -> None:
    inp, out = f"s3://{BUCKET}/fma_small/", f"s3://{BUCKET}/out/fma_small-8k/"
    proc = _script(aws, "scripts/emr-submit.sh", "--cluster-id", cluster_id, "--bucket", BUCKET,
                   inp, out, "--executor-cores", "4", "--", "--resampler", "resampy")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    [step] = aws["emr"].list_steps(ClusterId=cluster_id)["Steps"]
    config = step["Config"]
    assert config["Jar"] == "command-runner.jar" and step["ActionOnFailure"] == "CONTINUE"
    code = f"s3://{BUCKET}/fmaprep"
    assert config["Args"] == [
        "spark-submit", "--deploy-mode", "cluster", "--master", "yarn",
        # the heap sized to the cluster's m5.xlarge core nodes; the cores as given
        "--executor-memory", "3584m", "--executor-cores", "4",
        "--conf", "spark.executor.pyspark.memory=4096m",
        "--conf", "spark.yarn.maxAppAttempts=2",
        "--conf", "spark.eventLog.enabled=true",
        "--conf", f"spark.eventLog.dir={code}/spark-events/",
        "--archives", f"{code}/env/fmaprep-env.tar.gz#environment",
        "--conf", "spark.yarn.appMasterEnv.PYSPARK_PYTHON=./environment/bin/python",
        "--conf", "spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python",
        f"{code}/jobs/preprocess.py", inp, out, "--resampler", "resampy",
    ]  # fmt: skip


def test_submit_upload_puts_the_job_script(aws: dict[str, Any], cluster_id: str) -> None:
    proc = _script(aws, "scripts/emr-submit.sh", "--cluster-id", cluster_id, "--bucket", BUCKET,
                   "--no-archive", "--upload", f"s3://{BUCKET}/a/", "hdfs:///b/")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    body = aws["s3"].get_object(Bucket=BUCKET, Key="fmaprep/jobs/preprocess.py")["Body"].read()
    assert body == (ROOT / "jobs" / "preprocess.py").read_bytes()
    last = aws["emr"].list_steps(ClusterId=cluster_id)["Steps"][0]["Config"]["Args"]
    assert "--archives" not in last and last[-2:] == [f"s3://{BUCKET}/a/", "hdfs:///b/"]


@pytest.mark.parametrize(
    ("args", "refusal"),
    [
        (["add-steps", "--cluster-id", "CLUSTER", "--steps",
          '[{"Type":"CUSTOM_JAR","Name":"x","ActionOnFailure":"CONTINUE","Args":["a"]}]'],
         "required parameters are missing for CustomJARStepConfig: Jar"),
        (["create-cluster", "--release-label", "emr-7.5.0", "--instance-type", "m5.xlarge",
          "--instance-count", "1", "--use-default-roles", "--configurations",
          '[{"Classification":"spark-defaults","Properties":{"spark.executor.cores":4}}]'],
         "Invalid type for parameter Configurations[0].Properties.spark.executor.cores"),
    ],
)  # fmt: skip
def test_the_cli_really_validates(
    aws: dict[str, Any], cluster_id: str, args: list[str], refusal: str
) -> None:
    """The proof that the checks above are real: malformed requests are refused by the CLI."""
    args = [cluster_id if a == "CLUSTER" else a for a in args]
    proc = subprocess.run(["aws", "--endpoint-url", aws["url"], "emr", *args], env=aws["env"],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode != 0 and refusal in proc.stderr, proc.stderr[-2000:]


# --- what would go wrong on EMR fails first, in one line, before AWS is asked anything ------


def _refused(proc: subprocess.CompletedProcess[str], *words: str) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert all(w in lines[0] for w in words), lines[0]
    return lines[0]


def test_a_bucket_in_another_region_is_refused(aws: dict[str, Any]) -> None:
    aws["s3"].create_bucket(Bucket="fma-eu", CreateBucketConfiguration={
        "LocationConstraint": "eu-west-1"})  # fmt: skip
    before = len(aws["emr"].list_clusters()["Clusters"])
    proc = _script(aws, "scripts/emr-create-cluster.sh", "--bucket", "fma-eu", "--region",
                   "us-east-1")  # fmt: skip
    _refused(proc, "bucket fma-eu is in eu-west-1", "cluster is in us-east-1", "--region eu-west-1")
    assert len(aws["emr"].list_clusters()["Clusters"]) == before


@pytest.mark.parametrize(
    ("option", "words"),
    [(["--service-role", "NoSuchRole"], ["IAM role NoSuchRole does not exist",
                                         "aws emr create-default-roles"]),
     (["--instance-profile", "NoSuchProfile"], ["instance profile NoSuchProfile does not exist"])],
)  # fmt: skip
def test_a_missing_role_is_refused(
    aws: dict[str, Any], option: list[str], words: list[str]
) -> None:
    before = len(aws["emr"].list_clusters()["Clusters"])
    proc = _script(aws, "scripts/emr-create-cluster.sh", "--bucket", BUCKET, *option)
    _refused(proc, *words)
    assert len(aws["emr"].list_clusters()["Clusters"]) == before


def _fake_archive(path: Path, python: str, fmaprep: str, home: str = "/usr/bin") -> Path:
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        for name, data in (("pyvenv.cfg", f"home = {home}\nversion = {python}\n"),
                           (f"lib/python3.11/site-packages/fmaprep-{fmaprep}.dist-info/METADATA",
                            "Name: fmaprep\n")):  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size = len(data.encode())
            tar.addfile(info, io.BytesIO(data.encode()))
    return path


@pytest.mark.parametrize(
    ("python", "fmaprep", "words"),
    [("3.12.4", "VERSION", ["built for Python 3.12", "nodes run Python 3.11"]),
     ("3.11.7", "0.0.9", ["holds fmaprep 0.0.9", "jobs/preprocess.py is fmaprep VERSION"]),
     # built without --python-prefix: linked to the builder's own Python (tests/spark/
     # test_multi_host.py shows what that does on a cluster)
     ("3.11.7@/root/.pyenv/versions/3.11.7/bin", "VERSION",
      ["links its Python to /root/.pyenv/versions/3.11.7/bin/python3.11",
       "the EMR nodes have /usr/bin/python3.11", "--python-prefix /usr"])],
)  # fmt: skip
def test_an_archive_that_does_not_fit_is_refused(
    aws: dict[str, Any],
    cluster_id: str,
    tmp_path: Path,
    python: str,
    fmaprep: str,
    words: list[str],
) -> None:
    version = next(line.split('"')[1] for line in (ROOT / "pyproject.toml").read_text()
                   .splitlines() if line.startswith("version = "))  # fmt: skip
    python, _, home = python.partition("@")
    archive = _fake_archive(tmp_path / "env.tar.gz", python, fmaprep.replace("VERSION", version),
                            home or "/usr/bin")  # fmt: skip
    steps = len(aws["emr"].list_steps(ClusterId=cluster_id)["Steps"])
    proc = _script(aws, "scripts/emr-submit.sh", "--cluster-id", cluster_id, "--bucket", BUCKET,
                   "--upload", "--archive", str(archive), f"s3://{BUCKET}/a/",
                   f"s3://{BUCKET}/b/")  # fmt: skip
    _refused(proc, *(w.replace("VERSION", version) for w in words))
    assert len(aws["emr"].list_steps(ClusterId=cluster_id)["Steps"]) == steps
    listed = aws["s3"].list_objects_v2(Bucket=BUCKET, Prefix="fmaprep/env/")
    assert listed.get("KeyCount", 0) == 0  # nothing was uploaded


def test_a_fitting_archive_is_uploaded(
    aws: dict[str, Any], cluster_id: str, tmp_path: Path
) -> None:
    version = next(line.split('"')[1] for line in (ROOT / "pyproject.toml").read_text()
                   .splitlines() if line.startswith("version = "))  # fmt: skip
    archive = _fake_archive(tmp_path / "env.tar.gz", "3.11.7", version)
    proc = _script(aws, "scripts/emr-submit.sh", "--cluster-id", cluster_id, "--bucket", BUCKET,
                   "--prefix", "fits", "--upload", "--archive", str(archive),
                   f"s3://{BUCKET}/a/", f"s3://{BUCKET}/b/")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    body = aws["s3"].get_object(Bucket=BUCKET, Key="fits/env/fmaprep-env.tar.gz")["Body"].read()
    assert body == archive.read_bytes()


# --- --wait: the step followed to its end, fmaprep's own lines from its logs -----------------


def _finish_step(cluster_id: str, step_id: str, state: str) -> None:
    """What EMR does when the step ends (the emulator's steps never end by themselves)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.emr.models import emr_backends

    cluster = emr_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].clusters[cluster_id]
    [step] = [s for s in cluster.steps if s.id == step_id]
    step.state = state


def _put_log(aws: dict[str, Any], key: str, text: str) -> None:
    import gzip

    aws["s3"].put_object(Bucket=BUCKET, Key=key, Body=gzip.compress(text.encode()))


@pytest.mark.parametrize("state", ["COMPLETED", "FAILED"])
def test_wait_follows_the_step_and_prints_fmaprep_lines(aws: dict[str, Any], state: str) -> None:
    import threading
    import time

    flow = aws["emr"].run_job_flow(
        Name="w", ReleaseLabel="emr-7.5.0", JobFlowRole="EMR_EC2_DefaultRole",
        ServiceRole="EMR_DefaultRole", LogUri=f"s3://{BUCKET}/logs/",
        Instances={"MasterInstanceType": "m5.xlarge", "InstanceCount": 1,
                   "KeepJobFlowAliveWhenNoSteps": True},
    )  # fmt: skip
    cluster_id = flow["JobFlowId"]
    proc = subprocess.Popen(
        ["bash", "scripts/emr-submit.sh", "--endpoint-url", aws["url"], "--cluster-id", cluster_id,
         "--bucket", BUCKET, "--wait", f"s3://{BUCKET}/a/", f"s3://{BUCKET}/b/"],
        cwd=ROOT, env={**aws["env"], "FMAPREP_EMR_POLL_S": "1"}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    errors: list[str] = []
    running = threading.Event()

    def read_errors() -> None:  # the script's stderr as it comes (a full pipe would block it)
        assert proc.stderr is not None
        for line in proc.stderr:
            errors.append(line)
            if ": RUNNING" in line:
                running.set()

    reader = threading.Thread(target=read_errors, daemon=True)
    reader.start()
    step_id = proc.stdout.readline().strip()  # printed once the step is added
    assert step_id, "".join(errors)[-2000:]
    assert step_id == aws["emr"].list_steps(ClusterId=cluster_id)["Steps"][0]["Id"]
    # the script must see the step RUNNING before it ends (a condition, not a fixed sleep)
    deadline = time.monotonic() + 300
    while not running.wait(timeout=0.2):
        assert proc.poll() is None and time.monotonic() < deadline, "".join(errors)[-2000:]
    logs = f"logs/{cluster_id}/steps/{step_id}"
    summary = "fmaprep preprocess: 10 inputs, 9 ok, 1 failed; 0.08 h of audio in 61.0 s"
    _put_log(aws, f"{logs}/stdout.gz", f"some spark chatter\n{summary}\nmore chatter\n")
    _put_log(
        aws, f"{logs}/stderr.gz", "WARN x\nfmaprep: workers cannot import soxr\nfmaprep: other\n"
    )
    _finish_step(cluster_id, step_id, state)
    proc.wait(timeout=300)  # stdout holds a line or two more: no pipe fills up meanwhile
    out = proc.stdout.read()
    reader.join(timeout=60)
    err = "".join(errors)
    assert out.splitlines() == [summary]  # after the step id, read above
    assert f"step {step_id}: RUNNING" in err and f"step {step_id}: {state}" in err
    if state == "COMPLETED":
        assert proc.returncode == 0, err
    else:
        assert proc.returncode == 1
        assert (
            f"ended FAILED: fmaprep: workers cannot import soxr (logs: s3://{BUCKET}/{logs}/)"
            in err
        )


def test_wait_gives_up_after_its_timeout(aws: dict[str, Any], cluster_id: str) -> None:
    proc = subprocess.run(
        ["bash", "scripts/emr-submit.sh", "--endpoint-url", aws["url"], "--cluster-id", cluster_id,
         "--bucket", BUCKET, "--wait", "--wait-timeout", "2", f"s3://{BUCKET}/a/",
         f"s3://{BUCKET}/b/"],
        cwd=ROOT, env={**aws["env"], "FMAPREP_EMR_POLL_S": "1"}, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "after 2s; follow it with: aws emr describe-step" in proc.stderr


@pytest.mark.parametrize(
    ("instance_type", "given", "want"),
    [
        ("c5.2xlarge", [], ["4", "1536m", "4096m"]),  # 8 vCPU, 16 GiB: 2 x (1.5g + 384m + 4g)
        ("m5.xlarge", [], ["2", "3584m", "2048m"]),
        ("m5.xlarge", ["--executor-cores", "1", "--executor-memory", "2g"], ["1", "2g", "1024m"]),
        ("x9.huge", [], ["2", "4g", "2048m"]),  # unknown: the old defaults, and a warning
    ],
)
def test_executors_are_sized_to_the_core_nodes(
    aws: dict[str, Any], instance_type: str, given: list[str], want: list[str]
) -> None:
    flow = aws["emr"].run_job_flow(
        Name="s", ReleaseLabel="emr-7.5.0", JobFlowRole="EMR_EC2_DefaultRole",
        ServiceRole="EMR_DefaultRole",
        Instances={"InstanceGroups": [
            {"InstanceRole": "MASTER", "InstanceType": "m5.xlarge", "InstanceCount": 1},
            {"InstanceRole": "CORE", "InstanceType": instance_type, "InstanceCount": 4}],
            "KeepJobFlowAliveWhenNoSteps": True},
    )  # fmt: skip
    cluster_id = flow["JobFlowId"]
    proc = _script(aws, "scripts/emr-submit.sh", "--cluster-id", cluster_id, "--bucket", BUCKET,
                   *given, f"s3://{BUCKET}/a/", f"s3://{BUCKET}/b/")  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    args = aws["emr"].list_steps(ClusterId=cluster_id)["Steps"][0]["Config"]["Args"]
    python = next(a.split("=")[1] for a in args if a.startswith("spark.executor.pyspark.memory="))
    got = [args[args.index("--executor-cores") + 1], args[args.index("--executor-memory") + 1],
           python]  # fmt: skip
    assert got == want
    assert ("no sizing known for instance type 'x9.huge'" in proc.stderr) == (
        instance_type == "x9.huge")  # fmt: skip
