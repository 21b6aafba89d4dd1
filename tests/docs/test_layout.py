"""The layout checks itself: docs/architecture.md's Layout section (README links to it) names
every top-level entry of the repository and nothing that is gone, and every room of
``src/fmaprep`` has a docstring (the rooms table is generated from them) and a place in the
import contracts' layers."""

from __future__ import annotations

import ast
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "architecture.md"


def _layout_section() -> str:
    text = PAGE.read_text()
    match = re.search(r"^## Layout\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, "docs/architecture.md has no Layout section"
    return match.group(1)


def _tracked_top_level() -> set[str]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True, timeout=60).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout: {exc}")
    return {line.split("/", 1)[0] for line in out.splitlines() if line}


def _named_top_level(section: str) -> set[str]:
    spans = re.findall(r"`([^`\n]+)`", section)
    return {span.split("/", 1)[0] for span in spans}


def test_the_layout_names_every_top_level_entry_and_nothing_else() -> None:
    named = _named_top_level(_layout_section())
    tracked = _tracked_top_level()
    assert tracked - named == set(), "top-level entries the Layout section does not name"
    gone = {name for name in named if not (ROOT / name).exists()}
    assert gone == set(), "the Layout section names what is not there"
    assert "(docs/architecture.md) (the layout" in (ROOT / "README.md").read_text()


def _rooms() -> list[str]:
    package = ROOT / "src" / "fmaprep"
    rooms = [p.name for p in package.iterdir() if (p / "__init__.py").is_file()]
    rooms += [p.stem for p in package.glob("*.py") if not p.name.startswith("__")]
    return sorted(rooms)


def test_every_room_has_a_docstring_and_a_layer() -> None:
    package = ROOT / "src" / "fmaprep"
    linter = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in linter["contracts"] if c["type"] == "layers"]
    layered = {m.strip() for layer in layers for m in layer.split("|")}
    for room in _rooms():
        path = (
            package / room / "__init__.py" if (package / room).is_dir() else package / f"{room}.py"
        )
        assert ast.get_docstring(ast.parse(path.read_text())), f"fmaprep.{room} has no docstring"
        assert f"fmaprep.{room}" in layered, f"fmaprep.{room} is in no layer of the contracts"


def test_the_checks_see_what_is_missing() -> None:
    section = (
        "- `src/fmaprep/` the library\n- `jobs/` entry points, `README.md`\nprose docs/ only\n"
    )
    assert _named_top_level(section) == {"src", "jobs", "README.md"}
    assert len(_rooms()) > 10 and "storage" in _rooms() and "progress" in _rooms()
