"""train.data: memmap exports and WindowSampler windows (in range, deterministic, one track)."""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import pytest
from memmaps import constant_tracks, random_tracks, write_memmap

from fmaprep.formats.records import read_records
from fmaprep.train.data import MemmapExport, WindowSampler, torch_dataset
from fmaprep.train.export import export_memmap

from conftest import write_parquet_output

HAVE_TORCH = importlib.util.find_spec("torch") is not None


def take(sampler: WindowSampler, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    out = []
    for item in sampler:
        out.append(item)
        if len(out) == n:
            break
    return out


@pytest.mark.parametrize(("window", "rf"), [(1, 1), (16, 1), (8, 32), (100, 5)])
def test_windows_have_the_documented_shape_and_come_from_one_track(
    tmp_path: Path, window: int, rf: int
) -> None:
    lengths = [40, 500, 7, 130, 1000, 20]
    dest = write_memmap(tmp_path / "mm", constant_tracks(lengths))
    span = window + rf
    eligible = {10 + k for k, n in enumerate(lengths) if n >= span}
    windows = take(WindowSampler(str(dest), window, rf, seed=1), 400)
    assert len(windows) == 400
    for inputs, target in windows:
        assert inputs.dtype == target.dtype == np.uint8
        assert inputs.shape == (rf + window - 1,) and target.shape == (window,)
        values = set(np.unique(inputs)) | set(np.unique(target))
        assert len(values) == 1 and values <= eligible  # one track, and long enough for a span


def test_windows_are_slices_of_their_track_at_the_reported_positions(tmp_path: Path) -> None:
    tracks = random_tracks([300, 64, 1000, 65])
    dest = write_memmap(tmp_path / "mm", tracks)
    window, rf = 32, 33  # span 65: the 64-code track never qualifies, the 65-code one once
    for mode in ("random", "sequential"):
        sampler = WindowSampler(str(dest), window, rf, seed=3, mode=mode, num_windows=300)  # type: ignore[arg-type]
        positions = list(sampler.positions())
        windows = list(sampler)
        assert len(positions) == len(windows) > 0
        for (tid, start), (inputs, target) in zip(positions, windows, strict=True):
            codes = tracks[int(tid[1:])]
            assert start >= 0 and start + rf + window <= codes.size
            np.testing.assert_array_equal(inputs, codes[start : start + rf + window - 1])
            np.testing.assert_array_equal(target, codes[start + rf : start + rf + window])
        assert {tid for tid, _ in positions} <= {"t0", "t2", "t3"}


def test_random_windows_are_deterministic_per_seed(tmp_path: Path) -> None:
    dest = write_memmap(tmp_path / "mm", random_tracks([500, 900, 80]))

    def draw(seed: int, epoch: int = 0) -> bytes:
        sampler = WindowSampler(str(dest), 16, 8, seed=seed, num_windows=50)
        sampler.set_epoch(epoch)
        return b"".join(i.tobytes() + t.tobytes() for i, t in sampler)

    assert draw(7) == draw(7)
    sampler = WindowSampler(str(dest), 16, 8, seed=7, num_windows=50)
    assert list(sampler.positions()) == list(sampler.positions())  # iterating again restarts
    assert draw(7) != draw(8)
    assert draw(7, epoch=1) != draw(7) and draw(7, epoch=1) == draw(7, epoch=1)


def test_random_mode_is_uniform_over_all_valid_windows(tmp_path: Path) -> None:
    lengths = [100, 400, 1_600, 30]
    dest = write_memmap(tmp_path / "mm", constant_tracks(lengths))
    window, rf, n = 20, 11, 30_000
    starts = np.array([max(0, length - window - rf + 1) for length in lengths])
    expected = n * starts / starts.sum()
    counts = np.zeros(len(lengths))
    for tid, _ in WindowSampler(str(dest), window, rf, seed=0, num_windows=n).positions():
        counts[int(tid[1:])] += 1
    chi2 = float(((counts - expected) ** 2 / np.where(expected > 0, expected, 1)).sum())
    assert counts[3] == 0 and chi2 < 16.3  # 3 dof (one cell is structurally 0): p < 0.001


def test_sequential_targets_tile_each_track_in_order(tmp_path: Path) -> None:
    tracks = random_tracks([100, 10, 57])
    dest = write_memmap(tmp_path / "mm", tracks)
    window, rf = 8, 5
    sampler = WindowSampler(str(dest), window, rf, mode="sequential")
    positions = list(sampler.positions())
    want = [("t0", s) for s in range(0, 100 - 13 + 1, 8)] + [("t2", s) for s in range(0, 45, 8)]
    assert positions == want
    targets = [t for (tid, _), (_, t) in zip(positions, sampler, strict=True) if tid == "t0"]
    np.testing.assert_array_equal(np.concatenate(targets), tracks[0][rf : rf + 8 * len(targets)])
    hop = list(WindowSampler(str(dest), window, rf, mode="sequential", hop=1).positions())
    assert len(hop) == (100 - 13 + 1) + (57 - 13 + 1)


def test_shards_split_the_windows_between_workers(tmp_path: Path) -> None:
    dest = write_memmap(tmp_path / "mm", random_tracks([300, 200]))
    seq = WindowSampler(str(dest), 10, 3, mode="sequential")
    whole = list(seq.positions())
    shards = [list(seq.positions(k, 3)) for k in range(3)]
    assert sorted(p for shard in shards for p in shard) == sorted(whole) and all(shards)
    rnd = WindowSampler(str(dest), 10, 3, seed=2, num_windows=10)
    parts = [list(rnd.positions(k, 3)) for k in range(3)]
    assert [len(p) for p in parts] == [3, 3, 4] and parts[0] != parts[1][:3]  # floor(w*10/3)
    assert list(rnd.positions(0, 1)) == list(rnd.positions())


def test_one_hot_inputs(tmp_path: Path) -> None:
    tracks = random_tracks([200])
    dest = write_memmap(tmp_path / "mm", tracks)
    plain = take(WindowSampler(str(dest), 12, 4, seed=5), 20)
    hot = take(WindowSampler(str(dest), 12, 4, seed=5, one_hot=True), 20)
    for (codes, target), (onehot, target2) in zip(plain, hot, strict=True):
        assert onehot.dtype == np.float32 and onehot.shape == (15, 256)
        assert (onehot.sum(axis=1) == 1).all()
        np.testing.assert_array_equal(onehot.argmax(axis=1), codes)
        np.testing.assert_array_equal(target, target2)
    small = write_memmap(tmp_path / "mu15", [np.arange(40, dtype=np.uint8) % 16], mu=15)
    onehot, _ = next(iter(WindowSampler(str(small), 4, 2, one_hot=True)))
    assert onehot.shape == (5, 16)


def test_filters_and_errors(tmp_path: Path) -> None:
    dest = write_memmap(tmp_path / "mm", constant_tracks([50, 60, 70]))
    jazz = WindowSampler(str(dest), 5, 5, genres="Jazz", num_windows=100)
    assert {tid for tid, _ in jazz.positions()} == {"t1"}
    with pytest.raises(ValueError, match="no selected track has 71 codes"):
        WindowSampler(str(dest), 40, 31)
    with pytest.raises(ValueError, match="need >= 1"):
        WindowSampler(str(dest), 0, 1)
    with pytest.raises(ValueError, match="not contiguous"):
        (dest / "index.jsonl").write_text('{"track_id": "a", "offset": 5, "length": 1}\n')
        MemmapExport(str(dest))


def test_memmap_export_pickles_by_path(tmp_path: Path) -> None:
    dest = write_memmap(tmp_path / "mm", random_tracks([100_000]))
    export = MemmapExport(str(dest))
    blob = pickle.dumps(WindowSampler(export, 10, 10))
    assert len(blob) < 10_000  # the codes are not in the pickle
    again = pickle.loads(blob)
    np.testing.assert_array_equal(again._export.codes(0), export.codes(0))


def test_an_output_and_its_memmap_export_give_the_same_windows(tmp_path: Path) -> None:
    tracks = random_tracks([300, 50, 700, 120], seed=9)
    records = [
        {
            "track_id": f"{i:06d}",
            "source": f"/m/{i}.mp3",
            "sample_rate": 8000,
            "mu": 255,
            "genre": ("Rock", "Jazz")[i % 2],
            "codes": codes,
        }
        for i, codes in enumerate(tracks)
    ]
    out = write_parquet_output(tmp_path / "o", [records[:3], records[3:]])
    dest = tmp_path / "mm"
    export_memmap(str(out), str(dest))
    for kw in (
        {"num_windows": 200},
        {"mode": "sequential"},
        {"genres": ["Rock"], "num_windows": 50},
    ):
        a = list(WindowSampler(str(out), 16, 16, seed=4, **kw))
        b = list(WindowSampler(str(dest), 16, 16, seed=4, **kw))
        assert len(a) == len(b) > 0
        for (x1, y1), (x2, y2) in zip(a, b, strict=True):
            np.testing.assert_array_equal(x1, x2)
            np.testing.assert_array_equal(y1, y2)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["pickle", "parquet"])
