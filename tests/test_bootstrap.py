"""EMR tooling: every bash script is shellcheck-clean, the EMR commands are exactly what the
README promises (dry runs), and the bootstrap action installs everything the job imports into
a fresh Python 3.11 (a venv standing in for an EMR node's /usr/bin/python3.11)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest

from fmaprep.audio.synth import music
from fmaprep.config import PipelineConfig
from fmaprep.model import InputFile
from fmaprep.pipeline import process_file
from fmaprep.spark.packaging import EXCLUDED, base_interpreter, requirement_name

from conftest import write_audio

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted([*ROOT.glob("scripts/*.sh"), *ROOT.glob("bootstrap/*.sh")])


def _run(*cmd: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False, env=env)


@pytest.fixture
def no_aws(tmp_path: Path) -> dict[str, str]:
    """An environment whose `aws` only fails: a dry run that executed something would show."""
    fake = tmp_path / "fake-bin"
    fake.mkdir()
    (fake / "aws").write_text("#!/bin/sh\necho 'aws called during a test' >&2\nexit 99\n")
    (fake / "aws").chmod(0o755)
    return {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}"}


@pytest.fixture(scope="module")
def shellcheck() -> str:
    proc = _run("bash", "scripts/ensure-shellcheck.sh")
    found = shutil.which("shellcheck")
    if not found:
        pytest.skip(f"shellcheck unavailable: {proc.stderr.strip()}")
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_scripts_are_shellcheck_clean_and_strict(shellcheck: str, script: Path) -> None:
    proc = _run(shellcheck, "-x", str(script))
    assert proc.returncode == 0, proc.stdout
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n# Usage: ")
    assert "\nset -euo pipefail\n" in text


def _dry_run(env: dict[str, str], script: str, *args: str) -> list[list[str]]:
    proc = _run("bash", script, "--dry-run", *args, env=env)
    assert proc.returncode == 0, proc.stderr
    return [shlex.split(line) for line in proc.stdout.splitlines() if not line.startswith("#")]


def _option(cmd: list[str], name: str) -> str:
    return cmd[cmd.index(name) + 1]


def test_create_cluster_dry_run_prints_the_exact_command(no_aws: dict[str, str]) -> None:
    (cmd,) = _dry_run(
        no_aws, "scripts/emr-create-cluster.sh", "--bucket", "fma-bkt", "--region", "x-1"
    )
    assert cmd[:3] == ["aws", "emr", "create-cluster"]
    assert _option(cmd, "--release-label") == "emr-7.5.0"
    i = cmd.index("--applications")
    assert cmd[i + 1 : i + 3] == ["Name=Hadoop", "Name=Spark"]
    assert _option(cmd, "--bootstrap-actions") == (
        "Path=s3://fma-bkt/fmaprep/bootstrap/install-fmaprep.sh,Name=install-fmaprep,"
        "Args=[s3://fma-bkt/fmaprep/dist/fmaprep-0.1.0-py3-none-any.whl,"
        "s3://fma-bkt/fmaprep/bootstrap/requirements-emr.txt]"
    )
    assert _option(cmd, "--configurations") == "file://conf/emr-configurations.json"
    assert _option(cmd, "--log-uri") == "s3://fma-bkt/fmaprep/logs/"
    assert _option(cmd, "--service-role") == "EMR_DefaultRole"
    assert _option(cmd, "--ec2-attributes") == "InstanceProfile=EMR_EC2_DefaultRole"
    assert _option(cmd, "--region") == "x-1"


def test_create_cluster_upload_copies_wheel_bootstrap_and_pins(no_aws: dict[str, str]) -> None:
    lines = _dry_run(no_aws, "scripts/emr-create-cluster.sh", "--bucket", "b", "--upload")
    copies = [line[3:] for line in lines if line[:3] == ["aws", "s3", "cp"]]
    assert copies == [
        [
            "dist/fmaprep-0.1.0-py3-none-any.whl",
            "s3://b/fmaprep/dist/fmaprep-0.1.0-py3-none-any.whl",
        ],
        ["bootstrap/install-fmaprep.sh", "s3://b/fmaprep/bootstrap/install-fmaprep.sh"],
        ["bootstrap/requirements-emr.txt", "s3://b/fmaprep/bootstrap/requirements-emr.txt"],
    ]


def _step_args(cmd: list[str]) -> list[str]:
    assert cmd[:3] == ["aws", "emr", "add-steps"]
    assert _option(cmd, "--cluster-id") == "j-TEST"
    (step,) = json.loads(_option(cmd, "--steps"))
    assert step["Jar"] == "command-runner.jar"
    args: list[str] = step["Args"]
    return args


def test_submit_dry_run_ships_the_archive_in_cluster_deploy_mode(no_aws: dict[str, str]) -> None:
    (cmd,) = _dry_run(
        no_aws, "scripts/emr-submit.sh", "--cluster-id", "j-TEST", "--bucket", "b",
        "s3://b/fma_small/", "hdfs:///out/small", "--", "--resampler", "resampy",
    )  # fmt: skip
    assert _step_args(cmd) == [
        "spark-submit", "--deploy-mode", "cluster", "--master", "yarn",
        "--executor-memory", "4g", "--executor-cores", "2",
        "--conf", "spark.executor.pyspark.memory=2048m",
        "--conf", "spark.yarn.maxAppAttempts=2",
        "--conf", "spark.eventLog.enabled=true",
        "--conf", "spark.eventLog.dir=s3://b/fmaprep/spark-events/",
        "--archives", "s3://b/fmaprep/env/fmaprep-env.tar.gz#environment",
        "--conf", "spark.yarn.appMasterEnv.PYSPARK_PYTHON=./environment/bin/python",
        "--conf", "spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python",
        "s3://b/fmaprep/jobs/preprocess.py", "s3://b/fma_small/", "hdfs:///out/small",
        "--resampler", "resampy",
    ]  # fmt: skip


def test_submit_without_archive_uses_the_bootstrapped_python(no_aws: dict[str, str]) -> None:
    (cmd,) = _dry_run(
        no_aws, "scripts/emr-submit.sh", "--cluster-id", "j-TEST", "--bucket", "b", "--no-archive",
        "s3://b/in/", "s3://b/out/",
    )  # fmt: skip
    args = _step_args(cmd)
    assert "--archives" not in args
    assert args[:5] == ["spark-submit", "--deploy-mode", "cluster", "--master", "yarn"]
    assert args[-3:] == ["s3://b/fmaprep/jobs/preprocess.py", "s3://b/in/", "s3://b/out/"]


def test_submit_refuses_local_paths(no_aws: dict[str, str]) -> None:
    proc = _run(
        "bash", "scripts/emr-submit.sh", "--cluster-id", "j", "--bucket", "b", "in", "out",
        env=no_aws,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "not an s3:// or hdfs:// URI" in proc.stderr


def test_emr_configuration_points_spark_at_python311() -> None:
    configs = json.loads((ROOT / "conf" / "emr-configurations.json").read_text())
    by_class = {c["Classification"]: c for c in configs}
    (export,) = by_class["spark-env"]["Configurations"]
    assert export["Classification"] == "export"
    assert export["Properties"]["PYSPARK_PYTHON"] == "/usr/bin/python3.11"
    defaults = by_class["spark-defaults"]["Properties"]
    assert defaults["spark.yarn.appMasterEnv.PYSPARK_PYTHON"] == "/usr/bin/python3.11"
    # a static file cannot name a uid: the YARN containers' user, as the README explains
    assert defaults["spark.executorEnv.NUMBA_CACHE_DIR"] == "/tmp/fmaprep-numba-yarn"
    assert defaults["spark.yarn.appMasterEnv.NUMBA_CACHE_DIR"] == "/tmp/fmaprep-numba-yarn"


def test_emr_pins_cover_every_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in (ROOT / "bootstrap" / "requirements-emr.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not an exact pin: {line}"
            pins[requirement_name(name)] = version
    needed = {requirement_name(r) for r in project["dependencies"]} - EXCLUDED
    assert needed <= set(pins)
    assert not set(pins) & EXCLUDED


@pytest.mark.slow
def test_bootstrap_installs_everything_the_job_imports(tmp_path: Path) -> None:
    """Fresh venv (the node's python3.11) + a wheel of this repo: run the bootstrap twice
    (idempotent), then the pure pipeline on a generated mp3 with that venv's python."""
    node = tmp_path / "node-python"
    subprocess.run([base_interpreter(), "-m", "venv", str(node)], check=True)
    python = str(node / "bin" / "python")
    wheels = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(ROOT)],
        check=True,
    )
    (wheel,) = wheels.glob("fmaprep-*.whl")
    reqs = str(ROOT / "bootstrap" / "requirements-emr.txt")
    for attempt in (1, 2):
        proc = _run("bash", "bootstrap/install-fmaprep.sh", "--python", python, str(wheel), reqs)
        assert proc.returncode == 0, f"run {attempt}: {proc.stderr[-3000:]}"
        assert "install-fmaprep: ok: libsndfile" in proc.stdout

    mp3 = write_audio(tmp_path / "000" / "000123.mp3", music(2.0, 44100, seed=7), 44100)
    script = (
        "import sys, numpy as np\n"
        "from fmaprep.config import PipelineConfig\n"
        "from fmaprep.model import InputFile\n"
        "from fmaprep.pipeline import process_file\n"
        "for resampler, decoder in (('soxr', 'soundfile'), ('resampy', 'ffmpeg')):\n"
        "    cfg = PipelineConfig(resampler=resampler, decoder=decoder)\n"
        "    record, line = process_file(InputFile(sys.argv[1], 0), cfg)\n"
        "    assert line['status'] == 'ok', line\n"
        "    np.save(f'{sys.argv[2]}/{resampler}.npy', record['codes'])\n"
        "import importlib.util\n"
        "assert importlib.util.find_spec('pyspark') is None, 'pyspark is EMR s own'\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NUMBA_CACHE_DIR")}
    proc = subprocess.run(
        [python, "-c", script, str(mp3), str(tmp_path)],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the same codes as this (the developer's) environment makes from the same file
    for resampler, decoder in (("soxr", "soundfile"), ("resampy", "ffmpeg")):
        record, _ = process_file(
            InputFile(str(mp3), 0), PipelineConfig(resampler=resampler, decoder=decoder)
        )
        assert record is not None
        np.testing.assert_array_equal(np.load(tmp_path / f"{resampler}.npy"), record["codes"])


def test_submit_gives_each_python_worker_its_per_core_memory(no_aws: dict[str, str]) -> None:
    """Spark divides spark.executor.pyspark.memory by the executor's cores (each worker's
    address-space limit): --pyspark-memory is per core, so the total is cores x that."""
    (cmd,) = _dry_run(
        no_aws, "scripts/emr-submit.sh", "--cluster-id", "j-TEST", "--bucket", "b",
        "--executor-cores", "4", "--pyspark-memory", "768m", "s3://b/in/", "s3://b/out/",
    )  # fmt: skip
    args = _step_args(cmd)
    assert args[args.index("--executor-cores") + 1] == "4"
    assert "spark.executor.pyspark.memory=3072m" in args
