"""A task attempt that runs to its end after the job committed: the zombie a lost executor or a
speculative copy leaves (Spark kills the losing attempt, but a host it cannot reach keeps
writing). Its part lands beside the committed ones under the same run; readers still see the
commit's records, each once, and the next run of fmaprep deletes the zombie's files (they are
fmaprep's own, of a run this OUTPUT knows), leaving the user's files alone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fmaprep.config import load_config
from fmaprep.formats.records import read_commit
from fmaprep.job.commit import config_key
from fmaprep.model import InputFile
from fmaprep.spark.writers import TaskPlan, write_part
from fmaprep.storage.clients import StoreSettings
from job.test_commit import codes, make_corpus, run_cli


@pytest.mark.slow
def test_an_attempt_that_finishes_after_the_commit_is_never_read_and_then_cleaned(
    tmp_path: Path,
) -> None:
    corpus = make_corpus(tmp_path / "in", n=4)
    out = str(tmp_path / "out")
    env = dict(os.environ)
    first = run_cli(str(corpus), out, env)
    assert first.returncode == 0, first.stderr
    settings = StoreSettings()
    commit = read_commit(out, settings)
    assert commit is not None
    committed = codes(out, settings)
    success = (tmp_path / "out" / "_SUCCESS").read_bytes()
    user_file = tmp_path / "out" / "notes.txt"
    user_file.write_text("the user's own\n")

    # the zombie: partition 0's task again, over every input, run to its end
    config = load_config()
    plan = TaskPlan(out, commit.generation, commit.format, config.pipeline, settings,
                    config_key(config))  # fmt: skip
    items = [InputFile(str(p), p.stat().st_size) for p in sorted(corpus.rglob("*.mp3"))]
    result = write_part(plan, 0, items)
    assert result.fault is None and result.records == 4
    zombie = tmp_path / "out" / result.part
    shard = tmp_path / "out" / result.shard
    assert zombie.is_file() and zombie.stat().st_size == result.part_bytes and shard.is_file()
    assert result.part not in {p.name for p in commit.parts}

    # readers: the commit's records, each once; the commit itself untouched
    assert codes(out, settings) == committed
    assert (tmp_path / "out" / "_SUCCESS").read_bytes() == success

    # the next run (nothing left to do) deletes the zombie's part and shard, not the user's file
    again = run_cli(str(corpus), out, env, "--mode", "resume")
    assert again.returncode == 0, again.stderr
    assert not zombie.exists() and not shard.exists()
    assert user_file.read_text() == "the user's own\n"
    assert codes(out, settings) == committed
