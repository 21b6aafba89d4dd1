"""mkdocs hook: the reference pages and tables that are generated from the code at build time, so
they cannot disagree with it (mkdocs.yml names this file under ``hooks:``).

- ``reference/cli.md``: every subcommand of ``fmaprep.cli.build_parser()``, every option, its
  values and its default (for an option that sets a config key, the typed config's default);
- ``reference/config.md``: every key of the ``[pipeline]`` and ``[job]`` tables of
  ``fmaprep.config``, with its type, its range (the config's own error messages, found by
  giving each key out-of-range values), its default, the flag that sets it and its comment;
- in any page, ``<!-- generated: rooms -->`` (the packages of ``src/fmaprep`` and the first
  paragraph of each docstring) and ``<!-- generated: import-contracts -->`` (pyproject.toml's
  ``[tool.importlinter]`` contracts).

Nothing here fetches anything: it reads the source tree and imports fmaprep.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import io
import tokenize
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

from fmaprep import config as cfg
from fmaprep.cli import SUBCOMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[2]
CLI_PAGE = "reference/cli.md"
CONFIG_PAGE = "reference/config.md"
SECTIONS: tuple[tuple[str, type[Any]], ...] = (
    ("pipeline", cfg.PipelineConfig),
    ("job", cfg.JobConfig),
)
# probes that a range check refuses, by the field's type: each failing one gives the key's rule
_PROBES: dict[Any, tuple[Any, ...]] = {
    int: (-(10**9), 0, 10**9),
    float: (-1e18, 0.0, 1e18),
    str: ("", " "),
    tuple: ((), ("BAD",)),
}


# ------------------------------------------------------------------------------ mkdocs events
def on_files(files: Files, config: MkDocsConfig) -> Files:
    files.append(File.generated(config, CLI_PAGE, content=cli_markdown()))
    files.append(File.generated(config, CONFIG_PAGE, content=config_markdown()))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    markdown = markdown.replace("<!-- generated: rooms -->", rooms_markdown())
    return markdown.replace("<!-- generated: import-contracts -->", contracts_markdown())


# ------------------------------------------------------------------------------ helpers
def _cell(text: object) -> str:
    """A value as one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{text}`" if text else ""


def _toml(value: Any) -> str:
    """A default as it would be written in the config file."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "[" + ", ".join(f'"{v}"' for v in value) + "]"
    if isinstance(value, dict):
        return "{}" if not value else str(value)
    return str(value)


def config_defaults() -> dict[str, Any]:
    """Every config key (both tables share no key) and its default."""
    defaults = {}
    for _, cls in SECTIONS:
        for name, value in dataclasses.asdict(cls()).items():
            defaults[name] = value
    return defaults


# ------------------------------------------------------------------------------ CLI reference
def subcommand_parsers() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    parser = build_parser()
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name in SUBCOMMANDS:
        yield name, sub.choices[name]


def option_rows(
    parser: argparse.ArgumentParser, defaults: dict[str, Any]
) -> Iterator[tuple[str, str, str, str]]:
    """(option, values, default, meaning) for every argument but --help."""
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        if action.option_strings:
            name = ", ".join(f"`{o}`" for o in action.option_strings)
        else:
            name = _code(action.metavar if isinstance(action.metavar, str) else action.dest)
        if action.choices is not None:
            values = " \\| ".join(f"`{c}`" for c in action.choices)
        elif action.nargs == 0:
            values = "(a switch)"
        elif isinstance(action.metavar, str) and action.option_strings:
            values = _code(action.metavar)
        else:
            values = ""
        if action.dest in defaults:  # it sets a config key: the typed config's default
            default = _code(_toml(defaults[action.dest]))
        elif not action.option_strings:
            default = "required" if action.nargs not in ("?", "*") else ""
        elif action.nargs == 0 or action.default in (None, [], argparse.SUPPRESS):
            default = ""
        else:
            default = _code(str(action.default))
        yield name, values, default, _cell(action.help or "")


def cli_markdown() -> str:
    defaults = config_defaults()
    top = build_parser(only=SUBCOMMANDS[0])
    lines = [
        "# Command-line reference",
        "",
        "Generated from the argparse parsers of `src/fmaprep/cli/` when the site is built, so",
        "it lists every subcommand and every option with its default. For an option that sets",
        "a config key the default is the [typed config's](config.md).",
        "",
        "## `fmaprep`",
        "",
        "```text",
        top.format_usage().strip(),
        "```",
        "",
        _cell(top.description or ""),
        "",
        "| option | values | default | meaning |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {' | '.join(row)} |" for row in option_rows(top, {})]
    for name, parser in subcommand_parsers():
        lines += [
            "",
            f"## `fmaprep {name}`",
            "",
            _cell(parser.description or ""),
            "",
            "```text",
            parser.format_usage().strip(),
            "```",
            "",
            "| option | values | default | meaning |",
            "| --- | --- | --- | --- |",
        ]
        lines += [f"| {' | '.join(row)} |" for row in option_rows(parser, defaults)]
        if parser.epilog:
            lines += ["", "```text", parser.epilog.strip("\n"), "```"]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ config reference
