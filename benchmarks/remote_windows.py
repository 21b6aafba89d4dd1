"""Windows per second from a memmap export read in place on the loopback S3 with 20 ms added to
every request, against the same export on local disk (docs/training.md quotes the result).

``--delay-in client`` (default) adds the delay before each GetObject in the reader's own boto3
client (a ``before-send`` handler), so the bytes flow from s3proxy to the reader as from S3;
``--delay-in proxy`` adds it in the recording proxy (tests/support/httpproxy.py), a Python
process that relays every byte and so costs CPU of its own on the shared cores; ``none`` reads
s3proxy directly.

The export: ``--mb`` MB of codes in 1 MB tracks; windows of 16,000 predictions with a receptive
field of 5,117 codes (tensorflow-wavenet's sizes), sequential mode over the whole export, and
random mode for ``--random`` windows. Remote reads use :class:`fmaprep.train.remote.RemoteExport`
with its default block (1 MB), read-ahead (16 blocks) and cache (64 MB) unless told otherwise.
Local and remote passes alternate, ``--runs`` pairs: medians, and the median pairwise
ratio; the local figure is read from the page cache (the file was just written).

Needs the loopback services: ``bash scripts/local-services.sh up`` and
``eval "$(bash scripts/local-services.sh env)"`` first. Prints one JSON line.

    .venv/bin/python benchmarks/remote_windows.py [--mb 128] [--runs 3] [--delay-ms 20]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from fmaprep.storage.clients import StoreSettings, open_store
from fmaprep.storage.s3client import s3_client
from fmaprep.train.data import MemmapExport, WindowSampler
from fmaprep.train.export import CODES_FILE, INDEX_FILE
from fmaprep.train.remote import BLOCK_BYTES, CACHE_BYTES, READ_AHEAD, RemoteExport

WINDOW, RF = 16_000, 5_117
TRACK = 1024 * 1024


@contextlib.contextmanager
def latency_proxy(upstream: str, delay_ms: float) -> Iterator[str]:
    """The recording S3 proxy with ``delay_ms`` before each request, in a process of its own (in
    ours it would share the GIL with the reader being measured): tests/support/httpproxy.py."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "support.httpproxy",
            "--upstream",
            upstream,
            "--delay-ms",
            str(delay_ms),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "tests")},
    )
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.terminate()
        proc.wait(30)


@contextlib.contextmanager
def client_delay(upstream: str, delay_ms: float) -> Iterator[str]:
    """``delay_ms`` before each GetObject, in the reader's own request path: a botocore
    ``before-send`` handler on this process's client (the client the reader uses, see
    :func:`fmaprep.storage.s3client.s3_client`), so the bytes go straight from s3proxy to the
    reader. The proxy's Python relay costs CPU the real S3 does not (it halved s3proxy's
    single-stream rate here); this adds only the round trip."""
    settings = StoreSettings.from_env(endpoint=upstream)
    assert settings.s3 is not None

    def wait(**_: object) -> None:
        time.sleep(delay_ms / 1000)

    client = s3_client(settings.s3)
    client.meta.events.register("before-send.s3.GetObject", wait)
    try:
        yield upstream
    finally:
        client.meta.events.unregister("before-send.s3.GetObject", wait)


def write_export(path: str, mb: int) -> None:
    rng = np.random.default_rng(0)
    os.makedirs(path)
    with open(os.path.join(path, CODES_FILE), "wb") as f:
        for _ in range(mb):
            f.write(rng.integers(0, 256, TRACK, dtype=np.uint8).tobytes())
    lines = [{"track_id": f"{i:06d}", "offset": i * TRACK, "length": TRACK} for i in range(mb)]
    with open(os.path.join(path, INDEX_FILE), "w", encoding="utf-8") as f:
        f.writelines(json.dumps(line) + "\n" for line in lines)