def test_windows_of_a_real_output_are_slices_of_its_records(
    job_outputs: dict[str, Path], fmt: str, tmp_path: Path
) -> None:
    records = {r["track_id"]: r["codes"] for r in read_records(str(job_outputs[fmt]))}
    export_memmap(str(job_outputs[fmt]), str(tmp_path / "mm"))
    for source in (str(job_outputs[fmt]), str(tmp_path / "mm")):
        sampler = WindowSampler(source, 1000, 1024, seed=11, num_windows=100)
        for (tid, start), (inputs, target) in zip(sampler.positions(), sampler, strict=True):
            np.testing.assert_array_equal(inputs, records[tid][start : start + 2023])
            np.testing.assert_array_equal(target, records[tid][start + 1024 : start + 2024])


@pytest.mark.skipif(HAVE_TORCH, reason="torch is installed: the wrapper is tested instead")
def test_torch_dataset_without_torch_says_so(tmp_path: Path) -> None:
    dest = write_memmap(tmp_path / "mm", random_tracks([100]))
    with pytest.raises(ImportError, match="needs PyTorch"):
        torch_dataset(WindowSampler(str(dest), 4, 4))


@pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed (it is optional)")
def test_torch_dataset_batches_the_sampler_windows(tmp_path: Path) -> None:
    import torch
    from torch.utils.data import DataLoader

    dest = write_memmap(tmp_path / "mm", random_tracks([400, 300]))
    sampler = WindowSampler(str(dest), 16, 8, seed=1, num_windows=32)
    batches = list(DataLoader(torch_dataset(sampler), batch_size=8))
    assert len(batches) == 4
    x, y = batches[0]
    assert x.dtype == y.dtype == torch.int64 and x.shape == (8, 23) and y.shape == (8, 16)
    first = [w for w, _ in zip(sampler, range(8), strict=False)]
    np.testing.assert_array_equal(x.numpy(), np.stack([i for i, _ in first]))
