"""Typed pipeline configuration: defaults, then a TOML file, then CLI flags. Unknown keys fail."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

Normalize = Literal["peak", "none"]
ChannelName = Literal["left", "right", "mix"]
OutputFormat = Literal["pickle", "parquet"]
RerunMode = Literal["error", "overwrite", "resume"]
# what --decoder / --resampler accept; fmaprep.audio implements each (tests check both agree)
DecoderName = Literal["soundfile", "ffmpeg", "pydub"]
ResamplerName = Literal["soxr", "resampy"]

AUDIO_EXTENSIONS = (".mp3", ".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".m4a")


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message names it."""


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
    timeout_s: float = 900.0  # per file, checked between decoded blocks: "timeout"

    def __post_init__(self) -> None:
        if not 1000 <= self.sample_rate <= 48000:
            raise ConfigError(f"sample_rate must be in 1000..48000 Hz, got {self.sample_rate}")
        _check_choice("channel", self.channel, get_args(ChannelName))
        _check_choice("normalize", self.normalize, get_args(Normalize))
        if not 1 <= self.mu <= 255:
            raise ConfigError(f"mu must be in 1..255 (codes are uint8), got {self.mu}")
        _check_choice("decoder", self.decoder, get_args(DecoderName))
        _check_choice("resampler", self.resampler, get_args(ResamplerName))
        if self.min_duration_s < 0 or self.max_duration_s <= self.min_duration_s:
            raise ConfigError("need 0 <= min_duration_s < max_duration_s")
        if self.silence_db > 0:
            raise ConfigError(f"silence_db must be <= 0 dBFS, got {self.silence_db}")
        if self.max_file_mb <= 0 or self.timeout_s <= 0:
            raise ConfigError("max_file_mb and timeout_s must be > 0")

    def fingerprint(self, versions: dict[str, str] | None = None) -> str:
        """A short hash of what decides the codes: these settings and the library versions."""
        blob = json.dumps([dataclasses.asdict(self), versions or {}], sort_keys=True).encode()
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
        if self.partitions is not None and self.partitions < 1:
            raise ConfigError(f"partitions must be >= 1, got {self.partitions}")
        if self.target_partition_mb <= 0:
            raise ConfigError("target_partition_mb must be > 0")
        _check_choice("format", self.format, get_args(OutputFormat))
        _check_choice("mode", self.mode, get_args(RerunMode))
        if not 0.0 <= self.max_error_rate <= 1.0:
            raise ConfigError(f"max_error_rate must be in 0..1, got {self.max_error_rate}")


@dataclass(frozen=True)
class Config:
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    job: JobConfig = field(default_factory=JobConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _check_choice(name: str, value: object, choices: tuple[object, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")


def _build(cls: type[Any], section: str, values: dict[str, Any]) -> Any:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) in [{section}]: {', '.join(unknown)}")
    if "extensions" in values:
        values = {**values, "extensions": tuple(values["extensions"])}
    try:
        return cls(**values)
    except TypeError as exc:
        raise ConfigError(f"[{section}]: {exc}") from exc


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
    return Config(_build(PipelineConfig, "pipeline", pipeline), _build(JobConfig, "job", job))
