"""fetch-dataset at size (issue 16): an FMA-shaped ZIP64 archive served on loopback by
:mod:`support.zipserver`, fetched with the connection cut at random points; what the
server sent against the archive's size, and that the result equals an uninterrupted run.
With ``--s3 URI`` (the loopback services' env exported) also the in-place unpack into S3.

``python -m benchmarks.fetch --mb 1024 --drops 5 [--s3 s3a://bucket/prefix]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fmaprep.acquire.dataset import fetch_dataset
from fmaprep.acquire.http import HttpClient, Throttle
from support.zipserver import ZipServer, fma_shaped_zip


def _run(server: ZipServer, dest: str, digest: str, drops: list[int]) -> dict[str, Any]:
    server.drops, server.sent = list(drops), 0
    client = HttpClient(Throttle(0.0, 1 << 30, 0.0), retries=3, backoff=0.1)
    started = time.monotonic()
    summary = fetch_dataset("fma_x", dest, url=server.base + "/fma_x.zip", sha1=digest,
                            client=client)  # fmt: skip
    return {"dest": dest.split("://", 1)[0] if "://" in dest else "local", "drops": len(drops),
            "seconds": round(time.monotonic() - started, 2), "sent_bytes": server.sent,
            "sent_over_size": round(server.sent / len(server.files["/fma_x.zip"]), 4),
            "extracted": summary.extracted, "failures": len(summary.failures),
            "sha1_checked": summary.sha1 == digest}  # fmt: skip


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.mp3")) if "_fmaprep" not in p.as_posix()}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fetch", description=__doc__)
    parser.add_argument("--mb", type=int, default=1024, help="archive size in MB")
    parser.add_argument("--member-mb", type=int, default=8)
    parser.add_argument("--drops", type=int, default=5)
    parser.add_argument("--s3", help="also unpack in place into this S3 URI")
    args = parser.parse_args(argv)
    data, _ = fma_shaped_zip(args.mb // args.member_mb, args.member_mb * 1_000_000)
    digest = hashlib.sha1(data).hexdigest()
    rng = random.Random(16)
    server = ZipServer(files={"/fma_x.zip": data}).start()
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="fmaprep-bench-fetch-") as tmp:
            cuts = sorted(rng.sample(range(1, len(data)), args.drops))
            # each cut as bytes into the response that resumes from the previous one
            drops = [b - a for a, b in zip([0, *cuts], cuts, strict=False)]
            rows.append(_run(server, f"{tmp}/cut", digest, drops))
            rows.append(_run(server, f"{tmp}/clean", digest, []))
            rows[0]["identical_to_uninterrupted"] = _tree(Path(tmp, "cut")) == _tree(
                Path(tmp, "clean"))  # fmt: skip
            if args.s3:
                window = 32 << 20  # cuts inside the windows the in-place reader asks for
                in_place = [0] + [rng.randrange(1, window // 2) for _ in range(args.drops)]
                rows.append(_run(server, args.s3.rstrip("/") + f"/{digest[:8]}", digest, in_place))
    finally:
        server.close()
    for row in rows:
        print(json.dumps({"archive_bytes": len(data), **row}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
