"""A frozen store shows (issue 25): the loopback S3 server, or the NameNode, is stopped (SIGSTOP)
for 15 s while the tasks read their inputs from it. The progress line says which store is not
answering, since when and how many tasks wait; the log has one line when the stall starts and
one when it ends; the job then finishes with every input once. (15 s rather than a minute: the
stall is reported after 5 s without a finished file and a probe that times out in 3 s, so a
longer freeze shows nothing more and costs suite time.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from fmaprep.storage.clients import StoreSettings, open_store
from job.test_commit import codes, make_corpus
from job.test_reliability import _worker_pids
from local_services_fixture import ROOT, local_services, services_environ  # noqa: F401

FREEZE_S = 15


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["s3", "hdfs"])
def test_frozen_store_shows_in_the_progress_line_and_once_in_the_log(
    services_environ: dict[str, str],  # noqa: F811 (the fixture)
    tmp_path: Path,
    kind: str,
) -> None:
    env = {**services_environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    settings = StoreSettings.from_env(environ=env)
    corpus = make_corpus(tmp_path / "corpus", n=6, seed=600)
    tag = f"stall-{uuid.uuid4().hex[:8]}"
    if kind == "s3":
        base, out = (
            f"s3a://{env['FMAPREP_S3_BUCKET']}/{tag}",
            f"s3a://{env['FMAPREP_S3_BUCKET']}/{tag}/out",
        )
        name, pid_file = f"S3 at {env['FMAPREP_S3_ENDPOINT']}", "s3proxy.pid"
    else:
        base, out = f"{env['FMAPREP_HDFS_URI']}/{tag}", str(tmp_path / "out")
        name, pid_file = "HDFS (NameNode", "namenode.pid"
    store = open_store(base, settings)
    for path in sorted(corpus.rglob("*.mp3")):
        store.write_bytes(f"{base}/in/{path.relative_to(corpus).as_posix()}", path.read_bytes())
    server = int((ROOT / ".services" / "pids" / pid_file).read_text().split()[0])
    cmd = [sys.executable, "-m", "fmaprep", "preprocess", f"{base}/in", out,
           "--master", "local[1]", "--partitions", "6"]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while not _worker_pids(proc.pid) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the job ended before the store could be frozen"
    os.kill(server, signal.SIGSTOP)
    try:
        time.sleep(FREEZE_S)
    finally:
        os.kill(server, signal.SIGCONT)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr[-3000:]
    assert "6 inputs, 6 ok" in stdout
    stalled = [ln for ln in stderr.splitlines() if "STALLED:" in ln]
    assert stalled, stderr[-3000:]
    assert f"STALLED: {name}" in stalled[0] and "not answering for" in stalled[0], stalled[0]
    assert "(since " in stalled[0] and "tasks waiting and retrying" in stalled[0]
    starts = [ln for ln in stderr.splitlines() if f"stall: {name}" in ln]
    assert len(starts) == 1, stderr[-3000:]  # one log line per stall, not one per retry
    assert sum(f"stall over: {name}" in ln for ln in stderr.splitlines()) == 1
    assert len(codes(out, settings)) == 6
