"""Typed pipeline configuration: defaults, then a TOML file, then CLI flags. Unknown keys fail."""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

Normalize = Literal["peak", "none"]
ChannelName = Literal["left", "right", "mix"]
OutputFormat = Literal["pickle", "parquet"]
RerunMode = Literal["error", "overwrite", "resume"]
# what --decoder / --resampler accept; fmaprep.audio implements each (tests check both agree)
DecoderName = Literal["soundfile", "ffmpeg", "pydub"]
ResamplerName = Literal["soxr", "resampy"]
# where a file is decoded: a killable child process of the worker (fmaprep.isolation), or in it
IsolationName = Literal["process", "none"]

AUDIO_EXTENSIONS = (".mp3", ".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".m4a")
# listing matches the lower-cased file name's ending, so anything else would match no file
_EXTENSION = re.compile(r"\.[a-z0-9][a-z0-9._+-]*")


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message names it."""


# Upper bounds (docs/inputs.md, "Limits"): a value the code could not honour (a deadline that
# overflows, an address-space cap over 2**64 bytes) is refused with the checks, not mid-job.
PIPELINE_MAXIMA = {
    "max_duration_s": 7 * 86400.0,  # a week of audio
    "max_file_mb": 1024 * 1024.0,  # 1 TiB
    "timeout_s": 86400.0,  # a day per file
    "max_memory_mb": 1024 * 1024.0,  # 1 TiB of address space
}
MAX_PARTITIONS = 1_000_000
MAX_PARTITION_MB = 64 * 1024.0
# how files are run, not what they become: left out of the resume fingerprint
_HOW_NOT_WHAT = ("isolation", "max_memory_mb")


@dataclass(frozen=True)
class PipelineConfig:
    """What turns one audio file into one record. Everything here goes into ``_stats.json``."""

    sample_rate: int = 8000
    channel: ChannelName = "left"
    normalize: Normalize = "peak"
    mu: int = 255
    decoder: DecoderName = "soundfile"
    resampler: ResamplerName = "soxr"
    # limits that turn pathological files into error lines instead of stuck or dead tasks
    min_duration_s: float = 0.25  # shorter: "too_short"
    silence_db: float = -60.0  # peak below this (dBFS, after resampling): "silent"
    max_duration_s: float = 6 * 3600.0  # longer: "unsupported"
    max_file_mb: float = 2048.0  # larger: "unsupported" (checked before reading)
    timeout_s: float = 900.0  # per file; past it (+5 s) the decode process is killed: "timeout"
    max_memory_mb: float = 4096.0  # what one file's decoding may add: "unsupported" / "crashed"
    isolation: IsolationName = "process"  # "none": decode in the Python worker itself

    def __post_init__(self) -> None:
        check_fields(self, "pipeline", self._range_problems)

    def _range_problems(self) -> list[str]:
        problems = []
        if not 1000 <= self.sample_rate <= 48000:
            problems.append(f"sample_rate must be in 1000..48000 Hz, got {self.sample_rate}")
        if not 1 <= self.mu <= 255:
            problems.append(f"mu must be in 1..255 (codes are uint8), got {self.mu}")
        if (
            not 0
            <= self.min_duration_s
            < min(self.max_duration_s, PIPELINE_MAXIMA["max_duration_s"])
        ):
            problems.append(
                f"min_duration_s must be >= 0 and below max_duration_s ({self.max_duration_s}),"
                f" got {self.min_duration_s}"
            )
        if not -400 <= self.silence_db <= 0:
            problems.append(f"silence_db must be in -400..0 dBFS, got {self.silence_db}")
        for name, top in PIPELINE_MAXIMA.items():
            if not 0 < getattr(self, name) <= top:
                problems.append(
                    f"{name} must be > 0 and at most {top:.0f}, got {getattr(self, name)}"
                )
        return problems

    def fingerprint(self, versions: dict[str, str] | None = None) -> str:
        """A short hash of what decides the codes: these settings and the library versions."""
        settings = dataclasses.asdict(self)
        for name in _HOW_NOT_WHAT:
            settings.pop(name)
        blob = json.dumps([settings, versions or {}], sort_keys=True).encode()
        return hashlib.sha1(blob).hexdigest()[:12]


@dataclass(frozen=True)
class JobConfig:
    """How the Spark job runs: where, with how many partitions, and what to do with OUTPUT."""

    master: str = "local[*]"
    partitions: int | None = None  # None: sized from the inputs' total bytes
    target_partition_mb: float = 64.0
    format: OutputFormat = "pickle"
    mode: RerunMode = "error"
    max_error_rate: float = 0.05
    dedupe: bool = False  # process identical files once; the others become "duplicate" lines
    s3_endpoint: str | None = None  # else $FMAPREP_S3_ENDPOINT, else conf/storage.toml, else AWS
    extensions: tuple[str, ...] = AUDIO_EXTENSIONS
    spark_conf: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_fields(self, "job", self._range_problems)

    def _range_problems(self) -> list[str]:
        problems = []
        if not self.master.strip():
            problems.append("master must not be empty (e.g. local[*] or yarn)")
        if self.partitions is not None and not 1 <= self.partitions <= MAX_PARTITIONS:
            problems.append(f"partitions must be in 1..{MAX_PARTITIONS}, got {self.partitions}")
        if not 0 < self.target_partition_mb <= MAX_PARTITION_MB:
            problems.append(f"target_partition_mb must be > 0 and at most {MAX_PARTITION_MB:g}, "
                            f"got {self.target_partition_mb}")  # fmt: skip
        if not 0.0 <= self.max_error_rate <= 1.0:
            problems.append(f"max_error_rate must be in 0..1, got {self.max_error_rate}")
        return problems + _extension_problems(self.extensions)


def _extension_problems(extensions: tuple[str, ...]) -> list[str]:
    if not extensions:
        return ["extensions must not be empty (no input would ever be listed)"]
    return [
        f"extensions entry {ext!r} must be a dot and a lower-case suffix, like '.mp3'"
        for ext in extensions
        if not _EXTENSION.fullmatch(ext)
    ]


@dataclass(frozen=True)
class Config:
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    job: JobConfig = field(default_factory=JobConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _type_name(hint: Any) -> str:
    if get_origin(hint) is Literal:
        return "one of " + ", ".join(map(str, get_args(hint)))
    if get_origin(hint) in (UnionType, Union):
        return " or ".join(_type_name(a) for a in get_args(hint))
    if hint is type(None):
        return "unset"
    if get_origin(hint) is tuple:
        return "a list of strings"
    if get_origin(hint) is dict:
        return "a table of strings"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(
        hint, str(hint)
    )


def _is_a(value: object, hint: Any) -> bool:
    """``value`` has the annotated type (TOML's and argparse's types; bool is not a number)."""
    origin = get_origin(hint)
    if origin is Literal:
        return value in get_args(hint)
    if origin in (UnionType, Union):
        return any(_is_a(value, arg) for arg in get_args(hint))
    if hint is type(None):
        return value is None
    if origin is tuple:
        return isinstance(value, tuple) and all(isinstance(v, str) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        )
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def check_fields(obj: object, section: str, range_problems: Callable[[], list[str]] = list) -> None:
    """The one config checker, for every typed table (``[pipeline]``, ``[job]``, and the
    storage settings' ``[s3]``): a frozen dataclass calls it from ``__post_init__``.

    Types first (a range check on a mistyped value would only confuse), then ranges; every
    problem on its own line, naming ``[section] key``. (A choice outside its Literal is a type
    problem, so ranges never see one.)"""
    problems = _type_problems(obj, section) or [f"[{section}] {p}" for p in range_problems()]
    if problems:
        raise ConfigError("\n".join(problems))


def _type_problems(obj: object, section: str) -> list[str]:
    hints = get_type_hints(type(obj))
    problems = []
    for f in dataclasses.fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        if not _is_a(value, hints[f.name]):
            problems.append(
                f"[{section}] {f.name} must be {_type_name(hints[f.name])}, got {value!r}"
            )
        elif isinstance(value, float) and not math.isfinite(value):
            # TOML and float() accept inf and nan; every comparison with nan is False and
            # int(inf) raises, so either would pass the range checks and fail mid-job
            problems.append(f"[{section}] {f.name} must be a finite number, got {value!r}")
    return problems


def build_table(cls: type[Any], section: str, values: dict[str, Any]) -> Any:
    """``cls`` from ``values``; an unknown key is one more problem line, beside those of the
    known keys (all of a table's mistakes are reported at once, not one per attempt)."""
    known = [f.name for f in dataclasses.fields(cls)]
    problems = [
        _unknown_key_problem(section, key, known) for key in sorted(set(values) - set(known))
    ]
    try:
        built = cls(**_coerced({k: v for k, v in values.items() if k in known}))
    except ConfigError as exc:
        problems += str(exc).splitlines()
    if problems:
        raise ConfigError("\n".join(problems))
    return built


def _unknown_key_problem(section: str, key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return f"[{section}] unknown key {key!r}" + (f" (did you mean {close[0]}?)" if close else "")


def _coerced(values: dict[str, Any]) -> dict[str, Any]:
    """TOML's spellings of the fields' types: a list for a tuple (the extensions), numbers and
    booleans in spark_conf."""
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    if isinstance(values.get("spark_conf"), dict):  # Spark's values are strings; TOML may say 2
        values = {**values, "spark_conf": {
            k: _conf_string(v) for k, v in values["spark_conf"].items()}}  # fmt: skip
    return values


def _conf_string(value: object) -> object:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value) if isinstance(value, (int, float)) else value


def load_config(
    path: str | Path | None = None,
    pipeline_overrides: dict[str, Any] | None = None,
    job_overrides: dict[str, Any] | None = None,
) -> Config:
    """Defaults, then the TOML file at ``path`` ([pipeline] and [job] tables), then overrides.

    Overrides whose value is None are ignored, so unset CLI flags keep the file's value.
    """
    tables, problems = read_tables(path, ("pipeline", "job")) if path is not None else ({}, [])
    built = []
    for cls, section, overrides in (
        (PipelineConfig, "pipeline", pipeline_overrides),
        (JobConfig, "job", job_overrides),
    ):
        table = tables.get(section, {})
        values = {**table, **{k: v for k, v in (overrides or {}).items() if v is not None}}
        try:
            built.append(build_table(cls, section, values))
        except ConfigError as exc:  # collected: one line per problem, of both tables
            problems.append(str(exc))
    if problems:
        raise ConfigError("\n".join(problems))
    return Config(*built)


def read_tables(
    path: str | Path, names: tuple[str, ...]
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The tables ``names`` of the TOML file at ``path`` (a missing one is empty), and a problem
    line for every other top-level name and for each of them that is not a table."""
    data = read_toml(path)
    tables = {name: data.get(name, {}) for name in names}
    known = ", ".join(f"[{name}]" for name in names)
    unknown = sorted(set(data) - set(names))
    problems = [f"unknown table [{name}] (known: {known})" for name in unknown]
    for name, table in tables.items():
        if not isinstance(table, dict):  # `pipeline = 3` instead of a [pipeline] table
            problems.append(f"[{name}] must be a table, got {table!r}")
            tables[name] = {}
    return tables, problems


def read_toml(path: str | Path) -> dict[str, Any]:
    try:
        return tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
