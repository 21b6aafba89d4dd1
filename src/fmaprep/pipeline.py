"""One audio file to one record: decode -> channel -> resample -> normalize -> mu-law.

This is what each Spark task maps over its files; it knows nothing about Spark. The signal steps
are the pure functions of :mod:`fmaprep.signal` and :mod:`fmaprep.resample`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from fmaprep.config import PipelineConfig
from fmaprep.decode import Decoded, get_decoder
from fmaprep.errors import TrackError
from fmaprep.resample import get_resampler
from fmaprep.signal import mu_law_encode, peak_normalize, pick_channel

# metadata carried from acquisition (_tracks.jsonl) into records and the manifest
METADATA_KEYS = ("title", "artist", "album", "genre", "split", "subset")


@dataclass(frozen=True)
class InputFile:
    """One input as the driver found it: where it is, how big, and what acquisition knew."""

    source: str  # absolute local path or URI, as the manifest reports it
    size: int
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def track_id(self) -> str:
        return track_id_for(self.source)


def track_id_for(source: str) -> str:
    """The input file's stem: FMA's ``000/000002.mp3`` is ``"000002"``."""
    name = source.rstrip("/").rsplit("/", 1)[-1]
    stem, _, _ = name.rpartition(".")
    return stem or name


def transform(decoded: Decoded, cfg: PipelineConfig) -> tuple[npt.NDArray[np.uint8], float]:
    """Decoded frames to mu-law codes; returns the codes and the normalization gain."""
    mono = pick_channel(decoded.frames, cfg.channel)
    resampled = get_resampler(cfg.resampler)(mono, decoded.sample_rate, cfg.sample_rate)
    if cfg.normalize == "peak":
        scaled, gain = peak_normalize(resampled)
    else:
        scaled, gain = resampled, 1.0
    return mu_law_encode(scaled, cfg.mu), gain


def local_path(source: str) -> str:
    """The path a worker opens for ``source``; only local files are readable here."""
    if source.startswith("file://"):
        return source[len("file://") :]
    if source.startswith("file:"):
        return source[len("file:") :]
    if "://" in source:
        raise TrackError(
            "read_failed", f"no reader for {source.split('://', 1)[0]}:// in this build"
        )
    return source


def process_file(
    item: InputFile, cfg: PipelineConfig
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Turn one input into (record or None, manifest line). Never raises for a bad file."""
    line: dict[str, Any] = {"track_id": item.track_id, "source": item.source, "status": "ok"}
    line.update(item.metadata)
    try:
        path = local_path(item.source)
        if not os.path.isfile(path):
            raise TrackError("read_failed", "file not found or not a regular file")
        decoded = get_decoder(cfg.decoder)(path)
        codes, gain = transform(decoded, cfg)
    except TrackError as exc:
        line.update(status="error", error=exc.manifest_text())
        return None, line
    except (MemoryError, ValueError, RuntimeError, OSError) as exc:
        # Anything a decoder library throws that we did not classify still must not kill the job.
        error = TrackError("decode_failed", f"{type(exc).__name__}: {exc}")
        line.update(status="error", error=error.manifest_text())
        return None, line
    line.update(
        source_sample_rate=decoded.sample_rate,
        source_channels=decoded.channels,
        duration_s=round(decoded.duration_s, 3),
        n_samples=int(codes.size),
        gain=float(gain),
    )
    record: dict[str, Any] = {
        "track_id": item.track_id,
        "source": item.source,
        "sample_rate": cfg.sample_rate,
        "mu": cfg.mu,
        "codes": codes,
        "source_sample_rate": decoded.sample_rate,
        "gain": float(gain),
    }
    record.update(item.metadata)
    return record, line
