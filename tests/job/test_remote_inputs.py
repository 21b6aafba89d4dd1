"""Remote inputs read by the tasks themselves (issue 12): awkward names on S3 and HDFS, limits
applied to listed sizes before a byte is read, a file deleted between listing and its task."""

from __future__ import annotations

import io
import json
import uuid
from pathlib import Path

import pytest
from test_commit import run_cli

from fmaprep.audio.synth import music
from fmaprep.config import load_config
from fmaprep.formats.records import read_records
from fmaprep.job.commit import config_key
from fmaprep.model import InputFile
from fmaprep.report.summary import inspect_output
from fmaprep.spark.writers import TaskPlan, write_part
from fmaprep.storage.clients import StoreSettings, open_store
from local_services_fixture import local_services, services_environ  # noqa: F401 (fixtures)

from conftest import write_audio

# every awkward character issue 12 names; HDFS refuses ':' in a name, so none here
AWKWARD = [
    "Artist, Song.mp3",
    "brace {open.mp3",
    "brackets [1] (live).mp3",
    "hash #1 100% sure?.mp3",
    "quotes 'single' \"double\".mp3",
    "Ünïcødé 日本.mp3",
    "sub dir/plus+semi;colon-free.mp3",
]


def _mp3_bytes(tmp_path: Path, seed: int) -> bytes:
    path = write_audio(tmp_path / f"src-{seed}.mp3", music(1.0, 44100, seed=seed), 44100)
    return path.read_bytes()


def _root(kind: str, env: dict[str, str]) -> str:
    tag = uuid.uuid4().hex[:8]
    if kind == "hdfs":
        return f"{env['FMAPREP_HDFS_URI']}/names-{tag}"
    return f"s3a://{env['FMAPREP_S3_BUCKET']}/names-{tag}"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["s3", "hdfs"])
