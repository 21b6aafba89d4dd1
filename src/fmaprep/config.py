"""Typed pipeline configuration: defaults, then a TOML file, then CLI flags. Unknown keys fail."""

from __future__ import annotations

import dataclasses
import hashlib
import json
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


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message names it."""


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
        _validate(self, "pipeline", self._range_problems)

    def _range_problems(self) -> list[str]:
        problems = []
        if not 1000 <= self.sample_rate <= 48000:
            problems.append(f"sample_rate must be in 1000..48000 Hz, got {self.sample_rate}")
        problems += _choice_problem("channel", self.channel, get_args(ChannelName))
        problems += _choice_problem("normalize", self.normalize, get_args(Normalize))
        if not 1 <= self.mu <= 255:
            problems.append(f"mu must be in 1..255 (codes are uint8), got {self.mu}")
        problems += _choice_problem("decoder", self.decoder, get_args(DecoderName))
        problems += _choice_problem("resampler", self.resampler, get_args(ResamplerName))
        if not 0 <= self.min_duration_s < self.max_duration_s:
            problems.append("need 0 <= min_duration_s < max_duration_s")
        if not self.silence_db <= 0:
            problems.append(f"silence_db must be <= 0 dBFS, got {self.silence_db}")
        problems += _choice_problem("isolation", self.isolation, get_args(IsolationName))
        for name in ("max_file_mb", "timeout_s", "max_memory_mb"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)}")
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
        _validate(self, "job", self._range_problems)

    def _range_problems(self) -> list[str]:
        problems = []
        if self.partitions is not None and self.partitions < 1:
            problems.append(f"partitions must be >= 1, got {self.partitions}")
        if not self.target_partition_mb > 0:
            problems.append(f"target_partition_mb must be > 0, got {self.target_partition_mb}")
        problems += _choice_problem("format", self.format, get_args(OutputFormat))
        problems += _choice_problem("mode", self.mode, get_args(RerunMode))
        if not 0.0 <= self.max_error_rate <= 1.0:
            problems.append(f"max_error_rate must be in 0..1, got {self.max_error_rate}")
        return problems


@dataclass(frozen=True)
class Config:
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    job: JobConfig = field(default_factory=JobConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _choice_problem(name: str, value: object, choices: tuple[object, ...]) -> list[str]:
    if value in choices:
        return []
    return [f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}"]


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


def _validate(obj: object, section: str, range_problems: Callable[[], list[str]]) -> None:
    """Types first (a range check on a mistyped value would only confuse), then ranges; every
    problem on its own line."""
    problems = _type_problems(obj, section) or range_problems()
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
    return problems


def _build(cls: type[Any], section: str, values: dict[str, Any]) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) in [{section}]: {', '.join(unknown)}")
    if isinstance(values.get("extensions"), list):
        values = {**values, "extensions": tuple(values["extensions"])}
    if isinstance(values.get("spark_conf"), dict):  # Spark's values are strings; TOML may say 2
        values = {**values, "spark_conf": {
            k: _conf_string(v) for k, v in values["spark_conf"].items()}}  # fmt: skip
    return cls(**values)


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
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
    unknown = sorted(set(data) - {"pipeline", "job"})
    if unknown:
        raise ConfigError(f"unknown table(s) in {path}: {', '.join(unknown)}")
    pipeline = dict(data.get("pipeline", {}))
    job = dict(data.get("job", {}))
    pipeline.update({k: v for k, v in (pipeline_overrides or {}).items() if v is not None})
    job.update({k: v for k, v in (job_overrides or {}).items() if v is not None})
    problems = []
    built = []
    for cls, section, values in ((PipelineConfig, "pipeline", pipeline), (JobConfig, "job", job)):
        try:
            built.append(_build(cls, section, values))
        except ConfigError as exc:  # collected: one line per problem, of both tables
            problems.append(str(exc))
    if problems:
        raise ConfigError("\n".join(problems))
    return Config(*built)
