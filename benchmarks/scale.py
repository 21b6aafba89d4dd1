"""The remote-scale table (README, "Scale"): N tiny mp3 inputs on local disk, HDFS and S3 (with
and without 20 ms added to every S3 request), ``local[2]``; wall time, the time before the
first task, and the marginal cost per file.

``python -m benchmarks.scale --stores local,hdfs,s3,s3+20ms --sizes 1000,5000,20000`` with
the loopback services up (``scripts/local-services.sh up``; their ``env`` exported). Each run is
a fresh ``fmaprep preprocess`` process; the corpus is one 2-second mp3's bytes under N names in
FMA's layout (the per-file overhead is what is measured, not decoding).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fmaprep.audio.encode import write_mp3
from fmaprep.audio.synth import music
from fmaprep.storage.clients import StoreSettings, open_store

BASELINE_FILES = 100  # the marginal cost is measured from here


def tiny_mp3(seconds: float = 2.0) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.mp3"
        write_mp3(path, music(seconds, 44100, seed=1), 44100)
        return path.read_bytes()


def names(n: int) -> list[str]:
    return [f"{i:06d}"[:3] + f"/{i:06d}.mp3" for i in range(1, n + 1)]


def upload(root: str, n: int, data: bytes, settings: StoreSettings, threads: int = 16) -> float:
    """Put ``n`` copies of ``data`` under ``root``; returns seconds taken."""
    started = time.monotonic()
    if "://" not in root:
        for name in names(n):
            path = Path(root) / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return time.monotonic() - started
    store = open_store(root, settings)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda name: store.write_bytes(f"{root}/{name}", data), names(n)))
    return time.monotonic() - started


@contextlib.contextmanager
def latency_proxy(env: dict[str, str], delay_ms: float) -> Iterator[dict[str, str]]:
    from support.httpproxy import S3Proxy

    with S3Proxy(env["FMAPREP_S3_ENDPOINT"], delay_ms=delay_ms) as proxy:
        yield {**env, "FMAPREP_S3_ENDPOINT": proxy.url}


SERVICE_PIDS = Path(".services") / "pids"  # scripts/local-services.sh: HDFS and s3proxy


def services_cpu_s() -> float:
    """CPU seconds used so far by the loopback services' processes (they share the job's cores:
    on EMR the NameNode, DataNodes and S3 run elsewhere)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid_file in SERVICE_PIDS.glob("*.pid"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = Path(f"/proc/{int(pid_file.read_text())}/stat").read_text().rsplit(")", 1)[1]
            utime, stime = fields.split()[11:13]
            total += (int(utime) + int(stime)) / tick
    return total


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def run_job(inp: str, out: str, env: dict[str, str]) -> dict[str, Any]:
    """One job in a fresh process; wall time, and CPU seconds of the loopback services and of
    this process (the in-process latency proxy, when used)."""
    cpu = (services_cpu_s(), _cpu(resource.RUSAGE_SELF))
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "fmaprep", "preprocess", inp, out, "--master", "local[2]"],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.monotonic() - started
    service_cpu = services_cpu_s() - cpu[0]
    proxy_cpu = _cpu(resource.RUSAGE_SELF) - cpu[1]
    if proc.returncode != 0:
        raise RuntimeError(f"job on {inp} failed: {proc.stderr[-2000:]}")
    stats = json.loads(open_store(out, StoreSettings.from_env(environ=env)).read_bytes(
        f"{out}/_stats.json"))  # fmt: skip
    timings = stats.get("timings", {})
    first_task = sum(timings.get(k, 0.0) for k in ("start_s", "list_s", "plan_s"))
    return {"wall_s": round(wall, 2), "to_first_task_s": round(first_task, 2),
            "tasks_s": timings.get("tasks_s"), "commit_s": stats.get("commit_s"),
            "ok": stats["ok"],
            "services_cpu_s": round(service_cpu, 2),
            "proxy_cpu_s": round(proxy_cpu, 2)}  # fmt: skip


def place(store: str, env: dict[str, str], tag: str, local_dir: Path) -> str:
    if store == "local":
        return str(local_dir / tag)
    if store == "hdfs":
        return f"{env['FMAPREP_HDFS_URI']}/scale/{tag}"
    return f"s3a://{env['FMAPREP_S3_BUCKET']}/scale/{tag}"