def test_awkward_names_are_read_once_under_their_real_names(
    kind: str,
    services_environ: dict[str, str],  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    env = services_environ
    settings = StoreSettings.from_env(environ=env)
    root = _root(kind, env)
    store = open_store(root, settings)
    for i, name in enumerate(AWKWARD):
        store.write_bytes(f"{root}/in/{name}", _mp3_bytes(tmp_path, i))
    out = f"{root}/out"
    proc = run_cli(f"{root}/in", out, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = [json.loads(x) for x in store.read_bytes(f"{out}/_manifest.jsonl").splitlines()]
    assert sorted(line["source"] for line in manifest) == sorted(f"{root}/in/{n}" for n in AWKWARD)
    assert all(line["status"] == "ok" for line in manifest), manifest
    sources = [r["source"] for r in read_records(out, settings=settings)]
    assert sorted(sources) == sorted(f"{root}/in/{n}" for n in AWKWARD)
    # and they round-trip through resume: nothing is processed again, nothing doubles
    again = run_cli(f"{root}/in", out, env, "--mode", "resume")
    assert again.returncode == 0, again.stderr[-3000:]
    stats = json.loads(store.read_bytes(f"{out}/_stats.json"))
    assert stats["processed_this_run"] == 0 and stats["ok"] == len(AWKWARD)
    assert len(list(read_records(out, settings=settings))) == len(AWKWARD)
    # inspect reads the output where it was written, through its commit
    text = io.StringIO()
    inspect_output(out, text)
    assert f"inputs {len(AWKWARD)}, ok {len(AWKWARD)}, failed 0" in text.getvalue()


@pytest.mark.slow
def test_an_oversized_remote_file_is_refused_unread(
    services_environ: dict[str, str],  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    from support.httpproxy import S3Proxy

    root = _root("s3", services_environ)
    settings = StoreSettings.from_env(environ=services_environ)
    store = open_store(root, settings)
    small = _mp3_bytes(tmp_path, 1)
    store.write_bytes(f"{root}/in/000001.mp3", small)
    store.write_bytes(f"{root}/in/000002.mp3", small + bytes(300_000))  # over the limit below
    conf = tmp_path / "limits.toml"
    conf.write_text(f"[pipeline]\nmax_file_mb = {(len(small) + 100_000) / 1e6}\n")
    with S3Proxy(services_environ["FMAPREP_S3_ENDPOINT"]) as proxy:
        env = {**services_environ, "FMAPREP_S3_ENDPOINT": proxy.url}
        proc = run_cli(f"{root}/in", f"{root}/out", env, "--config", str(conf),
                       "--max-error-rate", "1")  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        touched = [r for r in proxy.requests() if r.key and r.key.endswith("000002.mp3")]
    assert [r.operation for r in touched] == [], touched  # listed, never opened
    lines = store.read_bytes(f"{root}/out/_manifest.jsonl").decode().splitlines()
    by_id = {json.loads(x)["track_id"]: json.loads(x) for x in lines}
    assert by_id["000002"]["status"] == "error"
    assert by_id["000002"]["error"].startswith("unsupported: ")
    assert by_id["000001"]["status"] == "ok"


@pytest.mark.slow
def test_planning_asks_nothing_per_file(
    services_environ: dict[str, str],  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    """Every request of a whole S3 -> local run, recorded at a proxy: the inputs are listed (a
    few ListObjectsV2, however many files) and each one is then read once, by its task, with
    one GetObject: no HeadObject, and no second request for any input."""
    from support.httpproxy import S3Proxy

    root = _root("s3", services_environ)
    store = open_store(root, StoreSettings.from_env(environ=services_environ))
    names = [f"{d:03d}/{d:03d}{n:03d}.mp3" for d in range(3) for n in range(8)]
    for i, name in enumerate(names):
        store.write_bytes(f"{root}/in/{name}", _mp3_bytes(tmp_path, i % 3))
    with S3Proxy(services_environ["FMAPREP_S3_ENDPOINT"]) as proxy:
        env = {**services_environ, "FMAPREP_S3_ENDPOINT": proxy.url}
        proc = run_cli(f"{root}/in", str(tmp_path / "out"), env, "--partitions", "3")
        assert proc.returncode == 0, proc.stderr[-3000:]
        seen = proxy.requests()
    keys = {f"{root.split('/', 3)[3]}/in/{name}": name for name in names}  # bucket-relative
    per_input = {name: [r.operation for r in seen if r.key == key] for key, name in keys.items()}
    assert per_input == {name: ["GetObject"] for name in names}
    others = {r.operation for r in seen if r.key not in keys}
    assert others <= {"ListObjectsV2", "GetObject"}, others  # the listing and _tracks.jsonl
    assert sum(r.operation == "ListObjectsV2" for r in seen) <= 1 + 3  # delimiter + sub-prefixes


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["s3", "hdfs"])
def test_a_file_deleted_after_listing_is_one_read_failed_line(
    kind: str,
    services_environ: dict[str, str],  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    """The task's own read path (what a Spark task runs), with one listed file gone."""
    env = services_environ
    settings = StoreSettings.from_env(environ=env)
    root = _root(kind, env)
    store = open_store(root, settings)
    data = _mp3_bytes(tmp_path, 3)
    items = []
    for name in ("000001.mp3", "000002.mp3"):
        store.write_bytes(f"{root}/in/{name}", data)
        items.append(InputFile(f"{root}/in/{name}", len(data)))
    store.delete([f"{root}/in/000001.mp3"])  # gone between listing and task
    config = load_config()
    plan = TaskPlan(f"{root}/out", "20261203T000000Z000000", "pickle", config.pipeline, settings,
                    config_key(config))  # fmt: skip
    result = write_part(plan, 0, items)
    statuses = {line["track_id"]: line for line in result.lines}
    assert statuses["000001"]["status"] == "error"
    assert statuses["000001"]["error"].startswith("read_failed: not found")
    assert statuses["000002"]["status"] == "ok" and result.records == 1


@pytest.mark.slow
def test_a_whole_run_keeps_going_when_a_listed_key_is_deleted_before_its_task(
    services_environ: dict[str, str],  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    """A whole S3 run, one task at a time (local[1], one file per bin): when the first task
    asks for its input, the other input is deleted from the server itself, after the driver
    listed it and before its task runs. Its task gets a real 404: one read_failed line, the
    run goes on and commits the other record."""
    from support.httpproxy import S3Proxy

    env = services_environ
    settings = StoreSettings.from_env(environ=env)
    root = _root("s3", env)
    store = open_store(root, settings)
    names = ["000001.mp3", "000002.mp3"]
    for i, name in enumerate(names):
        store.write_bytes(f"{root}/in/{name}", _mp3_bytes(tmp_path, 10 + i))
    prefix = root.split("/", 3)[3]  # bucket-relative
    keys = {f"{prefix}/in/{name}": name for name in names}
    deleted: list[str] = []

    def delete_the_other(operation: str, key: str | None) -> None:
        if operation == "GetObject" and key in keys and not deleted:
            (other,) = [k for k in keys if k != key]
            store.delete([f"{root}/in/{keys[other]}"])  # straight to the server, not the proxy
            deleted.append(keys[other])

    with S3Proxy(env["FMAPREP_S3_ENDPOINT"]) as proxy:
        proxy.before_forward = delete_the_other
        via_proxy = {**env, "FMAPREP_S3_ENDPOINT": proxy.url}
        one_at_a_time = ["--master", "local[1]", "--partitions", "2", "--max-error-rate", "1"]
        proc = run_cli(f"{root}/in", f"{root}/out", via_proxy, *one_at_a_time)
        assert proc.returncode == 0, proc.stderr[-3000:]
        gets = [r for r in proxy.requests() if r.operation == "GetObject" and r.key in keys]
    assert len(deleted) == 1
    (gone,) = deleted
    (kept,) = [n for n in names if n != gone]
    # the deleted key was still asked for, by its own task, and the server said it is not there
    assert [(keys[r.key], r.status) for r in gets if keys[r.key] == gone] == [(gone, 404)]
    lines = store.read_bytes(f"{root}/out/_manifest.jsonl").decode().splitlines()
    by_name = {json.loads(x)["source"].rsplit("/", 1)[1]: json.loads(x) for x in lines}
    assert by_name[gone]["status"] == "error"
    assert by_name[gone]["error"].startswith("read_failed: not found"), by_name[gone]
    assert by_name[kept]["status"] == "ok"
    assert [r["source"] for r in read_records(f"{root}/out", settings=settings)] == [
        f"{root}/in/{kept}"
    ]
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["s3", "hdfs"])
def test_export_and_window_sampler_read_a_remote_output(
    kind: str,
    services_environ: dict[str, str],  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    """``fmaprep export`` and a sequential WindowSampler on an OUTPUT in S3/HDFS give the codes
    that read_records gives there (the settings come from the environment, as a user's would)."""
    from fmaprep.cli import main
    from fmaprep.train.data import WindowSampler

    env = services_environ
    corpus = tmp_path / "corpus"
    for i in range(3):
        write_audio(corpus / f"{i + 1:06d}.mp3", music(1.0 + 0.5 * i, 44100, seed=30 + i), 44100)
    out = f"{_root(kind, env)}/out"
    proc = run_cli(str(corpus), out, env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = {r["track_id"]: r["codes"] for r in read_records(out)}
    assert len(records) == 3
    dest = tmp_path / "mm"
    assert main(["-q", "export", out, str(dest), "--to", "memmap"]) == 0
    index = [json.loads(x) for x in (dest / "index.jsonl").read_text().splitlines()]
    assert sorted(line["track_id"] for line in index) == sorted(records)
    flat = (dest / "codes.u8").read_bytes()
    for line in index:
        got = flat[line["offset"] : line["offset"] + line["length"]]
        assert got == records[line["track_id"]].tobytes(), line["track_id"]
    window, rf = 1000, 24
    sampler = WindowSampler(out, window, rf, mode="sequential")
    seen = set()
    for (tid, start), (inputs, target) in zip(sampler.positions(), sampler, strict=True):
        codes = records[tid]
        assert inputs.tobytes() == codes[start : start + rf + window - 1].tobytes(), (tid, start)
        assert target.tobytes() == codes[start + rf : start + rf + window].tobytes(), (tid, start)
        seen.add(tid)
    assert seen == set(records)
    # preview reads one track from there too
    import soundfile as sf

    from fmaprep.train.preview import codes_to_pcm16

    tid = sorted(records)[1]
    wav = tmp_path / "one.wav"
    assert main(["-q", "preview", out, "--track", tid, "--out", str(wav)]) == 0
    pcm, rate = sf.read(wav, dtype="int16")
    assert rate == 8000
    assert pcm.tobytes() == codes_to_pcm16(records[tid]).tobytes()
