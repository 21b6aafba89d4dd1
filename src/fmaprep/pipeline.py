"""One audio file to one record: decode -> channel -> resample -> normalize -> mu-law.

This is what each Spark task maps over its files; it knows nothing about Spark, storage or paths
beyond the one local file it opens. The signal steps are the pure functions of
:mod:`fmaprep.audio.signal` and :mod:`fmaprep.audio.resample`, applied block by block so that
memory stays bounded by the 8 kHz output, not the decoded input. Imports ``audio``, ``config``
and ``model`` only (no pyspark, no boto3: the worker path stays lean).
"""

from __future__ import annotations

import math
import os
import resource
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from fmaprep.audio.decode import OPENERS
from fmaprep.audio.mp3info import read_mp3_info
from fmaprep.audio.resample import StreamResampler
from fmaprep.audio.signal import apply_gain, mu_law_encode_f32, peak_gain, pick_channel
from fmaprep.config import PipelineConfig
from fmaprep.model import InputFile, TrackError

# decoded less than this share of what the container declares: the file was cut short
TRUNCATED_RATIO = 0.9


@dataclass(frozen=True)
class Transformed:
    codes: npt.NDArray[np.uint8]
    gain: float
    input_frames: int
    peak: float


def transform_blocks(
    blocks: Iterable[npt.NDArray[np.float32]],
    sample_rate: int,
    cfg: PipelineConfig,
    deadline: float = math.inf,
) -> Transformed:
    """Frames arriving in blocks to mu-law codes, with the checks that make a bad file an error.

    Only the resampled mono signal is kept (4 bytes per output sample) until the peak is known.
    """
    resampler = StreamResampler(cfg.resampler, sample_rate, cfg.sample_rate)
    max_frames = cfg.max_duration_s * sample_rate
    chunks: list[npt.NDArray[np.float32]] = []
    n_in = 0
    for block in blocks:
        if time.monotonic() > deadline:
            raise TrackError("timeout", f"not decoded within {cfg.timeout_s:g} s")
        n_in += len(block)
        if n_in > max_frames:
            raise TrackError("unsupported", f"longer than max_duration_s={cfg.max_duration_s:g}")
        chunks.append(resampler.process(pick_channel(block, cfg.channel)))
    chunks.append(resampler.process(np.zeros(0, dtype=np.float32), last=True))
    if n_in == 0:
        raise TrackError("empty", "decoded to 0 samples")
    if n_in < cfg.min_duration_s * sample_rate:
        raise TrackError(
            "too_short", f"{n_in / sample_rate:.3f} s < min_duration_s={cfg.min_duration_s:g}"
        )
    peak = max((float(np.max(np.abs(c))) for c in chunks if c.size), default=0.0)
    if not math.isfinite(peak):
        raise TrackError("decode_failed", "decoder produced NaN/inf samples")
    if peak <= 10 ** (cfg.silence_db / 20):
        level = f"{20 * math.log10(peak):.1f} dBFS" if peak > 0 else "digital silence"
        raise TrackError("silent", f"peak {level} is below {cfg.silence_db:g} dBFS")
    gain = peak_gain(peak) if cfg.normalize == "peak" else 1.0
    codes = np.empty(sum(c.size for c in chunks), dtype=np.uint8)
    pos = 0
    for i, chunk in enumerate(chunks):
        codes[pos : pos + chunk.size] = mu_law_encode_f32(apply_gain(chunk, gain), cfg.mu)
        pos += chunk.size
        chunks[i] = chunk[:0]  # free the float block as soon as it is encoded
    return Transformed(codes, gain, n_in, peak)