def measure(
    stores: list[str], sizes: list[int], work: Path, small_repeats: int = 3
) -> list[dict[str, Any]]:
    """Per store: a warm-up run (page cache, the JVM's class archive), then BASELINE_FILES and
    each size; sizes up to 1,000 run ``small_repeats`` times (median), since there a second of
    machine noise is a millisecond per file. ``marginal_ms``: (wall(N) - wall(baseline)) per
    extra file; ``slope_ms``: the same from the previous size (the cost of the files added)."""
    import statistics

    data = tiny_mp3()
    rows = []
    base_env = dict(os.environ)
    for store in stores:
        kind, _, delay = store.partition("+")
        delay_ms = float(delay.removesuffix("ms")) if delay else 0.0
        done: list[tuple[int, float]] = []
        _one_run(kind, BASELINE_FILES, data, base_env, delay_ms=delay_ms, work=work)  # the warm-up
        for n in [BASELINE_FILES, *sizes]:
            repeats = small_repeats if n <= 1000 else 1
            runs = [
                _one_run(kind, n, data, base_env, delay_ms=delay_ms, work=work)
                for _ in range(repeats)
            ]
            run = sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]  # the median run
            wall = run["wall_s"]
            row: dict[str, Any] = {"store": store, "files": n, **run}
            if len(runs) > 1:
                row["walls"] = [r["wall_s"] for r in runs]
            if done:
                base_n, base_wall = done[0]
                prev_n, prev_wall = done[-1]
                row["marginal_ms"] = round(1000 * (wall - base_wall) / (n - base_n), 2)
                row["slope_ms"] = round(1000 * (wall - prev_wall) / (n - prev_n), 2)
            done.append((n, statistics.median(r["wall_s"] for r in runs)))
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def _one_run(
    kind: str, n: int, data: bytes, base_env: dict[str, str], *, delay_ms: float, work: Path
) -> dict[str, Any]:
    tag = f"{kind}-{n}-{uuid.uuid4().hex[:6]}"
    inp = place(kind, base_env, f"in-{tag}", work)
    out = place(kind, base_env, f"out-{tag}", work)
    load_s = upload(inp, n, data, StoreSettings.from_env(environ=base_env))
    with contextlib.ExitStack() as stack:
        env = base_env
        if delay_ms:
            env = stack.enter_context(latency_proxy(base_env, delay_ms))
        run = {**run_job(inp, out, env), "load_s": round(load_s, 1)}
    if kind == "local":
        shutil.rmtree(inp, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
    return run


def upload_tree(src: Path, dest: str, settings: StoreSettings, threads: int = 8) -> None:
    """Every file under ``src`` to ``dest`` (its relative names kept)."""
    store = open_store(dest, settings)
    files = sorted(p for p in src.rglob("*") if p.is_file() and not p.name.startswith("."))

    def put(path: Path) -> None:
        with store.open_write(f"{dest}/{path.relative_to(src).as_posix()}") as w:
            with path.open("rb") as f:
                while block := f.read(8 << 20):
                    w.write(block)
            w.commit()

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(put, files))


def throughput(corpus: Path, repeat: int) -> list[dict[str, Any]]:
    """The same corpus from local disk, HDFS and S3, ``local[2]``, round-robin ``repeat`` times:
    audio seconds per wall second, and each store's share of local disk's."""
    import statistics

    from benchmarks.runner import run_job

    env = dict(os.environ)
    settings = StoreSettings.from_env(environ=env)
    tag = uuid.uuid4().hex[:6]
    inputs = {"local": str(corpus.resolve()),
              "hdfs": f"{env['FMAPREP_HDFS_URI']}/throughput-{tag}",
              "s3": f"s3a://{env['FMAPREP_S3_BUCKET']}/throughput-{tag}"}  # fmt: skip
    for kind in ("hdfs", "s3"):
        upload_tree(corpus, inputs[kind], settings)
    walls: dict[str, list[float]] = {k: [] for k in inputs}
    service_cpu: dict[str, list[float]] = {k: [] for k in inputs}
    audio = 0.0
    with tempfile.TemporaryDirectory(prefix="fmaprep-throughput-") as tmp:
        run_job(inputs["local"], "local[2]", [], Path(tmp))  # warm-up: page cache, JVM archive
        for _ in range(repeat):
            for kind, uri in inputs.items():
                before = services_cpu_s()
                wall, audio = run_job(uri, "local[2]", [], Path(tmp))
                walls[kind].append(wall)
                service_cpu[kind].append(round(services_cpu_s() - before, 2))
                row = {"store": kind, "wall_s": round(wall, 2),
                       "services_cpu_s": service_cpu[kind][-1]}  # fmt: skip
                print(json.dumps(row), flush=True)
    local = statistics.median(walls["local"])
    return [{"store": k, "median_s": round(statistics.median(v), 2), "runs": v,
             "audio_s_per_s": round(audio / statistics.median(v), 1),
             "share_of_local": round(local / statistics.median(v), 3),
             "services_cpu_s": statistics.median(service_cpu[k])}
            for k, v in walls.items()]  # fmt: skip


_COMMIT_LOG = re.compile(
    r"commit timings: commit ([\d.]+) s, conveniences ([\d.]+) s, clean-up ([\d.]+) s "
    r"\((\d+) files"
)


