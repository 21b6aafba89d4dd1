"""spark-submit --master yarn --deploy-mode cluster on a single-node YARN (scripts/local-yarn.sh:
Hadoop's ResourceManager and NodeManager from the released jars), with the environment archive:
the driver itself runs inside a YARN container from the archive's Python, as on EMR.

Inputs and outputs are file:// here (one node). hdfs:// and s3a:// inputs come with the storage
work (scripts/local-services.sh); see the README.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fmaprep.reader import read_records
from fmaprep.synth import music

from conftest import ROOT, local_reference, script_env, write_audio

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


def test_cluster_deploy_mode_on_yarn_equals_local(
    yarn: dict[str, str], env_archive: Path, tmp_path: Path
) -> None:
    corpus = tmp_path / "corpus"
    for i, sr in enumerate((44100, 22050, 48000)):
        tid = f"{300 + i:06d}"
        write_audio(corpus / tid[:3] / f"{tid}.mp3", music(2.0, sr, seed=70 + i), sr)
    local = tmp_path / "local"
    local_reference(corpus, local)

    out = tmp_path / "yarn"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYSPARK_")}
    env.update(HADOOP_CONF_DIR=yarn["HADOOP_CONF_DIR"], SPARK_HOME=yarn["SPARK_HOME"])
    cmd = [
        str(Path(sys.executable).parent / "spark-submit"),
        "--master", "yarn", "--deploy-mode", "cluster",
        *yarn["FMAPREP_YARN_SPARK_CONF"].split(),
        "--driver-memory", "512m", "--executor-memory", "512m",
        "--num-executors", "2", "--executor-cores", "1",
        "--archives", f"{env_archive}#environment",
        "--conf", "spark.yarn.appMasterEnv.PYSPARK_PYTHON=./environment/bin/python",
        "--conf", "spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python",
        str(ROOT / "jobs" / "preprocess.py"), f"file://{corpus}", f"file://{out}",
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        timeout=900, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "final status: SUCCEEDED" in proc.stdout
    stats = json.loads((out / "_stats.json").read_text())
    assert stats["master"] == "yarn"
    want = {r["track_id"]: r["codes"].tobytes() for r in read_records(str(local))}
    got = {r["track_id"]: r["codes"].tobytes() for r in read_records(str(out))}
    assert len(want) == 3
    assert got == want