def field_comments(cls: type[Any]) -> dict[str, str]:
    """The comment at the end of each field's line in the dataclass's source."""
    source = Path(cfg.__file__).read_text()
    tree = ast.parse(source)
    (node,) = (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
    lines_of = {
        stmt.lineno: stmt.target.id
        for stmt in node.body
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
    }
    comments = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT and tok.start[0] in lines_of:
            comments[lines_of[tok.start[0]]] = tok.string.lstrip("#").strip()
    return comments


def range_rules(section: str, cls: type[Any], name: str, hint: Any) -> list[str]:
    """The key's rules, in the config's own words: what it says about out-of-range values."""
    base = hint
    if get_origin(hint) in (UnionType, Union):  # `int | None`: probe the int
        base = next(a for a in get_args(hint) if a is not type(None))
    probes = _PROBES.get(get_origin(base) or base, ())
    if base is bool or get_origin(base) is Literal:
        return []
    rules: list[str] = []
    prefix = f"[{section}] {name} "
    for probe in probes:
        try:
            cls(**{name: probe})
        except cfg.ConfigError as exc:
            for line in str(exc).splitlines():
                if not line.startswith(prefix):
                    continue
                rule = line[len(prefix) :].rsplit(", got ", 1)[0]
                if isinstance(probe, tuple):
                    for item in probe:
                        rule = rule.replace(f"entry {item!r}", "each entry")
                if rule not in rules:
                    rules.append(rule)
    return rules


def flag_for(key: str) -> argparse.Action | None:
    """The ``fmaprep preprocess`` option that sets config key ``key`` (its dest is the key)."""
    parser = dict(subcommand_parsers())["preprocess"]
    for action in parser._actions:
        if action.dest == key and action.option_strings:
            return action
    return None


def config_markdown() -> str:
    lines = [
        "# Configuration reference",
        "",
        "Generated from the typed config (`src/fmaprep/config.py`) when the site is built. A",
        "config file (`fmaprep preprocess ... --config FILE.toml`) has a `[pipeline]` and a",
        "`[job]` table; `conf/pipeline.toml` holds the defaults. Flags override the file,",
        "unknown keys are an error, and every value is checked for its type and range before",
        "Spark starts: one `fmaprep:` line per problem, and exit 2. The range column is the",
        "config's own error message for a value out of range.",
    ]
    for section, cls in SECTIONS:
        hints = get_type_hints(cls)
        comments = field_comments(cls)
        defaults = dataclasses.asdict(cls())
        lines += [
            "",
            f"## `[{section}]`",
            "",
            _cell((cls.__doc__ or "").strip()),
            "",
            "| key | type | range | default | flag | meaning |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for f in dataclasses.fields(cls):
            rules = "; ".join(range_rules(section, cls, f.name, hints[f.name]))
            flag = flag_for(f.name)
            meaning = comments.get(f.name) or (flag.help if flag else "") or ""
            lines.append(
                f"| `{f.name}` | {_cell(cfg._type_name(hints[f.name]))} | {_cell(rules)} "
                f"| `{_cell(_toml(defaults[f.name]))}` "
                f"| {_code(flag.option_strings[-1] if flag else '')} | {_cell(meaning)} |"
            )
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ architecture
def _first_paragraph(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return " ".join(doc.split("\n\n")[0].split())


def rooms_markdown() -> str:
    package = ROOT / "src" / "fmaprep"
    rows = []
    for path in sorted(package.iterdir()):
        if path.is_dir() and (path / "__init__.py").is_file():
            rows.append((f"`fmaprep.{path.name}`", _first_paragraph(path / "__init__.py")))
        elif path.suffix == ".py" and not path.name.startswith("__"):
            rows.append((f"`fmaprep.{path.stem}`", _first_paragraph(path)))
    lines = ["| room | what it is for |", "| --- | --- |"]
    lines += [f"| {name} | {_cell(doc)} |" for name, doc in rows]
    return "\n".join(lines)


def contracts_markdown() -> str:
    linter = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    lines = []
    for contract in linter["contracts"]:
        lines.append(f"- **{_cell(contract['name'])}**")
        if contract["type"] == "layers":
            lines.append("  (each layer may import only the layers below it):")
            lines.append("")
            lines += [f"    {i}. `{layer}`" for i, layer in enumerate(contract["layers"], 1)]
        elif contract["type"] == "forbidden":
            sources = ", ".join(f"`{m}`" for m in contract["source_modules"])
            forbidden = ", ".join(f"`{m}`" for m in contract["forbidden_modules"])
            lines.append(f"  : {sources} never import {forbidden}.")
        else:
            lines.append(f"  ({contract['type']} contract)")
        lines.append("")
    return "\n".join(lines)
