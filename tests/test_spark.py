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
    from fmaprep.spark import build_session, stop_session

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
