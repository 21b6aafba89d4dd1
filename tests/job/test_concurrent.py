"""Two runs on one OUTPUT at once (issue 25): a resubmitted step, a scheduler's retry while the
first try still runs, two people sharing a bucket. Through the CLI on local disk, HDFS and S3,
the second run starts at a seeded-random moment of the first (``FMAPREP_TEST_SEED=<seed>``
repeats one); afterwards the output reads whole with every input once, and each run either
committed a whole generation (exit 0) or was refused with its one line and a non-zero exit."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fmaprep.storage.clients import StoreSettings
from job.test_commit import codes, make_corpus, manifest_sources, store_root  # noqa: F401
from local_services_fixture import local_services, services_environ  # noqa: F401 (fixtures)

N_FILES = 4
REFUSALS = ("is being written by another fmaprep", "lost its lease", "exists (use --mode",
            "missing or changed before the commit")  # fmt: skip


def _start(inp: str, out: str, env: dict[str, str], mode: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "fmaprep", "preprocess", inp, out, "--master", "local[1]",
           "--partitions", "2", "--mode", mode]  # fmt: skip
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(
    "modes", [("overwrite", "overwrite"), ("error", "overwrite"), ("resume", "resume")]
)
def test_two_runs_on_one_output(
    store_root: tuple[str, dict[str, str]],  # noqa: F811 (the fixture)
    tmp_path: Path,
    modes: tuple[str, str],
) -> None:
    root, env = store_root
    settings = StoreSettings.from_env(environ=env)
    seed = int(os.environ.get("FMAPREP_TEST_SEED") or random.SystemRandom().randrange(2**32))
    offset = random.Random(seed).uniform(0.0, 4.0)
    where = f"FMAPREP_TEST_SEED={seed}: {modes[1]} started {offset:.2f} s after {modes[0]}"
    corpus = str(make_corpus(tmp_path / "corpus", n=N_FILES, seed=200))
    out = f"{root}/both"
    env = {**env, "NUMBA_CACHE_DIR": str(tmp_path / "numba")}
    first = _start(corpus, out, env, modes[0])
    time.sleep(offset)
    second = _start(corpus, out, env, modes[1])
    outcomes = []
    for proc in (first, second):
        stdout, stderr = proc.communicate(timeout=300)
        outcomes.append((proc.returncode, stdout, stderr))
    committed = 0
    for code, stdout, stderr in outcomes:
        if code == 0:
            assert f"{N_FILES} inputs, {N_FILES} ok" in stdout, f"{where}: {stdout}"
            committed += 1
            continue
        lines = [ln for ln in stderr.splitlines() if ln.startswith("fmaprep:")]
        assert len(lines) == 1, f"{where}: {stderr[-3000:]}"
        assert any(r in lines[0] for r in REFUSALS), f"{where}: {lines[0]}"
        assert "Traceback" not in stderr, f"{where}: {stderr[-3000:]}"
    assert committed >= 1, where
    # the output reads whole: every input once, each with a record
    got = codes(out, settings)
    assert len(got) == N_FILES, where
    sources = manifest_sources(out, settings)
    assert len(sources) == len(set(sources)) == N_FILES, where
