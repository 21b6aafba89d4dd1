"""No single file can stop the job (issue 14): in local[2], a corpus with a file that raises
each odd exception, floods stderr, blocks for ever in C or in a socket read, segfaults, or
allocates without bound finishes, with one manifest line per bad file and every good record.
(The standalone cluster and YARN runs are in test_cluster.py and test_yarn.py.)"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hostile.corpus import EXPECTED, check_output, make_corpus, spark_conf

pytestmark = pytest.mark.slow


def test_every_bad_file_is_one_line_and_the_job_finishes(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    expected = make_corpus(corpus, list(EXPECTED))
    out = tmp_path / "out"
    with socket.create_server(("127.0.0.1", 0)) as listener:
        conf = [a for kv in spark_conf(listener, tmp_path) for a in ("--spark-conf", kv)]
        proc = subprocess.run(
            [sys.executable, "-m", "fmaprep", "preprocess", str(corpus), str(out),
             "--master", "local[2]", "--partitions", "3", "--config", str(corpus / "config.toml"),
             "--max-error-rate", "1", *conf],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_output(out, corpus, expected)
    assert "Lost task" not in proc.stderr  # no file reached Spark's task retries
    assert "decode process died on" in proc.stderr  # the segfaults, logged as they happened