def _encode(item: InputFile, cfg: PipelineConfig, line: dict[str, Any], path: str) -> Transformed:
    if "://" in path:
        raise TrackError("read_failed", f"no local path for {path.split('://', 1)[0]}:// here")
    if not os.path.isfile(path):
        raise TrackError("read_failed", "file not found or not a regular file")
    size_mb = os.path.getsize(path) / 1e6
    if size_mb > cfg.max_file_mb:
        raise TrackError("unsupported", f"{size_mb:.0f} MB is over max_file_mb={cfg.max_file_mb:g}")
    deadline = time.monotonic() + cfg.timeout_s
    stream = OPENERS[cfg.decoder](path)
    line.update(source_sample_rate=stream.sample_rate, source_channels=stream.channels)
    out = transform_blocks(stream.blocks, stream.sample_rate, cfg, deadline)
    declared = stream.declared_frames
    if declared is None and path.lower().endswith(".mp3"):
        info = read_mp3_info(path)
        if info is not None and info.sample_rate == stream.sample_rate:
            declared = info.declared_frames
    if declared and out.input_frames < TRUNCATED_RATIO * declared:
        raise TrackError(
            "truncated",
            f"decoded {out.input_frames / stream.sample_rate:.1f} s of the "
            f"{declared / stream.sample_rate:.1f} s the file declares",
        )
    line.update(duration_s=round(out.input_frames / stream.sample_rate, 3))
    return out


def base_line(item: InputFile) -> dict[str, Any]:
    """The manifest line every input starts with (status ok until something fails)."""
    line: dict[str, Any] = {"track_id": item.track_id, "source": item.source, "status": "ok"}
    # what --mode resume compares to tell an unchanged input from a replaced one
    line.update(bytes=item.size, mtime=item.mtime, identity=item.identity())
    line.update(item.metadata)
    return line


def failed_line(item: InputFile, error: TrackError) -> dict[str, Any]:
    """The manifest line of an input that failed before the pipeline saw it (a read, a limit)."""
    return {**base_line(item), "status": "error", "error": error.manifest_text()}


def _out_of_memory(cfg: PipelineConfig) -> TrackError:
    """Which limit a MemoryError ran into: the address-space limit (RLIMIT_AS) that the decode
    process sets from ``max_memory_mb``, or that Spark sets from spark.executor.pyspark.memory."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return TrackError(
            "unsupported", "ran out of memory (no address-space limit: the machine's)"
        )
    limit = f"{soft / 2**20:.0f} MB"
    return TrackError("unsupported", f"ran out of memory at its {limit} address-space limit "
                      f"(max_memory_mb={cfg.max_memory_mb:g} over the decode process's start, "
                      "or spark.executor.pyspark.memory)")  # fmt: skip


def process_file(
    item: InputFile, cfg: PipelineConfig, path: str | None = None
) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """Turn one input into (record or None, manifest line). Never raises for a bad file.

    ``path`` is where the bytes are, when not at ``item.source`` itself.
    """
    line = base_line(item)
    try:
        out = _encode(item, cfg, line, path or item.source)
    except TrackError as exc:
        line.update(status="error", error=exc.manifest_text())
        return None, line
    except MemoryError:  # over the decode process's cap (fmaprep.isolation), or the machine's
        line.update(status="error", error=_out_of_memory(cfg).manifest_text())
        return None, line
    except Exception as exc:  # the per-file boundary: whatever a file causes is its manifest line
        # (struct.error, TypeError, IndexError, a library's own class...); only a deliberate
        # interrupt (KeyboardInterrupt, SystemExit: BaseException) ends the task
        error = TrackError("decode_failed", f"{type(exc).__name__}: {exc}")
        line.update(status="error", error=error.manifest_text())
        return None, line
    line.update(n_samples=int(out.codes.size), gain=float(out.gain))
    record: dict[str, Any] = {
        "track_id": item.track_id,
        "source": item.source,
        "sample_rate": cfg.sample_rate,
        "mu": cfg.mu,
        "codes": out.codes,
        "source_sample_rate": line["source_sample_rate"],
        "gain": float(out.gain),
    }
    record.update(item.metadata)
    return record, line
