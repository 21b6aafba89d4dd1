"""``fmaprep report OUT_A OUT_B``: two outputs side by side, for someone choosing between
settings: the pipeline settings that differ, the counts, failures by reason, and both code
histograms overlaid (as shares of samples, so outputs of different sizes compare)."""

from __future__ import annotations

import html
import json
from typing import Any

import numpy as np

from fmaprep.formats.manifest import summarize
from fmaprep.report.html import ReportData, page, throughput_text
from fmaprep.report.plots import BAR_COLOR, figure_png

OTHER_COLOR = "#ff7f0e"


def _flat(config: dict[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for table in ("pipeline", "job"):
        for key, value in (config.get(table) or {}).items():
            out[f"{table}.{key}"] = json.dumps(value, sort_keys=True)
    return out


def render_compare(a: ReportData, b: ReportData) -> str:
    esc = html.escape
    conf_a, conf_b = _flat(a.stats.get("config", {})), _flat(b.stats.get("config", {}))
    differ = [k for k in sorted(conf_a.keys() | conf_b.keys()) if conf_a.get(k) != conf_b.get(k)]
    config_rows = "\n".join(
        f"<tr><th>{esc(k)}</th><td>{esc(conf_a.get(k, '-'))}</td><td>{esc(conf_b.get(k, '-'))}"
        "</td></tr>" for k in differ
    ) or '<tr><td colspan="3">the same settings</td></tr>'  # fmt: skip
    sa, sb = summarize(a.lines), summarize(b.lines)
    counts = [("inputs", sa["inputs"], sb["inputs"]), ("ok", sa["ok"], sb["ok"]),
              ("failed", sa["failed"], sb["failed"]),
              ("audio h", f"{sa['audio_seconds'] / 3600:.3f}", f"{sb['audio_seconds'] / 3600:.3f}"),
              ("throughput", throughput_text(a.stats), throughput_text(b.stats))]  # fmt: skip
    reasons = sorted(sa["failed_by_reason"].keys() | sb["failed_by_reason"].keys())
    counts += [(f"failed: {r}", sa["failed_by_reason"].get(r, 0), sb["failed_by_reason"].get(r, 0))
               for r in reasons]  # fmt: skip
    count_rows = "\n".join(
        f"<tr><th>{esc(k)}</th><td>{esc(str(x))}</td><td>{esc(str(y))}</td></tr>"
        for k, x, y in counts
    )

    def overlay(fig: Any) -> None:
        ax = fig.add_subplot()
        # A wide and solid, B thin and dashed: both visible where they coincide
        styles = ((a, BAR_COLOR, "A", "-", 3.0), (b, OTHER_COLOR, "B", "--", 1.2))
        for data, color, label, dash, width in styles:
            total = data.code_counts.sum()
            if total:
                ax.step(np.arange(256), data.code_counts / total, where="mid", color=color,
                        label=label, linestyle=dash, linewidth=width)  # fmt: skip
        ax.set_yscale("log")
        ax.set_xlim(-0.5, 255.5)
        ax.set_xlabel("mu-law code")
        ax.set_ylabel("share of samples (log)")
        ax.legend()

    png = figure_png(overlay)
    body = f"""<h1>fmaprep report: A against B</h1>
<table>
<tr><th></th><th>A</th><th>B</th></tr>
<tr><th>output</th><td>{esc(a.output)}</td><td>{esc(b.output)}</td></tr>
</table>
<h2>Settings that differ</h2>
<table>
<tr><th></th><th>A</th><th>B</th></tr>
{config_rows}
</table>
<h2>Counts</h2>
<table>
<tr><th></th><th>A</th><th>B</th></tr>
{count_rows}
</table>
<figure><img alt="Code histograms, A and B" src="data:image/png;base64,{png}">
<figcaption>Code histograms, A and B</figcaption></figure>"""
    return page(f"{a.output} against {b.output}", body)
