from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import runner
from benchmarks.fit import amdahl, fit_serial_fraction
from benchmarks.runner import Run, table_rows, threads_of


@pytest.mark.parametrize("serial", [0.0, 0.05, 0.3, 1.0])
def test_amdahl_fit_recovers_the_serial_fraction(serial: float) -> None:
    threads = [1, 2, 4, 8, 16]
    speedups = [amdahl(n, serial) for n in threads]
    assert fit_serial_fraction(threads, speedups) == pytest.approx(serial, abs=1e-9)


def test_amdahl_closed_form() -> None:
    assert amdahl(1, 0.2) == pytest.approx(1.0)
    assert amdahl(4, 0.0) == pytest.approx(4.0)
    assert amdahl(4, 0.5) == pytest.approx(1 / (0.5 + 0.125))


def test_table_rows() -> None:
    runs = [
        Run("default", "local[1]", 1, [10.0, 12.0, 11.0], 3600.0),
        Run("default", "local[2]", 2, [6.0, 5.0, 7.0], 3600.0),
    ]
    rows = table_rows(runs)
    assert rows[0]["median_s"] == 11.0 and rows[0]["speedup"] == 1.0
    assert rows[1]["median_s"] == 6.0 and rows[1]["min_s"] == 5.0 and rows[1]["max_s"] == 7.0
    assert rows[1]["speedup"] == pytest.approx(11 / 6, abs=1e-3)
    assert rows[1]["efficiency"] == pytest.approx(11 / 12, abs=1e-3)
    assert rows[1]["audio_h_per_h"] == pytest.approx(600.0)


def test_runs_go_round_robin_so_drift_hits_every_setting_alike(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    order: list[str] = []

    def fake_job(
        input_dir: str, master: str, extra: list[str], workdir: Path
    ) -> tuple[float, float]:
        order.append(f"{'original' if extra else 'default'} {master}")
        return float(len(order)), 60.0

    def fake_extra() -> float:
        order.append("librosa")
        return 1.0

    monkeypatch.setattr(runner, "run_job", fake_job)
    runs, extras = runner.run_matrix(
        "in", ["local[1]", "local[2]"], ["default", "original"], 2, {"librosa": fake_extra}
    )
    one_round = ["default local[1]", "default local[2]", "original local[1]",
                 "original local[2]", "librosa"]  # fmt: skip
    assert order == one_round * 2
    assert [r.seconds for r in runs] == [[1.0, 6.0], [2.0, 7.0], [3.0, 8.0], [4.0, 9.0]]
    assert extras == {"librosa": [1.0, 1.0]}


def test_threads_of() -> None:
    assert threads_of("local[4]") == 4 and threads_of("local[2,3]") == 2
    with pytest.raises(ValueError, match="local"):
        threads_of("yarn")


@pytest.mark.slow
def test_bench_end_to_end(tmp_path: Path) -> None:
    from benchmarks.report import run_benchmark
    from fmaprep.acquire.demo import make_demo_corpus

    paths = [str(p) for p in make_demo_corpus(tmp_path / "corpus", n_tracks=2, seconds=3.0)]
    summary = run_benchmark(
        str(tmp_path / "corpus"), paths, ["local[1]"], ["default"], 1, tmp_path / "out", True
    )
    assert (tmp_path / "out" / "speedup.png").stat().st_size > 1000
    assert "| default | local[1] | 1 |" in (tmp_path / "out" / "bench.md").read_text()
    assert summary["per_core"]["pipeline_over_decode"] > 0
    assert summary["librosa"]["local[1]"]["librosa_s"] > 0
