"""Session start and stop: the quick stop must still close the accumulator server, and a new
session in the same process must work after it (also after a class-data archive was written)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import threading
    from fmaprep.spark.session import build_session, stop_session

    def count(session):
        sc = session.sparkContext
        total = sc.accumulator(0)
        sc.parallelize(range(10), 2).foreach(lambda x: total.add(x))
        return sc, total.value

    for round in range(2):
        session = build_session("local[1]")
        sc, value = count(session)
        assert value == 45, value
        server = sc._accumulatorServer
        stop_session(session)
        for thread in threading.enumerate():
            if thread.name == "accumulator-shutdown":
                thread.join(timeout=5)
        assert server.socket.fileno() == -1, "accumulator server still listening"
    print("ok")
    """
)


@pytest.mark.slow
def test_quick_stop_closes_the_accumulator_server_and_a_new_session_works(tmp_path: Path) -> None:
    env = {**os.environ, "FMAPREP_CDS_DIR": str(tmp_path / "cds")}  # round 1 writes an archive
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("ok")


def test_agents_and_flight_recorder_turn_the_class_data_archive_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fmaprep.spark.session import _has_agent

    monkeypatch.delenv("JAVA_TOOL_OPTIONS", raising=False)
    monkeypatch.delenv("JDK_JAVA_OPTIONS", raising=False)
    assert not _has_agent("-Xmx2g -Dfoo=bar")
    assert _has_agent("-XX:StartFlightRecording=filename=x.jfr")
    assert _has_agent("-javaagent:/opt/jacoco.jar")
    monkeypatch.setenv("JAVA_TOOL_OPTIONS", "-agentlib:jdwp=transport=dt_socket")
    assert _has_agent("")


@pytest.mark.slow
def test_a_job_under_flight_recorder_runs(tmp_path: Path) -> None:
    """JDK 17 crashes when Flight Recorder meets a dynamic class-data archive; the job must
    notice the recorder and start without the archive."""
    from conftest import tone, write_audio

    write_audio(tmp_path / "in" / "000001.mp3", tone(440.0, 1.0, 44100), 44100)
    subprocess.run([sys.executable, "-m", "fmaprep.job.warmup"], check=True, timeout=300)
    recording = tmp_path / "rec.jfr"
    proc = subprocess.run(
        [sys.executable, "-m", "fmaprep", "-q", "preprocess", str(tmp_path / "in"),
         str(tmp_path / "out"), "--master", "local[1]", "--spark-conf",
         f"spark.driver.extraJavaOptions=-XX:StartFlightRecording=filename={recording}"],
        capture_output=True, text=True, timeout=300, check=False,
        cwd=tmp_path,  # a crashing JVM drops its hs_err_pid* files in the working directory
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "out" / "_SUCCESS").exists()
