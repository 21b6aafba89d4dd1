"""Decoders: an audio file in, float32 frames out (shape ``(n_frames, channels)``, full scale 1.0).

Three implementations behind one signature, chosen with ``--decoder``:
- ``soundfile``: in-process libsndfile (mpg123 for mp3); the fastest, the default.
- ``pydub``: the original design: pydub's AudioSegment, ffmpeg writing a wav tempfile.
- ``ffmpeg``: ffmpeg decoding straight into a pipe (float32 wav), no tempfile.
ffmpeg is the static binary from imageio-ffmpeg, so nothing has to be on the machine.
"""

from __future__ import annotations

import os
import struct
import subprocess
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from fmaprep.errors import TrackError


@dataclass(frozen=True)
class Decoded:
    frames: npt.NDArray[np.float32]  # (n_frames, channels)
    sample_rate: int

    @property
    def channels(self) -> int:
        return int(self.frames.shape[1])

    @property
    def duration_s(self) -> float:
        return self.frames.shape[0] / self.sample_rate if self.sample_rate else 0.0


Decoder = Callable[[str], Decoded]

# Bytes that mark a file as text rather than audio, for a clearer reason than "decode failed".
_TEXT_MARKERS = (b"<!doctype", b"<html", b"<?xml", b"{", b"<head", b"<body")


def _check_not_empty_or_text(path: str) -> None:
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as exc:
        raise TrackError("read_failed", f"{exc.strerror or exc}") from exc
    if size == 0:
        raise TrackError("empty", "file has 0 bytes")
    if head.lstrip().lower().startswith(_TEXT_MARKERS):
        raise TrackError("not_audio", "file holds text/HTML, not audio")


def _validated(frames: npt.NDArray[np.float32], sample_rate: int) -> Decoded:
    if frames.ndim == 1:
        frames = frames[:, None]
    if frames.shape[0] == 0:
        raise TrackError("empty", "decoded to 0 samples")
    if not 1 <= sample_rate <= 384_000:
        raise TrackError("unsupported", f"sample rate {sample_rate} Hz")
    return Decoded(np.ascontiguousarray(frames, dtype=np.float32), int(sample_rate))


def decode_soundfile(path: str) -> Decoded:
    import soundfile as sf

    _check_not_empty_or_text(path)
    try:
        frames, sample_rate = sf.read(path, dtype="float32", always_2d=True)
    except sf.LibsndfileError as exc:
        text = str(exc)
        reason = (
            "not_audio" if "not recognised" in text or "unknown format" in text else "decode_failed"
        )
        raise TrackError(reason, f"libsndfile: {text}") from exc
    except (RuntimeError, ValueError) as exc:
        raise TrackError("decode_failed", f"libsndfile: {exc}") from exc
    return _validated(frames, sample_rate)


def ffmpeg_exe() -> str:
    """The ffmpeg binary: $FMAPREP_FFMPEG if set, else imageio-ffmpeg's bundled static build."""
    explicit = os.environ.get("FMAPREP_FFMPEG")
    if explicit:
        return explicit
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def parse_wav(data: bytes) -> Decoded:
    """Parse a RIFF/WAVE stream from a pipe (whose size fields may be bogus) into frames.

    Understands PCM 8/16/24/32-bit and IEEE float 32/64-bit, which is all ffmpeg writes for us.
    """
    if len(data) < 12 or data[:4] not in (b"RIFF", b"RF64") or data[8:12] != b"WAVE":
        raise TrackError("decode_failed", "ffmpeg produced no wav stream")
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = pos + 8
        if chunk_id == b"fmt ":
            tag, channels, rate = struct.unpack_from("<HHI", data, body)
            (bits,) = struct.unpack_from("<H", data, body + 14)
            if tag == 0xFFFE:  # WAVE_FORMAT_EXTENSIBLE: the real tag opens the sub-format GUID
                (tag,) = struct.unpack_from("<H", data, body + 24)
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                break
            payload = data[body:]  # to the end: piped wav has no trustworthy size
            return _validated(_pcm_to_float(payload, *fmt), fmt[2])
        pos = body + size + (size & 1)
    raise TrackError("decode_failed", "wav stream has no fmt/data chunk")


def _pcm_to_float(
    payload: bytes, tag: int, channels: int, rate: int, bits: int
) -> npt.NDArray[np.float32]:
    del rate
    width = bits // 8
    usable = len(payload) - len(payload) % (width * channels)
    raw = payload[:usable]
    if tag == 3 and bits in (32, 64):
        samples = np.frombuffer(raw, dtype="<f4" if bits == 32 else "<f8").astype(np.float32)
    elif tag == 1 and bits == 8:
        samples = (np.frombuffer(raw, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif tag == 1 and bits in (16, 32):
        dtype = "<i2" if bits == 16 else "<i4"
        samples = np.frombuffer(raw, dtype=dtype).astype(np.float32) / float(2 ** (bits - 1))
    elif tag == 1 and bits == 24:
        b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        ints = (b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)) << 8 >> 8
        samples = ints.astype(np.float32) / float(2**23)
    else:
        raise TrackError("unsupported", f"wav format tag {tag} with {bits} bits")
    return samples.reshape(-1, channels)


def _run_ffmpeg(args: list[str]) -> bytes:
    try:
        proc = subprocess.run(args, capture_output=True, check=False, timeout=3600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise TrackError("decode_failed", f"ffmpeg did not run: {exc}") from exc
    if proc.returncode != 0:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        last = lines[-1] if lines else f"exit code {proc.returncode}"
        reason = "not_audio" if "Invalid data found" in last else "decode_failed"
        raise TrackError(reason, f"ffmpeg: {last}")
    return proc.stdout


def decode_ffmpeg(path: str) -> Decoded:
    _check_not_empty_or_text(path)
    out = _run_ffmpeg(
        [ffmpeg_exe(), "-nostdin", "-v", "error", "-i", path, "-vn", "-map_metadata", "-1",
         "-fflags", "+bitexact", "-c:a", "pcm_f32le", "-f", "wav", "-"]
    )  # fmt: skip
    return parse_wav(out)


def decode_pydub(path: str) -> Decoded:
    """The original design's decoder: ffmpeg converts to a 16-bit wav tempfile, pydub reads it."""
    with warnings.catch_warnings():
        # pydub warns at import that it cannot find ffmpeg on PATH; we hand it one below
        warnings.simplefilter("ignore")
        from pydub import AudioSegment
        from pydub.exceptions import CouldntDecodeError

    _check_not_empty_or_text(path)
    AudioSegment.converter = ffmpeg_exe()
    try:
        # The temporary-file variant never calls ffprobe, which imageio-ffmpeg does not ship.
        segment = AudioSegment.from_file_using_temporary_files(path)
    except CouldntDecodeError as exc:
        last = str(exc).strip().splitlines()[-1] if str(exc).strip() else "could not decode"
        raise TrackError("decode_failed", f"pydub: {last}") from exc
    # pydub hands out signed integers for every width (it re-biases 8-bit wav on load).
    ints = np.array(segment.get_array_of_samples())
    samples = ints.astype(np.float32) / float(2 ** (8 * segment.sample_width - 1))
    return _validated(samples.reshape(-1, segment.channels), segment.frame_rate)


DECODERS: dict[str, Decoder] = {
    "soundfile": decode_soundfile,
    "pydub": decode_pydub,
    "ffmpeg": decode_ffmpeg,
}


def get_decoder(name: str) -> Decoder:
    try:
        return DECODERS[name]
    except KeyError:
        raise ValueError(f"unknown decoder {name!r} (choose from {', '.join(DECODERS)})") from None
