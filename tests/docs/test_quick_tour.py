"""Every shell block of the README's quick tour runs, as written, on the demo corpus: in a copy of
the repository (the files a fresh clone has, with this checkout's .venv), so the tour's own
storage services and outputs touch nothing of this checkout's."""

from __future__ import annotations

import os
import re
import socket
import subprocess
from pathlib import Path

import pytest
from fresh_clone import clone_files

ROOT = Path(__file__).resolve().parents[2]


def tour_blocks(readme: str) -> list[str]:
    """The ```bash blocks between the "## Quick tour" heading and the next "## " heading."""
    start = readme.index("\n## Quick tour\n")
    end = readme.find("\n## ", start + 1)
    section = readme[start : end if end != -1 else None]
    return re.findall(r"^```bash\n(.*?)^```", section, re.M | re.S)


def free_port_block(size: int = 6) -> int:
    """A base port whose next ``size`` ports are free (local-services.sh uses base..base+5)."""
    for base in range(31000, 40000, 97):
        free = True
        for port in range(base, base + size):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    free = False
                    break
        if free:
            return base
    raise RuntimeError("no free block of ports")


def run(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", command],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip


def test_the_tour_has_the_blocks_it_promises() -> None:
    blocks = tour_blocks((ROOT / "README.md").read_text())
    text = "\n".join(blocks)
    for needle in (
        "fmaprep inspect",
        "fmaprep preprocess",
        "local-services.sh up",
        "emr-submit.sh",
    ):
        assert needle in text, needle
    assert "read_records" in text and "WindowSampler" in text


@pytest.mark.slow
def test_every_quick_tour_command_runs_on_the_demo_corpus(tmp_path: Path) -> None:
    clone = clone_files(tmp_path / "clone")
    (clone / ".venv").symlink_to(ROOT / ".venv")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FMAPREP_", "AWS_", "HADOOP_"))}
    env["FMAPREP_PORT_BASE"] = str(free_port_block())
    # what scripts/demo.sh does after its set-up (the set-up itself is the installed .venv)
    demo = (
        ".venv/bin/fmaprep demo build/demo/corpus --tracks 6\n"
        ".venv/bin/fmaprep preprocess build/demo/corpus build/demo/out --mode overwrite\n"
    )
    assert "fmaprep demo" in (ROOT / "scripts" / "demo.sh").read_text()
    proc = run(demo, clone, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    try:
        for block in tour_blocks((clone / "README.md").read_text()):
            proc = run(block, clone, env)
            assert proc.returncode == 0, (
                f"{block}\nfailed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
            )
    finally:
        if (clone / ".services").exists():
            run("bash scripts/local-services.sh down >/dev/null 2>&1 || true", clone, env)
    assert (clone / "build" / "tour" / "report.html").is_file()
