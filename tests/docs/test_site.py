"""The documentation site: it builds strictly from the files a fresh clone has, with no network;
its nav holds every page; its generated references hold every option and config key; and the
CLI's help points into it."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from fresh_clone import clone_files

from fmaprep.cli import SUBCOMMANDS, main
from fmaprep.config import JobConfig, PipelineConfig

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
GENERATED = {"reference/cli.md", "reference/config.md"}  # written by docs/hooks/reference.py


def load_hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_reference", DOCS / "hooks" / "reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nav_pages() -> list[str]:
    class Loader(yaml.SafeLoader):
        pass

    # mkdocs.yml names a Python function for mermaid fences: not needed to read the nav
    Loader.add_multi_constructor("tag:yaml.org,2002:python/name:", lambda *_: None)
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)

    def walk(node: Any) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, list):
            return [page for item in node for page in walk(item)]
        if isinstance(node, dict):
            return [page for value in node.values() for page in walk(value)]
        return []

    return walk(config["nav"])


@pytest.mark.slow
def test_site_builds_strictly_from_a_fresh_clone_without_network(tmp_path: Path) -> None:
    clone = clone_files(tmp_path / "clone")
    site = str(tmp_path / "site")
    build = [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", site]
    # no network at all while building (a network namespace with only a loopback that is down),
    # where this machine lets us make one (root on Linux); otherwise build with the network
    isolated = shutil.which("unshare") and subprocess.run(
        ["unshare", "--net", "true"], capture_output=True, check=False
    ).returncode == 0  # fmt: skip
    command = ["unshare", "--net", *build] if isolated else build
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        command, cwd=clone, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    for page in ("index.html", "reference/cli.html", "reference/config.html", "commit.html"):
        assert (tmp_path / "site" / page).is_file(), page
    cli = (tmp_path / "site" / "reference" / "cli.html").read_text()
    assert "--sample-rate" in cli and "fmaprep package-env" in cli


def test_every_page_is_in_the_nav() -> None:
    in_nav = set(nav_pages())
    pages = {
        p.relative_to(DOCS).as_posix()
        for p in DOCS.rglob("*.md")
        if "hooks" not in p.relative_to(DOCS).parts
    }
    missing = sorted(pages - in_nav)
    assert not missing, (
        f"pages not in mkdocs.yml's nav: {', '.join(missing)}. Add each as one line, "
        "`- Title: page.md`, under its task in `nav:` (the `# SLOT` comments mark the places "
        "kept for the scraper, inputs, multi-host cluster and training pages)"
    )
    dangling = sorted(in_nav - pages - GENERATED)
    assert not dangling, f"mkdocs.yml's nav names pages that do not exist: {dangling}"


def _help(*args: str) -> str:
    """What ``fmaprep [ARGS] --help`` prints (the real entry point, in this process)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as exited:
        main([*args, "--help"])
    assert exited.value.code == 0
    return out.getvalue()


def test_cli_reference_lists_every_option_of_every_subcommand() -> None:
    """Every option the real ``--help`` shows is in the generated page, under its command."""
    page = load_hook().cli_markdown()
    sections = dict(
        (m.group(1), m.group(2))
        for m in re.finditer(r"^## `fmaprep ([a-z-]+)`\n(.*?)(?=^## |\Z)", page, re.M | re.S)
    )
    assert set(sections) == set(SUBCOMMANDS)
    for name in SUBCOMMANDS:
        options = set()
        for line in _help(name).splitlines():
            if line.startswith("  -"):  # an option's line: its invocation, then its help
                invocation = re.split(r"\s{2,}", line.strip())[0]
                options |= set(re.findall(r"--[a-z][a-z0-9-]*", invocation))
        options.discard("--help")
        assert options, name
        missing = [o for o in sorted(options) if f"`{o}`" not in sections[name]]
        assert not missing, f"fmaprep {name}: {missing} not in the CLI reference"


def test_config_reference_lists_every_key_with_its_default() -> None:
    hook = load_hook()
    page = hook.config_markdown()
    for cls in (PipelineConfig, JobConfig):
        for field in dataclasses.fields(cls):
            default = hook._toml(getattr(cls(), field.name))
            rows = [line for line in page.splitlines() if line.startswith(f"| `{field.name}`")]
            row = rows[0] if rows else ""
            assert row, f"{field.name} is not in the configuration reference"
            assert f"`{default}`" in row, row
    # ranges come from the config's own checks, so a check's rule shows up
    assert "must be in 1000..48000 Hz" in page
    assert "must be in 0..1" in page


def test_help_defaults_agree_with_the_typed_config() -> None:
    """A help text that says "(default X)" for an option that sets a config key says the config's
    default, not one copied by hand that has since changed."""
    hook = load_hook()
    defaults = hook.config_defaults()
    parser = dict(hook.subcommand_parsers())["preprocess"]
    wrong = []
    for action in parser._actions:
        match = re.search(r"\(default ([^)]*)\)", action.help or "")
        if action.dest in defaults and match:
            said = match.group(1).split(", ")[0]
            value = defaults[action.dest]
            expected = ",".join(value) if isinstance(value, tuple) else str(value)
            if said != expected:
                wrong.append(f"{action.option_strings[-1]} says {said!r}, the config {expected!r}")
    assert not wrong, wrong


@pytest.mark.parametrize("command", [(), *[(name,) for name in SUBCOMMANDS]])
def test_help_is_short_and_names_its_docs_page(command: tuple[str, ...]) -> None:
    text = _help(*command)
    assert len(text.splitlines()) <= 80, f"fmaprep {' '.join(command)} --help is long"
    pages = re.findall(r"docs/[a-z0-9/_-]+\.md", text)
    assert pages, f"fmaprep {' '.join(command)} --help names no docs page"
    for page in pages:
        assert (ROOT / page).is_file(), page


def test_default_config_file_holds_the_typed_defaults() -> None:
    """conf/pipeline.toml says it holds the built-in defaults: it does."""
    import tomllib

    data = tomllib.loads((ROOT / "conf" / "pipeline.toml").read_text())
    for section, cls in (("pipeline", PipelineConfig), ("job", JobConfig)):
        built = dataclasses.asdict(cls())
        for key, value in data.get(section, {}).items():
            assert built[key] == value, f"conf/pipeline.toml [{section}] {key} = {value!r}"
