"""The installed package and the worker archive hold product code only (issue 28): no test
doubles (tests/support), no benchmark scripts (benchmarks/), no test modules.

The expectation comes from the source tree, not from the build: every fmaprep file in the wheel
and in the archive is a file under src/fmaprep, and none of them has a name that belongs to a
double or a benchmark. (That src/fmaprep imports nothing from tests/ or benchmarks/ is an
import contract in pyproject.toml, checked by scripts/check.sh.)
"""

from __future__ import annotations

import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

import pytest

from fmaprep.spark.packaging import build_wheel

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

# what used to ship in the package, and what the tests' and benchmarks' homes are called
NOT_PRODUCT = ("httpproxy", "zipserver", "fmaprep/bench/", "fmaprep/cli/bench.py", "conftest")
NOT_PRODUCT_TOP = {"benchmarks", "support", "tests", "local_services_fixture.py"}


def _source_files() -> set[str]:
    return {
        p.relative_to(SRC).as_posix()
        for p in (SRC / "fmaprep").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def _check_fmaprep(names: Iterable[str]) -> None:
    files = {n for n in names if not n.endswith("/") and "__pycache__" not in n}
    assert "fmaprep/cli/preprocess.py" in files  # the listing did see the package
    assert [n for n in sorted(files) if any(bad in n for bad in NOT_PRODUCT)] == []
    assert files - _source_files() == set()  # nothing the source tree does not hold


@pytest.mark.slow
def test_the_wheel_holds_product_code_only(tmp_path: Path) -> None:
    # the same build `fmaprep package-env` installs into the worker archive
    wheel = build_wheel(ROOT, tmp_path / "wheel")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {PurePosixPath(n).parts[0] for n in names}
    assert tops == {"fmaprep", "fmaprep-{}.dist-info".format(wheel.name.split("-")[1])}
    _check_fmaprep(n for n in names if n.startswith("fmaprep/"))


@pytest.mark.slow
def test_the_worker_archive_holds_product_code_only(env_archive: Path) -> None:
    site = "lib/python3.11/site-packages/"
    with tarfile.open(env_archive) as tar:
        names = [m.name.removeprefix("./") for m in tar.getmembers() if m.isfile()]
    in_site = [n.removeprefix(site) for n in names if n.startswith(site)]
    tops = {PurePosixPath(n).parts[0] for n in in_site}
    assert "fmaprep" in tops
    assert tops & NOT_PRODUCT_TOP == set()
    _check_fmaprep(n for n in in_site if n.startswith("fmaprep/"))
