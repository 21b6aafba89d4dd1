"""``python -m fmaprep.job.warmup``: run one tiny local job so that later jobs start quicker.

The first Spark start on a machine writes the driver JVM's class-data archive (see jvmstart);
``scripts/install.sh`` calls this so that the user's first real job already starts fast. It
is cheap to rerun: with the archive in place it is one quick job on a 2-second tone.
"""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

import numpy as np

from fmaprep.audio.encode import write_mp3
from fmaprep.config import Config, JobConfig
from fmaprep.job.run import run_preprocess
from fmaprep.spark.jvmstart import archive_path
from fmaprep.spark.session import find_java_home

log = logging.getLogger(__name__)


def warm_up(master: str = "local[1]") -> None:
    sample_rate = 44100
    t = np.arange(2 * sample_rate) / sample_rate
    tone = (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="fmaprep-warmup-") as tmp:
        write_mp3(Path(tmp) / "in" / "000001.mp3", np.stack([tone, tone], axis=1), sample_rate)
        config = Config(job=JobConfig(master=master))
        result = run_preprocess(str(Path(tmp) / "in"), str(Path(tmp) / "out"), config)
    if result.failures:
        raise RuntimeError(f"warm-up job failed: {result.failures[0]}")


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="warmup: %(message)s")
    logging.getLogger("fmaprep.spark.jvmstart").setLevel(logging.INFO)
    archive = archive_path(find_java_home())
    if archive is None:
        print("warmup: no class-data archive (FMAPREP_CDS=0, or a Java without one: needs 13+)")
    elif archive.is_file():
        print(f"warmup: class-data archive in place ({archive})")
    else:
        warm_up()
    return 0


if __name__ == "__main__":
    sys.exit(main())
