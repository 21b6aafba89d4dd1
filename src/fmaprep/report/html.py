"""``fmaprep report``: a self-contained HTML page about an OUTPUT, with plots made by matplotlib
(Agg canvas, no display) and embedded as base64 PNG, so the one file can be mailed or archived.

Plots: duration histogram and per-genre counts (from ``_manifest.jsonl``, tracks that succeeded),
code histogram (the tasks' per-part statistics, :mod:`fmaprep.report.codes`), failures by reason
(manifest), throughput (``_stats.json``: audio seconds vs wall seconds).
"""

from __future__ import annotations

import collections
import dataclasses
import html
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from fmaprep.atomic_file import atomic_path
from fmaprep.formats.manifest import STATS_FILE, summarize
from fmaprep.report.codes import code_histogram
from fmaprep.report.listen import TrackView, choose_tracks, view
from fmaprep.report.plots import BAR_COLOR, figure_png
from fmaprep.storage.uris import is_local, local_path, resolve_uri
from fmaprep.tracks import cap_value


@dataclass
class ReportData:
    output: str
    lines: list[dict[str, Any]]
    stats: dict[str, Any]
    code_counts: npt.NDArray[np.int64]  # occurrences of each code 0..255
    records: int
    tracks: list[TrackView] = dataclasses.field(default_factory=list)  # to hear and see
    code_counts_from: str = "every record (exact)"


def collect(output: str) -> ReportData:
    """Everything the page shows: the manifest, stats and per-part code histograms
    (:mod:`fmaprep.report.codes`), plus the records of the few tracks shown, so the cost grows
    with the tracks, not their samples."""
    from fmaprep.formats.records import read_output_info, read_records

    uri = resolve_uri(output)
    root = local_path(uri) if is_local(uri) else uri
    info = read_output_info(root)
    lines, stats = info.lines, info.stats
    chosen = {c.track_id: c for c in choose_tracks(lines)}
    channel = str(stats.get("config", {}).get("pipeline", {}).get("channel", "left"))
    histogram = code_histogram(root, info)
    views: dict[str, TrackView] = {}
    if chosen:
        holding = {c.line.get("part") for c in chosen.values()}
        parts = None if None in holding else {str(p) for p in holding}
        for record in read_records(root, track_ids=list(chosen), parts=parts):
            if record["track_id"] not in views:
                views[record["track_id"]] = view(chosen[record["track_id"]], record, channel)
            if len(views) == len(chosen):
                break  # the rest of the output holds none of them
    ordered = [views[t] for t in chosen if t in views]
    return ReportData(
        os.path.abspath(root) if is_local(uri) else root,
        lines,
        stats,
        histogram.counts,
        histogram.records_read + len(views),
        ordered,
        histogram.how,
    )


def _figure_png(draw: Callable[[Any], None]) -> str:
    return figure_png(lambda fig: draw(fig.add_subplot()))


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=13)
    ax.set_xticks([])
    ax.set_yticks([])


def _bars(ax: Any, counts: dict[str, int], empty_text: str, xlabel: str) -> None:
    if not counts:
        _empty(ax, empty_text)
        return
    names = list(counts)
    ax.barh(names, [counts[n] for n in names], color=BAR_COLOR)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)


