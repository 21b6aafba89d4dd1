"""``fmaprep report``: a self-contained HTML page about an OUTPUT, with plots made by matplotlib
(Agg canvas, no display) and embedded as base64 PNG, so the one file can be mailed or archived.

Plots: duration histogram and per-genre counts (from ``_manifest.jsonl``, tracks that succeeded),
code histogram (every code of every record, streamed), failures by reason (manifest), throughput
(``_stats.json``: audio seconds vs wall seconds).
"""

from __future__ import annotations

import base64
import collections
import html
import io
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from fmaprep.formats.manifest import STATS_FILE, summarize
from fmaprep.storage.uris import is_local, local_path, resolve_uri

BAR_COLOR = "#1f77b4"


@dataclass
class ReportData:
    output: str
    lines: list[dict[str, Any]]
    stats: dict[str, Any]
    code_counts: npt.NDArray[np.int64]  # occurrences of each code 0..255
    records: int


def collect(output: str) -> ReportData:
    """Everything the page shows; reads the manifest and stats, and streams all records once."""
    from fmaprep.formats.records import read_output_info, read_records

    uri = resolve_uri(output)
    root = local_path(uri) if is_local(uri) else uri
    info = read_output_info(root)
    lines, stats = info.lines, info.stats
    counts = np.zeros(256, np.int64)
    records = 0
    for record in read_records(root):
        counts += np.bincount(record["codes"], minlength=256)[:256]
        records += 1
    return ReportData(
        os.path.abspath(root) if is_local(uri) else root, lines, stats, counts, records
    )


def _figure_png(draw: Callable[[Any], None]) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.0, 3.6), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    draw(fig.add_subplot())
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


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
    genres = collections.Counter(str(line.get("genre", "(unknown)")) for line in ok)
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
        ax.set_xlabel("mu-law code")
        ax.set_ylabel("samples (log)")

    def throughput(ax: Any) -> None:
        audio, wall = data.stats.get("audio_seconds"), data.stats.get("wall_seconds")
        if not audio or not wall:
            _empty(ax, f"no throughput in {STATS_FILE}")
            return
        ax.bar(["audio seconds", "wall seconds"], [audio, wall], color=[BAR_COLOR, "#ff7f0e"])
        ax.set_ylabel("seconds")
        ax.set_title(f"{audio / wall:.1f}x real time", fontsize=11)

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
        ("samples", f"{int(data.code_counts.sum()):,}"),
        ("wall seconds", data.stats.get("wall_seconds", "?")),
        ("master", data.stats.get("master", "?")),
        ("pipeline", json.dumps(data.stats.get("config", {}).get("pipeline", {}), sort_keys=True)),
    ]
    table = "\n".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in rows)
    figures = "\n".join(
        f'<figure><img alt="{esc(title)}" src="data:image/png;base64,{png}">'
        f"<figcaption>{esc(title)}</figcaption></figure>"
        for title, png in plots(data)
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>fmaprep report: {esc(data.output)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; background: #fff; }}
table {{ border-collapse: collapse; margin-bottom: 1em; }}
th, td {{ text-align: left; padding: 0.15em 0.8em; border-bottom: 1px solid #ddd; }}
.plots {{ display: flex; flex-wrap: wrap; gap: 1em; }}
figure {{ margin: 0; }}
figcaption {{ text-align: center; font-weight: bold; }}
</style>
</head>
<body>
<h1>fmaprep report</h1>
<table>
{table}
</table>
<div class="plots">
{figures}
</div>
</body>
</html>
"""


def write_report(output: str, out: str) -> ReportData:
    """Collect, render and write ``out`` atomically (temp file then rename)."""
    data = collect(output)
    page = render(data)
    out = os.path.abspath(out)
    tmp = os.path.join(os.path.dirname(out), f".{os.path.basename(out)}.{uuid.uuid4().hex[:8]}")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(page)
        os.replace(tmp, out)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return data
