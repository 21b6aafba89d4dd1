"""spark-submit --master yarn --deploy-mode cluster on a single-node YARN (scripts/local-yarn.sh:
Hadoop's ResourceManager and NodeManager from the released jars), with the environment archive:
the driver itself runs inside a YARN container from the archive's Python, as on EMR.

One run with file:// inputs and outputs (one node), one with input and output on the local HDFS
of scripts/local-services.sh (the storage work), as on EMR.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from fmaprep.audio.synth import music
from fmaprep.formats.records import read_records
from hostile.corpus import check_output, make_corpus, spark_conf
from local_services_fixture import local_services, services_environ

from conftest import ROOT, local_reference, script_env, write_audio

__all__ = ["local_services", "services_environ"]  # the fixture, re-exported for pytest
pytestmark = pytest.mark.slow

YARN = ["bash", str(ROOT / "scripts" / "local-yarn.sh")]


@pytest.fixture(scope="module")
def yarn() -> Iterator[dict[str, str]]:
    status = subprocess.run([*YARN, "status"], check=False, capture_output=True)
    was_up = status.returncode == 0
    if not was_up:
        proc = subprocess.run(
            [*YARN, "up"], check=False, capture_output=True, text=True, timeout=600
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    try:
        yield script_env("local-yarn.sh")
    finally:
        if not was_up:
            subprocess.run([*YARN, "down"], check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three mp3s every YARN run reads (none writes to it)."""
    root = tmp_path_factory.mktemp("yarn-corpus")
    for i, sr in enumerate((44100, 22050, 48000)):
        tid = f"{300 + i:06d}"
        write_audio(root / tid[:3] / f"{tid}.mp3", music(2.0, sr, seed=70 + i), sr)
    return root