def plots(data: ReportData) -> list[tuple[str, str]]:
    """(title, base64 PNG) of each plot, in page order."""
    ok = [line for line in data.lines if line["status"] == "ok"]
    durations = [float(line.get("duration_s", 0.0)) for line in ok]
    genres = collections.Counter(cap_value(str(line.get("genre", "(unknown)"))) for line in ok)
    failures = summarize(data.lines)["failed_by_reason"]

    def duration_hist(ax: Any) -> None:
        if not durations:
            _empty(ax, "no tracks")
            return
        ax.hist(durations, bins=min(40, max(5, len(durations) // 2)), color=BAR_COLOR)
        ax.set_xlabel("track duration (s)")
        ax.set_ylabel("tracks")

    def code_hist(ax: Any) -> None:
        if not data.code_counts.any():
            _empty(ax, "no codes")
            return
        ax.bar(np.arange(256), data.code_counts, width=1.0, color=BAR_COLOR)
        ax.set_yscale("log")
        ax.set_xlim(-0.5, 255.5)
        ax.set_xlabel(f"mu-law code (counts from {data.code_counts_from})")
        ax.set_ylabel("samples (log)")

    def throughput(ax: Any) -> None:
        audio, wall = data.stats.get("audio_seconds"), data.stats.get("wall_seconds")
        if not audio or not wall:
            _empty(ax, f"no throughput in {STATS_FILE}")
            return
        # where the wall time went, as the job recorded it (start, listing, tasks, commit...)
        recorded = (data.stats.get("timings") or {}).items()
        timings = {k.removesuffix("_s"): float(v) for k, v in recorded
                   if isinstance(v, (int, float))}  # fmt: skip
        parts = timings or {"wall": float(wall)}
        ax.barh(list(parts), list(parts.values()), color=BAR_COLOR)
        ax.invert_yaxis()
        ax.set_xlabel("wall seconds")
        ax.set_title(throughput_text(data.stats), fontsize=10)

    return [
        ("Track durations", _figure_png(duration_hist)),
        ("Code histogram", _figure_png(code_hist)),
        (
            "Tracks per genre",
            _figure_png(lambda ax: _bars(ax, dict(genres.most_common(30)), "no tracks", "tracks")),
        ),
        (
            "Failures by reason",
            _figure_png(lambda ax: _bars(ax, failures, "no failures", "inputs")),
        ),
        ("Throughput", _figure_png(throughput)),
    ]


def cores_of(stats: dict[str, Any]) -> int | None:
    """The job's cores: recorded by the job, else read off a local[N] master."""
    if isinstance(stats.get("cores"), int):
        return int(stats["cores"])
    master = str(stats.get("master", ""))
    inside = master.removeprefix("local[").split(",")[0].rstrip("]")
    return int(inside) if master.startswith("local[") and inside.isdigit() else None


def throughput_text(stats: dict[str, Any]) -> str:
    audio, wall = stats.get("audio_seconds"), stats.get("wall_seconds")
    if not audio or not wall:
        return "no throughput recorded"
    rate = float(audio) / float(wall)
    cores = cores_of(stats)
    per_core = f", {rate / cores:.0f} per core ({cores} cores)" if cores else ""
    return f"{rate:.0f} audio h per wall h{per_core}"


def render(data: ReportData) -> str:
    counts = summarize(data.lines)
    esc = html.escape
    rows = [
        ("output", data.output),
        ("inputs", counts["inputs"]),
        ("ok", counts["ok"]),
        ("failed", counts["failed"]),
        ("records read", data.records),
        ("audio", f"{counts['audio_seconds'] / 3600:.3f} h"),
        ("samples", f"{counts['output_samples']:,}"),
        ("wall seconds", data.stats.get("wall_seconds", "?")),
        ("master", data.stats.get("master", "?")),
        ("pipeline", json.dumps(data.stats.get("config", {}).get("pipeline", {}), sort_keys=True)),
    ]
    table = "\n".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in rows)
    tracks = "\n".join(_track_card(t) for t in data.tracks) or "<p>no tracks to show</p>"
    figures = "\n".join(
        f'<figure><img alt="{esc(title)}" src="data:image/png;base64,{png}">'
        f"<figcaption>{esc(title)}</figcaption></figure>"
        for title, png in plots(data)
    )
    return page(
        data.output,
        f"""<h1>fmaprep report</h1>
<table>
{table}
</table>
<div class="plots">
{figures}
</div>
<h2>Listen and look</h2>
<p>10 s excerpts from the middle of each track: the 8 kHz mu-law decode the model gets, and the
source where it is readable from here. Spectrograms share one frequency axis; the dashed line is
the output's band edge.</p>
{tracks}""",
    )


STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; background: #fff; }
table { border-collapse: collapse; margin-bottom: 1em; }
th, td { text-align: left; padding: 0.15em 0.8em; border-bottom: 1px solid #ddd; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; }
img { max-width: 100%; height: auto; }
.track { border-top: 1px solid #ccc; padding: 0.6em 0; }
.track audio { width: 100%; max-width: 28em; display: block; margin: 0.2em 0; }
.flag { color: #b00; font-weight: bold; }
figure { margin: 0; }
figcaption { text-align: center; font-weight: bold; }
"""


def page(title: str, body: str) -> str:
    """One self-contained page: nothing is loaded from anywhere else."""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fmaprep report: {html.escape(title)}</title>
<style>{STYLE}</style>
</head>
<body>
{body}
</body>
</html>
"""


# what makes a track's number worth a second look
OUTLIER: dict[str, Callable[[float], bool]] = {
    "clipping_share": lambda v: v > 0.001,
    "leading_silence_s": lambda v: v > 2.0,
    "trailing_silence_s": lambda v: v > 2.0,
    "dc_offset": lambda v: abs(v) > 0.01,
    "gain": lambda v: v > 10.0,
}


def _flagged(name: str, value: float) -> bool:
    check = OUTLIER.get(name)
    return check is not None and check(value)


def _track_card(t: TrackView) -> str:
    esc = html.escape
    line = t.chosen.line
    title = " - ".join(cap_value(str(line[k])) for k in ("artist", "title") if line.get(k))
    stats = ", ".join(
        (f'<span class="flag">{esc(k)} {v:.4g}</span>' if _flagged(k, v)
         else f"{esc(k)} {v:.4g}")
        for k, v in t.stats.items()
    )  # fmt: skip
    source = (
        f'<div>source<audio controls preload="metadata" data-role="source" '
        f'src="data:audio/wav;base64,{t.source_wav}"></audio></div>'
        if t.source_wav else "<div>source: not readable from here</div>"
    )  # fmt: skip
    return f"""<div class="track" id="track-{esc(t.chosen.track_id)}">
<h3>{esc(t.chosen.track_id)} {esc(title)} <small>({esc("; ".join(t.chosen.why))})</small></h3>
<p>{stats}; excerpt from {t.start_s:.1f} s</p>
<div>output<audio controls preload="metadata" data-role="output"
data-track="{esc(t.chosen.track_id)}" data-start="{t.start_s:.3f}"
src="data:audio/wav;base64,{t.output_wav}"></audio></div>
{source}
<img alt="spectrogram {esc(t.chosen.track_id)}" src="data:image/png;base64,{t.pngs["spectrogram"]}">
<img alt="waveform {esc(t.chosen.track_id)}" src="data:image/png;base64,{t.pngs["waveform"]}">
</div>"""


def write_report(output: str, out: str, other: str | None = None) -> ReportData:
    """Collect, render and write ``out`` atomically (temp file then rename); with ``other``,
    the page compares the two outputs."""
    data = collect(output)
    if other is None:
        text = render(data)
    else:
        from fmaprep.report.compare import render_compare

        text = render_compare(data, collect(other))
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    return data
