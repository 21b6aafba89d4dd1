"""Peak resident memory of the job's Python workers (what the issue's 600 MB budget is about)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from support.processes import pyspark_processes


def _peak_rss_mb(pid: int) -> float:
    """VmHWM: the process's peak resident set so far, in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def worker_peak_rss(input_path: str, extra: list[str] | None = None, poll_s: float = 0.05) -> float:
    """Run the job in local[1] on ``input_path`` and return the largest worker peak RSS (MB)."""
    with tempfile.TemporaryDirectory(prefix="fmaprep-mem-") as tmp:
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "fmaprep", "-q", "preprocess", input_path, str(out),
               "--master", "local[1]", "--max-error-rate", "1", *(extra or [])]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        peak = 0.0
        while proc.poll() is None:
            daemons, workers = pyspark_processes()
            for pid in daemons + workers:
                peak = max(peak, _peak_rss_mb(pid))
            time.sleep(poll_s)
        _, stderr = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"job failed: {stderr.strip()[-500:]}")
        shutil.rmtree(out, ignore_errors=True)
    return peak
