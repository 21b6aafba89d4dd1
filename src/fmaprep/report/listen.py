"""The tracks the report lets you hear and see: a few, chosen reproducibly from the manifest (the
first track of each genre, the loudest and the quietest by gain), each with a 10 s excerpt of
the 8 kHz mu-law decode as an inline WAV player, the same excerpt of the source beside it when
the source is readable from here, a spectrogram of both on one frequency axis (the output's
band edge marked), a waveform overview, and the numbers worth a look: clipping share, gain,
leading and trailing silence, DC offset.

Only the chosen tracks are decoded or plotted, so the cost does not grow with the output.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from fmaprep.audio.signal import mu_law_decode
from fmaprep.storage.uris import is_local, local_path
from fmaprep.tracks import cap_value

EXCERPT_S = 10.0
MAX_GENRES = 6
SILENCE_DB = -60.0
SOURCE_RATE_MAX = 22050  # the source excerpt is resampled down to this (page size)


@dataclass
class Chosen:
    track_id: str
    why: list[str]
    line: dict[str, Any]


@dataclass
class TrackView:
    chosen: Chosen
    stats: dict[str, float]
    start_s: float
    output_wav: str  # base64 WAV of the decode excerpt
    source_wav: str | None
    pngs: dict[str, str] = field(default_factory=dict)  # title -> base64 PNG


def choose_tracks(lines: list[dict[str, Any]]) -> list[Chosen]:
    """First (by track id) of each of the first genres, then the loudest and quietest by gain."""
    ok = sorted((x for x in lines if x.get("status") == "ok"), key=lambda x: str(x["track_id"]))
    chosen: dict[str, Chosen] = {}
    genres: set[str] = set()
    for line in ok:
        genre = cap_value(str(line.get("genre") or "(no genre)"))
        if genre not in genres and len(genres) < MAX_GENRES:
            genres.add(genre)
            chosen.setdefault(line["track_id"], Chosen(line["track_id"], [], line)).why.append(
                f"first of {genre}"
            )
    gained = [x for x in ok if isinstance(x.get("gain"), (int, float))]
    if gained:
        loud = min(gained, key=lambda x: (float(x["gain"]), str(x["track_id"])))
        quiet = max(gained, key=lambda x: (float(x["gain"]), str(x["track_id"])))
        for line, why in ((loud, "loudest"), (quiet, "quietest")):
            item = chosen.setdefault(line["track_id"], Chosen(line["track_id"], [], line))
            item.why.append(f"{why} (gain {float(line['gain']):.2f})")
    return list(chosen.values())


def excerpt_start(n_samples: int, sample_rate: int) -> int:
    """The excerpt's first sample: centred in the track, EXCERPT_S long (or the whole track)."""
    length = int(EXCERPT_S * sample_rate)
    return max(0, n_samples // 2 - length // 2)


def track_stats(codes: npt.NDArray[np.uint8], sample_rate: int, mu: int) -> dict[str, float]:
    x = mu_law_decode(codes, mu)
    loud = np.flatnonzero(np.abs(x) >= 10 ** (SILENCE_DB / 20))
    n = len(x)
    lead = (loud[0] if loud.size else n) / sample_rate
    trail = (n - 1 - loud[-1] if loud.size else n) / sample_rate
    return {
        "clipping_share": float(np.mean((codes == 0) | (codes == mu))) if n else 0.0,
        "leading_silence_s": round(float(lead), 3),
        "trailing_silence_s": round(float(trail), 3),
        "dc_offset": float(np.mean(x)) if n else 0.0,
        "duration_s": round(n / sample_rate, 3),
    }


def wav_base64(x: npt.NDArray[np.floating[Any]], sample_rate: int) -> str:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1.0, 1.0), sample_rate, format="WAV", subtype="PCM_16")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def source_excerpt(
    source: str, start_s: float, channel: str = "left"
) -> tuple[npt.NDArray[np.float32], int] | None:
    """The same excerpt of the source, when it is a file readable here (else None)."""
    import soundfile as sf

    if not is_local(source):
        return None
    path = local_path(source)
    try:
        with sf.SoundFile(path) as f:
            rate = f.samplerate
            f.seek(min(int(start_s * rate), max(0, f.frames - 1)))
            frames = f.read(int(EXCERPT_S * rate), dtype="float32", always_2d=True)
    except (OSError, RuntimeError, ValueError, sf.LibsndfileError):
        return None
    if channel == "mix":
        mono = frames.mean(axis=1)
    else:
        mono = frames[:, 1 if channel == "right" and frames.shape[1] > 1 else 0]
    if rate > SOURCE_RATE_MAX:
        from fmaprep.audio.resample import resample_soxr

        mono, rate = (
            resample_soxr(np.ascontiguousarray(mono), rate, SOURCE_RATE_MAX),
            SOURCE_RATE_MAX,
        )
    return np.asarray(mono, dtype=np.float32), rate


def view(chosen: Chosen, record: dict[str, Any], channel: str) -> TrackView:
    """Everything the page shows of one chosen track (its record holds the codes)."""
    from fmaprep.report.plots import spectrograms_png, waveform_png

    rate, mu = int(record["sample_rate"]), int(record["mu"])
    codes = np.asarray(record["codes"], dtype=np.uint8)
    first = excerpt_start(codes.size, rate)
    decoded = mu_law_decode(codes[first : first + int(EXCERPT_S * rate)], mu)
    start_s = first / rate
    source = source_excerpt(str(record.get("source", "")), start_s, channel)
    result = TrackView(
        chosen,
        {"gain": float(record.get("gain", math.nan)), **track_stats(codes, rate, mu)},
        start_s,
        wav_base64(decoded, rate),
        wav_base64(source[0], source[1]) if source is not None else None,
    )
    result.pngs["spectrogram"] = spectrograms_png(decoded, rate, source)
    result.pngs["waveform"] = waveform_png(mu_law_decode(codes, mu), rate)
    return result
