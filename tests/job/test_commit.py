"""The commit protocol (README, "Commit protocol"), on local disk, HDFS and S3, through the CLI as a
user runs it: the driver is killed during the tasks and between every step of the commit; after
each kill a reader sees a whole generation (or, for a first run, none), and ``--mode resume``
ends with every input exactly once, with the codes of a clean run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fmaprep.audio.synth import music
from fmaprep.formats.records import read_commit, read_records
from fmaprep.storage.clients import StoreSettings, open_store
from local_services_fixture import local_services, services_environ  # noqa: F401 (fixtures)

from conftest import crash_env, write_audio

N_FILES = 8
STEPS = ("before-driver-shard", "before-commit", "before-conveniences", "before-cleanup",
         "mid-cleanup")  # fmt: skip


def make_corpus(root: Path, n: int = N_FILES, seed: int = 0) -> Path:
    for i in range(n):
        tid = f"{100 + i:06d}"
        write_audio(root / tid[:3] / f"{tid}.mp3", music(1.5, 44100, seed=seed + i), 44100)
    return root


def run_cli(
    inp: str, out: str, env: dict[str, str], *args: str, crash: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = crash_env(env, crash)
    cmd = [sys.executable, "-m", "fmaprep", "preprocess", inp, out, "--master", "local[2]",
           "--partitions", "4", *args]  # fmt: skip
    return subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=300, check=False,
        start_new_session=True,
    )  # fmt: skip


def codes(out: str, settings: StoreSettings) -> dict[str, bytes]:
    """track_id -> codes; fails if a track appears twice."""
    seen: dict[str, bytes] = {}
    for record in read_records(out, settings=settings):
        assert record["track_id"] not in seen, f"{record['track_id']} twice"
        seen[record["track_id"]] = record["codes"].tobytes()
    return seen


def manifest_sources(out: str, settings: StoreSettings) -> list[str]:
    store = open_store(out, settings)
    lines = store.read_bytes(f"{out.rstrip('/')}/_manifest.jsonl").decode().splitlines()
    return [json.loads(line)["source"] for line in lines]


@pytest.fixture(params=["local", "hdfs", "s3"])
def store_root(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, dict[str, str]]]:
    """An empty place for OUTPUTs on each store, and the environment that reaches it."""
    if request.param == "local":
        yield str(tmp_path / "outs"), dict(os.environ)
        return
    env = request.getfixturevalue("services_environ")
    tag = uuid.uuid4().hex[:8]
    if request.param == "hdfs":
        yield f"{env['FMAPREP_HDFS_URI']}/commit-{tag}", env
    else:
        yield f"s3a://{env['FMAPREP_S3_BUCKET']}/commit-{tag}", env


def _settings(env: dict[str, str]) -> StoreSettings:
    return StoreSettings.from_env(environ=env)


CleanRun = Callable[..., tuple[str, dict[str, bytes]]]


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> CleanRun:
    """``clean_run(seed, *args)``: (corpus, codes) of an uncrashed run on local disk over
    ``make_corpus(seed=seed)`` with ``args``: the codes a store's crashed and resumed runs must
    end with. Made once per corpus and arguments for the module and shared by the store
    parameters (codes do not depend on where OUTPUT is; comparing an HDFS or S3 output with a
    local run's is the stricter check). The tests only read the corpus."""
    corpora: dict[int, str] = {}
    made: dict[tuple[int, tuple[str, ...]], dict[str, bytes]] = {}

    def clean(seed: int, *args: str) -> tuple[str, dict[str, bytes]]:
        if seed not in corpora:
            corpora[seed] = str(make_corpus(tmp_path_factory.mktemp(f"corpus{seed}"), seed=seed))
        if (seed, args) not in made:
            out = tmp_path_factory.mktemp(f"clean{seed}") / "out"
            proc = run_cli(corpora[seed], str(out), dict(os.environ), *args)
            assert proc.returncode == 0, proc.stderr[-2000:]
            made[seed, args] = codes(str(out), StoreSettings())
        return corpora[seed], made[seed, args]

    return clean


@pytest.mark.slow
def test_killed_first_run_then_resume(
    store_root: tuple[str, dict[str, str]], clean_run: CleanRun
) -> None:
    root, env = store_root
    settings = _settings(env)
    corpus, want = clean_run(0)
    assert len(want) == N_FILES
    for step in ("tasks:3", *STEPS):
        out = f"{root}/first-{step.replace(':', '')}"
        proc = run_cli(corpus, out, env, crash=step)
        assert proc.returncode != 0, f"{step}: the job was not killed"
        # a reader sees nothing (no commit yet) or the whole new generation
        try:
            got = codes(out, settings)
        except FileNotFoundError:
            assert step in ("tasks:3", "before-driver-shard", "before-commit"), step
        else:
            assert got == want, step
        if step == "tasks:3":  # error mode refuses a killed run's leftovers, and says why
            refused = run_cli(corpus, out, env)
            assert refused.returncode == 2 and "--mode" in refused.stderr, refused.stderr[-500:]
        # resume completes: every input exactly once, clean codes
        done = run_cli(corpus, out, env, "--mode", "resume")
        assert done.returncode == 0, done.stderr[-2000:]
        assert "took over" in done.stderr and "its process is gone" in done.stderr, step
        assert codes(out, settings) == want, step
        sources = manifest_sources(out, settings)
        assert len(sources) == len(set(sources)) == N_FILES, step
        _only_committed_files(out, settings)


@pytest.mark.slow
def test_killed_overwrite_shows_a_whole_generation(
    store_root: tuple[str, dict[str, str]], clean_run: CleanRun
) -> None:
    root, env = store_root
    settings = _settings(env)
    corpus, left = clean_run(20)
    by_channel = {"left": left, "right": clean_run(20, "--channel", "right")[1]}
    assert len(left) == N_FILES
    assert by_channel["left"] != by_channel["right"]
    out = f"{root}/over"
    assert run_cli(corpus, out, env).returncode == 0
    now = "left"
    # local/HDFS publish _SUCCESS by a rename: also die with the new one written, not renamed
    # (on S3 that point is the same as before-commit: one PutObject does both)
    staged = () if root.startswith("s3a://") else ("commit-staged",)
    for step in ("tasks:4", *STEPS, *staged):  # each step overwrites with the other channel
        other = "right" if now == "left" else "left"
        proc = run_cli(corpus, out, env, "--channel", other, "--mode", "overwrite", crash=step)
        assert proc.returncode != 0, step
        got = codes(out, settings)
        assert got in by_channel.values(), f"{step}: a mix of generations"
        if step == "commit-staged":  # the new commit was whole under its temporary name
            prefix = out.rstrip("/") + "/"
            names = [e.uri[len(prefix) :] for e in open_store(out, settings).list_files(out)]
            assert any(n.startswith("._SUCCESS.") for n in names), names
        committed = step in STEPS[2:]  # the crash came after _SUCCESS was published
        assert got == by_channel[other if committed else now], step
        if not committed:
            again = run_cli(corpus, out, env, "--channel", other, "--mode", "overwrite")
            assert again.returncode == 0, again.stderr[-2000:]
            assert codes(out, settings) == by_channel[other]
            _only_committed_files(out, settings, again.stderr)
        now = other
    done = run_cli(corpus, out, env, "--channel", now, "--mode", "overwrite")
    assert done.returncode == 0 and codes(out, settings) == by_channel[now]
    _only_committed_files(out, settings, done.stderr)


@pytest.mark.slow
def test_killed_at_a_random_moment_of_the_tasks_then_resume(
    store_root: tuple[str, dict[str, str]], clean_run: CleanRun
) -> None:
    """The driver dies at a seeded-random moment of the task phase (after a random number of
    files, plus a random few milliseconds: mid-write of a part or shard); a resume completes with
    every input once and a clean run's codes. FMAPREP_TEST_SEED=<seed> repeats a failure."""
    import random

    root, env = store_root
    settings = _settings(env)
    seed = int(os.environ.get("FMAPREP_TEST_SEED") or random.SystemRandom().randrange(2**32))
    rng = random.Random(seed)
    # one file a task, and at least three files left to do when the driver dies: the kill lands
    # in the task phase, not in the commit that follows it
    done, delay_ms = rng.randint(1, N_FILES - 3), rng.randint(0, 150)
    where = f"FMAPREP_TEST_SEED={seed}: killed after {done} files + {delay_ms} ms"
    corpus, want = clean_run(100)
    out = f"{root}/random"
    proc = run_cli(corpus, out, env, "--partitions", str(N_FILES), crash=f"tasks:{done}+{delay_ms}")
    assert proc.returncode != 0, f"{where}: the job was not killed"
    resumed = run_cli(corpus, out, env, "--mode", "resume")
    assert resumed.returncode == 0, f"{where}: {resumed.stderr[-2000:]}"
    assert codes(out, settings) == want, where
    sources = manifest_sources(out, settings)
    assert len(sources) == len(set(sources)) == N_FILES, where
    stats = json.loads(open_store(out, settings).read_bytes(f"{out}/_stats.json"))
    assert stats["processed_this_run"] <= N_FILES - done, where  # the finished tasks were kept
    _only_committed_files(out, settings)


def _only_committed_files(out: str, settings: StoreSettings, log: str = "") -> None:
    """After a successful commit, OUTPUT holds what the commit names and the convenience files:
    so ``sc.pickleFile(OUTPUT)`` sees exactly the committed parts."""
    commit = read_commit(out, settings)
    assert commit is not None
    store = open_store(out, settings)
    prefix = out.rstrip("/") + "/"
    names = {e.uri[len(prefix) :] for e in store.list_files(out)}
    control = {n for n in names if n.startswith("_fmaprep/")}
    wanted = commit.names() | {"_SUCCESS", "_manifest.jsonl", "_stats.json"}
    assert names - control == wanted, log[-3000:]  # the run's log says why a clean-up skipped
    # the control files: the last lease (released), and the records of the runs the commit names
    runs = {p.name.split("-")[2] for p in commit.parts} | {commit.generation}
    leases = {n for n in control if n.startswith("_fmaprep/lease-")}
    assert len(leases) == 1 and json.loads(store.read_bytes(prefix + leases.pop()))["released"]
    assert control - {n for n in control if n.startswith("_fmaprep/lease-")} == {
        f"_fmaprep/run-{run}.json" for run in runs
    }


@pytest.mark.slow
@pytest.mark.parametrize("where", ["local", "s3"])
def test_resume_reprocesses_exactly_the_changed_inputs(
    request: pytest.FixtureRequest, tmp_path: Path, where: str
) -> None:
    """10% of the inputs get new bytes (on S3: re-uploaded, a new ETag); a resume processes
    exactly those, and each track is once in the output, with the new codes."""
    corpus = make_corpus(tmp_path / "corpus", n=10, seed=40)
    env = dict(os.environ)
    settings = StoreSettings()
    inp, out = str(corpus), str(tmp_path / "out")
    if where == "s3":
        env = request.getfixturevalue("services_environ")
        settings = _settings(env)
        base = f"s3a://{env['FMAPREP_S3_BUCKET']}/resume-{uuid.uuid4().hex[:8]}"
        inp, out = f"{base}/in", f"{base}/out"
    store = open_store(inp, settings)

    def upload(path: Path) -> None:
        if where == "s3":
            store.write_bytes(f"{inp}/{path.relative_to(corpus).as_posix()}", path.read_bytes())

    for path in sorted(corpus.rglob("*.mp3")):
        upload(path)
    assert run_cli(inp, out, env).returncode == 0
    before = codes(out, settings)
    changed = sorted(corpus.rglob("*.mp3"))[:1]  # 10% of the inputs get new bytes
    for path in changed:
        # the same length, new bytes: on S3 often the same size too, so the ETag must tell
        write_audio(path, music(1.5, 44100, seed=99), 44100)
        upload(path)
    proc = run_cli(inp, out, env, "--mode", "resume")
    assert proc.returncode == 0, proc.stderr[-2000:]
    stats = json.loads(open_store(out, settings).read_bytes(f"{out}/_stats.json"))
    assert stats["processed_this_run"] == len(changed)
    after = codes(out, settings)
    assert after.keys() == before.keys()
    fresh = str(tmp_path / "fresh")
    assert run_cli(str(corpus), fresh, dict(os.environ)).returncode == 0
    assert after == codes(fresh, StoreSettings())  # the new codes for the changed input, once
    assert [k for k in after if after[k] != before[k]] == [p.stem for p in changed]
    # the replaced record is still in its old part, but excluded by the commit
    commit = read_commit(out, settings)
    assert commit is not None
    assert sum(len(p.exclude) for p in commit.parts) == len(changed)


@pytest.mark.slow
def test_spark_reads_a_committed_output(spark: Any, tmp_path: Path) -> None:
    corpus = make_corpus(tmp_path / "corpus", n=4, seed=60)
    out = tmp_path / "out"
    assert run_cli(str(corpus), str(out), dict(os.environ)).returncode == 0
    records = spark.sparkContext.pickleFile(str(out)).collect()
    ours = {r["track_id"]: r["codes"] for r in read_records(str(out))}
    assert {r["track_id"] for r in records} == set(ours) and len(records) == len(ours)
    for r in records:
        np.testing.assert_array_equal(r["codes"], ours[r["track_id"]])


@pytest.mark.slow
def test_s3_runs_copy_nothing_and_upload_each_byte_once(
    services_environ: dict[str, str],  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    """Every request that reaches the S3 server during a new run, an overwrite and a resume, seen
    by a recording proxy in front of it: no CopyObject, no UploadPartCopy, and the bytes uploaded
    for each part equal its size."""
    from support.httpproxy import S3Proxy

    corpus = make_corpus(tmp_path / "corpus", n=6, seed=80)
    out = f"s3a://{services_environ['FMAPREP_S3_BUCKET']}/requests-{uuid.uuid4().hex[:8]}"
    with S3Proxy(services_environ["FMAPREP_S3_ENDPOINT"]) as proxy:
        env = {**services_environ, "FMAPREP_S3_ENDPOINT": proxy.url}
        settings = _settings(env)
        seen: dict[str, list[str]] = {}
        for mode in ("error", "overwrite", "resume"):
            if mode == "resume":
                make_corpus(tmp_path / "corpus", n=8, seed=80)  # two new inputs
            before = read_commit(out, settings) if mode != "error" else None
            proxy.reset()
            proc = run_cli(str(corpus), out, env, "--mode", mode)
            assert proc.returncode == 0, proc.stderr[-2000:]
            records = proxy.requests()
            ops = [r.operation for r in records]
            seen[mode] = sorted(set(ops))
            assert "CopyObject" not in ops and "UploadPartCopy" not in ops, mode
            commit = read_commit(out, settings)
            assert commit is not None
            old = {p.name for p in before.parts} if before else set()
            for part in commit.parts:
                uploaded = sum(
                    r.payload_bytes
                    for r in records
                    if r.key
                    and r.key.endswith("/" + part.name)
                    and r.operation in ("PutObject", "UploadPart")
                )
                assert uploaded == (0 if part.name in old else part.bytes), (mode, part.name)
        assert len(codes(out, settings)) == 8
    (tmp_path / "s3-operations.json").write_text(json.dumps(seen, indent=1))
    # what the runs sent needs no IAM action the README's table leaves out for that mode
    documented = readme_iam_actions()
    for mode, operations in seen.items():
        needed = {IAM_ACTION[op] for op in operations}
        assert needed <= documented[mode], (mode, sorted(needed - documented[mode]))


# the IAM action each S3 operation needs (AWS's "Actions, resources, and condition keys for
# Amazon S3"); an operation missing here fails the test until it is added, and documented
IAM_ACTION = {
    "ListObjectsV2": "s3:ListBucket",
    "HeadObject": "s3:GetObject",
    "GetObject": "s3:GetObject",
    "PutObject": "s3:PutObject",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "AbortMultipartUpload": "s3:AbortMultipartUpload",
    "ListMultipartUploads": "s3:ListBucketMultipartUploads",
    "DeleteObjects": "s3:DeleteObject",
}
README_MODES = {"new OUTPUT": "error", "--mode overwrite": "overwrite", "--mode resume": "resume"}


def readme_iam_actions() -> dict[str, set[str]]:
    """Mode -> the IAM actions docs/emr.md's runbook table lists for it (a "+" row adds to the
    new-OUTPUT row)."""
    import re

    text = (Path(__file__).resolve().parents[2] / "docs" / "emr.md").read_text()
    table = text.split("| run | S3 requests on OUTPUT | actions |", 1)[1].split("\n\n", 1)[0]
    actions: dict[str, set[str]] = {}
    for row in table.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        mode = next((m for label, m in README_MODES.items() if label in cells[0]), None)
        if len(cells) != 3 or mode is None:
            continue
        listed = set(re.findall(r"`(s3:[A-Za-z]+)`", cells[2]))
        actions[mode] = actions["error"] | listed if cells[2].startswith("+") else listed
    assert actions.keys() == set(README_MODES.values()), f"README's IAM table: {actions}"
    return actions


@pytest.mark.slow
def test_a_commit_aborts_the_unfinished_uploads_under_output(
    services_environ: dict[str, str],  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    """A killed task's multipart upload (made here with the client, one part uploaded) under
    OUTPUT is aborted by the next commit's clean-up; one under a sibling prefix is not."""
    from local_services_fixture import s3

    client, bucket = s3(services_environ), services_environ["FMAPREP_S3_BUCKET"]
    base = f"uploads-{uuid.uuid4().hex[:8]}"
    leftovers = {}
    # the killed run's record (written when it took the lease) makes its names known
    record = {"run": "20260101T000000Z000000", "epoch": 1}
    client.put_object(Bucket=bucket, Key=f"{base}/out/_fmaprep/run-20260101T000000Z000000.json",
                      Body=json.dumps(record).encode())  # fmt: skip
    for key in (f"{base}/out/part-00001-20260101T000000Z000000-a0", f"{base}/out2/part-0"):
        upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
        client.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=b"x" * 999)
        leftovers[key] = upload

    def open_uploads(prefix: str) -> list[tuple[str, str]]:
        page = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix)
        return sorted((u["Key"], u["UploadId"]) for u in page.get("Uploads", ()))

    assert open_uploads(f"{base}/") == sorted(leftovers.items())
    corpus = make_corpus(tmp_path / "corpus", n=2, seed=90)
    proc = run_cli(str(corpus), f"s3a://{bucket}/{base}/out", services_environ)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert open_uploads(f"{base}/out/") == []
    sibling = f"{base}/out2/part-0"
    assert open_uploads(f"{base}/") == [(sibling, leftovers[sibling])]
    assert "aborted 1 unfinished multipart uploads" in proc.stderr
    client.abort_multipart_upload(Bucket=bucket, Key=sibling, UploadId=leftovers[sibling])
