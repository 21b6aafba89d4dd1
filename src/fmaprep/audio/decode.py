"""Decoders: an audio file in, float32 frames out (``(n_frames, channels)``, full scale 1.0),
delivered as a stream of blocks so that a 3-hour file never sits in memory whole.

Three implementations behind one signature, chosen with ``--decoder``:
- ``soundfile``: in-process libsndfile (mpg123 for mp3); the fastest, the default.
- ``ffmpeg``: ffmpeg decoding into a pipe (float32 wav), read block by block.
- ``pydub``: the original design: pydub's AudioSegment, ffmpeg writing a wav tempfile (whole file).
ffmpeg is the static binary from imageio-ffmpeg, so nothing has to be on the machine.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from fmaprep.audio.sniff import looks_like_text
from fmaprep.audio.wav import WavHeader, parse_wav_header, pcm_to_float
from fmaprep.model import TrackError

BLOCK_FRAMES = 1 << 16  # ~1.5 s at 44.1 kHz: small next to any track, large next to call overhead

FloatFrames = npt.NDArray[np.float32]


@dataclass
class AudioStream:
    """An open audio file: its format, and its frames as blocks of shape (n, channels)."""

    sample_rate: int
    channels: int
    blocks: Iterator[FloatFrames]
    declared_frames: int | None = None  # what the container promises (e.g. an mp3 Xing header)


Opener = Callable[[str], AudioStream]


def check_not_empty_or_text(path: str) -> None:
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as exc:
        raise TrackError("read_failed", f"{exc.strerror or exc}") from exc
    if size == 0:
        raise TrackError("empty", "file has 0 bytes")
    if looks_like_text(head):
        raise TrackError("not_audio", "file holds text/HTML, not audio")


def _check_format(sample_rate: int, channels: int) -> None:
    if not 1 <= sample_rate <= 384_000:
        raise TrackError("unsupported", f"sample rate {sample_rate} Hz")
    if not 1 <= channels <= 64:
        raise TrackError("unsupported", f"{channels} channels")


def open_soundfile(path: str) -> AudioStream:
    import soundfile as sf

    check_not_empty_or_text(path)
    try:
        handle = sf.SoundFile(path)
    except sf.LibsndfileError as exc:
        text = str(exc)
        # libsndfile says "not a regular file (possibly a pipe?)" for bytes it cannot place;
        # the file was checked to exist and be regular, so that too means "not audio"
        markers = ("not recognised", "unknown format", "possibly a pipe")
        known = any(marker in text for marker in markers)
        raise TrackError("not_audio" if known else "decode_failed", f"libsndfile: {text}") from exc
    except (RuntimeError, ValueError) as exc:
        raise TrackError("decode_failed", f"libsndfile: {exc}") from exc
    _check_format(handle.samplerate, handle.channels)

    def blocks() -> Iterator[FloatFrames]:
        with handle:
            while True:
                block = _read_frames(handle, BLOCK_FRAMES)
                if len(block) == 0:
                    return
                yield block

    declared = int(handle.frames) if handle.frames and handle.frames > 0 else None
    return AudioStream(handle.samplerate, handle.channels, blocks(), declared)


def _read_frames(handle: Any, n: int) -> FloatFrames:
    """Read up to ``n`` frames with libsndfile's sf_readf_float, and nothing else.

    python-soundfile's ``SoundFile.read`` seeks to the position it believes it is at after every
    read. On a VBR mp3 that seek goes through mpg123's fuzzy Xing-table seeking and lands
    elsewhere, so block-wise reads return stretches of zeros and repeated audio (seen with
    soundfile 0.12-0.14 / libsndfile 1.2.2). Calling the C function directly avoids the seek;
    tests/test_decode.py checks block-wise reads against a whole-file read on VBR mp3s.
    """
    import soundfile as sf

    out = np.empty((n, handle.channels), dtype=np.float32)
    pointer = sf._ffi.cast("float *", out.ctypes.data)
    got = int(sf._snd.sf_readf_float(handle._file, pointer, n))
    if got < 0 or sf._snd.sf_error(handle._file) != 0:
        message = sf._ffi.string(sf._snd.sf_strerror(handle._file)).decode("utf-8", "replace")
        raise TrackError("decode_failed", f"libsndfile: {message}")
    return out[:got]


def ffmpeg_exe() -> str:
    """The ffmpeg binary: $FMAPREP_FFMPEG if set, else imageio-ffmpeg's bundled static build."""
    explicit = os.environ.get("FMAPREP_FFMPEG")
    if explicit:
        return explicit
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


