"""The files beside the pickle partitions: ``_manifest.jsonl`` and ``_stats.json``."""

from __future__ import annotations

import collections
import json
import platform
from importlib import metadata
from typing import Any

from fmaprep import __version__

MANIFEST_FILE = "_manifest.jsonl"
STATS_FILE = "_stats.json"
SUCCESS_FILE = "_SUCCESS"

_LIBRARIES = (
    "pyspark",
    "numpy",
    "scipy",
    "soundfile",
    "soxr",
    "resampy",
    "pydub",
    "imageio-ffmpeg",
)


def manifest_bytes(lines: list[dict[str, Any]]) -> bytes:
    ordered = sorted(lines, key=lambda line: (line["source"], line["track_id"]))
    return "".join(json.dumps(line, sort_keys=True) + "\n" for line in ordered).encode()


def parse_manifest(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


# A manifest shard (``_manifest/<part>.jsonl``, one per task, and one the driver writes): an
# optional first row ``{"_task": {...}}`` saying which part the lines belong to (its name, bytes,
# records and config key; resume checks them), then one manifest line per input.
TASK_KEY = "_task"
# In the header of the shard a resumed run's driver writes: the kept parts' task headers (their
# statistics, e.g. ``code_counts``), carried forward from the shards the new commit drops.
CARRIED_KEY = "carried"


def shard_bytes(task: dict[str, Any] | None, lines: list[dict[str, Any]]) -> bytes:
    """A shard: the ``task`` header row (when given), then ``lines``, as JSON lines."""
    rows = lines if task is None else [{TASK_KEY: task}, *lines]
    return "".join(json.dumps(row, sort_keys=True) + "\n" for row in rows).encode()


def parse_shard(data: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(the task header, ``{}`` when there is none; the manifest lines) of a shard."""
    rows = parse_manifest(data)
    if rows and TASK_KEY in rows[0]:
        return rows[0][TASK_KEY] or {}, rows[1:]
    return {}, rows


def error_reason(line: dict[str, Any]) -> str:
    return str(line.get("error", "unknown")).split(":", 1)[0]


MAX_FAILURES_SHOWN = 10


def failure_lines(failures: list[dict[str, Any]]) -> list[str]:
    """Console lines for the first failed inputs (the job's summary and ``inspect``)."""
    lines = [
        f"  failed: {f['source']}: {f.get('error', '?')}\n" for f in failures[:MAX_FAILURES_SHOWN]
    ]
    if len(failures) > MAX_FAILURES_SHOWN:
        more = len(failures) - MAX_FAILURES_SHOWN
        lines.append(f"  ... and {more} more (see {MANIFEST_FILE})\n")
    return lines


def library_versions() -> dict[str, str]:
    versions = {"fmaprep": __version__, "python": platform.python_version()}
    for name in _LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    versions["libsndfile"] = _libsndfile_version()
    return versions


def _libsndfile_version() -> str:
    """Imported here, not looked up in sys.modules: whether something else imported soundfile
    first must not change the versions (they make --mode resume's config key)."""
    try:
        import soundfile
    except (ImportError, OSError):  # OSError: the wheel's bundled libsndfile did not load
        return "absent"
    return str(soundfile.__libsndfile_version__)


def summarize(lines: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [line for line in lines if line["status"] == "ok"]
    failed = [line for line in lines if line["status"] == "error"]
    return {
        "inputs": len(lines),
        "ok": len(ok),
        "failed": len(failed),
        "duplicates": sum(1 for line in lines if line["status"] == "duplicate"),
        "failed_by_reason": dict(sorted(collections.Counter(map(error_reason, failed)).items())),
        "audio_seconds": round(sum(float(line.get("duration_s", 0.0)) for line in ok), 3),
        "output_samples": sum(int(line.get("n_samples", 0)) for line in ok),
    }


def stats_dict(
    counts: dict[str, Any],
    config: dict[str, Any],
    wall_seconds: float,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """``_stats.json``: counts, audio and wall seconds, the config, library versions."""
    return {
        **counts,
        "wall_seconds": round(wall_seconds, 3),
        "audio_seconds_per_wall_second": round(counts["audio_seconds"] / wall_seconds, 2)
        if wall_seconds > 0
        else None,
        "config": config,
        "versions": library_versions(),
        **extra,
    }