def upload(local: str, dest: str, settings: StoreSettings) -> None:
    store = open_store(dest, settings)
    with store.open_write(f"{dest}/{CODES_FILE}") as out, open(f"{local}/{CODES_FILE}", "rb") as f:
        while chunk := f.read(16 * 1024 * 1024):
            out.write(chunk)
        out.commit()
    with open(f"{local}/{INDEX_FILE}", "rb") as f:
        store.write_bytes(f"{dest}/{INDEX_FILE}", f.read())


def pass_rate(export: object, **kw: object) -> float:
    """Windows per second of one full pass."""
    sampler = WindowSampler(export, WINDOW, RF, seed=1, **kw)  # type: ignore[arg-type]
    start = time.perf_counter()
    n = sum(1 for _ in sampler)
    return n / (time.perf_counter() - start)


def paired(
    local: str, remote: Callable[[], RemoteExport], runs: int, **kw: object
) -> dict[str, float]:
    """Local then remote, ``runs`` times (a fresh remote export, so a cold cache, each time); the
    medians and the median of the pairwise ratios (pairs keep it fair on a drifting machine)."""
    here, there = [], []
    for _ in range(runs):
        here.append(pass_rate(MemmapExport(local), **kw))
        there.append(pass_rate(remote(), **kw))
    return {
        "local_windows_s": round(statistics.median(here)),
        "s3_windows_s": round(statistics.median(there)),
        "s3_share": round(statistics.median(b / a for a, b in zip(here, there, strict=True)), 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=int, default=128)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--delay-ms", type=float, default=20.0)
    ap.add_argument("--random", type=int, default=200, help="random-mode windows per run")
    ap.add_argument("--block-mb", type=float, default=BLOCK_BYTES / 2**20)
    ap.add_argument("--cache-mb", type=float, default=CACHE_BYTES / 2**20)
    ap.add_argument("--read-ahead", type=int, default=READ_AHEAD)
    ap.add_argument(
        "--delay-in",
        choices=("client", "proxy", "none"),
        default="client",
        help="where the delay is added: before each GET in the reader's client (default), in "
        "the recording proxy (tests/support/httpproxy.py: a Python relay of every byte), or "
        "nowhere (S3 read directly)",
    )
    args = ap.parse_args()
    upstream = os.environ["FMAPREP_S3_ENDPOINT"]
    bucket = os.environ.get("FMAPREP_S3_BUCKET", "fmaprep")
    sizes = {
        "block_bytes": int(args.block_mb * 2**20),
        "cache_bytes": int(args.cache_mb * 2**20),
        "read_ahead": args.read_ahead,
    }
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, "mm")
        write_export(local, args.mb)
        dest = f"s3://{bucket}/bench-windows-{uuid.uuid4().hex[:8]}"
        upload(local, dest, StoreSettings.from_env())
        delays = {"client": client_delay, "proxy": latency_proxy}
        delay = delays.get(args.delay_in)
        with delay(upstream, args.delay_ms) if delay else contextlib.nullcontext(upstream) as url:
            settings = StoreSettings.from_env(endpoint=url)
            result: dict[str, object] = {
                "mb": args.mb,
                "window": WINDOW,
                "receptive_field": RF,
                "delay_ms": None if delay is None else args.delay_ms,
                "delay_in": args.delay_in,
                "runs": args.runs,
                **sizes,
                "load_average_at_start": round(os.getloadavg()[0], 1),  # a shared machine's noise
            }
            for mode, kw in (
                ("sequential", {"mode": "sequential"}),
                ("random", {"num_windows": args.random}),
            ):
                result[mode] = paired(
                    local, lambda: RemoteExport(dest, settings, **sizes), args.runs, **kw
                )
        open_store(dest, StoreSettings.from_env()).delete(
            [f"{dest}/{CODES_FILE}", f"{dest}/{INDEX_FILE}"]
        )
    result["load_average_at_end"] = round(os.getloadavg()[0], 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
