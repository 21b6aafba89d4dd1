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
    # Spark's own (empty) _SUCCESS: no per-part statistics, so all 5 records were counted
    assert data.code_counts_from == "5 records (exact)"
    assert len(data.lines) == 7 and data.stats["wall_seconds"] == 3.0


def test_report_is_self_contained_with_one_png_per_plot(tmp_path: Path) -> None:
    out, _ = small_output(tmp_path / "o")
    page_path = tmp_path / "r.html"
    assert main(["-q", "report", str(out), "--out", str(page_path)]) == 0
    page = page_path.read_text()
    images = IMG.findall(page)
    assert [title for title, _ in images if title in PLOTS] == PLOTS
    for title, png in images:
        image = Image.open(io.BytesIO(base64.b64decode(png)))
        assert image.format == "PNG"
        assert title not in PLOTS or image.size == (600, 360)
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
# the browser's own decode of every player: its duration, once the metadata is in
AUDIO_PROBE = (
    "<script>const players = [...document.querySelectorAll('audio')]; let n = 0;"
    "players.forEach(a => { const done = () => { n += 1; if (n === players.length) "
    "document.body.setAttribute('data-audio', "
    "players.map(p => p.duration.toFixed(2)).join(',')); };"
    "a.addEventListener('loadedmetadata', done); a.addEventListener('error', () => { "
    "a.dataset.failed = 1; done(); }); a.load(); });</script></body>"
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

    # every player's WAV decoded by the browser itself: its duration, against the page's data
    probe = tmp_path / "probe-audio.html"
    probe.write_text(page.read_text().replace("</body>", AUDIO_PROBE))
    dom = run_chromium(chromium, tmp_path, probe, "--virtual-time-budget=10000", "--dump-dom")
    found = re.search(r'data-audio="([^"]*)"', dom)
    assert found is not None, dom[-500:]
    durations = [float(d) for d in found.group(1).split(",")]
    players = re.findall(r'src="data:audio/wav;base64,([^"]+)"', page.read_text())
    import soundfile as sf

    want = [sf.info(io.BytesIO(base64.b64decode(b))).duration for b in players]
    assert len(durations) == len(want) >= 6 and "data-failed" not in dom
    np.testing.assert_allclose(durations, want, atol=0.02)

    # every <img> decoded, as the browser sees it after load (a probe script added to copies)
    n_images = len(IMG.findall(page.read_text()))
    for source, want_images in ((page, f"{n_images}/{n_images}"), (broken, f"0/{n_images}")):
        probe = tmp_path / f"probe-{source.name}"
        probe.write_text(source.read_text().replace("</body>", DECODE_PROBE))
        dom = run_chromium(chromium, tmp_path, probe, "--virtual-time-budget=5000", "--dump-dom")
        assert f'data-decoded="{want_images}"' in dom, dom[-500:]

    # the screenshot shows the plots: plenty of ink, and the bars' blue
    shots = {}
    for source in (page, broken):
        shot = tmp_path / f"{source.stem}.png"
        run_chromium(chromium, tmp_path, source, f"--screenshot={shot}")
        shots[source.stem] = plot_pixels(shot)
    artifacts = REPO / "build" / "test-artifacts"  # looked at by people, never committed
    artifacts.mkdir(parents=True, exist_ok=True)
    shutil.copy(tmp_path / "report.png", artifacts / "report.png")
    ink, blue = shots["report"]
    assert ink > 0.05 and blue > 20_000, shots
    assert shots["broken"][1] < 500 and shots["broken"][0] < ink / 2, shots


# --- listen and look -----------------------------------------------------------------------

AUDIO = re.compile(
    r'<audio controls preload="metadata" data-role="(output|source)"\s*'
    r'(?:data-track="([^"]*)" data-start="([^"]*)"\s*)?src="data:audio/wav;base64,([^"]+)">'
)


def test_tracks_are_chosen_reproducibly_by_genre_and_gain() -> None:
    from fmaprep.report.listen import choose_tracks

    def ok(tid: str, genre: str | None, gain: float) -> dict[str, Any]:
        return {"track_id": tid, "status": "ok", "genre": genre, "gain": gain}

    lines = [ok("000009", "Rock", 1.5), ok("000003", "Jazz", 4.0), ok("000001", "Rock", 1.1),
             ok("000005", None, 9.5), {"track_id": "000002", "status": "error", "gain": 99.0},
             ok("000007", "Jazz", 1.0)]  # fmt: skip
    chosen = choose_tracks(lines)
    assert [(c.track_id, c.why) for c in chosen] == [
        ("000001", ["first of Rock"]),
        ("000003", ["first of Jazz"]),
        ("000005", ["first of (no genre)", "quietest (gain 9.50)"]),
        ("000007", ["loudest (gain 1.00)"]),
    ]
    assert choose_tracks(list(reversed(lines))) == chosen  # order of the manifest does not matter


def test_track_numbers_of_a_closed_form_signal() -> None:
    """1 s of silence, 1 s of a full-scale square wave, 0.5 s of silence at 8 kHz."""
    from fmaprep.audio.signal import mu_law_encode
    from fmaprep.report.listen import track_stats

    square = np.where(np.arange(8000) % 40 < 20, 1.0, -1.0)
    x = np.concatenate([np.zeros(8000), square, np.zeros(4000)])
    stats = track_stats(mu_law_encode(x), 8000, 255)
    assert stats["clipping_share"] == pytest.approx(8000 / 20000)
    assert stats["leading_silence_s"] == 1.0 and stats["trailing_silence_s"] == 0.5
    assert abs(stats["dc_offset"]) < 1e-3 and stats["duration_s"] == 2.5


def test_the_players_hold_the_records_decode_and_the_source(
    job_outputs: dict[str, Path], tmp_path: Path
) -> None:
    import soundfile as sf

    from fmaprep.audio.signal import mu_law_decode
    from fmaprep.formats.records import read_records

    out = job_outputs["pickle"]
    page = tmp_path / "report.html"
    assert main(["-q", "report", str(out), "--out", str(page)]) == 0
    text = page.read_text()
    records = {r["track_id"]: r for r in read_records(str(out))}
    players = AUDIO.findall(text)
    outputs = [(t, float(s), b) for role, t, s, b in players if role == "output"]
    assert len(outputs) >= 3  # three genres, one track without, loudest and quietest
    for track, start, b64 in outputs:
        got, rate = sf.read(io.BytesIO(base64.b64decode(b64)), dtype="float64")
        record = records[track]
        first = round(start * 8000)
        want = mu_law_decode(record["codes"], 255)[first : first + 80000]
        assert rate == 8000 and got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1.01 / 32768)
    sources = [b for role, _, _, b in players if role == "source"]
    assert len(sources) == len(outputs)  # the mp3s are readable from here
    for b64 in sources:
        got, rate = sf.read(io.BytesIO(base64.b64decode(b64)))
        assert rate <= 22050 and len(got) > rate // 2 and np.abs(got).max() > 0.01
    assert text.count('alt="spectrogram ') == len(outputs)


