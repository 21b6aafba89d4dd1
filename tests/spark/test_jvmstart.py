"""The driver JVM's class-data archive: when it is used, what it depends on, and that a real JVM
writes it once and then maps Spark's classes from it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fmaprep.spark import jvmstart
from fmaprep.spark.session import find_java_home

from conftest import tone, write_audio


def fake_jdk(root: Path, version: str, base_archive: bool = True) -> Path:
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "java").write_text("#!/bin/sh\n")
    (root / "release").write_text(f'IMPLEMENTOR="x"\nJAVA_VERSION="{version}"\n')
    if base_archive:
        (root / "lib" / "server").mkdir(parents=True)
        (root / "lib" / "server" / "classes.jsa").write_bytes(b"")
    return root


@pytest.mark.parametrize(
    ("version", "base", "usable"),
    [
        ("17.0.15", True, True),
        ("13", True, True),
        ("11.0.2", True, False),
        ("1.8.0_392", True, False),
        ("17.0.15", False, False),
    ],
)
def test_archive_needs_jdk13_with_a_base_archive(
    tmp_path: Path, version: str, base: bool, usable: bool
) -> None:
    home = fake_jdk(tmp_path / "jdk", version, base)
    assert jvmstart.supports_dynamic_archive(home) is usable


def test_java_major_reads_the_release_file(tmp_path: Path) -> None:
    assert jvmstart.java_major(fake_jdk(tmp_path / "a", "21.0.1")) == 21
    assert jvmstart.java_major(tmp_path / "missing") is None


def test_key_follows_the_class_path_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = fake_jdk(tmp_path / "jdk", "17.0.15")
    monkeypatch.delenv("HADOOP_CONF_DIR", raising=False)
    key = jvmstart.archive_key(home)
    assert jvmstart.archive_key(home) == key
    monkeypatch.setenv("HADOOP_CONF_DIR", "/etc/hadoop/conf")
    assert jvmstart.archive_key(home) != key
    monkeypatch.delenv("HADOOP_CONF_DIR")
    assert jvmstart.archive_key(home, "/extra.jar") != key


def test_options_use_an_archive_or_ask_the_jvm_to_write_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = str(fake_jdk(tmp_path / "jdk", "17.0.15"))
    monkeypatch.setenv("FMAPREP_CDS_DIR", str(tmp_path / "cache"))
    writing = jvmstart.driver_java_options(home)
    assert writing[0].startswith("-XX:ArchiveClassesAtExit=")
    assert Path(writing[0].split("=", 1)[1]).name.endswith(".part")  # never the final name
    monkeypatch.setattr(jvmstart, "_pending", [])
    final = jvmstart.archive_path(home)
    assert final is not None
    final.write_bytes(b"archive")
    assert jvmstart.driver_java_options(home)[0] == f"-XX:SharedArchiveFile={final}"
    monkeypatch.setenv("FMAPREP_CDS", "0")
    assert jvmstart.driver_java_options(home) == []


def test_partial_archives_of_killed_jvms_are_cleaned_after_a_day(tmp_path: Path) -> None:
    old, fresh = tmp_path / ".spark-a.jsa.1.part", tmp_path / ".spark-a.jsa.2.part"
    old.write_bytes(b"x")
    fresh.write_bytes(b"x")
    os.utime(old, (0, 0))
    jvmstart._remove_stale_parts(tmp_path)
    assert not old.exists() and fresh.exists()


@pytest.mark.slow
def test_a_real_jvm_writes_the_archive_once_then_maps_classes_from_it(tmp_path: Path) -> None:
    if jvmstart.archive_path(find_java_home()) is None:
        pytest.skip("this Java cannot keep a dynamic class-data archive")
    env = {**os.environ, "FMAPREP_CDS_DIR": str(tmp_path / "cds")}
    env.pop("FMAPREP_CDS", None)
    subprocess.run([sys.executable, "-m", "fmaprep.job.warmup"], env=env, check=True, timeout=300)
    archives = sorted(p.name for p in (tmp_path / "cds").iterdir())
    assert len(archives) == 1 and archives[0].endswith(".jsa"), archives  # no .part left over

    write_audio(tmp_path / "in" / "000001.mp3", tone(440.0, 1.0, 44100), 44100)
    # every JVM this run starts logs where each class came from; the dynamic archive is "top"
    env["JDK_JAVA_OPTIONS"] = f"-Xlog:class+load=info:file={tmp_path}/classes-%p.log"
    subprocess.run(
        [sys.executable, "-m", "fmaprep", "-q", "preprocess", str(tmp_path / "in"),
         str(tmp_path / "out"), "--master", "local[1]"],
        env=env, check=True, timeout=300,
    )  # fmt: skip
    logs = [p.read_text() for p in tmp_path.glob("classes-*.log")]
    spark_log = next(text for text in logs if "org.apache.spark.SparkContext " in text)
    spark_context = next(
        line for line in spark_log.splitlines() if "org.apache.spark.SparkContext " in line
    )
    assert "shared objects file (top)" in spark_context
    assert (tmp_path / "out" / "_SUCCESS").exists()
