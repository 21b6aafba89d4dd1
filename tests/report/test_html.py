"""fmaprep report: a self-contained HTML page whose plots Chromium actually shows."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from fmaprep.cli import main
from fmaprep.report.html import collect

from conftest import write_parquet_output

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
PLOTS = [
    "Track durations",
    "Code histogram",
    "Tracks per genre",
    "Failures by reason",
    "Throughput",
]
IMG = re.compile(r'<img alt="([^"]*)" src="data:image/png;base64,([A-Za-z0-9+/=]+)">')


def small_output(root: Path) -> tuple[Path, list[dict[str, Any]]]:
    rng = np.random.default_rng(1)
    records = [
        {
            "track_id": f"{i:06d}",
            "source": f"/m/{i}.mp3",
            "sample_rate": 8000,
            "mu": 255,
            "genre": ("Rock", "Jazz", "Rock")[i % 3],
            "codes": rng.integers(0, 256, 800 * (i + 1)).astype(np.uint8),
        }
        for i in range(5)
    ]
    out = write_parquet_output(root, [records[:2], records[2:]])
    with (out / "_manifest.jsonl").open("a") as f:  # two failed inputs
        for n, reason in enumerate(("not_audio", "empty")):
            line = {
                "track_id": f"9{n}",
                "source": f"/bad{n}",
                "status": "error",
                "error": f"{reason}: x",
            }
            f.write(json.dumps(line) + "\n")
    stats = {"audio_seconds": 7.5, "wall_seconds": 3.0, "master": "local[2] <&>", "config": {}}
    (out / "_stats.json").write_text(json.dumps(stats))
    return out, records


def test_collect_counts_every_code_and_reads_the_manifest(tmp_path: Path) -> None:
    out, records = small_output(tmp_path / "o")
    data = collect(str(out))
    want = np.bincount(np.concatenate([r["codes"] for r in records]), minlength=256)
    np.testing.assert_array_equal(data.code_counts, want)
    assert data.records == 5 and len(data.lines) == 7 and data.stats["wall_seconds"] == 3.0


def test_report_is_self_contained_with_one_png_per_plot(tmp_path: Path) -> None:
    out, _ = small_output(tmp_path / "o")
    page_path = tmp_path / "r.html"
    assert main(["-q", "report", str(out), "--out", str(page_path)]) == 0
    page = page_path.read_text()
    images = IMG.findall(page)
    assert [title for title, _ in images] == PLOTS
    for _, png in images:
        image = Image.open(io.BytesIO(base64.b64decode(png)))
        assert image.format == "PNG" and image.size == (600, 360)
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing loaded from elsewhere
    assert "local[2] &lt;&amp;&gt;" in page  # text is escaped
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_report_of_a_missing_output_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["report", str(tmp_path / "nope"), "--out", str(tmp_path / "r.html")]) == 2
    assert capsys.readouterr().err.startswith("fmaprep report: ")


# --- in a real browser (slow: starts Spark for the output, and Chromium) -----------------------


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's Chromium, installed by the project's own scripts/install-chromium.sh if missing."""
    if not CHROMIUM.exists():
        try:
            proc = subprocess.run(
                ["bash", str(REPO / "scripts" / "install-chromium.sh")],
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
        except subprocess.TimeoutExpired:
            pytest.skip("scripts/install-chromium.sh timed out installing chromium")
        if proc.returncode != 0 or not CHROMIUM.exists():
            pytest.skip(f"chromium could not be installed: {proc.stderr.strip()[-300:]}")
    return CHROMIUM


def run_chromium(chromium: Path, tmp_path: Path, page: Path, *args: str) -> str:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    proc = subprocess.run(
        [
            str(chromium),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--window-size=1300,1500",
            *args,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    shutil.rmtree(profile, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def plot_pixels(png: Path) -> tuple[float, int]:
    """(share of non-white pixels, number of pixels in matplotlib's bar blue #1f77b4)."""
    rgb = np.asarray(Image.open(png).convert("RGB")).astype(int)
    non_white = float((rgb.min(axis=2) < 245).mean())
    blue = int((np.abs(rgb - [0x1F, 0x77, 0xB4]).max(axis=2) <= 12).sum())
    return non_white, blue


DECODE_PROBE = (
    '<script>window.addEventListener("load", () => { const ok = [...document.images].filter('
    "i => i.complete && i.naturalWidth > 0); document.body.setAttribute("
    '"data-decoded", ok.length + "/" + document.images.length); });</script></body>'
)


@pytest.mark.slow
def test_report_shows_its_plots_in_headless_chromium(
    chromium: Path, job_outputs: dict[str, Path], tmp_path: Path
) -> None:
    page = tmp_path / "report.html"
    assert main(["-q", "report", str(job_outputs["parquet"]), "--out", str(page)]) == 0
    # a broken copy (the same page with undecodable images) is the control for both checks
    broken = tmp_path / "broken.html"
    broken.write_text(
        IMG.sub(lambda m: f'<img alt="{m[1]}" src="data:image/png;base64,AAAA">', page.read_text())
    )

    # every <img> decoded, as the browser sees it after load (a probe script added to copies)
    for source, want in ((page, "5/5"), (broken, "0/5")):
        probe = tmp_path / f"probe-{source.name}"
        probe.write_text(source.read_text().replace("</body>", DECODE_PROBE))
        dom = run_chromium(chromium, tmp_path, probe, "--virtual-time-budget=5000", "--dump-dom")
        assert f'data-decoded="{want}"' in dom, dom[-500:]

    # the screenshot shows the plots: plenty of ink, and the bars' blue
    shots = {}
    for source in (page, broken):
        shot = tmp_path / f"{source.stem}.png"
        run_chromium(chromium, tmp_path, source, f"--screenshot={shot}")
        shots[source.stem] = plot_pixels(shot)
    ink, blue = shots["report"]
    assert ink > 0.05 and blue > 20_000, shots
    assert shots["broken"][1] < 500 and shots["broken"][0] < ink / 2, shots
