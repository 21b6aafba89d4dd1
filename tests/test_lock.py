"""requirements.lock is what the set-up installs: it covers pyproject.toml, the .venv holds exactly
its versions, and the EMR bootstrap's pins are its versions too. Each failure names the one
command that repairs it."""

from __future__ import annotations

import importlib.metadata as md
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

from fmaprep.spark.packaging import canonical

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
REFRESH = (
    "run `bash scripts/lock.sh` (refreshes requirements.lock from pyproject.toml),"
    " then `bash scripts/install.sh`"
)
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def pins(path: Path) -> dict[str, str]:
    """name -> version of every ``name==version`` line."""
    found = {}
    for line in path.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            found[canonical(match.group(1))] = match.group(2)
    return found


def project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [Requirement(r) for r in [*project["dependencies"], *extras["dev"], *extras["bench"]]]


def test_lock_covers_every_dependency_of_pyproject() -> None:
    locked = pins(LOCK)
    problems = []
    for req in project_requirements():
        # the lock is for Linux x86_64, Python 3.11: evaluate markers there
        if req.marker and not req.marker.evaluate(
            {"platform_system": "Linux", "sys_platform": "linux", "python_version": "3.11"}
        ):
            continue
        version = locked.get(canonical(req.name))
        if version is None:
            problems.append(f"{req} is not in requirements.lock")
        elif not req.specifier.contains(version, prereleases=True):
            problems.append(f"requirements.lock pins {req.name}=={version}, outside {req}")
    assert not problems, "\n".join([*problems, REFRESH])


def test_installed_versions_are_the_locked_ones() -> None:
    """A fresh clone's set-up (scripts/install.sh, run by the two README commands and CI)
    installs exactly the lock."""
    problems = []
    for name, version in sorted(pins(LOCK).items()):
        try:
            installed = md.version(name)
        except md.PackageNotFoundError:
            problems.append(f"{name}=={version} is locked but not installed")
            continue
        if installed != version:
            problems.append(f"{name} {installed} is installed, the lock says {version}")
    assert not problems, "\n".join(
        [*problems, "run `bash scripts/install.sh` (it installs requirements.lock)"]
    )


def test_emr_bootstrap_pins_are_the_locked_versions() -> None:
    locked = pins(LOCK)
    emr = pins(ROOT / "bootstrap" / "requirements-emr.txt")
    assert emr, "bootstrap/requirements-emr.txt pins nothing"
    differ = [f"{n}=={v} (lock: {locked.get(n)})" for n, v in emr.items() if locked.get(n) != v]
    assert not differ, (
        "bootstrap/requirements-emr.txt differs from the lock: "
        + ", ".join(differ)
        + f"; {REFRESH}"
    )


def test_install_takes_uv_from_the_lock() -> None:
    """The set-up's first package comes pinned and hashed too: install.sh reads uv's entry."""
    text = LOCK.read_text()
    match = re.search(r"^uv==\S+ \\\n((?:    --hash=sha256:[0-9a-f]{64}(?: \\)?\n)+)", text, re.M)
    assert match, f"requirements.lock has no hashed uv entry; {REFRESH}"
    assert "uv" in {canonical(r.name) for r in project_requirements()}