STDERR_TAIL_BYTES = 4096


def stderr_tail(f: IO[bytes], limit: int = STDERR_TAIL_BYTES) -> str:
    """The last ``limit`` bytes a subprocess wrote to the file ``f`` (its whole stderr), as text."""
    f.seek(0, os.SEEK_END)
    f.seek(max(0, f.tell() - limit))
    return f.read().decode("utf-8", "replace").strip()


def open_ffmpeg(path: str) -> AudioStream:
    check_not_empty_or_text(path)
    args = [ffmpeg_exe(), "-nostdin", "-v", "error", "-i", path, "-vn", "-map_metadata", "-1",
            "-fflags", "+bitexact", "-c:a", "pcm_f32le", "-f", "wav", "-"]  # fmt: skip
    # stderr goes to an unlinked temporary file, not a pipe: a damaged file can make ffmpeg log
    # far more than a pipe holds (64 KiB), and a full stderr pipe nobody reads while we read
    # stdout would block both processes for ever. Only its tail is ever read back.
    errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed by the stream, or on failure)
    try:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errors)
    except OSError as exc:
        errors.close()
        raise TrackError("decode_failed", f"ffmpeg did not start: {exc}") from exc
    assert proc.stdout is not None

    def fail() -> TrackError:
        proc.wait()
        lines = stderr_tail(errors).splitlines()
        last = lines[-1] if lines else f"exit code {proc.returncode}"
        reason = "not_audio" if "Invalid data found" in last else "decode_failed"
        return TrackError(reason, f"ffmpeg: {last}")

    head = proc.stdout.read(4096)
    try:
        header = parse_wav_header(head)
    except TrackError:
        proc.stdout.close()  # first: an ffmpeg still writing then stops instead of blocking
        error = fail()
        errors.close()
        raise error from None
    _check_format(header.sample_rate, header.channels)

    def blocks() -> Iterator[FloatFrames]:
        try:
            pending = head[header.data_offset :]
            frame_bytes = header.frame_bytes
            while True:
                chunk = proc.stdout.read(BLOCK_FRAMES * frame_bytes)  # type: ignore[union-attr]
                data = pending + chunk
                usable = len(data) - len(data) % frame_bytes
                if usable:
                    yield pcm_to_float(data[:usable], header)
                pending = data[usable:]
                if not chunk:
                    break
            if proc.wait() != 0:
                raise fail()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()  # type: ignore[union-attr]
            errors.close()

    return AudioStream(header.sample_rate, header.channels, blocks())


def open_pydub(path: str) -> AudioStream:
    """The original design: ffmpeg converts to a 16-bit wav tempfile, pydub reads it whole."""
    with warnings.catch_warnings():
        # pydub warns at import that it cannot find ffmpeg on PATH; we hand it one below
        warnings.simplefilter("ignore")
        from pydub import AudioSegment
        from pydub.exceptions import CouldntDecodeError

    check_not_empty_or_text(path)
    AudioSegment.converter = ffmpeg_exe()
    try:
        # The temporary-file variant never calls ffprobe, which imageio-ffmpeg does not ship.
        segment = AudioSegment.from_file_using_temporary_files(path)
    except CouldntDecodeError as exc:
        lines = str(exc).strip().splitlines()
        last = lines[-1] if lines else "cannot decode"
        reason = "not_audio" if "Invalid data found" in last else "decode_failed"
        raise TrackError(reason, f"pydub: {last}") from exc
    # pydub hands out signed integers for every width (it re-biases 8-bit wav on load).
    ints = np.array(segment.get_array_of_samples())
    samples = ints.astype(np.float32) / float(2 ** (8 * segment.sample_width - 1))
    frames = samples.reshape(-1, segment.channels)
    _check_format(segment.frame_rate, segment.channels)
    return AudioStream(segment.frame_rate, segment.channels, iter([frames]))


OPENERS: dict[str, Opener] = {
    "soundfile": open_soundfile,
    "ffmpeg": open_ffmpeg,
    "pydub": open_pydub,
}


__all__ = ["WavHeader"]
