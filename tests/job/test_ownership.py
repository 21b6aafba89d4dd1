"""fmaprep deletes only what it wrote (issue 25): which names are fmaprep's, INPUT and OUTPUT
apart in every spelling, and, through the CLI on local disk, HDFS and S3, OUTPUTs holding files
fmaprep did not write (hidden ones included): refused with one line when they hold nothing of
fmaprep's, untouched by an overwrite and a resume when they sit beside a committed output."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest

from fmaprep.job.ownership import owned
from fmaprep.storage.clients import StoreSettings, open_store
from fmaprep.storage.uris import StorageError, check_apart
from job.test_commit import codes, make_corpus, run_cli, store_root  # noqa: F401 (fixture)
from local_services_fixture import local_services, services_environ  # noqa: F401 (fixtures)

RUN = "20261207T092138Z94dbba"


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        (f"part-00003-{RUN}-a0e0c988", "part"),
        (f"part-00003-{RUN}-a1e0c988.parquet", "part"),
        (f"_manifest/part-00003-{RUN}-a0e0c988.jsonl", "shard"),
        (f"_manifest/{RUN}-driver.jsonl", "driver"),
        ("_fmaprep/lease-000002.json", "lease"),
        (f"_fmaprep/run-{RUN}.json", "record"),
        (f".part-00003-{RUN}-a0e0c9.{'a' * 32}.fmaprep-tmp", "temp"),
        (f"_manifest/.{RUN}-driver.jsonl.{'0' * 32}.fmaprep-tmp", "temp"),
        (f"._SUCCESS.{'f' * 32}.fmaprep-tmp", "temp"),
        ("_SUCCESS", "commit"),
        ("_manifest.jsonl", "convenience"),
        ("_stats.json", "convenience"),
    ],
)
def test_fmaprep_names(name: str, kind: str) -> None:
    what = owned(name)
    assert what is not None and what.kind == kind
    if kind in ("part", "shard", "driver", "record") or (kind == "temp" and "SUCCESS" not in name):
        assert what.run == RUN


@pytest.mark.parametrize(
    "name",
    [
        "notes.txt", ".hidden", "photos/a.jpg", "part-00000", "part-00000-1a2b-c000.snappy.parquet",
        f"part-00003-{RUN}-a0e0c988.bak", f"x/part-00003-{RUN}-a0e0c988", "_manifest/notes.jsonl",
        f"_manifest/part-00003-{RUN}-a0e0c988.jsonl.orig", "_fmaprep/notes", "_SUCCESS.bak",
        f".part-00003-{RUN}.fmaprep-tmp", "000/000002.mp3", "_tracks.jsonl",
    ],
)  # fmt: skip
def test_other_names_are_not_fmaprep_s(name: str) -> None:
    assert owned(name) is None


@pytest.mark.parametrize(
    ("inp", "out"),
    [
        ("/data/in", "/data/in"),
        ("/data/in", "/data/in/"),
        ("/data/in", "file:///data/in"),
        ("file:/data/in", "/data/in/out"),
        ("/data/in/000/*.mp3", "/data/in/000/out"),
        ("/data/in", "/data"),
        ("/data/in", "/"),
        ("s3://b/in", "s3a://b/in"),
        ("s3a://b/in", "s3://b/in/out"),
        ("s3://b/fma_full", "s3a://b/"),
        ("s3://b/fma_full", "s3a://b"),
        ("s3://b/in/**/*.mp3", "s3://b/in/x"),
        ("hdfs://nn:8020/in", "hdfs:///in/out"),
        ("hdfs:///in/x", "hdfs://nn:8020/in"),
        ("hdfs://nn:8020/in", "hdfs://nn:8020/in/../in"),
    ],
)
def test_input_and_output_overlap_is_refused(inp: str, out: str) -> None:
    with pytest.raises(StorageError, match=r"^OUTPUT .* (is|lies inside|contains) INPUT "):
        check_apart(inp, out)


@pytest.mark.parametrize(
    ("inp", "out"),
    [
        ("/data/in", "/data/input"),
        ("/data/in", "/data/out"),
        ("s3://b/in", "s3://c/in"),
        ("s3://b/in", "s3://b/input"),
        ("s3://b/in", "/b/in"),
        ("hdfs://nn:8020/in", "hdfs://other:8020/in"),
    ],
)
def test_apart_locations_pass(inp: str, out: str) -> None:
    check_apart(inp, out)


def test_a_symlink_to_input_is_input(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "in")
    with pytest.raises(StorageError, match="is INPUT"):
        check_apart(str(tmp_path / "in"), str(tmp_path / "link"))


# ---------------------------------------------------------------- through the CLI, each store
FOREIGN = {
    "notes.txt": b"my notes\n",
    ".hidden": b"secret\n",
    "photos/a.jpg": b"\xff\xd8 not really a jpeg",
    "photos/.thumbs/b.jpg": b"thumb",
    "part-00000": b"a Spark part of someone else",
    "_manifest/notes.jsonl": b'{"mine": 1}\n',
}


def _put(root: str, files: dict[str, bytes], settings: StoreSettings) -> None:
    store = open_store(root, settings)
    for name, data in files.items():
        store.write_bytes(f"{root}/{name}", data)


def _digest(root: str, settings: StoreSettings) -> dict[str, str]:
    store = open_store(root, settings)
    prefix = root.rstrip("/") + "/"
    return {
        e.uri[len(prefix) :]: hashlib.sha1(store.read_bytes(e.uri)).hexdigest()
        for e in store.list_files(root)
    }


def _one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.startswith("fmaprep:")]
    assert len(lines) == 1, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-2000:]
    return lines[0]


@pytest.mark.slow
def test_foreign_files_are_never_touched(
    store_root: tuple[str, dict[str, str]],  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    """A folder of someone's files as OUTPUT: refused in every mode with one line naming them
    (never "an interrupted run"); the same files beside a committed output survive an overwrite
    and a resume byte for byte; OUTPUT equal to, inside or containing INPUT is refused."""
    root, env = store_root
    settings = StoreSettings.from_env(environ=env)
    corpus = make_corpus(tmp_path / "corpus", n=2, seed=300)
    user = f"{root}/user"
    _put(user, FOREIGN, settings)
    for mode in ("error", "overwrite", "resume"):
        proc = run_cli(str(corpus), user, env, "--mode", mode)
        assert proc.returncode == 2, proc.stderr[-2000:]
        line = _one_line(proc.stderr)
        assert "fmaprep did not write" in line and ".hidden" in line, line
        assert "interrupted" not in line
    assert _digest(user, settings) == {n: hashlib.sha1(d).hexdigest() for n, d in FOREIGN.items()}

    # beside a committed output: an overwrite and a resume leave every foreign byte
    out = f"{root}/mixed"
    assert run_cli(str(corpus), out, env).returncode == 0
    want = codes(out, settings)
    _put(out, FOREIGN, settings)
    for mode in ("overwrite", "resume"):
        proc = run_cli(str(corpus), out, env, "--mode", mode)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert codes(out, settings) == want
        digests = _digest(out, settings)
        for name, data in FOREIGN.items():
            assert digests.get(name) == hashlib.sha1(data).hexdigest(), (mode, name)

    # INPUT and OUTPUT apart, on this store
    inp = f"{root}/in"
    _put(inp, {p.relative_to(corpus).as_posix(): p.read_bytes() for p in corpus.rglob("*.mp3")},
         settings)  # fmt: skip
    before = _digest(inp, settings)
    for output, relation in ((inp, "is"), (f"{inp}/out", "lies inside"), (root, "contains")):
        proc = run_cli(inp, output, env, "--mode", "overwrite")
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert f" {relation} INPUT " in _one_line(proc.stderr)
    assert _digest(inp, settings) == before


@pytest.mark.slow
def test_s3_output_at_a_bucket_root_beside_other_prefixes(
    services_environ: dict[str, str],  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    """``s3://bucket/`` as OUTPUT, the bucket holding ``fma_full/`` and other prefixes: refused in
    every mode, nothing deleted (the bug this replaces emptied the bucket)."""
    from local_services_fixture import s3

    client = s3(services_environ)
    bucket = f"root-{uuid.uuid4().hex[:8]}"
    client.create_bucket(Bucket=bucket)
    settings = StoreSettings.from_env(environ=services_environ)
    corpus = make_corpus(tmp_path / "corpus", n=1, seed=310)
    files = {f"fma_full/{p.relative_to(corpus).as_posix()}": p.read_bytes()
             for p in corpus.rglob("*.mp3")}  # fmt: skip
    files["other/data.bin"] = os.urandom(100)
    _put(f"s3a://{bucket}", files, settings)
    for mode in ("error", "overwrite", "resume"):
        for out in (f"s3a://{bucket}/", f"s3://{bucket}"):
            proc = run_cli(str(corpus), out, services_environ, "--mode", mode)
            assert proc.returncode == 2, proc.stderr[-2000:]
            assert "fmaprep did not write" in _one_line(proc.stderr)
    proc = run_cli(f"s3a://{bucket}/fma_full", f"s3a://{bucket}/", services_environ,
                   "--mode", "overwrite")  # fmt: skip
    assert proc.returncode == 2 and " contains INPUT " in _one_line(proc.stderr)
    assert set(_digest(f"s3a://{bucket}", settings)) == set(files)


@pytest.mark.slow
def test_an_output_from_before_the_lease_is_overwritten_and_cleaned(tmp_path: Path) -> None:
    """An OUTPUT committed by a fmaprep without leases and run records (made here by removing
    ``_fmaprep/``): an overwrite knows the old generation's runs from its commit and deletes
    them after the new commit; a killed old run's part that no record names stays."""
    import shutil

    from fmaprep.formats.records import read_commit

    corpus = make_corpus(tmp_path / "corpus", n=2, seed=320)
    out = tmp_path / "out"
    assert run_cli(str(corpus), str(out), dict(os.environ)).returncode == 0
    shutil.rmtree(out / "_fmaprep")
    old = read_commit(str(out), StoreSettings())
    assert old is not None
    stray = f"part-00009-{RUN}-a0e0c988"  # a killed old run's finished part: no record knows it
    (out / stray).write_bytes(b"kept")
    proc = run_cli(str(corpus), str(out), dict(os.environ), "--mode", "overwrite")
    assert proc.returncode == 0, proc.stderr[-2000:]
    new = read_commit(str(out), StoreSettings())
    assert new is not None and not {p.name for p in old.parts} & {p.name for p in new.parts}
    names = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert not {p.name for p in old.parts} & names  # the old generation is gone
    assert stray in names and (out / stray).read_bytes() == b"kept"