def commit_times(
    parts: list[int], work: Path, seconds: tuple[float, ...] = (1.0,)
) -> list[dict[str, Any]]:
    """Commit time on S3 for outputs of N parts (one input per part, each ``seconds`` long): a
    new run, then an overwrite, which also deletes the N old parts and shards after its commit.
    The job logs each phase's time; the S3 requests of each run are counted by a recording
    proxy in front of the server (none of them may be a copy)."""
    from support.httpproxy import S3Proxy

    env = dict(os.environ)
    rows = []
    for n in parts:
        for length in seconds:
            data = tiny_mp3(length)
            inp = work / f"commit-in-{n}"
            shutil.rmtree(inp, ignore_errors=True)
            upload(str(inp), n, data, StoreSettings())
            out = f"s3a://{env['FMAPREP_S3_BUCKET']}/commit-{n}-{uuid.uuid4().hex[:6]}"
            for mode in ("error", "overwrite"):
                with S3Proxy(env["FMAPREP_S3_ENDPOINT"]) as proxy:
                    run_env = {**env, "FMAPREP_S3_ENDPOINT": proxy.url}
                    proc = subprocess.run(
                        [sys.executable, "-m", "fmaprep", "preprocess", str(inp), out,
                         "--master", "local[2]", "--partitions", str(n), "--mode", mode],
                        env=run_env, capture_output=True, text=True, check=False,
                    )  # fmt: skip
                    requests = dict(collections.Counter(r.operation for r in proxy.requests()))
                if proc.returncode != 0:
                    raise RuntimeError(proc.stderr[-2000:])
                found = _COMMIT_LOG.search(proc.stderr)
                store = open_store(out, StoreSettings.from_env(environ=env))
                commit = json.loads(store.read_bytes(f"{out}/_SUCCESS"))
                row = {
                    "parts": len(commit["parts"]), "mode": mode, "seconds_per_input": length,
                    "part_bytes_total": sum(p["bytes"] for p in commit["parts"]),
                    "success_bytes": len(store.read_bytes(f"{out}/_SUCCESS")),
                    "commit_s": float(found.group(1)) if found else None,
                    "conveniences_s": float(found.group(2)) if found else None,
                    "cleanup_s": float(found.group(3)) if found else None,
                    "cleaned_files": int(found.group(4)) if found else None,
                    "requests": requests,
                }  # fmt: skip
                rows.append(row)
                print(json.dumps(row), flush=True)
            shutil.rmtree(inp, ignore_errors=True)
    return rows


def _blank(value: object) -> str:
    return "" if value is None else str(value)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The README's scale table from ``measure`` rows (several files' rows may be joined)."""
    head = ("| store | files | wall s | start to first task s | marginal ms/file | "
            "slope ms/file | services CPU ms/file | proxy CPU ms/file |\n"
            "|---|---|---|---|---|---|---|---|\n")  # fmt: skip

    def per_file(row: dict[str, Any], key: str) -> str:
        value = row.get(key)
        return "" if value is None else f"{1000 * value / row['files']:.2f}"

    body = "".join(
        f"| {r['store']} | {r['files']:,} | {r['wall_s']} | {r['to_first_task_s']} | "
        f"{_blank(r.get('marginal_ms'))} | {_blank(r.get('slope_ms'))} | "
        f"{per_file(r, 'services_cpu_s')} "
        f"| {per_file(r, 'proxy_cpu_s')} |\n"
        for r in rows
    )
    return head + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scale", description=__doc__)
    parser.add_argument("--stores", default="local,hdfs,s3,s3+20ms")
    parser.add_argument("--sizes", default="1000,5000,20000")
    parser.add_argument("--work", default="build/bench-scale", help="local corpus directory")
    parser.add_argument("--out", default="build/bench-scale/scale.jsonl")
    parser.add_argument(
        "--throughput",
        type=Path,
        metavar="CORPUS",
        help="instead: this corpus from local disk, HDFS and S3, round-robin",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--commit-parts", metavar="N,N", help="instead: commit time on S3 for outputs of N parts"
    )
    parser.add_argument(
        "--commit-seconds",
        default="1",
        metavar="S,S",
        help="with --commit-parts: the length of each part's one input (more bytes per part)",
    )
    parser.add_argument(
        "--table", nargs="+", type=Path, metavar="JSONL",
        help="instead: print the markdown scale table of these result files",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.table:
        rows = [json.loads(line) for f in args.table for line in f.read_text().splitlines()]
        print(markdown_table(rows), end="")
        return 0
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    if args.commit_parts:
        lengths = tuple(float(x) for x in args.commit_seconds.split(","))
        rows = commit_times([int(n) for n in args.commit_parts.split(",")], work, lengths)
        Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))
        return 0
    if args.throughput:
        rows = throughput(args.throughput, args.repeat)
        Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))
        print("\n".join(json.dumps(r) for r in rows))
        return 0
    rows = measure(args.stores.split(","), [int(s) for s in args.sizes.split(",")], work)
    Path(args.out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
