"""Every path, module, script and command that README.md and the docs name, in code spans and
code blocks, exists: `src/...`, `scripts/x.sh`, `tests/...`, `fmaprep.x.y` (a module, or a name
in one), `.venv/bin/x`, and `fmaprep SUBCOMMAND`."""

from __future__ import annotations

import importlib
import importlib.util
import re
from pathlib import Path

import pytest

from fmaprep.cli import SUBCOMMANDS

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
TOP = ("src", "scripts", "tests", "docs", "conf", "bootstrap", "jobs", "benchmarks", "examples")
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
_SPAN = re.compile(r"`([^`\n]+)`")
_PATH = re.compile(rf"(?<![\w./$-])((?:{'|'.join(TOP)})/[\w./-]*)")
_MODULE = re.compile(r"(?<![\w./-])(fmaprep(?:\.[A-Za-z_]\w*)+)")
_VENV_BIN = re.compile(r"\.venv/bin/([\w.-]+)")
_PLACEHOLDER = re.compile(r"/[A-Z][A-Z_]*(?:[./]|$)")  # docs/PAGE.md, s3://BUCKET/...
_COMMAND = re.compile(r"(?:^|[\s/(])fmaprep ([a-z][a-z-]*)")


def code_of(text: str) -> str:
    """The code blocks and code spans of a Markdown page."""
    blocks = [m.group(0) for m in _FENCE.finditer(text)]
    prose = _FENCE.sub("", text)
    return "\n".join([*blocks, *(m.group(1) for m in _SPAN.finditer(prose))])


def names(page: Path) -> dict[str, set[str]]:
    code = code_of(page.read_text())
    return {
        "path": {p.rstrip("./") for p in _PATH.findall(code) if not _PLACEHOLDER.search(p)},
        "module": set(_MODULE.findall(code)),
        "venv": set(_VENV_BIN.findall(code)),
        "command": set(_COMMAND.findall(code)),
    }


def module_exists(dotted: str) -> bool:
    """``dotted`` is a module, or a name defined in one (``fmaprep.read_records``)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        try:
            found = importlib.util.find_spec(module_name) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            obj: object = importlib.import_module(module_name)
            for attr in parts[cut:]:
                if not hasattr(obj, attr):
                    return False
                obj = getattr(obj, attr)
            return True
    return False


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_named_path_module_script_and_command_exists(page: Path) -> None:
    found = names(page)
    missing = [f"path {p}" for p in sorted(found["path"]) if not (ROOT / p).exists()]
    missing += [f"module {m}" for m in sorted(found["module"]) if not module_exists(m)]
    missing += [
        f".venv/bin/{b}" for b in sorted(found["venv"]) if not (ROOT / ".venv" / "bin" / b).exists()
    ]
    missing += [f"fmaprep {c}" for c in sorted(found["command"]) if c not in SUBCOMMANDS]
    assert not missing, f"{page.relative_to(ROOT)} names what does not exist: {missing}"


def test_the_check_finds_what_is_missing(tmp_path: Path) -> None:
    """The parser sees names in spans and blocks, and a made-up one fails."""
    text = (
        "Run `scripts/nope.sh` or `fmaprep.storage.hadoop_fs`, see `tests/test_yarn.py`.\n"
        "```bash\n.venv/bin/fmaprep frobnicate build/x\n.venv/bin/nothere\n```\n"
        "`docs/PAGE.md` is a placeholder.\n"
        "Prose about fmaprep frobnicate and src/nowhere.py is not code.\n"
    )
    page = tmp_path / "page.md"
    page.write_text(text)
    found = names(page)
    assert found["path"] == {"scripts/nope.sh", "tests/test_yarn.py"}
    assert found["module"] == {"fmaprep.storage.hadoop_fs"}
    assert not module_exists("fmaprep.storage.hadoop_fs")
    assert module_exists("fmaprep.read_records") and module_exists("fmaprep.storage.uris")
    assert found["command"] == {"frobnicate"}
    assert found["venv"] == {"fmaprep", "nothere"}