def test_two_outputs_side_by_side(job_outputs: dict[str, Path], tmp_path: Path) -> None:
    """The two formats of one job: only job.format differs; counts agree; both histograms."""
    page = tmp_path / "compare.html"
    a, b = job_outputs["pickle"], job_outputs["parquet"]
    assert main(["-q", "report", str(a), str(b), "--out", str(page)]) == 0
    text = page.read_text()
    settings = text.split("<h2>Settings that differ</h2>")[1].split("</table>")[0]
    assert re.findall(r"<tr><th>([^<]+)</th><td>", settings) == ["job.format"]
    assert "<td>&quot;pickle&quot;</td><td>&quot;parquet&quot;</td>" in settings
    counts = text.split("<h2>Counts</h2>")[1].split("</table>")[0]
    assert "<tr><th>ok</th><td>6</td><td>6</td></tr>" in counts
    assert "<tr><th>failed: not_audio</th><td>1</td><td>1</td></tr>" in counts
    [(title, png)] = IMG.findall(text)
    assert title == "Code histograms, A and B"
    rgb = np.asarray(Image.open(io.BytesIO(base64.b64decode(png))).convert("RGB")).astype(int)

    def pixels(color: tuple[int, int, int]) -> int:
        return int((np.abs(rgb - color).max(axis=2) <= 12).sum())

    # A's wide blue line and B's dashed orange one on it (the same codes) are both drawn
    assert pixels((0x1F, 0x77, 0xB4)) > 300 and pixels((0xFF, 0x7F, 0x0E)) > 100