@pytest.fixture(scope="module")
def local_codes(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The codes of the same job in local[2]: the reference each YARN run must equal (one local
    job for the module, as the corpus is the same for every run)."""
    local = tmp_path_factory.mktemp("yarn-local") / "local"
    local_reference(corpus, local)
    codes = _codes(local)
    assert len(codes) == 3
    return codes


def _submit(
    yarn: dict[str, str],
    archive: Path,
    src: str,
    dst: str,
    base_env: dict[str, str],
    conf: tuple[str, ...] = (),
    job_args: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in base_env.items() if not k.startswith("PYSPARK_")}
    env.update(HADOOP_CONF_DIR=yarn["HADOOP_CONF_DIR"], SPARK_HOME=yarn["SPARK_HOME"])
    cmd = [
        str(Path(sys.executable).parent / "spark-submit"),
        "--master", "yarn", "--deploy-mode", "cluster",
        *yarn["FMAPREP_YARN_SPARK_CONF"].split(),
        "--driver-memory", "512m", "--executor-memory", "512m",
        "--num-executors", "2", "--executor-cores", "1",
        "--archives", f"{archive}#environment",
        "--conf", "spark.yarn.appMasterEnv.PYSPARK_PYTHON=./environment/bin/python",
        "--conf", "spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python",
        *conf,
        str(ROOT / "jobs" / "preprocess.py"), src, dst, *job_args,
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "final status: SUCCEEDED" in proc.stdout
    return proc


def _codes(out: Path) -> dict[str, bytes]:
    return {r["track_id"]: r["codes"].tobytes() for r in read_records(str(out))}


def test_cluster_deploy_mode_on_yarn_equals_local(
    yarn: dict[str, str],
    env_archive: Path,
    corpus: Path,
    local_codes: dict[str, bytes],
    tmp_path: Path,
) -> None:
    out = tmp_path / "yarn"
    _submit(yarn, env_archive, f"file://{corpus}", f"file://{out}", dict(os.environ))
    stats = json.loads((out / "_stats.json").read_text())
    assert stats["master"] == "yarn"
    assert _codes(out) == local_codes


def test_hdfs_input_and_output_on_yarn_equal_local(
    yarn: dict[str, str],
    env_archive: Path,
    local_services: dict[str, str],
    corpus: Path,
    local_codes: dict[str, bytes],
    tmp_path: Path,
) -> None:
    """EMR's shape: inputs on HDFS, output on HDFS, driver and executors in YARN containers."""
    env = local_services
    base = f"/fmaprep-yarn-test/{uuid.uuid4().hex[:12]}"
    hdfs = env["FMAPREP_HDFS_URI"]

    def dfs(*args: str) -> None:
        proc = subprocess.run(
            ["hdfs", "dfs", *args], env=env, capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stderr[-2000:]

    dfs("-mkdir", "-p", base)
    dfs("-put", str(corpus), f"{base}/in")
    try:
        _submit(yarn, env_archive, f"{hdfs}{base}/in", f"{hdfs}{base}/out", env,
                _service_conf(env))  # fmt: skip
        fetched = tmp_path / "fetched"
        dfs("-get", f"{base}/out", str(fetched))
    finally:
        dfs("-rm", "-r", "-f", "-skipTrash", base)
    stats = json.loads((fetched / "_stats.json").read_text())
    assert stats["master"] == "yarn"
    assert stats["output"] == f"{hdfs}{base}/out"
    assert _codes(fetched) == local_codes


def _service_conf(env: dict[str, str]) -> tuple[str, ...]:
    """What a YARN container needs to reach the loopback services: on EMR the same comes from
    the cluster's Hadoop configuration (dfs.namenode.http-address) and the instance profile."""
    names = ("FMAPREP_WEBHDFS_URL", "FMAPREP_S3_ENDPOINT", "AWS_ACCESS_KEY_ID",
             "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")  # fmt: skip
    conf: list[str] = []
    for name in names:
        conf += ["--conf", f"spark.yarn.appMasterEnv.{name}={env[name]}"]
        if name.startswith("AWS_"):  # the tasks read S3 with boto3's credential chain
            conf += ["--conf", f"spark.executorEnv.{name}={env[name]}"]
    return tuple(conf)


def test_s3_input_on_yarn_equals_local(
    yarn: dict[str, str],
    env_archive: Path,
    services_environ: dict[str, str],
    corpus: Path,
    local_codes: dict[str, bytes],
) -> None:
    """Inputs on S3, read by the tasks in their YARN containers; output on HDFS."""
    from fmaprep.storage.clients import StoreSettings, open_store

    env = services_environ
    tag = uuid.uuid4().hex[:12]
    src = f"s3a://{env['FMAPREP_S3_BUCKET']}/yarn-{tag}/in"
    settings = StoreSettings.from_env(environ=env)
    store = open_store(src, settings)
    for path in sorted(corpus.rglob("*.mp3")):
        store.write_bytes(f"{src}/{path.relative_to(corpus)}", path.read_bytes())
    dst = f"{env['FMAPREP_HDFS_URI']}/fmaprep-yarn-test/{tag}/out"
    proc = _submit(yarn, env_archive, src, dst, env, _service_conf(env))
    assert env["AWS_SECRET_ACCESS_KEY"] not in proc.stdout  # never logged
    got = {r["track_id"]: r["codes"].tobytes() for r in read_records(dst, settings=settings)}
    assert got == local_codes


def test_a_segfaulting_file_is_one_line_on_yarn(
    yarn: dict[str, str], env_archive: Path, tmp_path: Path
) -> None:
    """Issue 14 in YARN containers: a file that segfaults its decoder (and one that hangs in C)
    is one line each; the job succeeds with every good record."""
    corpus = tmp_path / "corpus"
    expected = make_corpus(corpus, ["segv", "pause"], n_good=3)
    out = tmp_path / "out"
    with socket.create_server(("127.0.0.1", 0)) as listener:
        conf = [a for kv in spark_conf(listener, tmp_path) for a in ("--conf", kv)]
        job_args = ("--config", str(corpus / "config.toml"), "--max-error-rate", "1")
        _submit(yarn, env_archive, f"file://{corpus}", f"file://{out}", dict(os.environ),
                tuple(conf), job_args=job_args)  # fmt: skip
    check_output(out, corpus, expected)
